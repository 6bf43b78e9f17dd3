"""The coalition trust list: its format, its bounds and the maintainer-set fingerprint.

A trust list (DESIGN §15, docs/protocol.md §8) is a DSSE envelope of type
``application/vnd.avisa.trustlist.v1+json`` whose payload names the list, its
version, when it was issued and when it expires (at most 90 days later), its
maintainers (networks and a threshold ``k``), its members (network, url, keys
with validity, ``speaks_for``, kinds) and the hex SHA-256 of the previous
version's payload. Maintainers sign with their node keys, which the list
itself lists: every maintainer is a member.

``read_list`` turns untrusted bytes into an ``OpenedList`` under every bound
(envelope bytes, members, keys per member, scope entries, string lengths;
the payload is canonical as for alerts, and JSON that is not strict, deep
JSON included, is refused before it is walked) or raises ``TrustListRefused``
with a reason code. It checks no signature: whose signatures count depends on
the version the reader already holds, which is ``keys.cards.trustwalk``.

``set_fingerprint`` is what a subscriber reads aloud once: the key
fingerprint's iterated SHA-512 (``keys.core.fingerprint``) over a text that
names the list, the threshold and every maintainer's keys.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta, Struct

from keys.cards.statements import (
    PublicKeyB64,
    StatementError,
    check_keyid,
    check_moment,
    decode_canonical,
    public_key_bytes,
)
from keys.core.fingerprint import fingerprint
from relay.core.envelope import open_envelope
from relay.core.errors import BadInput, BadPeerData
from relay.core.model import (
    MAX_SCOPE,
    MAX_SIGNATURES_HARD,
    NODE_URL_MAX,
    SCOPE_PATTERN,
    Envelope,
    KeyId,
    Kind,
    Network,
    UtcTime,
    valid_node_url,
)

TRUSTLIST_PAYLOAD_TYPE: Final = "application/vnd.avisa.trustlist.v1+json"
#: The whole envelope, as fetched or stored.
MAX_LIST_BYTES: Final = 1024 * 1024
MAX_MEMBERS: Final = 1000
MAX_MAINTAINERS: Final = 8
MAX_MEMBER_KEYS: Final = 8
MAX_VALIDITY: Final = timedelta(days=90)
MAX_VERSION: Final = 2**53 - 1

Reason = Literal[
    "too_large",
    "malformed",
    "wrong_payload_type",
    "wrong_list",
    "bad_signature",
    "unknown_signer",
    "below_threshold",
    "old_threshold_missing",
    "broken_chain",
    "rollback",
    "skipped_version",
    "equivocation",
    "expired",
    "from_future",
    "fingerprint_mismatch",
]

Scope = Annotated[str, Meta(pattern=SCOPE_PATTERN)]
Url = Annotated[str, Meta(max_length=NODE_URL_MAX)]
Digest = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
Version = Annotated[int, Meta(ge=1, le=MAX_VERSION)]


class MemberKey(Struct, forbid_unknown_fields=True, frozen=True):
    keyid: KeyId
    public_key: PublicKeyB64
    valid_from: UtcTime | None
    valid_until: UtcTime | None

    def valid_at(self, moment: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= moment) and (
            self.valid_until is None or moment < self.valid_until
        )


class Member(Struct, forbid_unknown_fields=True, frozen=True):
    network: Network
    url: Url
    keys: Annotated[list[MemberKey], Meta(min_length=1, max_length=MAX_MEMBER_KEYS)]
    speaks_for: Annotated[list[Scope], Meta(max_length=MAX_SCOPE)]
    kinds: Annotated[list[Kind], Meta(min_length=1, max_length=10)]


class Maintainers(Struct, forbid_unknown_fields=True, frozen=True):
    networks: Annotated[list[Network], Meta(min_length=1, max_length=MAX_MAINTAINERS)]
    threshold: Annotated[int, Meta(ge=1, le=MAX_MAINTAINERS)]


Members = Annotated[list[Member], Meta(max_length=MAX_MEMBERS)]


class TrustList(Struct, forbid_unknown_fields=True, frozen=True):
    """The payload; field order is the encoding order (docs/protocol.md §8)."""

    list: Network
    version: Version
    issued_at: UtcTime
    expires_at: UtcTime
    maintainers: Maintainers
    members: Members
    previous: Digest | None

    def __post_init__(self) -> None:
        check_moment(self.issued_at, "issued_at")
        check_moment(self.expires_at, "expires_at")
        if not self.issued_at < self.expires_at <= self.issued_at + MAX_VALIDITY:
            raise ValueError("expires_at must be after issued_at and at most 90 days later")
        if (self.version == 1) != (self.previous is None):
            raise ValueError("previous is null for version 1 and the hash of version N-1 after")
        _check_members(self.members)
        _check_maintainers(self.maintainers, {member.network for member in self.members})

    def member(self, network: str) -> Member | None:
        return next((m for m in self.members if m.network == network), None)

    def maintainer_keys(self) -> dict[str, tuple[str, MemberKey]]:
        """keyid → (maintainer network, key) for every key a maintainer is listed with."""
        keys: dict[str, tuple[str, MemberKey]] = {}
        for network in self.maintainers.networks:
            member = self.member(network)
            for key in member.keys if member is not None else ():
                keys[key.keyid] = (network, key)
        return keys


def _sorted_unique(items: list[str]) -> bool:
    return all(a < b for a, b in itertools.pairwise(items))


def _check_members(members: list[Member]) -> None:
    if not _sorted_unique([member.network for member in members]):
        raise ValueError("members must be sorted by network, each network once")
    keyids: set[str] = set()
    for member in members:
        if not valid_node_url(member.url):
            raise ValueError(f"{member.network}: url must be http(s)://host[:port][/path]")
        if len(set(member.speaks_for)) != len(member.speaks_for):
            raise ValueError(f"{member.network}: speaks_for lists an entry twice")
        if len(set(member.kinds)) != len(member.kinds):
            raise ValueError(f"{member.network}: kinds lists a kind twice")
        for key in member.keys:
            if key.keyid in keyids:
                raise ValueError(f"key {key.keyid} is listed twice (two networks never share one)")
            keyids.add(key.keyid)
            check_keyid(key.keyid, key.public_key)
            check_moment(key.valid_from, "valid_from")
            check_moment(key.valid_until, "valid_until")


def _check_maintainers(maintainers: Maintainers, members: set[str]) -> None:
    if not _sorted_unique(maintainers.networks):
        raise ValueError("maintainers.networks must be sorted, each network once")
    if maintainers.threshold > len(maintainers.networks):
        raise ValueError("maintainers.threshold is more than there are maintainers")
    missing = [network for network in maintainers.networks if network not in members]
    if missing:
        raise ValueError(f"maintainer {missing[0]} is not a member (its keys must be listed)")


class ListEnvelope(Envelope, forbid_unknown_fields=True, frozen=True):
    """An ``Envelope`` whose payload may be as large as a trust list."""

    payload: Annotated[str, Meta(max_length=MAX_LIST_BYTES)]


_list_decoder: Final = msgspec.json.Decoder(TrustList)
_envelope_decoder: Final = msgspec.json.Decoder(ListEnvelope)
_encoder: Final = msgspec.json.Encoder()


class TrustListRefused(BadPeerData):
    """A trust list refused; ``reason`` is the code of docs/protocol.md §8.4."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__("AVISA_TRUSTLIST_REFUSED", f"{reason}: {message}")
        self.reason: Reason = reason


