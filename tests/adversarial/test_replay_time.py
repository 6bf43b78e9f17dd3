"""Replays and time: old alerts sent again, backdated signatures, the future.

A real node (``net-b``) trusts two peers, ``net-a`` and ``net-c``; the test
speaks for both. Each replay is refused with the reason an operator would
look for in ``/api/v1/decisions``:

- an alert offered again after it was cancelled (``cancelled``) or updated
  (``superseded``), by the same peer or another one, before and after the
  node restarted; the cancel itself offered again (``duplicate``);
- after the alert expired, and after retention purged it and its
  tombstone aged out (``expired``);
- a transaction id sent again gets the stored reply and changes nothing; a
  signed request replayed after 300 s is a 401;
- an alert signed with net-a's key after that key was revoked, backdated to
  before the revocation, whether net-a's old key signs the request (401) or
  an honest peer that has not heard of the revocation relays it
  (``revoked_key``);
- an alert sent 20 minutes in the future (``from_future``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from keys.core.keyring import KeyEntry
from relay.http.app import serve
from relay.runtime.clock import FakeClock
from relay.runtime.node import Node
from relay.storage import trust
from tests.adversarial.kit import PEER, PEER_KEY, Target, figure, target_node, txn
from tests.fedkit import Member
from tests.helpers import T0, key, make_alert, raw_envelope

C_KEY = key(61)
A_NEW_KEY = key(62)
AREA = {"codes": ("fips:06111",)}


@pytest.fixture
async def target(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Target]:
    async with target_node(tmp_path, clock, extra_peers={"net-c": C_KEY}) as node:
        original = node.member
        try:
            yield node
        finally:
            if node.member is not original:  # restarted: members() only stops the first one
                await node.member.runner.cleanup()
                await node.member.node.stop()


async def send(target: Target, *raws: bytes, via: str = PEER) -> list[tuple[str, str]]:
    signer = PEER_KEY if via == PEER else C_KEY
    path = f"/federation/v1/send/{via}-{next(_txn)}"
    status, reply = await target.fed("PUT", path, txn(*raws), signer=signer, origin=via)
    assert status == 200, reply
    return [(r["status"], r["reason"]) for r in json.loads(reply)["results"]]


_txn = iter(range(1, 1 << 30))


async def restart(target: Target, clock: FakeClock) -> None:
    old = target.member
    await old.runner.cleanup()
    await old.node.stop()
    node = Node.load(old.data_dir, clock)
    await node.start()
    runner, port = await serve(node, "127.0.0.1", 0)
    target.member = Member(
        node, f"http://127.0.0.1:{port}", old.token, old.http, old.data_dir, runner
    )


async def test_replays_are_refused_for_the_right_reason(target: Target, clock: FakeClock) -> None:
    outcomes: dict[str, Any] = {}
    original = make_alert(PEER, seq=1, **AREA)
    updated = make_alert(PEER, seq=2, msg_type="update", references=[original.id], **AREA)
    second = make_alert(PEER, seq=3, **AREA)
    cancel = make_alert(PEER, seq=4, msg_type="cancel", references=[second.id], **AREA)
    raw = {
        n: raw_envelope(a, PEER_KEY)
        for n, a in [("o", original), ("u", updated), ("s", second), ("c", cancel)]
    }
    relayed = {n: raw_envelope(a, PEER_KEY, C_KEY) for n, a in [("o", original), ("s", second)]}

    assert await send(target, raw["o"], raw["s"]) == [("accepted", "authoritative")] * 2
    outcomes["same alert again"] = await send(target, raw["o"])
    outcomes["same alert, other peer"] = await send(target, relayed["o"], via="net-c")
    assert await send(target, raw["u"], raw["c"]) == [
        ("accepted", "authoritative"),
        ("accepted", "origin_cancel"),
    ]
    outcomes["updated alert again"] = await send(target, raw["o"], relayed["o"])
    outcomes["cancelled alert again"] = await send(target, raw["s"])
    outcomes["cancelled alert, other peer"] = await send(target, relayed["s"], via="net-c")
    outcomes["cancel again"] = await send(target, raw["c"])

    await restart(target, clock)
    outcomes["after restart"] = await send(target, raw["o"], raw["s"], relayed["s"], raw["c"])
    outcomes["after restart, other peer"] = await send(
        target, relayed["o"], relayed["s"], via="net-c"
    )

    clock.advance(timedelta(hours=4, seconds=1))
    outcomes["after expiry"] = await send(target, raw["o"], raw["s"])
    clock.advance(timedelta(days=8))
    purged = await target.node.purge_once()
    assert purged.alerts == 4 and purged.tombstones == 2
    outcomes["after purge"] = await send(target, raw["o"], raw["s"], raw["u"], raw["c"])

    assert outcomes == {
        "same alert again": [("duplicate", "duplicate")],
        "same alert, other peer": [("duplicate", "duplicate")],
        "updated alert again": [("rejected", "superseded")] * 2,
        "cancelled alert again": [("rejected", "cancelled")],
        "cancelled alert, other peer": [("rejected", "cancelled")],
        "cancel again": [("duplicate", "duplicate")],
        "after restart": [
            ("rejected", "superseded"),
            ("rejected", "cancelled"),
            ("rejected", "cancelled"),
            ("duplicate", "duplicate"),
        ],
        "after restart, other peer": [("rejected", "superseded"), ("rejected", "cancelled")],
        "after expiry": [("rejected", "superseded"), ("rejected", "cancelled")],
        "after purge": [("rejected", "expired")] * 4,
    }
    status, body = await target.api("GET", "/api/v1/alerts?limit=100")
    assert status == 200 and json.loads(body)["alerts"] == []
    figure("replays", cases=len(outcomes), envelopes=sum(map(len, outcomes.values())), accepted=0)


async def test_a_replayed_transaction_or_request_changes_nothing(
    target: Target, clock: FakeClock
) -> None:
    body = txn(raw_envelope(make_alert(PEER, **AREA), PEER_KEY))
    path = "/federation/v1/send/once"
    headers = target.fed_headers("PUT", path, body)
    async with target.member.http.put(target.member.url + path, data=body, headers=headers) as r:
        first = (r.status, await r.read())
    before = target.dump()
    async with target.member.http.put(target.member.url + path, data=body, headers=headers) as r:
        again = (r.status, await r.read())
    assert again == first and target.dump() == before
    clock.advance(timedelta(seconds=301))
    async with target.member.http.put(target.member.url + path, data=body, headers=headers) as r:
        stale = (r.status, (await r.json())["errcode"])
    assert stale == (401, "AVISA_STALE_REQUEST")
    assert target.dump() == before


async def test_a_backdated_signature_by_a_revoked_key_is_refused(
    target: Target, clock: FakeClock
) -> None:
    revoked_at = clock() - timedelta(minutes=30)
    # net-a moved to a new key and revoked the old one, which an attacker now holds.
    await target.node.db.write(
        lambda conn: (
            trust.save_key(conn, KeyEntry(PEER, PEER_KEY.public_key, revoked_at=revoked_at)),
            trust.save_key(conn, KeyEntry(PEER, A_NEW_KEY.public_key)),
        )
    )
    await target.node.reload_trust()
    backdated = make_alert(
        PEER, sent_at=revoked_at - timedelta(hours=1), expires_in=timedelta(hours=4), **AREA
    )
    status, reply = await target.fed(
        "PUT", "/federation/v1/send/revoked", txn(raw_envelope(backdated, PEER_KEY))
    )
    assert (status, json.loads(reply)["errcode"]) == (401, "AVISA_KEY_REVOKED")
    relayed = [raw_envelope(backdated, PEER_KEY), raw_envelope(backdated, PEER_KEY, C_KEY)]
    assert await send(target, *relayed, via="net-c") == [("rejected", "revoked_key")] * 2
    # Revocation means the key may have been in other hands since an unknown moment,
    # so nothing it signed counts any more, whatever sent_at claims. The new key works.
    fresh = make_alert(PEER, **AREA)
    assert await send(target, raw_envelope(fresh, A_NEW_KEY), via="net-c") == [
        ("accepted", "authoritative")
    ]


async def test_an_alert_from_twenty_minutes_ahead_is_refused(
    target: Target, clock: FakeClock
) -> None:
    ahead = make_alert(PEER, sent_at=clock() + timedelta(minutes=20), **AREA)
    slightly = make_alert(PEER, sent_at=clock() + timedelta(minutes=4), **AREA)
    assert await send(target, raw_envelope(ahead, PEER_KEY), raw_envelope(slightly, PEER_KEY)) == [
        ("rejected", "from_future"),
        ("accepted", "authoritative"),
    ]
    assert clock() == T0
