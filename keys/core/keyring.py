"""The keyring: which public key speaks for which network, and when.

A ``keyid`` in an envelope is only a hint; trust comes from here. Each entry
maps a keyid to its network, raw Ed25519 public key and validity window. The
window is judged by the receiver's clock: a message is never trusted on the
sender's timestamp alone, so a backdated message from a revoked key is still
refused. A rotated-out key (``valid_until`` set) keeps verifying what it
signed while it was current, for a grace period the caller chooses.

``learned_at`` and ``introduced_by`` record how the receiver came to trust a
key; they never affect ``status``, only revocation (``keys.cards.keyset``): a key
that rests on a rotation statement its receiver got after the old key's
revocation time is distrusted with it.

Pure: no I/O, no clock; callers pass ``now``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

KeyStatus = Literal["valid", "revoked", "not_yet_valid", "expired"]


def keyid_for(public_key: bytes) -> str:
    """``ed25519:`` + hex of the first 16 bytes of SHA-256(raw public key)."""
    return "ed25519:" + hashlib.sha256(public_key).digest()[:16].hex()


@dataclass(frozen=True, slots=True)
class KeyEntry:
    network: str
    public_key: bytes
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    revoked_at: datetime | None = None
    # Provenance, kept by the receiver for revocation: when it learned the key
    # (its own clock) and, for a key learned from a rotation statement, the
    # keyid of the old key that vouched for it.
    learned_at: datetime | None = None
    introduced_by: str | None = None

    @property
    def keyid(self) -> str:
        return keyid_for(self.public_key)

    def status(
        self, now: datetime, signed_at: datetime | None = None, grace: timedelta = timedelta(0)
    ) -> KeyStatus:
        """Whether this key may vouch for a message received at ``now``.

        ``signed_at`` is the sender's claim and only ever narrows trust: it
        can make an old key's message acceptable after rotation (within
        ``grace``), never a revoked key's.
        """
        if self.revoked_at is not None and now >= self.revoked_at:
            return "revoked"
        if self.valid_from is not None and now < self.valid_from:
            return "not_yet_valid"
        if self.valid_until is not None:
            if now >= self.valid_until + grace:
                return "expired"
            if now >= self.valid_until and (signed_at is None or signed_at >= self.valid_until):
                return "expired"
        return "valid"


class Keyring:
    """keyid → ``KeyEntry``; immutable once built (rebuild to change it)."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Iterable[KeyEntry] = ()) -> None:
        self._entries: dict[str, KeyEntry] = {}
        for entry in entries:
            keyid = entry.keyid
            held = self._entries.get(keyid)
            if held is not None and held.network != entry.network:
                raise ValueError(f"key {keyid} is claimed by {held.network} and {entry.network}")
            self._entries[keyid] = entry

    def get(self, keyid: str) -> KeyEntry | None:
        return self._entries.get(keyid)

    def public_key(self, keyid: str) -> bytes | None:
        """The raw public key of ``keyid`` whatever its status (the policy judges that)."""
        entry = self._entries.get(keyid)
        return None if entry is None else entry.public_key

    def __iter__(self) -> Iterator[KeyEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)
