"""Real nodes on 127.0.0.1 forming one network: a line, a full mesh, review, speaks_for."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from relay.federation import catchup
from relay.runtime.clock import FakeClock
from relay.runtime.explain import explain
from tests.fedkit import Member, decision_for, members, pulled, trusts
from tests.helpers import wait_for

LA = {"label": "Boyle Heights", "geohash": "9q5ctr", "radius_m": 500, "codes": ["fips:06037"]}


async def mutual(a: Member, b: Member, **settings: object) -> None:
    await trusts(a, b, **settings)  # type: ignore[arg-type]
    await trusts(b, a, **settings)  # type: ignore[arg-type]


async def test_line_c_accepts_through_b_endorsement_and_gets_update_and_cancel(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with members(tmp_path, clock, ["net-a", "net-b", "net-c"]) as net:
        a, b, c = net["net-a"], net["net-b"], net["net-c"]
        await mutual(a, b)
        await trusts(b, c, endorse=True)  # B vouches for what it relays to C
        await trusts(c, b)  # C knows B only; A and C never peer
        for member, peer in ((a, "net-b"), (b, "net-a"), (b, "net-c"), (c, "net-b")):
            await wait_for(lambda m=member, p=peer: pulled(m, p), what=f"{member.network}->{peer}")

        first = await a.publish()
        alert_id = first["id"]

        async def shown_at_c() -> bool:
            return (await c.alert(alert_id)) is not None

        await wait_for(shown_at_c, what="alert at C")
        at_c = await c.alert(alert_id)
        assert at_c is not None
        assert (at_c["origin"], at_c["endorsed_by"], at_c["state"]) == (
            "net-a",
            ["net-b"],
            "active",
        )
        assert [s["keyid"] for s in at_c["envelope"]["signatures"]] == [
            a.node.key.keyid,
            b.node.key.keyid,
        ]
        decision = await decision_for(c, alert_id)
        assert (decision["peer"], decision["decision"], decision["reason"]) == (
            "net-b",
            "accept",
            "endorsed",
        )
        # Without B's endorsement, C would refuse A's envelope: it does not know A.
        bare = tmp_path / "bare.json"
        bare.write_text(json.dumps(first["envelope"]))
        verdict = explain(c.node.data_dir, bare, "net-b", clock)
        assert (verdict["decision"], verdict["reason"]) == ("reject", "unknown_key")

        updated = await a.update(alert_id, text={"en": {"headline": "Moved to 5th St", "body": ""}})

        async def state_at_c(some_id: str, state: str) -> bool:
            shown = await c.alert(some_id)
            return shown is not None and shown["state"] == state

        await wait_for(lambda: state_at_c(updated["id"], "active"), what="update at C")
        assert await state_at_c(alert_id, "superseded")

        cancel = await a.cancel(updated["id"])
        await wait_for(lambda: state_at_c(updated["id"], "cancelled"), what="cancel at C")
        cancel_at_c = await c.alert(cancel["id"])
        assert cancel_at_c is not None and cancel_at_c["endorsed_by"] == ["net-b"]
        assert cancel_at_c["state"] == "cancelled"  # a withdrawal is never in force
        _, active = await c.call("GET", "/api/v1/alerts?active=true")
        assert active["alerts"] == []
        # Nothing went back upstream: C has no peer to relay to, B never heard from C.
        assert not [d for d in await b.decisions() if d["peer"] == "net-c"]
        assert not [d for d in await a.decisions() if d["peer"] is not None]


async def test_full_mesh_of_five_stores_every_alert_exactly_once(
    tmp_path: Path, clock: FakeClock
) -> None:
    names = ["n1", "n2", "n3", "n4", "n5"]
    async with members(tmp_path, clock, names) as net:
        for x in names:
            for y in names:
                if x != y:
                    await trusts(net[x], net[y], endorse=True)
        for x in names:
            for y in names:
                if x != y:
                    await wait_for(lambda m=net[x], p=y: pulled(m, p), what=f"{x}->{y} pull")

        published = [(await net[name].publish())["id"] for name in names for _ in range(2)]
        published.append((await net["n1"].cancel(published[0]))["id"])

        async def everywhere() -> bool:
            for member in net.values():
                if set(await member.feed_counts()) != set(published):
                    return False
                for other in names:
                    if other != member.network and (await member.peer(other))["backlog"]:
                        return False
            return True

        await wait_for(everywhere, timeout=30, what="every message at every node, queues empty")
        for member in net.values():
            counts = await member.feed_counts()
            assert all(counts[alert_id] == 1 for alert_id in published), counts
            decisions = await member.decisions()
            for alert_id in published:
                mine = [d for d in decisions if d["alert_id"] == alert_id]
                assert sum(d["decision"] == "accept" for d in mine) == 1
                # Each peer relays a message at most once: no loops.
                assert len(mine) <= len(names) - 1, (member.network, mine)
            first = await member.alert(published[0])
            assert first is not None and first["state"] == "cancelled"


async def test_alert_outside_speaks_for_is_held_and_relayed_only_after_review(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with members(tmp_path, clock, ["net-a", "net-b", "net-c"]) as net:
        a, b, c = net["net-a"], net["net-b"], net["net-c"]
        await trusts(a, b)
        await trusts(b, a, speaks_for=("fips:06111",))  # A speaks for Ventura County only
        await mutual(b, c)
        await trusts(b, c, endorse=True)
        for member, peer in ((a, "net-b"), (b, "net-a"), (b, "net-c"), (c, "net-b")):
            await wait_for(lambda m=member, p=peer: pulled(m, p), what=f"{member.network}->{peer}")

        alert_id = (await a.publish(area=LA))["id"]
        decision = await decision_for(b, alert_id)
        assert (decision["peer"], decision["decision"], decision["reason"]) == (
            "net-a",
            "hold",
            "outside_speaks_for",
        )
        _, held = await b.call("GET", "/api/v1/held")
        assert [item["alert"]["id"] for item in held["held"]] == [alert_id]
        assert (await b.peer("net-c"))["backlog"] == 0
        assert await c.alert(alert_id) is None

        status, _ = await b.call("POST", f"/api/v1/held/{alert_id}/accept")
        assert status == 200

        async def at_c() -> bool:
            return (await c.alert(alert_id)) is not None

        await wait_for(at_c, what="reviewed alert relayed to C")
        relayed = await c.alert(alert_id)
        assert relayed is not None and relayed["endorsed_by"] == ["net-b"]


async def test_alert_outside_speaks_for_is_rejected_when_policy_says_reject(
    tmp_path: Path, clock: FakeClock
) -> None:
    def rejecting(text: str) -> str:
        return text.replace('on_fail = "hold"', 'on_fail = "reject"')

    async with members(tmp_path, clock, ["net-a", "net-b"], edit_config=rejecting) as net:
        a, b = net["net-a"], net["net-b"]
        await trusts(a, b)
        await trusts(b, a, speaks_for=("fips:06111",))
        await wait_for(lambda: pulled(a, "net-b"), what="a->b")

        alert_id = (await a.publish(area=LA))["id"]
        decision = await decision_for(b, alert_id)
        assert (decision["peer"], decision["decision"], decision["reason"]) == (
            "net-a",
            "reject",
            "outside_speaks_for",
        )
        assert await b.alert(alert_id) is None
        rejected = 'avisa_peer_rejected_total{peer="net-b",reason="outside_speaks_for"} 1'

        async def answered() -> bool:
            return (await a.peer("net-b"))["backlog"] == 0 and rejected in await a.metrics()

        await wait_for(answered, what="A takes the rejection as the answer")
        assert (await a.peer("net-b"))["failures"] == 0  # a final answer, not a retry


async def test_a_mesh_that_relays_only_its_own_sends_each_node_one_copy(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Issue 30: in a full mesh every origin reaches every neighbour itself, so with
    ``relay = "own"`` no node passes on another's message and each receives one copy
    (with "all", each of the other three would send it again)."""
    names = ["m1", "m2", "m3", "m4"]
    async with members(tmp_path, clock, names) as net:
        for x in names:
            for y in names:
                if x != y:
                    await trusts(net[x], net[y], relay="own")
        for x in names:
            for y in names:
                if x != y:
                    await wait_for(lambda m=net[x], p=y: pulled(m, p), what=f"{x}->{y} pull")
        published = [(await net[name].publish())["id"] for name in names]
        published.append((await net["m1"].cancel(published[0]))["id"])

        async def everywhere() -> bool:
            for member in net.values():
                if set(await member.feed_counts()) != set(published):
                    return False
            return True

        await wait_for(everywhere, timeout=30, what="every message at every node")
        for member in net.values():
            received = [
                d for d in await member.decisions() if d["alert_id"] in published and d["peer"]
            ]
            # One copy of each message from the others, straight from its origin.
            assert sorted(d["alert_id"] for d in received) == sorted(
                i for i in published if not i.startswith(member.network + "/")
            ), (member.network, received)
            assert all(d["peer"] == d["alert_id"].split("/")[0] for d in received)


