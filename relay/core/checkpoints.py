"""Each origin's hash chain over the messages it signs, in ``seq`` order (pure).

DESIGN §16: ``head_0`` is 32 zero bytes and
``head_n = SHA-256(head_{n-1} ‖ SHA-256(PAE(type, payload) of message n))``.
The inner hash (``entry_digest``) is of the exact bytes the origin signed, so
two nodes that hold the same messages compute the same heads whatever
endorsements or spacing their envelopes carry; the outer one chains them, so
one head at ``seq`` n commits to every message 1…n. A hash chain and not a
Merkle tree: every peer receives every entry, so nobody needs a proof of
inclusion, only "do we agree on everything up to n".

A **checkpoint** is the origin's signed word on its chain: a DSSE envelope
of type ``application/vnd.avisa.checkpoint.v1+json`` whose payload is
``{"network", "seq", "head", "issued_at"}`` (``head`` in lowercase hex), one
signature, its origin's, canonical JSON as alerts are (decode, re-encode,
compare). ``check_checkpoint`` is how a node reads one it did not sign:
size, strict envelope, one signature of a key the keyring knows, valid and of
the checkpoint's own network, then the payload, then time and order against
the latest this node holds of that origin. It never raises for bad input; it
names a reason (``Refused``).

A node learns an origin's messages out of order and not always all of them.
Its chain is the head over the **contiguous prefix** it holds (``advance``):
a message beyond a gap waits, as a digest, until the gap is filled; the
storage side (``relay.storage.chain``) keeps that state incrementally, one
step per message, never rescanning. Only messages that carry a valid
signature of their own origin's key join the chain (``chained_digest``): an
endorser can vouch for an alert, but cannot speak for what its origin signed.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Annotated, Final

import msgspec
from msgspec import Meta

from keys.core.keyring import Keyring
from keys.core.signing import NodeKey
from relay.core.envelope import (
    Verification,
    open_envelope,
    pae,
    refusal_reason,
    sign,
    verify_signature,
)
from relay.core.errors import BadInput
from relay.core.model import Alert, Envelope, Network, UtcTime, encode_envelope

CHECKPOINT_PAYLOAD_TYPE: Final = "application/vnd.avisa.checkpoint.v1+json"
#: A checkpoint envelope is about 400 bytes; anything much larger is not one.
MAX_CHECKPOINT_BYTES: Final = 2048

HEAD_BYTES = 32
ZERO_HEAD = bytes(HEAD_BYTES)


def entry_digest(payload_type: str, payload: bytes) -> bytes:
    """SHA-256 of the PAE bytes of one message (what its signatures sign), hashed in two
    parts so the payload is not copied into a PAE first."""
    kind = payload_type.encode()
    digest = hashlib.sha256(b"DSSEv1 %d %s %d " % (len(kind), kind, len(payload)))
    digest.update(payload)
    return digest.digest()


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


# --- the checkpoint ----------------------------------------------------------------

HeadHex = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
ChainSeq = Annotated[int, Meta(ge=0, le=2**53 - 1)]


class Checkpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An origin's head at ``seq`` (0: before its first message), as it signed it."""

    network: Network
    seq: ChainSeq
    head: HeadHex
    issued_at: UtcTime


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(Checkpoint)


class Refused(msgspec.Struct, frozen=True):
    """Why a checkpoint was not taken; ``network`` once the payload was read."""

    reason: str
    network: str | None = None


def make_checkpoint(network: str, seq: int, head: bytes, issued_at: datetime) -> Checkpoint:
    """An origin's checkpoint of its head (``issued_at`` to the whole second)."""
    return Checkpoint(network, seq, head.hex(), issued_at.replace(microsecond=0))


def sign_checkpoint(checkpoint: Checkpoint, key: NodeKey) -> bytes:
    """The checkpoint's envelope as it goes on the wire, signed by its origin's ``key``."""
    return encode_envelope(sign(_encoder.encode(checkpoint), key, CHECKPOINT_PAYLOAD_TYPE))


