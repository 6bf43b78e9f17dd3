"""Node keys, the peer keyring and human fingerprints.

``keyring`` and ``fingerprint`` are pure; ``nodekey`` and ``files`` touch the
disk (atomic writes, files created 0600 from the first byte).
"""