async def test_relay_own_still_sends_own_alerts_but_not_others_down_a_line(
    tmp_path: Path, clock: FakeClock
) -> None:
    """la - lb - lc: lb relays only its own to lc, so la's alert stops at lb; lb's reaches lc."""
    async with members(tmp_path, clock, ["la", "lb", "lc"]) as net:
        await mutual(net["la"], net["lb"])
        await trusts(net["lb"], net["lc"], relay="own")
        await trusts(net["lc"], net["lb"])
        for x, y in (("la", "lb"), ("lb", "la"), ("lb", "lc"), ("lc", "lb")):
            await wait_for(lambda m=net[x], p=y: pulled(m, p), what=f"{x}->{y} pull")
        from_a = (await net["la"].publish())["id"]
        await decision_for(net["lb"], from_a)
        from_b = (await net["lb"].publish())["id"]
        assert (await decision_for(net["lc"], from_b))["decision"] == "accept"
        assert (await net["lb"].peer("lc"))["relay"] == "own"
        assert from_a not in await net["lc"].feed_counts()
        # Nor does catch-up offer it: lb's page for lc holds lb's own alert only.
        node_b = net["lb"].node
        envelopes, _ = await node_b.db.read(
            lambda conn: catchup.page(conn, 0, 100, "lc", node_b.trust, node_b.key, node_b.clock())
        )
        ids = [json.loads(base64.b64decode(json.loads(e)["payload"]))["id"] for e in envelopes]
        assert ids == [from_b]


