"""The node's Ed25519 signing key as a value: sign, keyid, fingerprint.

Pure (PyNaCl computes, nothing is read or written); ``keys.store.nodekey``
keeps it on disk.
"""

from __future__ import annotations

from dataclasses import dataclass

import nacl.signing

from keys.core.fingerprint import fingerprint
from keys.core.keyring import keyid_for


@dataclass(frozen=True, slots=True)
class NodeKey:
    signing_key: nacl.signing.SigningKey

    @classmethod
    def generate(cls) -> NodeKey:
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> NodeKey:
        return cls(nacl.signing.SigningKey(seed))

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def keyid(self) -> str:
        return keyid_for(self.public_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The detached 64-byte Ed25519 signature of ``message``."""
        return bytes(self.signing_key.sign(message).signature)
