"""Keys: the node's signing key, peers' keys, cards, rotation and revocation (DESIGN §3, §4).

- ``keys.core`` (pure): ``signing`` (the key as a value), ``keyring``,
  ``fingerprint``. Imports nothing of Avisa.
- ``keys.cards`` (pure): key documents (``card``), rotation and revocation
  ``statements``, ``keyset`` narrowing, applying a peer's document
  (``apply``), deciding a ``trust add`` (``cardcheck``). Imports
  ``relay.core`` and ``keys.core``.
- ``keys.store`` (the shell): key files (``nodekey``), key tables
  (``ownkeys``, ``peerstore``), the operations behind ``avisa keys`` and
  ``avisa trust`` (``own_ops``, ``peer_ops``), ``requeue``. Imports
  ``relay.storage`` and below.
"""
