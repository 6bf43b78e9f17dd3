"""The key document, which is also the peer card.

One format serves both the operator's card (``avisa keys export-card``, read
by ``avisa trust add``) and ``GET /federation/v1/keys``: a DSSE envelope of
type ``application/vnd.avisa.keys.v1+json`` whose payload lists the node's
current keys, its old (rotated-out) keys, its revoked keys and the rotation
and revocation statements that explain them, signed by every current key.

The payload is a msgspec struct under the canonical-bytes rule (decode,
re-encode, compare), so a document has exactly one spelling and two parsers
cannot disagree about what was signed. Every list is bounded.

``verify_key_document`` checks form and self-signature only: that each
current key signed the document proves whoever made it holds those keys.
Whether the *receiver* trusts those keys is decided elsewhere: by the
fingerprint an operator reads aloud (``keys.cards.cardcheck.check_card``), or by
statements that chain to keys it already trusts (``keys.cards.apply.apply_document``).

Pure: ``build_key_document`` takes the node's key state and ``now``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Final

import msgspec
from msgspec import Meta, Struct

from keys.cards.statements import (
    STATEMENT_TYPES,
    PublicKeyB64,
    b64,
    check_keyid,
    check_moment,
    decode_canonical,
    public_key_bytes,
)
from keys.core.keyring import KeyEntry
from keys.core.signing import NodeKey
from relay.core.envelope import open_envelope, pae, sign, verify_signature
from relay.core.errors import BadInput, BadPeerData
from relay.core.model import (
    NODE_URL_MAX,
    Envelope,
    KeyId,
    Network,
    UtcTime,
    encode_envelope,
    valid_node_url,
)
from relay.core.times import whole_seconds

KEYS_PAYLOAD_TYPE: Final = "application/vnd.avisa.keys.v1+json"
MAX_CURRENT_KEYS: Final = 8
MAX_OLD_KEYS: Final = 32
MAX_REVOKED_KEYS: Final = 32
MAX_STATEMENTS: Final = 32

Url = Annotated[str, Meta(max_length=NODE_URL_MAX)]


class CurrentKey(Struct, forbid_unknown_fields=True, frozen=True):
    keyid: KeyId
    public_key: PublicKeyB64
    valid_from: UtcTime | None
    valid_until: UtcTime | None


class OldKey(Struct, forbid_unknown_fields=True, frozen=True):
    keyid: KeyId
    public_key: PublicKeyB64
    valid_from: UtcTime | None
    expired_at: UtcTime


class RevokedKey(Struct, forbid_unknown_fields=True, frozen=True):
    keyid: KeyId
    public_key: PublicKeyB64
    revoked_at: UtcTime


class KeyDocument(Struct, forbid_unknown_fields=True, frozen=True):
    network: Network
    url: Url
    issued_at: UtcTime
    keys: Annotated[list[CurrentKey], Meta(min_length=1, max_length=MAX_CURRENT_KEYS)]
    old_keys: Annotated[list[OldKey], Meta(max_length=MAX_OLD_KEYS)]
    revoked: Annotated[list[RevokedKey], Meta(max_length=MAX_REVOKED_KEYS)]
    statements: Annotated[list[Envelope], Meta(max_length=MAX_STATEMENTS)]

    def __post_init__(self) -> None:
        check_moment(self.issued_at, "issued_at")
        if not valid_node_url(self.url):
            raise ValueError("url must be http(s)://host[:port][/path] (docs/protocol.md §5)")
        seen: set[str] = set()
        for item in self.listed():
            if item.keyid in seen:
                raise ValueError(f"the document lists key {item.keyid} twice")
            seen.add(item.keyid)
            check_keyid(item.keyid, item.public_key)
        for key in self.keys:
            check_moment(key.valid_from, "valid_from")
            check_moment(key.valid_until, "valid_until")
        for old in self.old_keys:
            check_moment(old.valid_from, "valid_from")
            check_moment(old.expired_at, "expired_at")
        for revoked in self.revoked:
            check_moment(revoked.revoked_at, "revoked_at")
        for statement in self.statements:
            if statement.payloadType not in STATEMENT_TYPES:
                raise ValueError("statements may only hold rotation and revocation statements")

    def listed(self) -> list[CurrentKey | OldKey | RevokedKey]:
        return [*self.keys, *self.old_keys, *self.revoked]

    def all_keyids(self) -> set[str]:
        return {item.keyid for item in self.listed()}


_document_decoder: Final = msgspec.json.Decoder(KeyDocument)
_encoder: Final = msgspec.json.Encoder()


class KeyDocumentError(BadPeerData):
    """A key document or card that is malformed or not properly self-signed."""

    def __init__(self, message: str) -> None:
        super().__init__("AVISA_BAD_KEY_DOCUMENT", message)


@dataclass(frozen=True, slots=True)
class VerifiedDocument:
    """A document whose form and self-signature hold; ``raw`` is its canonical envelope."""

    document: KeyDocument
    envelope: Envelope
    raw: bytes

    @property
    def network(self) -> str:
        return self.document.network


def _current_entry(network: str, key: NodeKey, history: Sequence[KeyEntry]) -> KeyEntry:
    for entry in history:
        if entry.keyid == key.keyid:
            return entry
    return KeyEntry(network, key.public_key)


def build_key_document(
    network: str,
    url: str,
    current: NodeKey,
    history: Sequence[KeyEntry],
    statements: Sequence[Envelope],
    now: datetime,
) -> Envelope:
    """The node's signed key document: current key, old keys, revoked keys, statements.

    ``history`` is the node's own key rows (the current key's row may be among
    them); ``statements`` its rotation and revocation statements, oldest first.
    """
    present = _current_entry(network, current, history)
    if present.revoked_at is not None:
        raise ValueError("the current key is revoked; rotate before publishing a document")
    others = [entry for entry in history if entry.keyid != current.keyid]
    revoked = sorted(
        (entry for entry in others if entry.revoked_at is not None),
        key=lambda entry: entry.revoked_at or now,
    )[-MAX_REVOKED_KEYS:]
    old = sorted(
        (entry for entry in others if entry.revoked_at is None and entry.valid_until is not None),
        key=lambda entry: entry.valid_until or now,
    )[-MAX_OLD_KEYS:]
    document = KeyDocument(
        network=network,
        url=url,
        issued_at=whole_seconds(now),
        keys=[CurrentKey(current.keyid, b64(current.public_key), present.valid_from, None)],
        old_keys=[
            OldKey(e.keyid, b64(e.public_key), e.valid_from, e.valid_until or now) for e in old
        ],
        revoked=[RevokedKey(e.keyid, b64(e.public_key), e.revoked_at or now) for e in revoked],
        statements=list(statements)[-MAX_STATEMENTS:],
    )
    return sign(_encoder.encode(document), current, KEYS_PAYLOAD_TYPE)


def encode_document(document: KeyDocument) -> bytes:
    return _encoder.encode(document)


def verify_key_document(raw: bytes) -> VerifiedDocument:
    """Parse untrusted bytes; require canonical form and a signature by every current key."""
    try:
        envelope, payload = open_envelope(raw)
    except BadInput as exc:
        raise KeyDocumentError(f"not a key document: {exc.message}") from None
    if envelope.payloadType != KEYS_PAYLOAD_TYPE:
        raise KeyDocumentError(f"not an Avisa key document (type is not {KEYS_PAYLOAD_TYPE})")
    try:
        document = decode_canonical(_document_decoder, payload, "key document")
    except ValueError as exc:
        raise KeyDocumentError(str(exc)) from None
    _check_self_signature(envelope, payload, document)
    return VerifiedDocument(document, envelope, encode_envelope(envelope))


def _check_self_signature(envelope: Envelope, payload: bytes, document: KeyDocument) -> None:
    current = {key.keyid: public_key_bytes(key.public_key) for key in document.keys}
    message = pae(envelope.payloadType, payload)
    signed: set[str] = set()
    for signature in envelope.signatures:
        public = current.get(signature.keyid)
        if public is None:
            raise KeyDocumentError(f"signed by {signature.keyid}, which is not one of its keys")
        if signature.keyid in signed:
            raise KeyDocumentError(f"signed twice by {signature.keyid}")
        if not verify_signature(public, message, base64.b64decode(signature.sig)):
            raise KeyDocumentError(
                f"the signature by {signature.keyid} does not verify: the document was"
                " altered after signing, or is not what its sender made"
            )
        signed.add(signature.keyid)
    missing = set(current) - signed
    if missing:
        raise KeyDocumentError(f"not signed by its current key {sorted(missing)[0]}")