async def test_hubs_relaying_their_peers_only_send_each_other_one_copy(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Three hubs trust each other with ``relay = "peers"``; hx trusts its member mx.
    mx's alert goes mx → hx → (hy, hz), endorsed by hx; hy and hz accepted it on that
    endorsement (they never met mx), so they do not pass it to each other."""
    hubs = ["hx", "hy", "hz"]
    async with members(tmp_path, clock, [*hubs, "mx"]) as net:
        for x in hubs:
            for y in hubs:
                if x != y:
                    await trusts(net[x], net[y], relay="peers", endorse=True)
        await mutual(net["hx"], net["mx"])
        for x in hubs:
            for y in hubs:
                if x != y:
                    await wait_for(lambda m=net[x], p=y: pulled(m, p), what=f"{x}->{y} pull")
        alert_id = (await net["mx"].publish())["id"]

        async def decided(member: Member) -> bool:
            return any(d["alert_id"] == alert_id for d in await member.decisions())

        for far in ("hy", "hz"):
            await wait_for(lambda m=net[far]: decided(m), what=f"a decision at {far}")
        # hy's own alert does go to hz: hy is hz's peer, and its origin. (hx passes it on
        # to hz too, since hy is a peer of hx's: that copy may come first or second.)
        own = (await net["hy"].publish())["id"]

        async def accepted_at_hz() -> bool:
            decisions = await net["hz"].decisions()
            return any((d["alert_id"], d["decision"]) == (own, "accept") for d in decisions)

        await wait_for(accepted_at_hz, what="hy's own alert accepted at hz")

        async def drained() -> bool:
            for x in hubs:
                for y in hubs:
                    if x != y and (await net[x].peer(y))["backlog"]:
                        return False
            return True

        await wait_for(drained, what="every hub's queue empty (any copy has been sent)")
        for far in ("hy", "hz"):
            copies = [d for d in await net[far].decisions() if d["alert_id"] == alert_id]
            # One copy, from hx (a retried transaction may be answered twice: both from hx).
            assert {
                (d["decision"], d["reason"], d["peer"]) for d in copies if d["decision"] == "accept"
            } == {("accept", "endorsed", "hx")}, copies
            assert all(d["peer"] == "hx" for d in copies), copies
