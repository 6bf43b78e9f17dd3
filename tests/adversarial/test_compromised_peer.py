"""A trusted peer turns hostile: what it can and cannot make this node do.

``mallory`` is a trusted peer (it speaks for fips:06037) whose server an
attacker now runs, with its key. ``oxnard`` is another trusted peer (fips:06111)
and this node is ``ventura``. The first part is the policy alone, table-driven;
the second runs real nodes: mallory sends alerts outside its speaks_for,
floods, and sends cancels and updates for other networks' alerts, while
oxnard keeps publishing. What reaches a bridge is read through the same
path a bridge reads (``bridges.base.RouteConsumer`` over the feed, filtered by
``policy.bridge_certainties``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from keys.keyring import KeyEntry, Keyring
from relay.envelope import open_envelope, verify
from relay.model import decode_alert
from relay.policy import PeerPolicy, Policy, PolicyState, decide
from tests.helpers import T0, key, make_alert, new_id, raw_envelope

OWN, OXNARD, MALLORY, FAKE = key(41), key(42), key(43), key(44)
OXNARD_REVOKED = key(45)
KEYRING = Keyring(
    [
        KeyEntry("ventura", OWN.public_key),
        KeyEntry("oxnard", OXNARD.public_key),
        KeyEntry("oxnard", OXNARD_REVOKED.public_key, revoked_at=T0 - timedelta(hours=1)),
        KeyEntry("mallory", MALLORY.public_key),
    ]
)
POLICY = Policy(
    own_network="ventura",
    peers={
        "oxnard": PeerPolicy("oxnard", speaks_for=("fips:06111",)),
        "mallory": PeerPolicy("mallory", speaks_for=("fips:06037",)),
    },
)
OXNARD_AREA = {"codes": ("fips:06111",)}
MALLORY_AREA = {"codes": ("fips:06037",)}


def judged(alert: Any, *signers: Any, policy: Policy = POLICY) -> tuple[str, str]:
    envelope, payload = open_envelope(raw_envelope(alert, *signers))
    verification = verify(envelope, payload, KEYRING)
    state = PolicyState(from_peer="mallory")
    decision = decide(envelope, decode_alert(payload), verification, policy, state, T0)
    return decision.action, decision.reason


def cancel_of(network: str, **area: Any) -> Any:
    return make_alert(network, msg_type="cancel", references=[new_id(network)], **area)


def update_of(network: str, **area: Any) -> Any:
    return make_alert(network, msg_type="update", references=[new_id(network)], **area)


# Each row: what mallory sends (alert, signers) → the decision it must get.
FORGERIES = [
    # Words put in a known network's mouth: an origin signature by a key that
    # network never had, "vouched for" by mallory's valid endorsement.
    ("alert as oxnard", make_alert("oxnard", **OXNARD_AREA), (FAKE, MALLORY), "unknown_origin_key"),
    ("cancel as oxnard", cancel_of("oxnard", **OXNARD_AREA), (FAKE, MALLORY), "unknown_origin_key"),
    ("update as oxnard", update_of("oxnard", **OXNARD_AREA), (FAKE, MALLORY), "unknown_origin_key"),
    ("alert as this node", make_alert("ventura"), (FAKE, MALLORY), "unknown_origin_key"),
    ("cancel as this node", cancel_of("ventura"), (FAKE, MALLORY), "unknown_origin_key"),
    # A key oxnard revoked (its server was seized), endorsed by mallory.
    ("revoked oxnard key", make_alert("oxnard", **OXNARD_AREA), (OXNARD_REVOKED, MALLORY),
     "revoked_key"),
    # Signed by mallory's own key but claiming to be oxnard's.
    ("mallory's key as oxnard", make_alert("oxnard", **OXNARD_AREA), (MALLORY,), "origin_mismatch"),
    # mallory's own cancel naming oxnard's alert.
    ("mallory cancels oxnard's", make_alert("mallory", msg_type="cancel",
     references=[new_id("oxnard")], **MALLORY_AREA), (MALLORY,), "foreign_reference"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("alert", "signers", "reason"),
    [row[1:] for row in FORGERIES],
    ids=[row[0] for row in FORGERIES],
)
def test_a_peer_cannot_speak_for_a_network_we_know(alert: Any, signers: Any, reason: str) -> None:
    assert judged(alert, *signers) == ("reject", reason)


def test_the_genuine_messages_still_pass() -> None:
    assert judged(make_alert("oxnard", **OXNARD_AREA), OXNARD) == ("accept", "authoritative")
    assert judged(cancel_of("oxnard", **OXNARD_AREA), OXNARD, MALLORY)[0] == "accept"
    assert judged(make_alert("mallory", **MALLORY_AREA), MALLORY) == ("accept", "authoritative")
    assert judged(make_alert("mallory", **OXNARD_AREA), MALLORY) == ("hold", "outside_speaks_for")
    assert judged(make_alert("mallory", **OXNARD_AREA), MALLORY, OXNARD) == ("accept", "endorsed")


def test_an_origin_nobody_here_knows_rests_on_its_endorsers() -> None:
    """The trust assumption a single compromised peer can use: an origin we hold no
    key for is judged on who vouches for it. With the default min_endorsements = 1
    that is mallory alone; an operator who does not want any one peer to vouch
    alone sets 2."""
    invented = make_alert("nowhere", **OXNARD_AREA)
    assert judged(invented, FAKE, MALLORY) == ("accept", "endorsed")
    strict = replace(POLICY, min_endorsements=2)
    assert judged(invented, FAKE, MALLORY, policy=strict) == ("hold", "not_enough_endorsements")
