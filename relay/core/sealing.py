"""Sealing personal data at rest: a reporter's or subscriber's phone number.

A phone number is kept only sealed (XSalsa20-Poly1305, PyNaCl ``SecretBox``)
with a key that lives outside the database (``DIR/desk.key``, read by
``relay.storage.sealkey``), so a copy of the database alone reveals no
number. Rows are found by a keyed hash (BLAKE2b keyed with a subkey of the
same key), which is also what rate limits and corroboration count: equal
numbers give equal hashes, and nobody without the key can test a guess.

Pure: the key is given; nothing here reads a file.
"""

from __future__ import annotations

import hashlib

import nacl.exceptions
import nacl.secret
import nacl.utils

from relay.core.errors import AvisaError

KEY_BYTES = nacl.secret.SecretBox.KEY_SIZE
HASH_BYTES = 16
_HASH_CONTEXT = b"avisa-keyed-hash-v1"


class SealError(AvisaError):
    """A sealed value does not open with this key (another node's, or damaged)."""


class Sealer:
    """Seals, opens and hashes personal data with one secret key."""

    __slots__ = ("_box", "_hash_key")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a sealing key is {KEY_BYTES} bytes")
        self._box = nacl.secret.SecretBox(key)
        # A separate subkey for hashing, so the hash never exposes the box key.
        self._hash_key = hashlib.blake2b(key, digest_size=32, person=b"avisa-hash-key").digest()

    @staticmethod
    def new_key() -> bytes:
        return nacl.utils.random(KEY_BYTES)

    def seal(self, plaintext: bytes) -> bytes:
        """Nonce and ciphertext, ready to store; a fresh nonce every time."""
        return bytes(self._box.encrypt(plaintext))

    def open(self, sealed: bytes) -> bytes:
        try:
            return bytes(self._box.decrypt(sealed))
        except nacl.exceptions.CryptoError:
            raise SealError("sealed value does not open with this node's desk key") from None

    def keyed_hash(self, value: bytes, purpose: bytes = b"") -> bytes:
        """BLAKE2b of ``value`` keyed with this node's key; ``purpose`` separates uses."""
        digest = hashlib.blake2b(
            value, key=self._hash_key, digest_size=HASH_BYTES, person=_HASH_CONTEXT[:16]
        )
        digest.update(b"\x00" + purpose)
        return digest.digest()
