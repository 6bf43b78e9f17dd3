"""Each origin's hash chain over the messages it signs, in ``seq`` order (pure).

DESIGN §16: ``head_0`` is 32 zero bytes and
``head_n = SHA-256(head_{n-1} ‖ SHA-256(PAE(type, payload) of message n))``.
The inner hash (``entry_digest``) is of the exact bytes the origin signed, so
two nodes that hold the same messages compute the same heads whatever
endorsements or spacing their envelopes carry; the outer one chains them, so
one head at ``seq`` n commits to every message 1…n. A hash chain and not a
Merkle tree: every peer receives every entry, so nobody needs a proof of
inclusion, only "do we agree on everything up to n".

A node learns an origin's messages out of order and not always all of them.
Its chain is the head over the **contiguous prefix** it holds (``advance``):
a message beyond a gap waits, as a digest, until the gap is filled; the
storage side (``relay.storage.chain``) keeps that state incrementally, one
step per message, never rescanning. Only messages that carry a valid
signature of their own origin's key join the chain (``chained_digest``): an
endorser can vouch for an alert, but cannot speak for what its origin signed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from relay.core.envelope import Verification, pae
from relay.core.model import Alert

HEAD_BYTES = 32
ZERO_HEAD = bytes(HEAD_BYTES)


def entry_digest(payload_type: str, payload: bytes) -> bytes:
    """SHA-256 of the PAE bytes of one message (what its signatures sign)."""
    return hashlib.sha256(pae(payload_type, payload)).digest()


def next_head(head: bytes, digest: bytes) -> bytes:
    """The head after one more message: SHA-256(head ‖ digest)."""
    return hashlib.sha256(head + digest).digest()


def chain_heads(digests: list[bytes], head: bytes = ZERO_HEAD) -> list[bytes]:
    """The head after each digest in turn (``head_1 … head_n`` from ``head_0``)."""
    heads = []
    for digest in digests:
        head = next_head(head, digest)
        heads.append(head)
    return heads


def advance(seq: int, head: bytes, waiting: Mapping[int, bytes]) -> list[tuple[int, bytes]]:
    """The heads the waiting digests add after ``(seq, head)``: the contiguous run
    ``seq + 1, seq + 2, …`` as far as ``waiting`` holds it, as ``(seq, head)`` pairs."""
    added = []
    while seq + 1 in waiting:
        seq += 1
        head = next_head(head, waiting[seq])
        added.append((seq, head))
    return added


def chained_digest(
    verification: Verification, alert: Alert, payload_type: str, payload: bytes
) -> bytes | None:
    """The entry digest of a message that joins its origin's chain, or None: only a
    message whose first signature is valid and made with a key of ``alert.network``
    (a key's validity window does not matter: what it signed, it signed)."""
    origin = verification.origin
    if not origin.valid or origin.entry is None or origin.entry.network != alert.network:
        return None
    return entry_digest(payload_type, payload)
