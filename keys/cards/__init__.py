"""Key documents (peer cards) and the statements in them, as pure rules.

Lives here: ``card``, ``statements``, ``keyset``, ``apply``, ``cardcheck``;
coalition trust lists: ``trustlist`` (format, bounds) and ``trustwalk`` (rules).
May import: ``relay.core``, ``keys.core``; no I/O, no clock (``now`` is
passed in). Storing what a document says is ``keys.store.peerstore``.
"""
