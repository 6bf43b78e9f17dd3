"""Cosignatures: a witness's word that it holds an origin's chain up to a checkpoint (pure).

DESIGN §16, docs/protocol.md §9.5. A node that holds every message of an
origin up to a checkpoint's ``seq`` and computes the same ``head`` signs
``{"witness", "time", "sig"}``: ``witness`` is the keyid it signed with,
``time`` when (RFC 3339, whole seconds, UTC), ``sig`` the Ed25519 signature,
base64, of ``COSIGNED_CONTEXT ‖ time ‖ "\\n" ‖ PAE(checkpoint type, payload)``:
the checkpoint's own signed bytes, so a cosignature cannot be moved to another
checkpoint, and the time, so an old one cannot pass for a fresh word.

A checkpoint passed on (``PUT /federation/v1/checkpoints/{network}`` from a
node other than its origin) travels as a **relayed checkpoint**:
``{"checkpoint": "<the origin's envelope, as signed>", "cosignatures": [...]}``,
at most ``MAX_COSIGNATURES`` of them and ``MAX_RELAYED_BYTES`` in all. The
origin's envelope is a string so its bytes pass unchanged. A body that is a
bare envelope (the origin's own push, or an older node) is read as one with
no cosignatures (``read_relayed``).

A receiver keeps only the cosignatures it can check (``valid_cosignatures``):
a key its keyring holds and that is valid at ``time``, of a network that is
not the origin's, a time not in the future, a good signature; one per witness
network. An unverifiable cosignature is dropped, not the checkpoint: the
origin's signature is what makes a checkpoint, cosignatures only add to it.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Annotated, Final

import msgspec
from msgspec import Meta

from keys.core.keyring import Keyring
from keys.core.signing import NodeKey
from relay.core.checkpoints import CHECKPOINT_PAYLOAD_TYPE, MAX_CHECKPOINT_BYTES
from relay.core.envelope import canonical_b64decode, open_envelope, pae, verify_signature
from relay.core.errors import BadInput
from relay.core.model import UtcTime
from relay.core.times import rfc3339

COSIGNED_CONTEXT: Final = b"avisa-cosignature/v1\n"
MAX_COSIGNATURES: Final = 4
#: A relayed checkpoint: the envelope (≤ 2,048 bytes, escaped) and four cosignatures.
MAX_RELAYED_BYTES: Final = 4096

KeyId = Annotated[str, Meta(max_length=80)]
Sig = Annotated[str, Meta(max_length=100)]


class Cosignature(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One witness's cosignature of a checkpoint."""

    witness: KeyId
    time: UtcTime
    sig: Sig


class Relayed(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A checkpoint as a node other than its origin passes it on."""

    checkpoint: Annotated[str, Meta(max_length=MAX_CHECKPOINT_BYTES)]
    cosignatures: Annotated[list[Cosignature], Meta(max_length=MAX_COSIGNATURES)] = []


_decoder: Final = msgspec.json.Decoder(Relayed)
_encoder: Final = msgspec.json.Encoder()
_list_decoder: Final = msgspec.json.Decoder(list[Cosignature])


def _time_text(moment: datetime) -> str:
    return rfc3339(moment.replace(microsecond=0))


def cosigned_bytes(checkpoint_payload: bytes, time: datetime) -> bytes:
    """What a cosignature signs: the context, the time, and the checkpoint's PAE."""
    stamp = _time_text(time).encode()
    return COSIGNED_CONTEXT + stamp + b"\n" + pae(CHECKPOINT_PAYLOAD_TYPE, checkpoint_payload)


def cosign(checkpoint_payload: bytes, key: NodeKey, time: datetime) -> Cosignature:
    """This node's cosignature of a checkpoint it agrees with (``time`` to the second)."""
    time = time.replace(microsecond=0)
    signature = key.sign(cosigned_bytes(checkpoint_payload, time))
    return Cosignature(key.keyid, time, base64.b64encode(signature).decode("ascii"))


def read_relayed(body: bytes) -> tuple[bytes, list[Cosignature]]:
    """The checkpoint envelope a body carries and the cosignatures it came with: a
    relayed checkpoint, or else the body itself as a bare envelope (no cosignatures).
    BadInput only for a relayed checkpoint that breaks its own grammar."""
    if not body.startswith(b'{"checkpoint"'):
        return body, []
    try:
        relayed = _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadInput("AVISA_MALFORMED", f"not a relayed checkpoint: {exc}") from None
    return relayed.checkpoint.encode(), list(relayed.cosignatures)


def encode_relayed(envelope: bytes, cosignatures: list[Cosignature]) -> bytes:
    """A relayed checkpoint on the wire (the newest ``MAX_COSIGNATURES`` cosignatures)."""
    kept = sorted(cosignatures, key=lambda item: item.time)[-MAX_COSIGNATURES:]
    return _encoder.encode(Relayed(envelope.decode(), kept))


def encode_cosignatures(cosignatures: list[Cosignature]) -> bytes:
    """As stored beside the checkpoint (a JSON list)."""
    return _encoder.encode(cosignatures)


def decode_cosignatures(stored: bytes) -> list[Cosignature]:
    """What ``encode_cosignatures`` wrote (an empty list for an empty column)."""
    return _list_decoder.decode(stored) if stored else []


def valid_cosignatures(
    cosignatures: list[Cosignature],
    envelope: bytes,
    keyring: Keyring,
    origin: str,
    now: datetime,
    max_future_skew: timedelta,
) -> list[Cosignature]:
    """The cosignatures of a verified checkpoint ``envelope`` of ``origin`` that hold,
    one per witness network (the newest), none of the origin's own."""
    _, payload = open_envelope(envelope)
    kept: dict[str, Cosignature] = {}
    for item in cosignatures:
        entry = keyring.get(item.witness)
        if entry is None or entry.network == origin or item.time > now + max_future_skew:
            continue
        if entry.status(now, item.time) != "valid":
            continue
        try:
            signature = canonical_b64decode(item.sig)
        except ValueError:
            continue
        if not verify_signature(entry.public_key, cosigned_bytes(payload, item.time), signature):
            continue
        known = kept.get(entry.network)
        if known is None or known.time < item.time:
            kept[entry.network] = item
    return list(kept.values())


def witnesses(cosignatures: list[Cosignature], keyring: Keyring) -> list[str]:
    """The networks that cosigned (those the keyring knows)."""
    found = (keyring.get(item.witness) for item in cosignatures)
    return sorted({entry.network for entry in found if entry is not None})
