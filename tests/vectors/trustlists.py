"""``trustlist.json``: a valid chain of trust list versions and the refusals of §8.

Three maintainers (``ventura``, ``la-rrn``, ``oc.resilience``, the seeds of
``base``; threshold 2) and one more member, ``santa-ana`` (a fixed seed written
here). Version 1 is signed by ``ventura`` and ``la-rrn``; version 2 changes
what ``santa-ana`` speaks for; version 3 replaces ``oc.resilience`` by
``santa-ana`` as a maintainer, signed by two of the old set and two of the new.

Each refusal names the version the receiver holds (from the valid chain, or
none), the time it judges at and the reason; the generator checks that
``keys.cards.trustwalk.walk`` gives exactly that reason before it writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

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
    set_fingerprint,
    set_text,
)
from keys.cards.trustwalk import walk
from keys.core.signing import NodeKey
from relay.core.envelope import endorse, sign
from relay.core.model import encode_envelope
from relay.core.times import rfc3339
from tests.vectors.base import SEEDS, T, node_key

MEMBER_SEED = "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5"
OLD_SET = ("la-rrn", "oc.resilience", "ventura")
NEW_SET = ("la-rrn", "santa-ana", "ventura")
NOW = T + timedelta(days=3)


def key(network: str) -> NodeKey:
    if network == "santa-ana":
        return NodeKey.from_seed(bytes.fromhex(MEMBER_SEED))
    return node_key(network)


def member(network: str, speaks_for: Sequence[str]) -> Member:
    public = key(network).public_key
    return Member(
        network=network,
        url=f"https://avisa.{network.replace('.', '-')}.example.org",
        keys=[MemberKey(key(network).keyid, b64(public), T - timedelta(days=30), None)],
        speaks_for=list(speaks_for),
        kinds=["checkpoint", "detention", "operation", "sighting"],
    )


SCOPES = {
    "la-rrn": ("fips:06037",),
    "oc.resilience": ("fips:06059",),
    "santa-ana": ("zip:92701", "zip:92703"),
    "ventura": ("fips:06111",),
}


def version(
    number: int,
    previous: OpenedList | None,
    maintainers: Sequence[str] = OLD_SET,
    santa_ana: Sequence[str] = SCOPES["santa-ana"],
    days: int = 30,
) -> TrustList:
    scopes = {**SCOPES, "santa-ana": santa_ana}
    issued = T + timedelta(days=number - 1)
    return make_list(
        "socal.coalition",
        number,
        issued,
        issued + timedelta(days=days),
        Maintainers(list(maintainers), 2),
        [member(network, scope) for network, scope in scopes.items()],
        None if previous is None else previous.digest,
    )


def signed(document: TrustList, by: Sequence[str]) -> OpenedList:
    payload = encode_list(document)
    envelope = sign(payload, key(by[0]), TRUSTLIST_PAYLOAD_TYPE)
    for network in by[1:]:
        envelope = endorse(envelope, payload, key(network))
    return read_list(encode_envelope(envelope))


def the_chain() -> list[OpenedList]:
    v1 = signed(version(1, None), ["ventura", "la-rrn"])
    v2 = signed(version(2, v1, santa_ana=("zip:92701",)), ["la-rrn", "oc.resilience"])
    v3 = signed(
        version(3, v2, NEW_SET, santa_ana=("zip:92701",)), ["ventura", "la-rrn", "santa-ana"]
    )
    return [v1, v2, v3]


def _refusals(chain: list[OpenedList]) -> list[tuple[str, int | None, OpenedList, int]]:
    """(name, held version or None, candidate, days after T to judge at)."""
    v1, v2, v3 = chain
    return [
        ("rollback", 2, v1, 3),
        ("skipped_version", 1, v3, 3),
        ("below_threshold", 1, signed(version(2, v1), ["ventura"]), 3),
        (
            "old_threshold_missing",
            2,
            signed(version(3, v2, ("santa-ana", "ventura")), ["santa-ana", "ventura"]),
            3,
        ),
        ("equivocation", 2, signed(version(2, v1), ["oc.resilience", "ventura"]), 3),
        ("expired", None, v1, 31),
        ("unknown_signer", None, signed(version(1, None), ["ventura", "la-rrn", "santa-ana"]), 3),
        ("broken_chain", 1, signed(version(2, v2), ["ventura", "la-rrn"]), 3),
    ]


def trustlists() -> dict[str, Any]:
    chain = the_chain()
    first = chain[0].document
    fingerprint = set_fingerprint(first)
    accepted = walk(None, chain, NOW, fingerprint)
    assert accepted.refusal is None and accepted.accepted == tuple(chain)
    refused = []
    for name, held, candidate, days in _refusals(chain):
        now = T + timedelta(days=days)
        result = walk(None if held is None else chain[held - 1], [candidate], now, fingerprint)
        reason = None if result.refusal is None else result.refusal.reason
        assert reason == name, f"{name}: the node says {reason}"
        refused.append(
            {
                "reason": name,
                "held_version": held,
                "now": rfc3339(now),
                "envelope": candidate.raw.decode("utf-8"),
            }
        )
    return {
        "payload_type": TRUSTLIST_PAYLOAD_TYPE,
        "keys": [
            {"network": n, "seed": SEEDS.get(n, MEMBER_SEED), "public_key": key(n).public_key.hex()}
            for n in sorted(SCOPES)
        ],
        "maintainer_set": {
            "text": set_text(first).decode("ascii"),
            "fingerprint": fingerprint,
        },
        "valid_chain": {
            "now": rfc3339(NOW),
            "versions": [
                {
                    "payload": opened.payload.decode("utf-8"),
                    "payload_sha256": opened.digest,
                    "envelope": opened.raw.decode("utf-8"),
                }
                for opened in chain
            ],
        },
        "refused": refused,
    }
