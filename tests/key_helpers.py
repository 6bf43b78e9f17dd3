"""Builders for key-management tests: documents, statements signed by chosen keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from keys.cards.card import (
    KEYS_PAYLOAD_TYPE,
    VerifiedDocument,
    build_key_document,
    verify_key_document,
)
from keys.cards.statements import (
    REVOCATION_PAYLOAD_TYPE,
    ROTATION_PAYLOAD_TYPE,
    RevocationStatement,
    RotationStatement,
    b64,
    encode,
)
from keys.core.keyring import KeyEntry
from keys.core.signing import NodeKey
from relay.core.envelope import endorse, sign
from relay.core.model import Envelope, encode_envelope
from tests.helpers import T0

URL = "https://avisa.example.org"


def signed(payload: bytes, payload_type: str, *signers: NodeKey) -> Envelope:
    envelope = sign(payload, signers[0], payload_type)
    for signer in signers[1:]:
        envelope = endorse(envelope, payload, signer)
    return envelope


def rotation(
    old: NodeKey,
    new: NodeKey,
    *signers: NodeKey,
    at: datetime = T0,
    network: str = "la",
) -> Envelope:
    """A rotation statement old → new, signed by ``signers`` (default: both)."""
    statement = RotationStatement(network, old.keyid, new.keyid, b64(new.public_key), at)
    return signed(encode(statement), ROTATION_PAYLOAD_TYPE, *(signers or (old, new)))


def revocation(
    revoked: NodeKey, *signers: NodeKey, at: datetime = T0, network: str = "la"
) -> Envelope:
    statement = RevocationStatement(network, revoked.keyid, b64(revoked.public_key), at)
    return signed(encode(statement), REVOCATION_PAYLOAD_TYPE, *(signers or (revoked,)))


def document(
    current: NodeKey,
    statements: Sequence[Envelope] = (),
    history: Sequence[KeyEntry] = (),
    now: datetime = T0,
    network: str = "la",
) -> VerifiedDocument:
    envelope = build_key_document(network, URL, current, history, statements, now)
    return verify_key_document(encode_envelope(envelope))


def signed_document(payload: bytes, *signers: NodeKey) -> bytes:
    return encode_envelope(signed(payload, KEYS_PAYLOAD_TYPE, *signers))
