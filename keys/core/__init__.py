"""Pure key values: the signing key (``signing``), the keyring, fingerprints.

The bottom layer: imports nothing of Avisa and does no I/O. Key files are
in ``keys.store``; key documents and statements in ``keys.cards``.
"""