@dataclass(frozen=True, slots=True)
class OpenedList:
    """A list read under every bound; ``digest`` is the hex SHA-256 of ``payload``."""

    document: TrustList
    envelope: Envelope
    payload: bytes
    raw: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()

    @property
    def version(self) -> int:
        return self.document.version


def encode_list(document: TrustList) -> bytes:
    """The canonical payload bytes of ``document``."""
    return _encoder.encode(document)


def decode_list(payload: bytes) -> TrustList:
    """A payload's ``TrustList`` (canonical bytes only), or ``TrustListRefused``."""
    if len(payload) > MAX_LIST_BYTES:
        raise TrustListRefused("too_large", f"the payload is over {MAX_LIST_BYTES} bytes")
    try:
        return decode_canonical(_list_decoder, payload, "trust list")
    except StatementError as exc:
        raise TrustListRefused("malformed", str(exc)) from None


def read_list(raw: bytes) -> OpenedList:
    """Untrusted bytes to an ``OpenedList``: bounds, strict JSON, type, canonical payload."""
    try:
        envelope, payload = open_envelope(raw, MAX_LIST_BYTES, _envelope_decoder.decode)
    except BadInput as exc:
        reason: Reason = "too_large" if exc.errcode == "AVISA_TOO_LARGE" else "malformed"
        raise TrustListRefused(reason, exc.message) from None
    if envelope.payloadType != TRUSTLIST_PAYLOAD_TYPE:
        raise TrustListRefused(
            "wrong_payload_type", f"the payload type is not {TRUSTLIST_PAYLOAD_TYPE}"
        )
    if len(envelope.signatures) > MAX_SIGNATURES_HARD:
        raise TrustListRefused("malformed", f"more than {MAX_SIGNATURES_HARD} signatures")
    return OpenedList(decode_list(payload), envelope, payload, raw)


def set_text(document: TrustList) -> bytes:
    """What ``set_fingerprint`` hashes: the list id, the threshold, each maintainer key.

    One line each, LF-terminated, keys as ``network`` SP lowercase hex of the
    raw public key, lines sorted (docs/protocol.md §8.5).
    """
    keys = sorted(
        f"{network} {public_key_bytes(key.public_key).hex()}"
        for network, key in document.maintainer_keys().values()
    )
    lines = [
        "avisa-trustlist-maintainers-v1",
        f"list {document.list}",
        f"threshold {document.maintainers.threshold}",
        *keys,
    ]
    return "".join(line + "\n" for line in lines).encode("ascii")


def set_fingerprint(document: TrustList) -> str:
    """Six groups of five digits, read aloud once when subscribing to version 1."""
    return fingerprint(set_text(document))


def make_list(
    list_id: str,
    version: int,
    issued_at: datetime,
    expires_at: datetime,
    maintainers: Maintainers,
    members: list[Member],
    previous: str | None,
) -> TrustList:
    """A payload from parts, members and maintainers sorted, checked as a reader checks it."""
    try:
        document = TrustList(
            list=list_id,
            version=version,
            issued_at=issued_at,
            expires_at=expires_at,
            maintainers=Maintainers(sorted(maintainers.networks), maintainers.threshold),
            members=sorted(members, key=lambda member: member.network),
            previous=previous,
        )
        return decode_list(encode_list(document))
    except ValueError as exc:
        raise TrustListRefused("malformed", str(exc)) from None
