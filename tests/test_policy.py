"""The trust policy, table-driven: one row per case, decision and reason.

Networks: this node is ``ventura``. ``la`` (key 2) speaks for Los Angeles
County (fips:06037) and geohash 9q5; ``orange`` (key 3) for fips:06059.
``sd`` (key 4) is unknown here. Key 5 is la's revoked key, key 6 an
expired (rotated-out) key of la's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest

from keys.core.keyring import Keyring
from relay.core.envelope import verify
from relay.core.model import Envelope, encode_alert
from relay.core.policy import PeerPolicy, Policy, PolicyState, area_matches, decide, inside_scope
from tests.helpers import T0, entry, envelope_for, key, make_alert

LA = dict(codes=("fips:06037",), geohash="9q5ctr")
ORANGE_AREA = dict(codes=("fips:06059",), geohash="9mup8")
KEYRING = Keyring(
    [
        entry("ventura", key(1)),
        entry("la", key(2)),
        entry("orange", key(3)),
        entry("la", key(5), revoked_at=T0 - timedelta(hours=1)),
        entry("la", key(6), valid_until=T0 - timedelta(hours=2)),
    ]
)
POLICY = Policy(
    own_network="ventura",
    peers={
        "la": PeerPolicy("la", speaks_for=("fips:06037", "9q5"), rate_limit_per_min=10),
        "orange": PeerPolicy(
            "orange", speaks_for=("fips:06059",), kinds=frozenset({"sighting", "rumor"})
        ),
    },
    min_endorsements=1,
)


@dataclass
class Case:
    name: str
    signers: tuple[int, ...]
    expect: tuple[str, str]
    alert: dict[str, Any] = field(default_factory=dict)
    state: PolicyState = field(default_factory=PolicyState)
    policy: dict[str, Any] = field(default_factory=dict)
    now: timedelta = timedelta(0)
    duplicate_signature: bool = False


CASES = [
    Case("own alert", (1,), ("accept", "local"), {"network": "ventura"}),
    Case("origin inside speaks_for (code)", (2,), ("accept", "authoritative"), dict(LA)),
    Case(
        "origin inside speaks_for (geohash prefix only matters)",
        (2,),
        ("accept", "authoritative"),
        {"codes": (), "geohash": "9q5xyz"},
    ),
    Case(
        "origin outside speaks_for, no endorsement",
        (2,),
        ("hold", "outside_speaks_for"),
        dict(ORANGE_AREA),
    ),
    Case(
        "origin outside speaks_for, one endorsement",
        (2, 3),
        ("accept", "endorsed"),
        dict(ORANGE_AREA),
    ),
    Case(
        "outside speaks_for, policy rejects failures",
        (2,),
        ("reject", "outside_speaks_for"),
        dict(ORANGE_AREA),
        policy={"on_fail": "reject"},
    ),
    Case("unknown origin, 0 endorsements", (4,), ("reject", "unknown_key"), {"network": "sd"}),
    Case("unknown origin, 1 endorsement", (4, 2), ("accept", "endorsed"), {"network": "sd"}),
    Case(
        "unknown origin, 1 endorsement, 2 required",
        (4, 2),
        ("hold", "not_enough_endorsements"),
        {"network": "sd"},
        policy={"min_endorsements": 2},
    ),
    Case(
        "unknown origin, 2 endorsements, 2 required",
        (4, 2, 3),
        ("accept", "endorsed"),
        {"network": "sd"},
        policy={"min_endorsements": 2},
    ),
    Case(
        "duplicate signatures from one key count once",
        (4, 2),
        ("hold", "not_enough_endorsements"),
        {"network": "sd"},
        policy={"min_endorsements": 2},
        duplicate_signature=True,
    ),
    Case(
        "endorsement by the origin itself does not count",
        (2, 2),
        ("hold", "outside_speaks_for"),
        dict(ORANGE_AREA),
    ),
    Case("expired", (2,), ("reject", "expired"), dict(LA), now=timedelta(hours=5)),
    Case(
        "too old",
        (2,),
        ("reject", "too_old"),
        {**LA, "expires_in": timedelta(days=2)},
        policy={"max_age": timedelta(hours=6)},
        now=timedelta(hours=7),
    ),
    Case(
        "old but unexpired, default max_age",
        (2,),
        ("accept", "authoritative"),
        {**LA, "expires_in": timedelta(days=2)},
        now=timedelta(hours=30),
    ),
    Case(
        "rotated-out key, signed before rotation, after the grace",
        (6,),
        ("reject", "key_expired"),
        {**LA, "sent_at": T0 - timedelta(hours=3), "expires_in": timedelta(days=3)},
        now=timedelta(days=1),
    ),
    Case("from the future", (2,), ("reject", "from_future"), dict(LA), now=-timedelta(minutes=20)),
    Case(
        "small clock skew is fine",
        (2,),
        ("accept", "authoritative"),
        dict(LA),
        now=-timedelta(minutes=2),
    ),
    Case(
        "lifetime beyond max",
        (2,),
        ("reject", "lifetime_too_long"),
        {**LA, "expires_in": timedelta(days=8)},
    ),
    Case(
        "observed after sent",
        (2,),
        ("reject", "bad_times"),
        {**LA, "observed_at": T0 + timedelta(minutes=1)},
    ),
    Case("revoked key", (5,), ("reject", "revoked_key"), dict(LA)),
    Case("rotated-out key, signed after rotation", (6,), ("reject", "key_expired"), dict(LA)),
    Case(
        "rotated-out key, signed before rotation, within grace",
        (6,),
        ("accept", "authoritative"),
        {**LA, "sent_at": T0 - timedelta(hours=3)},
    ),
    Case(
        "origin key of another network",
        (3,),
        ("reject", "origin_mismatch"),
        {**LA, "network": "la"},
    ),
    Case(
        "wrong kind for this peer",
        (3,),
        ("reject", "kind_not_accepted"),
        {**ORANGE_AREA, "network": "orange", "kind": "checkpoint"},
    ),
    Case(
        "certainty not accepted",
        (2,),
        ("reject", "certainty_not_accepted"),
        {**LA, "certainty": "unconfirmed"},
        policy={
            "peers": {
                "la": PeerPolicy(
                    "la", speaks_for=("fips:06037",), certainties=frozenset({"confirmed"})
                )
            }
        },
    ),
    Case(
        "unconfirmed goes to review",
        (2,),
        ("hold", "review_certainty"),
        {**LA, "certainty": "unconfirmed"},
        policy={"hold_certainties": frozenset({"unconfirmed"})},
    ),
    Case(
        "debunked rumor accepted like an alert",
        (2,),
        ("accept", "authoritative"),
        {**LA, "kind": "rumor", "certainty": "false"},
    ),
    Case(
        "cancelled id offered again",
        (2,),
        ("reject", "cancelled"),
        dict(LA),
        state=PolicyState(tombstone="cancelled"),
    ),
    Case(
        "superseded id offered again",
        (2,),
        ("reject", "superseded"),
        dict(LA),
        state=PolicyState(tombstone="superseded"),
    ),
    Case(
        "already accepted",
        (2,),
        ("reject", "duplicate"),
        dict(LA),
        state=PolicyState(stored="accepted"),
    ),
    Case(
        "held copy may be re-judged",
        (2, 3),
        ("accept", "endorsed"),
        dict(ORANGE_AREA),
        state=PolicyState(stored="held"),
    ),
    Case(
        "update of a cancelled alert",
        (2,),
        ("reject", "cancelled"),
        {**LA, "msg_type": "update", "references": ("la/01M82V7M000000000000000000",)},
        state=PolicyState(references_cancelled=True),
    ),
    Case(
        "cancel naming another network's alert",
        (2,),
        ("reject", "foreign_reference"),
        {**LA, "msg_type": "cancel", "references": ("orange/01M82V7M000000000000000000",)},
    ),
    Case(
        "cancel from its origin, outside speaks_for",
        (2,),
        ("accept", "origin_cancel"),
        {**ORANGE_AREA, "msg_type": "cancel", "references": ("la/01M82V7M000000000000000000",)},
    ),
    Case(
        "rate limited sender",
        (2,),
        ("reject", "rate_limited"),
        dict(LA),
        state=PolicyState(from_peer="la", recent_from_peer=10),
    ),
    Case(
        "under the rate limit",
        (2,),
        ("accept", "authoritative"),
        dict(LA),
        state=PolicyState(from_peer="la", recent_from_peer=9),
    ),
    Case(
        "too many signatures",
        (2, 3, 1),
        ("reject", "too_many_signatures"),
        dict(LA),
        policy={"max_signatures": 2},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_decision(case: Case) -> None:
    network = case.alert.pop("network", None) or {2: "la", 3: "orange", 5: "la", 6: "la"}.get(
        case.signers[0], "ventura"
    )
    alert = make_alert(network, **case.alert)
    envelope = envelope_for(alert, *(key(n) for n in case.signers))
    if case.duplicate_signature:
        envelope = Envelope(
            envelope.payloadType, envelope.payload, [*envelope.signatures, envelope.signatures[-1]]
        )
    policy = replace(POLICY, **case.policy)
    now = T0 + case.now
    verification = verify(envelope, encode_alert(alert), KEYRING)
    decision = decide(envelope, alert, verification, policy, case.state, now)
    assert (decision.action, decision.reason) == case.expect
    # Deterministic: the same inputs give the same decision.
    assert decide(envelope, alert, verification, policy, case.state, now) == decision


def test_forged_signature_is_rejected_before_anything_else() -> None:
    alert = make_alert("la", **LA)
    envelope = envelope_for(alert, key(2))
    other = make_alert("la", **LA, headline="Changed after signing")
    verification = verify(envelope, encode_alert(other), KEYRING)
    decision = decide(envelope, other, verification, POLICY, PolicyState(stored="accepted"), T0)
    assert (decision.action, decision.reason) == ("reject", "bad_signature")


@pytest.mark.parametrize(
    ("scope", "codes", "geohash", "inside"),
    [
        (("fips:06",), ("fips:06037",), "9q5c", True),
        (("fips:06037",), ("fips:06037", "fips:06059"), "9q5c", False),
        (("iso:us",), ("iso:us-ca",), "9q5c", True),
        (("iso:us-c",), ("iso:us-ca",), "9q5c", False),
        (("9q5",), (), "9q5c", True),
        (("9q5",), ("fips:06037",), "9q5c", False),  # codes unchecked by the scope
        (("9q5", "fips:06037"), ("fips:06037",), "9q4c", False),
        (("fips:06037",), (), "9q5c", False),  # no claim the scope can check
        ((), ("fips:06037",), "9q5c", False),
    ],
)
def test_inside_scope(
    scope: tuple[str, ...], codes: tuple[str, ...], geohash: str, inside: bool
) -> None:
    assert inside_scope(make_alert(codes=codes, geohash=geohash), scope) is inside


def test_area_query_overlaps_both_ways() -> None:
    alert = make_alert(codes=("fips:06111",), geohash="9q4gch")
    assert area_matches(alert, "fips:06")
    assert area_matches(alert, "fips:06111")
    assert area_matches(alert, "9q4")
    assert area_matches(alert, "9q4gchzz")
    assert not area_matches(alert, "fips:06037")
    assert not area_matches(alert, "9q5")
