"""Repair (DESIGN §16, issue 29 part 3): real nodes, and a hostile peer of the tests' own,
written from docs/protocol.md, that relays an origin's alerts but drops its cancels and
checkpoints. The far node sees the origin's checkpoint, marks the cancel ``withheld`` by
that peer, fetches it from the origin and applies it within 2 × ``checkpoint_every``;
bad checkpoints pushed to it are refused with a reason and change nothing."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from keys.core.keyring import KeyEntry
from keys.core.signing import NodeKey
from relay.core.checkpoints import make_checkpoint, sign_checkpoint
from relay.core.policy import PeerPolicy
from relay.federation.auth import authorization
from relay.runtime.clock import FakeClock
from relay.storage import chain, trust
from tests.fedkit import Front, Member, members, trusts
from tests.helpers import T0, key, wait_for

HOSTILE = "hostile"
HOSTILE_KEY = key(50)
EVERY = timedelta(seconds=10)


def every_10s(text: str) -> str:
    return text + '\n[federation]\ncheckpoint_every = "10s"\n'


@dataclass
class DropsCancels:
    """A peer that takes transactions, answers them as accepted, and passes on to ``far``
    every envelope but cancels; checkpoints it takes and drops; it serves nothing."""

    far: Member
    clock: FakeClock
    url: str = ""
    dropped: list[str] = field(default_factory=list)
    passed: list[bytes] = field(default_factory=list)  # envelopes relayed, as received
    serve: bytes | None = None  # what it answers to any message fetch (else 404)
    _runner: web.AppRunner | None = None
    _http: aiohttp.ClientSession | None = None
    _txns: itertools.count[int] = field(default_factory=itertools.count)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_put("/federation/v1/send/{txn}", self._send)
        app.router.add_put("/federation/v1/checkpoints/{network}", self._checkpoint)
        app.router.add_get("/federation/v1/alerts", self._empty_page)
        app.router.add_get("/federation/v1/messages/{origin}/{seq}", self._message)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _send(self, request: web.Request) -> web.Response:
        envelopes = json.loads(await request.read())["envelopes"]
        results, passed = [], []
        for envelope in envelopes:
            payload = json.loads(base64.b64decode(envelope["payload"]))
            results.append({"id": payload["id"], "status": "accepted", "reason": "authoritative"})
            if payload["msg_type"] == "cancel":
                self.dropped.append(payload["id"])
            else:
                passed.append(envelope)
                self.passed.append(json.dumps(envelope, separators=(",", ":")).encode())
        if passed:
            await self._relay(passed)
        return web.json_response({"results": results})

    async def _relay(self, envelopes: list[object]) -> None:
        body = json.dumps({"envelopes": envelopes}, separators=(",", ":")).encode()
        path = f"/federation/v1/send/hostile-{next(self._txns)}"
        header = authorization(
            HOSTILE_KEY, "PUT", path, HOSTILE, self.far.network, self.clock(), body
        )
        assert self._http is not None
        headers = {"Authorization": header, "Content-Type": "application/json"}
        async with self._http.put(self.far.url + path, data=body, headers=headers) as reply:
            assert reply.status == 200, await reply.text()

    async def _checkpoint(self, request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "accepted", "reason": ""})

    async def _message(self, request: web.Request) -> web.Response:
        if self.serve is None:
            return web.json_response({"errcode": "AVISA_NOT_FOUND", "error": "no"}, status=404)
        return web.Response(body=self.serve, content_type="application/json")

    async def _empty_page(self, request: web.Request) -> web.Response:
        return web.json_response({"envelopes": [], "next": request.query.get("since", "0")})


async def trusts_hostile(member: Member, url: str) -> None:
    record = trust.PeerRecord(
        HOSTILE,
        url,
        (KeyEntry(HOSTILE, HOSTILE_KEY.public_key),),
        PeerPolicy(network=HOSTILE, speaks_for=(), rate_limit_per_min=600),
    )
    await member.node.db.write(lambda conn: trust.save_peer(conn, record, member.node.clock()))
    await member.node.reload_trust()


@dataclass
class World:
    origin: Member
    far: Member
    hostile: DropsCancels
    front: Front  # between the far node and the origin, for its fetches
    clock: FakeClock


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = FakeClock(T0)
    async with members(tmp_path, clock, ["ventura", "oxnard"], every_10s) as nodes:
        origin, far = nodes["ventura"], nodes["oxnard"]
        hostile = DropsCancels(far, clock)
        front = Front(origin.url)
        await hostile.start()
        await front.start()
        try:
            # The origin sends its alerts only through the hostile peer; the far node
            # trusts the origin's key and may ask it for messages, nothing more.
            await trusts_hostile(origin, hostile.url)
            await trusts(origin, far, forward=False)
            await trusts(far, origin, url=front.url, forward=False)
            await trusts_hostile(far, hostile.url)
            yield World(origin, far, hostile, front, clock)
        finally:
            await front.stop()
            await hostile.stop()


async def state_at(member: Member, alert_id: str) -> str | None:
    found = await member.alert(alert_id)
    return None if found is None else str(found["state"])


async def test_a_withheld_cancel_is_seen_and_repaired_within_two_intervals(world: World) -> None:
    origin, far, clock = world.origin, world.far, world.clock
    published = await origin.publish()
    alert_id = published["id"]
    await wait_for(lambda: state_at(far, alert_id), what="the alert, through the hostile peer")
    assert await state_at(far, alert_id) == "active"
    world.front.status = 503  # the origin cannot be reached for a while
    signed_at = clock()
    await origin.cancel(alert_id)
    await wait_for(lambda: world.hostile.dropped, what="the hostile peer to drop the cancel")

    assert far.node.federation is not None
    repairs = far.node.federation.repairs
    # The origin's checkpoint came at once; the far node gives the transaction that
    # should carry the message a grace of half an interval before it calls it withheld.
    await wait_for(lambda: "ventura" in repairs.retry_at, what="the repair's grace")
    assert repairs.retry_at["ventura"] == signed_at + EVERY / 2
    assert (await far.peer(HOSTILE))["withheld"] == []
    clock.advance(EVERY / 2)

    async def withheld() -> bool:
        return bool((await far.peer(HOSTILE)).get("withheld"))

    await wait_for(withheld, what="the cancel marked withheld")
    assert (await far.peer(HOSTILE))["withheld"] == [
        {"origin": "ventura", "from": 2, "to": 2, "since": "2026-11-23T12:00:05Z"}
    ]
    assert 'avisa_peer_withheld_messages{peer="hostile"} 1' in await far.metrics()
    assert await state_at(far, alert_id) == "active"
    world.front.status = None  # the origin is back: the next try fetches the cancel
    while await state_at(far, alert_id) != "cancelled":
        await wait_for(lambda: "ventura" in repairs.retry_at, what="the repair's next try")
        retry_at = repairs.retry_at["ventura"]
        assert retry_at - signed_at <= 2 * EVERY, "not repaired within 2 × checkpoint_every"
        clock.advance(retry_at - clock())

        async def tried(before: object = retry_at) -> bool:
            if await state_at(far, alert_id) == "cancelled":
                return True
            return repairs.retry_at.get("ventura", before) != before

        await wait_for(tried, what="the repair to try again")
    assert (await far.peer(HOSTILE))["withheld"] == []

    async def counted() -> bool:  # counted once the chain moved, just after the cancel applied
        return 'avisa_peer_repair_fetched_total{peer="ventura"} 1\n' in await far.metrics()

    await wait_for(counted, what="the fetch counted")
    held = await far.node.db.read(lambda conn: chain.latest(conn, "ventura"))
    mine = await origin.node.db.read(lambda conn: chain.latest(conn, "ventura"))
    assert held == mine and held[0] == 2


async def put_checkpoint(by: Member, to: Member, network: str, raw: bytes) -> tuple[int, object]:
    path = f"/federation/v1/checkpoints/{network}"
    header = authorization(by.node.key, "PUT", path, by.network, to.network, to.node.clock(), raw)
    headers = {"Authorization": header, "Content-Type": "application/json"}
    async with to.http.put(to.url + path, data=raw, headers=headers) as reply:
        return reply.status, await reply.json()


async def test_bad_checkpoints_are_refused_with_a_reason_and_change_nothing(
    world: World,
) -> None:
    origin, far, clock = world.origin, world.far, world.clock
    clock.advance(EVERY)  # the origin's next checkpoint (the first went before far trusted it)
    assert far.node.federation is not None
    repairs = far.node.federation.repairs
    await wait_for(lambda: repairs.received["accepted"], what="the origin's checkpoint")
    stored = await far.node.db.read(lambda conn: chain.checkpoint_envelope(conn, "ventura"))
    assert stored is not None  # the origin's first checkpoint, pushed at its start
    own_key: NodeKey = origin.node.key
    head = bytes(32)

    def signed(network: str, seq: int, at: timedelta, by: NodeKey = own_key) -> bytes:
        return sign_checkpoint(make_checkpoint(network, seq, head, clock() + at), by)

    cases = [
        ("ventura", signed("ventura", 0, timedelta(minutes=6)), "from_future"),
        ("ventura", signed("ventura", 0, -timedelta(minutes=1)), "not_newer"),
        ("ventura", signed("ventura", 3, timedelta(0), key(77)), "unknown_key"),
        ("ventura", signed("oxnard", 3, timedelta(0)), "origin_mismatch"),
        ("oxnard", signed("ventura", 3, timedelta(0)), "wrong_network"),
        ("ventura", b"{}", "malformed"),
    ]
    for network, raw, reason in cases:
        status, body = await put_checkpoint(origin, far, network, raw)
        assert (status, body) == (200, {"status": "refused", "reason": reason}), reason
    own = sign_checkpoint(make_checkpoint("oxnard", 9, head, clock()), far.node.key)
    assert await put_checkpoint(origin, far, "oxnard", own) == (
        200,
        {"status": "refused", "reason": "own_network"},
    )
    status, body = await put_checkpoint(origin, far, "ventura", b" " * 4097)
    assert status == 413 and body["errcode"] == "AVISA_TOO_LARGE"  # type: ignore[index]
    after = await far.node.db.read(lambda conn: chain.checkpoint_envelope(conn, "ventura"))
    assert after == stored
    assert repairs.withheld == {}
    metrics = await far.metrics()
    assert 'avisa_checkpoints_received_total{result="from_future"} 1' in metrics


async def test_with_the_origin_unreachable_another_peer_serves_the_cancel(
    tmp_path: Path,
) -> None:
    """The far node cannot reach the origin at all; an honest peer that holds the origin's
    messages (and does not forward them to the far node) serves the cancel instead."""
    clock = FakeClock(T0)
    names = ["ventura", "oxnard", "ojai"]
    async with members(tmp_path, clock, names, every_10s) as nodes:
        origin, far, honest = nodes["ventura"], nodes["oxnard"], nodes["ojai"]
        hostile, front = DropsCancels(far, clock), Front(origin.url)
        await hostile.start()
        await front.start()
        try:
            front.status = 503
            await trusts_hostile(origin, hostile.url)
            await trusts(origin, honest)
            await trusts(origin, far, forward=False)
            await trusts(honest, origin, forward=False)
            await trusts(honest, far, forward=False)
            await trusts(far, origin, url=front.url, forward=False)
            await trusts(far, honest, forward=False)
            await trusts_hostile(far, hostile.url)
            alert_id = (await origin.publish())["id"]
            await wait_for(lambda: state_at(far, alert_id), what="the alert via the hostile peer")
            cancel_id = (await origin.cancel(alert_id))["id"]
            await wait_for(
                lambda: state_at(honest, cancel_id), what="the cancel at the honest peer"
            )
            assert far.node.federation is not None
            repairs = far.node.federation.repairs
            await wait_for(lambda: "ventura" in repairs.retry_at, what="the repair's grace")
            clock.advance(EVERY / 2)
            await wait_for(
                lambda: _cancelled(far, alert_id),
                what="the cancel fetched from the honest peer",
            )
            assert clock() - T0 <= 2 * EVERY
            # The fetch is counted once the chain has moved, a moment after the cancel applied.
            await wait_for(lambda: repairs.fetched == {"ojai": 1}, what="the fetch counted")
            # ... and the withheld record goes at the repair's next look, a moment later.
            await wait_for(lambda: repairs.withheld == {}, what="nothing withheld")
        finally:
            await front.stop()
            await hostile.stop()


async def _cancelled(member: Member, alert_id: str) -> bool:
    return await state_at(member, alert_id) == "cancelled"


async def test_a_fetched_message_that_does_not_fit_counts_against_the_peer(world: World) -> None:
    """Asked for the cancel, the hostile peer serves the alert it relayed before (validly
    signed by the origin, but message 1, not 2): refused by the chain, counted against it."""
    origin, far, clock = world.origin, world.far, world.clock
    alert_id = (await origin.publish())["id"]
    await wait_for(lambda: state_at(far, alert_id), what="the alert, through the hostile peer")
    world.hostile.serve = world.hostile.passed[0]
    world.front.status = 503
    await origin.cancel(alert_id)
    assert far.node.federation is not None
    repairs = far.node.federation.repairs
    await wait_for(lambda: "ventura" in repairs.retry_at, what="the repair's grace")
    clock.advance(EVERY / 2)
    await wait_for(lambda: repairs.bad_fetches["hostile"] >= 1, what="the bad fetch counted")
    assert await state_at(far, alert_id) == "active"
    assert [item["to"] for item in (await far.peer(HOSTILE))["withheld"]] == [2]
    metrics = await far.metrics()
    assert 'avisa_peer_repair_bad_fetches_total{peer="hostile"} 1' in metrics


class DropsOrigin(DropsCancels):
    """A peer that answers every transaction as accepted and passes nothing of
    ``ventura`` on at all (alerts, updates, cancels), nor its checkpoints."""

    async def _send(self, request: web.Request) -> web.Response:
        envelopes = json.loads(await request.read())["envelopes"]
        results = []
        for envelope in envelopes:
            payload = json.loads(base64.b64decode(envelope["payload"]))
            results.append({"id": payload["id"], "status": "accepted", "reason": "authoritative"})
            self.dropped.append(payload["id"])
        return web.json_response({"results": results})


async def test_a_peer_that_drops_everything_of_an_origin_is_repaired_around(
    tmp_path: Path,
) -> None:
    """The origin sends only through a peer that drops all of it; the far node still
    learns the origin's head from its checkpoint and fetches every message from the
    origin: the alert and its cancel, within 2 × ``checkpoint_every``."""
    clock = FakeClock(T0)
    async with members(tmp_path, clock, ["ventura", "oxnard"], every_10s) as nodes:
        origin, far = nodes["ventura"], nodes["oxnard"]
        hostile = DropsOrigin(far, clock)
        await hostile.start()
        try:
            await trusts_hostile(origin, hostile.url)
            await trusts(origin, far, forward=False)
            await trusts(far, origin, forward=False)
            await trusts_hostile(far, hostile.url)
            alert_id = (await origin.publish())["id"]
            await origin.cancel(alert_id)
            await wait_for(lambda: len(hostile.dropped) >= 2, what="both dropped")
            assert far.node.federation is not None
            repairs = far.node.federation.repairs
            await wait_for(lambda: "ventura" in repairs.retry_at, what="the repair's grace")
            assert await state_at(far, alert_id) is None  # nothing came through the peer
            clock.advance(EVERY / 2)
            await wait_for(lambda: _cancelled(far, alert_id), what="both fetched from the origin")
            assert clock() - T0 <= 2 * EVERY
            # The fetch is counted once the chain has moved, a moment after the cancel applied.
            await wait_for(lambda: repairs.fetched == {"ventura": 2}, what="the fetch counted")
        finally:
            await hostile.stop()
