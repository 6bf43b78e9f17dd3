"""Members of trust lists as peers (``keys.cards.trustmerge``) and the freeze in the policy.

Pure tables, no event loop: each case builds the held versions of one or two
subscribed lists and what this node decided itself, then checks the peers the
merge gives; the freeze cases put a list peer through ``decide``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from msgspec.structs import replace

from keys.cards.statements import b64
from keys.cards.trustlist import Member, MemberKey
from keys.cards.trustmerge import Held, ListPeer, Local, intersect, merge
from keys.core.keyring import Keyring
from relay.core.envelope import verify
from relay.core.model import Area, encode_alert
from relay.core.policy import ListSource, PeerPolicy, Policy, PolicyState, decide
from tests.helpers import T0, envelope_for, make_alert
from tests.trustlist_helpers import key_of, member

EXPIRES = T0 + timedelta(days=30)


def held(name: str, members: list[Member], bound: tuple[str, ...] = ("fips:06",)) -> Held:
    return Held(name, 3, EXPIRES, members, bound)


def by_network(peers: list[ListPeer]) -> dict[str, ListPeer]:
    return {peer.network: peer for peer in peers}


@pytest.mark.parametrize(
    ("speaks_for", "bound", "expect"),
    [
        (("fips:06111",), ("fips:06",), ("fips:06111",)),
        (("fips:06",), ("fips:06111", "fips:06037"), ("fips:06111", "fips:06037")),
        (("fips:06111",), ("fips:06037",), ()),
        (("fips:06111",), (), ()),
        (("iso:us-ca",), ("iso:us",), ("iso:us-ca",)),
        (("9q4",), ("9q4gc",), ("9q4gc",)),
        (("9q4gc", "fips:06111"), ("9q",), ("9q4gc",)),
        (("9q4",), ("fips:06",), ()),
    ],
)
def test_scope_is_the_intersection(
    speaks_for: tuple[str, ...], bound: tuple[str, ...], expect: tuple[str, ...]
) -> None:
    assert intersect(speaks_for, bound) == expect


def test_a_member_becomes_a_list_peer_at_the_bounded_scope() -> None:
    peers = by_network(
        merge(
            [held("socal", [member("santa-ana", ("fips:06059", "fips:06111"))], ("fips:06111",))],
            Local("ventura"),
        )
    )
    peer = peers["santa-ana"]
    assert peer.policy.speaks_for == ("fips:06111",)
    assert peer.policy.kinds == {"checkpoint", "operation"}
    assert peer.policy.sources == (ListSource("socal", 3, EXPIRES),)
    assert peer.policy.relay == "own" and not peer.policy.forward  # the list does not name us
    assert [k.keyid for k in peer.keys] == [key_of("santa-ana").keyid]


@pytest.mark.parametrize(
    ("local", "kept"),
    [
        (Local("ventura"), {"santa-ana", "la-rrn"}),
        (Local("ventura", trusted={"santa-ana"}), {"la-rrn"}),
        (Local("ventura", denied={"la-rrn"}), {"santa-ana"}),
        (Local("la-rrn"), {"santa-ana"}),  # our own network is never a peer
    ],
)
def test_local_trust_and_deny_win(local: Local, kept: set[str]) -> None:
    members = [member("la-rrn"), member("santa-ana")]
    assert set(by_network(merge([held("socal", members)], local))) == kept


def test_forwarding_only_to_members_of_a_list_that_names_us() -> None:
    peers = by_network(
        merge([held("socal", [member("santa-ana"), member("ventura")])], Local("ventura"))
    )
    assert peers["santa-ana"].policy.forward
    assert set(peers) == {"santa-ana"}


def test_across_lists_scopes_and_kinds_add_up_and_sources_are_kept() -> None:
    one = member("santa-ana", ("fips:06059",))
    other = replace(member("santa-ana", ("fips:06111",)), kinds=["rumor"])
    peers = by_network(merge([held("b-list", [other]), held("a-list", [one])], Local("ventura")))
    policy = peers["santa-ana"].policy
    assert policy.speaks_for == ("fips:06059", "fips:06111")
    assert policy.kinds == {"checkpoint", "operation", "rumor"}
    assert [s.list for s in policy.sources] == ["a-list", "b-list"]


def _with_key(network: str, key: MemberKey) -> Member:
    return replace(member(network), keys=[key])


def test_across_lists_the_narrower_key_validity_wins() -> None:
    key = key_of("santa-ana")
    ended = MemberKey(key.keyid, b64(key.public_key), None, T0)
    open_ended = MemberKey(key.keyid, b64(key.public_key), None, None)
    lists = [
        held("a", [_with_key("santa-ana", open_ended)]),
        held("b", [_with_key("santa-ana", ended)]),
    ]
    (peer,) = merge(lists, Local("ventura"))
    assert [k.valid_until for k in peer.keys] == [T0]


def test_a_key_disputed_or_known_here_is_taken_from_no_list() -> None:
    stolen = member("santa-ana").keys[0]
    lists = [held("a", [member("santa-ana")]), held("b", [_with_key("ojai", stolen)])]
    peers = by_network(merge(lists, Local("ventura")))
    assert peers["santa-ana"].keys == () and peers["ojai"].keys == ()
    known = Local("ventura", known_keys={stolen.keyid})
    assert by_network(merge([held("a", [member("santa-ana")])], known))["santa-ana"].keys == ()


def test_a_list_key_revoked_here_stays_revoked() -> None:
    keyid = key_of("santa-ana").keyid
    (peer,) = merge([held("socal", [member("santa-ana")])], Local("ventura", revoked={keyid: T0}))
    assert [(k.keyid, k.revoked_at) for k in peer.keys] == [(keyid, T0)]


# --- the freeze -------------------------------------------------------------

SA = key_of("santa-ana")


def _decide(
    alert_kw: dict[str, object], now: timedelta, state: PolicyState | None = None
) -> tuple[str, str]:
    (peer,) = merge([held("socal", [member("santa-ana")])], Local("ventura"))
    policy = Policy("ventura", peers={"santa-ana": peer.policy})
    keyring = Keyring(peer.keys)
    alert = make_alert("santa-ana", **({"kind": "checkpoint"} | alert_kw))  # type: ignore[arg-type]
    envelope = envelope_for(alert, SA)
    verification = verify(envelope, encode_alert(alert), keyring)
    when = T0 + now
    decision = decide(envelope, alert, verification, policy, state or PolicyState(), when)
    return decision.action, decision.reason


AFTER = EXPIRES - T0 + timedelta(minutes=1)
NARROW = Area(label="Oxnard", geohash="9q4g", radius_m=5000, codes=["fips:06111"])
WIDE = Area(label="Oxnard", geohash="9q4gch", radius_m=10, codes=["fips:06111"])
OLD = "santa-ana/01J00000000000000000000000"


@pytest.mark.parametrize(
    ("name", "alert_kw", "now", "state", "expect"),
    [
        ("before expiry", {}, timedelta(0), None, ("accept", "authoritative")),
        ("new alert after expiry", {}, AFTER, None, ("hold", "trustlist_expired")),
        ("debunk after expiry", {"certainty": "false"}, AFTER, None, ("accept", "authoritative")),
        (
            "cancel after expiry",
            {"msg_type": "cancel", "references": [OLD]},
            AFTER,
            None,
            ("accept", "origin_cancel"),
        ),
        (
            "narrowing update after expiry",
            {"msg_type": "update", "references": [OLD]},
            AFTER,
            PolicyState(referenced_areas=(NARROW,)),
            ("accept", "authoritative"),
        ),
        (
            "widening update after expiry",
            {"msg_type": "update", "references": [OLD], "geohash": "9q4f"},
            AFTER,
            PolicyState(referenced_areas=(NARROW,)),
            ("hold", "trustlist_expired"),
        ),
        (
            "update of something not held here",
            {"msg_type": "update", "references": [OLD]},
            AFTER,
            None,
            ("hold", "trustlist_expired"),
        ),
        (
            "update wider than its radius",
            {"msg_type": "update", "references": [OLD]},
            AFTER,
            PolicyState(referenced_areas=(WIDE,)),
            ("hold", "trustlist_expired"),
        ),
    ],
)
def test_freeze(
    name: str,
    alert_kw: dict[str, object],
    now: timedelta,
    state: PolicyState | None,
    expect: tuple[str, str],
) -> None:
    sent = {"sent_at": T0 + now} | alert_kw
    assert _decide(sent, now, state) == expect, name


def test_a_local_peer_never_freezes_and_a_second_fresh_list_thaws() -> None:
    assert not PeerPolicy("la").frozen(T0 + timedelta(days=400))
    old, fresh = ListSource("a", 1, T0), ListSource("b", 1, T0 + timedelta(days=1))
    assert PeerPolicy("la", sources=(old,)).frozen(T0)
    assert not PeerPolicy("la", sources=(old, fresh)).frozen(T0)
