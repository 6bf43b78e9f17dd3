"""Keys on disk and in SQLite, and the operator's key operations.

Lives here: the key file (``nodekey``), this node's keys (``ownkeys``),
peers' keys with provenance (``peerstore``), ``avisa keys …`` and ``avisa
trust …`` operations (``own_ops``, ``peer_ops``), and the review queue after
a revocation (``requeue``).

May import: ``relay.storage``, ``keys.cards``, ``relay.core``,
``keys.core``. Never ``relay.runtime`` or above. Rules that need no disk go
in ``keys.cards`` or ``keys.core``.
"""
