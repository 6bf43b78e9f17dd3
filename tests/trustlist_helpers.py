"""Trust lists for tests: fixed keys per network, versions built and signed in one call."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from keys.cards.statements import b64
from keys.cards.trustlist import (
    TRUSTLIST_PAYLOAD_TYPE,
    Maintainers,
    Member,
    MemberKey,
    OpenedList,
    TrustList,
    encode_list,
    make_list,
    read_list,
)
from keys.core.signing import NodeKey
from relay.core.envelope import endorse, sign
from relay.core.model import encode_envelope

T = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MAINTAINERS = ("la-rrn", "oc.resilience", "ventura")


def key_of(network: str) -> NodeKey:
    return NodeKey.from_seed(hashlib.sha256(b"trustlist test " + network.encode()).digest())


def member(network: str, speaks_for: Sequence[str] = ("fips:06111",)) -> Member:
    key = key_of(network)
    return Member(
        network=network,
        url=f"https://{network.replace('.', '-')}.example.org",
        keys=[MemberKey(key.keyid, b64(key.public_key), None, None)],
        speaks_for=list(speaks_for),
        kinds=["checkpoint", "operation"],
    )


def document(
    version: int = 1,
    maintainers: Sequence[str] = MAINTAINERS,
    threshold: int = 2,
    extra: Sequence[str] = ("santa-ana",),
    previous: OpenedList | None = None,
    issued_at: datetime = T,
    days: int = 30,
) -> TrustList:
    networks = sorted({*maintainers, *extra})
    return make_list(
        "socal",
        version,
        issued_at,
        issued_at + timedelta(days=days),
        Maintainers(sorted(maintainers), threshold),
        [member(network) for network in networks],
        None if previous is None else previous.digest,
    )


def signed(doc: TrustList, by: Sequence[str]) -> OpenedList:
    payload = encode_list(doc)
    envelope = sign(payload, key_of(by[0]), TRUSTLIST_PAYLOAD_TYPE)
    for network in by[1:]:
        envelope = endorse(envelope, payload, key_of(network))
    return read_list(encode_envelope(envelope))


def chain(length: int, by: Sequence[str] = MAINTAINERS[:2]) -> list[OpenedList]:
    versions: list[OpenedList] = []
    for version in range(1, length + 1):
        previous = versions[-1] if versions else None
        issued = T + timedelta(days=version - 1)
        versions.append(signed(document(version, previous=previous, issued_at=issued), by))
    return versions