def decode_checkpoint(payload: bytes) -> Checkpoint:
    """The payload read strictly: BadInput unless it is the canonical encoding."""
    try:
        checkpoint = _decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadInput("AVISA_MALFORMED", f"not a checkpoint payload: {exc}") from None
    if _encoder.encode(checkpoint) != payload:
        raise BadInput("AVISA_NON_CANONICAL", "checkpoint payload is not in canonical form")
    return checkpoint


def check_checkpoint(
    raw: bytes,
    keyring: Keyring,
    now: datetime,
    max_future_skew: timedelta,
    latest: Mapping[str, Checkpoint],
) -> Checkpoint | Refused:
    """A checkpoint another node signed, verified before anything, or why not.

    ``latest``: per origin, the newest checkpoint this node holds. One that is
    not newer (a lower ``seq``, or the same ``seq`` issued no later) is refused:
    checkpoints only move forward, so a replayed or reordered one changes nothing.
    """
    if len(raw) > MAX_CHECKPOINT_BYTES:
        return Refused("too_large")
    try:
        envelope, payload = open_envelope(raw)
    except BadInput as exc:
        return Refused(refusal_reason(exc))
    if envelope.payloadType != CHECKPOINT_PAYLOAD_TYPE:
        return Refused("unsupported_payload_type")
    refused = _check_signature(envelope, payload, keyring)
    if refused is not None:
        return refused
    try:
        checkpoint = decode_checkpoint(payload)
    except BadInput as exc:
        reason = "non_canonical" if exc.errcode == "AVISA_NON_CANONICAL" else "malformed_payload"
        return Refused(reason)
    return _check_claims(checkpoint, keyring, envelope, now, max_future_skew, latest)


def _check_signature(envelope: Envelope, payload: bytes, keyring: Keyring) -> Refused | None:
    if len(envelope.signatures) != 1:
        return Refused("too_many_signatures")
    (signature,) = envelope.signatures
    entry = keyring.get(signature.keyid)
    if entry is None:
        return Refused("unknown_key")
    message = pae(CHECKPOINT_PAYLOAD_TYPE, payload)
    if not verify_signature(entry.public_key, message, base64.b64decode(signature.sig)):
        return Refused("bad_signature")
    return None


def _check_claims(
    checkpoint: Checkpoint,
    keyring: Keyring,
    envelope: Envelope,
    now: datetime,
    max_future_skew: timedelta,
    latest: Mapping[str, Checkpoint],
) -> Checkpoint | Refused:
    network = checkpoint.network
    entry = keyring.get(envelope.signatures[0].keyid)
    if entry is None or entry.network != network:
        return Refused("origin_mismatch", network)
    status = entry.status(now, checkpoint.issued_at)
    if status != "valid":
        return Refused(f"key_{status}", network)
    if checkpoint.issued_at > now + max_future_skew:
        return Refused("from_future", network)
    return check_order(checkpoint, latest.get(network)) or checkpoint


def check_order(checkpoint: Checkpoint, seen: Checkpoint | None) -> Refused | None:
    """Checkpoints of an origin only move forward: refused if not newer than ``seen``."""
    if seen is None:
        return None
    if checkpoint.seq < seen.seq:
        return Refused("seq_below_seen", checkpoint.network)
    if checkpoint.seq == seen.seq and checkpoint.issued_at <= seen.issued_at:
        return Refused("not_newer", checkpoint.network)
    return None


# --- silence ----------------------------------------------------------------------


def silent_origins(
    issued: Mapping[str, datetime], watched: Iterable[str], now: datetime, stale_after: timedelta
) -> dict[str, datetime]:
    """The origins among ``watched`` whose newest checkpoint held here (``issued``: its
    ``issued_at``) is older than ``stale_after`` at ``now``, each with that time: no
    word from them since. An origin never heard from is not silent, only unknown (a node
    that predates checkpoints never sends one)."""
    return {
        network: issued[network]
        for network in watched
        if network in issued and now - issued[network] > stale_after
    }
