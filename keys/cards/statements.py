"""Rotation and revocation statements: small signed facts about one key.

Each statement is a DSSE envelope with its own ``payloadType``, its payload a
msgspec struct under the same canonical-bytes rule as alerts (decode,
re-encode, compare), so a statement has exactly one spelling.

- **Rotation** ``{network, old_keyid, new_keyid, new_public_key, rotated_at}``
  is signed by *both* keys, old first: the old key vouches for its successor,
  the new key proves it exists and agrees. A receiver that trusts the old key
  may then trust the new one without a new key ceremony.
- **Revocation** ``{network, keyid, public_key, revoked_at}`` is signed by the
  revoked key itself or by another current key of the same network.

This module only builds and decodes; *whether* a receiver accepts a
statement depends on what it already trusts and lives in ``keys.cards.apply``.
Times are whole seconds in UTC, because the store keeps epoch seconds and a
statement must compare equal to what was stored from it.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Final, TypeVar

import msgspec
from msgspec import Meta, Struct

from keys.core.keyring import keyid_for
from keys.core.signing import NodeKey
from relay.core.envelope import endorse, sign
from relay.core.model import Envelope, KeyId, Network, UtcTime

ROTATION_PAYLOAD_TYPE: Final = "application/vnd.avisa.key-rotation.v1+json"
REVOCATION_PAYLOAD_TYPE: Final = "application/vnd.avisa.key-revocation.v1+json"
STATEMENT_TYPES: Final = (ROTATION_PAYLOAD_TYPE, REVOCATION_PAYLOAD_TYPE)

# Standard base64 of exactly 32 bytes; the last character before "=" may only
# carry four data bits, so this pattern admits the canonical spelling alone.
PublicKeyB64 = Annotated[str, Meta(pattern=r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$")]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def public_key_bytes(text: str) -> bytes:
    """Decode a ``PublicKeyB64`` that the struct decoder already validated."""
    return base64.b64decode(text, validate=True)


def check_moment(moment: datetime | None, name: str) -> None:
    """UTC with ``Z`` and whole seconds, so a stored copy compares equal."""
    if moment is None:
        return
    if moment.utcoffset():
        raise ValueError(f"{name} must be UTC with Z")
    if moment.microsecond:
        raise ValueError(f"{name} must be whole seconds")


def check_keyid(keyid: str, public_key: str) -> None:
    if keyid_for(public_key_bytes(public_key)) != keyid:
        raise ValueError(f"keyid {keyid} does not match its public key")


class RotationStatement(Struct, forbid_unknown_fields=True, frozen=True):
    network: Network
    old_keyid: KeyId
    new_keyid: KeyId
    new_public_key: PublicKeyB64
    rotated_at: UtcTime

    def __post_init__(self) -> None:
        check_keyid(self.new_keyid, self.new_public_key)
        if self.old_keyid == self.new_keyid:
            raise ValueError("a key cannot rotate to itself")
        check_moment(self.rotated_at, "rotated_at")


class RevocationStatement(Struct, forbid_unknown_fields=True, frozen=True):
    network: Network
    keyid: KeyId
    public_key: PublicKeyB64
    revoked_at: UtcTime

    def __post_init__(self) -> None:
        check_keyid(self.keyid, self.public_key)
        check_moment(self.revoked_at, "revoked_at")


Statement = RotationStatement | RevocationStatement
T = TypeVar("T")

_encoder: Final = msgspec.json.Encoder()
_rotation_decoder: Final = msgspec.json.Decoder(RotationStatement)
_revocation_decoder: Final = msgspec.json.Decoder(RevocationStatement)


class StatementError(ValueError):
    """A statement that does not decode canonically; the message says why."""


def encode(statement: Statement) -> bytes:
    return _encoder.encode(statement)


def decode_canonical(decoder: msgspec.json.Decoder[T], payload: bytes, what: str) -> T:
    """Decode under every bound, then insist the bytes are our own encoding."""
    try:
        value = decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise StatementError(f"malformed {what}: {exc}") from None
    except (UnicodeDecodeError, RecursionError):
        raise StatementError(f"malformed {what}: invalid JSON text") from None
    if _encoder.encode(value) != payload:
        raise StatementError(f"{what} is not in canonical form")
    return value


def decode(payload_type: str, payload: bytes) -> Statement:
    if payload_type == ROTATION_PAYLOAD_TYPE:
        return decode_canonical(_rotation_decoder, payload, "rotation statement")
    if payload_type == REVOCATION_PAYLOAD_TYPE:
        return decode_canonical(_revocation_decoder, payload, "revocation statement")
    raise StatementError(f"unknown statement type {payload_type[:100]!r}")


def make_rotation(network: str, old: NodeKey, new: NodeKey, rotated_at: datetime) -> Envelope:
    """Signed by the old key first, then the new one (both are required)."""
    statement = RotationStatement(
        network=network,
        old_keyid=old.keyid,
        new_keyid=new.keyid,
        new_public_key=b64(new.public_key),
        rotated_at=rotated_at,
    )
    payload = encode(statement)
    return endorse(sign(payload, old, ROTATION_PAYLOAD_TYPE), payload, new)


def make_revocation(
    network: str, public_key: bytes, revoked_at: datetime, signer: NodeKey
) -> Envelope:
    statement = RevocationStatement(
        network=network,
        keyid=keyid_for(public_key),
        public_key=b64(public_key),
        revoked_at=revoked_at,
    )
    return sign(encode(statement), signer, REVOCATION_PAYLOAD_TYPE)
