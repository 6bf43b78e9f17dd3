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

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bridges.base import Delivered, Handled, RouteConsumer, RouteFilter, Skipped
from keys.core.keyring import KeyEntry, Keyring
from relay.core.envelope import open_envelope, verify
from relay.core.model import decode_alert
from relay.core.policy import PeerPolicy, Policy, PolicyState, decide
from relay.federation.auth import authorization
from relay.runtime.clock import FakeClock
from relay.storage import store
from tests.adversarial.kit import QuietPeer, figure, trust_peer, txn
from tests.fedkit import Member, members, pulled, trusts
from tests.helpers import T0, key, make_alert, new_id, raw_envelope, wait_for

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
OXNARD_DRAFT_AREA = {
    "label": "Colonia, Oxnard",
    "geohash": "9q4gch",
    "radius_m": 500,
    "codes": ["fips:06111"],
}
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


# --- on real nodes ---------------------------------------------------------------------


class BridgeRecorder(RouteConsumer):
    """A bridge route that records what it would post: the feed, filtered like Matrix."""

    def __init__(self, node: Any, certainties: frozenset[str]) -> None:
        super().__init__("test:bridge", node, idle_wait=0.05)
        self.filter = RouteFilter(certainties=certainties)
        self.delivered: list[str] = []

    async def prepare(self) -> None:
        return None

    async def handle(self, pos: int, stored: store.StoredAlert) -> Handled:
        reason = self.filter.skip_reason(stored.alert)
        if reason:
            return Skipped(reason)
        self.delivered.append(stored.alert.id)
        return Delivered(lambda conn: None)


async def as_mallory(ventura: Member, txn_id: str, *raws: bytes) -> tuple[int, Any]:
    body = txn(*raws)
    path = f"/federation/v1/send/{txn_id}"
    header = authorization(MALLORY, "PUT", path, "mallory", "ventura", ventura.node.clock(), body)
    headers = {"Authorization": header, "Content-Type": "application/json"}
    async with ventura.http.put(ventura.url + path, data=body, headers=headers) as reply:
        return reply.status, await reply.json()


async def test_a_compromised_peer_reaches_no_bridge_and_others_keep_flowing(
    tmp_path: Path, clock: FakeClock
) -> None:
    quiet = QuietPeer()
    await quiet.start()
    try:
        async with members(tmp_path, clock, ["ventura", "oxnard"]) as net:
            await _scenario(net["ventura"], net["oxnard"], quiet)
    finally:
        await quiet.stop()


async def _scenario(ventura: Member, oxnard: Member, quiet: QuietPeer) -> None:
    await trusts(ventura, oxnard, speaks_for=("fips:06111",))
    await trusts(oxnard, ventura, speaks_for=("fips:06",))
    await trust_peer(
        ventura, "mallory", MALLORY, url=quiet.url, speaks_for=("fips:06037",),
        rate_limit_per_min=60, forward=False,
    )  # fmt: skip
    await wait_for(lambda: pulled(oxnard, "ventura"), what="oxnard linked to ventura")
    bridge = BridgeRecorder(ventura.node, ventura.node.trust.policy.bridge_certainties)
    consumer = asyncio.create_task(bridge.run())
    try:
        ours = (await ventura.publish())["id"]
        legit = [(await oxnard.publish(area={**OXNARD_DRAFT_AREA}))["id"]]
        await wait_for(lambda: legit[0] in bridge.delivered, what="oxnard's first alert bridged")
        first = legit[0]

        attacks: Counter[str] = Counter()
        refused_ids: set[str] = set()

        def tally(sent: list[Any], reply: Any) -> None:
            for alert, result in zip(sent, reply["results"], strict=True):
                attacks[f"{result['status']}:{result['reason']}"] += 1
                if result["status"] != "accepted":
                    refused_ids.add(alert.id)

        forged = [
            make_alert("mallory", **OXNARD_AREA),  # outside its speaks_for
            make_alert("oxnard", **OXNARD_AREA),  # as oxnard, fake origin key
            make_alert("oxnard", msg_type="cancel", references=[first], **OXNARD_AREA),
            make_alert("oxnard", msg_type="update", references=[first], **OXNARD_AREA),
            make_alert("ventura", msg_type="cancel", references=[ours]),
            make_alert("mallory", msg_type="cancel", references=[first], **MALLORY_AREA),
        ]
        signers = [(MALLORY,)] + [(FAKE, MALLORY)] * 4 + [(MALLORY,)]
        raws = [raw_envelope(a, *s) for a, s in zip(forged, signers, strict=True)]
        status, reply = await as_mallory(ventura, "forged", *raws)
        assert status == 200
        tally(forged, reply)
        assert [r["reason"] for r in reply["results"]] == [
            "outside_speaks_for", "unknown_origin_key", "unknown_origin_key",
            "unknown_origin_key", "unknown_origin_key", "foreign_reference",
        ]  # fmt: skip

        # The flood: 10 transactions of 50 in one minute, in its own area, interleaved
        # with oxnard publishing; then garbage signatures; then more requests than allowed.
        seq = iter(range(100, 10_000))
        for n in range(10):
            flood = [make_alert("mallory", seq=next(seq), **MALLORY_AREA) for _ in range(50)]
            raws = [raw_envelope(a, MALLORY) for a in flood]
            status, reply = await as_mallory(ventura, f"flood{n}", *raws)
            assert status == 200, reply
            tally(flood, reply)
            legit.append((await oxnard.publish(area={**OXNARD_DRAFT_AREA}))["id"])
        garbage = [make_alert("mallory", **MALLORY_AREA) for _ in range(50)]
        raws = [raw_envelope(a, FAKE) for a in garbage]
        status, reply = await as_mallory(ventura, "garbage", *raws)
        tally(garbage, reply)
        limited: Counter[int] = Counter()
        for n in range(60):
            one = raw_envelope(make_alert("mallory", **MALLORY_AREA), MALLORY)
            status, reply = await as_mallory(ventura, f"more{n}", one)
            limited[status] += 1
        legit.append((await oxnard.publish(area={**OXNARD_DRAFT_AREA}))["id"])

        await wait_for(
            lambda: set(legit) <= set(bridge.delivered), timeout=30, what="oxnard's alerts bridged"
        )
        assert not refused_ids & set(bridge.delivered), "a refused alert reached the bridge"
        for alert_id in (first, ours):
            shown = await ventura.alert(alert_id)
            assert shown is not None and shown["state"] == "active", alert_id
        held = (await ventura.call("GET", "/api/v1/held"))[1]["held"]
        assert [item["alert"]["id"] for item in held] == [forged[0].id]
        accepted_flood = attacks["accepted:authoritative"]
        # 60 a minute, and the forged batch already counted against them.
        assert accepted_flood == 60 - len(forged)
        assert attacks["rejected:rate_limited"] == 500 - accepted_flood
        assert attacks["rejected:unknown_key"] == 50
        assert limited[429] > 0
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
    figure(
        "compromised_peer",
        attacks=dict(attacks),
        requests_over_limit_429=limited[429],
        other_peer_alerts_bridged=len(legit),
        refused_reaching_bridge=len(refused_ids & set(bridge.delivered)),
        bridged_total=len(bridge.delivered),
    )
