"""The outbox on a real node's SQLite file: who gets a row, in what order, and when it leaves.

The node here is started but not served, so no sender runs and the test owns
the queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from keys.core.keyring import KeyEntry
from relay.cli import datadir
from relay.core.policy import PeerPolicy
from relay.runtime.clock import FakeClock
from relay.runtime.node import Node
from relay.storage import outbox, trust
from tests.helpers import key, make_alert, raw_envelope

ORIGIN, SIGNER, QUIET, PLAIN = key(1), key(2), key(3), key(4)


@pytest.fixture
async def node(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Node]:
    result = datadir.initialize(tmp_path / "hub", "hub", "127.0.0.1:0", clock=clock)
    started = Node.load(result.data_dir, clock)
    await started.start()
    for network, peer_key, forward in (
        ("origin", ORIGIN, True),
        ("signer", SIGNER, True),
        ("quiet", QUIET, False),
        ("plain", PLAIN, True),
    ):
        record = trust.PeerRecord(
            network,
            "http://127.0.0.1:9",
            (KeyEntry(network, peer_key.public_key),),
            PeerPolicy(network=network, speaks_for=("fips:06",), forward=forward),
        )
        await started.db.write(lambda c, r=record: trust.save_peer(c, r, clock()))
    await started.reload_trust()
    yield started
    await started.stop()


async def rows(node: Node) -> list[tuple[Any, ...]]:
    return await node.db.read(
        lambda c: c.execute("SELECT peer, alert_id, priority FROM outbox ORDER BY n").fetchall()
    )


async def test_rows_go_to_forwarding_peers_that_did_not_sign_or_send_it(node: Node) -> None:
    relayed = make_alert("origin")
    (outcome,) = await node.pipeline.ingest(
        [raw_envelope(relayed, ORIGIN, SIGNER)], from_peer="plain"
    )
    assert outcome.status == "accepted"
    # Not the origin, not the endorser, not the sender, not a peer we do not forward to.
    assert await rows(node) == []
    other = make_alert("origin", seq=2)
    await node.pipeline.ingest([raw_envelope(other, ORIGIN)], from_peer="origin")
    assert sorted(await rows(node)) == [("plain", other.id, 2), ("signer", other.id, 2)]


async def test_held_alerts_are_queued_only_once_a_reviewer_accepts(node: Node) -> None:
    outside = make_alert("origin", codes=("fips:36061",), geohash="dr5reg")
    (outcome,) = await node.pipeline.ingest([raw_envelope(outside, ORIGIN)], from_peer="origin")
    assert (outcome.status, outcome.reason) == ("held", "outside_speaks_for")
    assert await rows(node) == []
    # The reviewer's accept goes through the same Writes.activate as everything else.
    from relay.storage.writes import Writes

    now = node.clock()
    await node.db.write(
        lambda c: Writes(c, now, node.tombstone_ttl).activate(outside, [ORIGIN.keyid], "origin")
    )
    assert {peer for peer, _, _ in await rows(node)} == {"plain", "signer"}


async def test_transactions_take_cancels_first_drop_the_withdrawn_and_stay_stable(
    node: Node, clock: FakeClock
) -> None:
    first, replaced, cancelled = (make_alert("origin", seq=n) for n in (1, 2, 3))
    short = make_alert("origin", seq=4, expires_in=timedelta(minutes=10))
    update = make_alert("origin", seq=5, msg_type="update", references=[replaced.id])
    cancel = make_alert("origin", seq=6, msg_type="cancel", references=[cancelled.id])
    outcomes = await node.pipeline.ingest(
        [raw_envelope(a, ORIGIN) for a in (first, replaced, cancelled, short, update, cancel)],
        from_peer="origin",
    )
    assert [o.status for o in outcomes] == ["accepted"] * 6
    clock.advance("11m")
    now = clock()
    formed = await node.db.write(lambda c: outbox.next_txn(c, "plain", now, 50, "t-1"))
    assert formed.txn is not None and formed.txn.txn_id == "t-1"
    assert [i.alert_id for i in formed.txn.items] == [cancel.id, update.id, first.id]
    assert formed.dropped == {"expired": 1, "withdrawn": 2}
    assert formed.backlog == 3
    # A retry gets the same transaction back, whatever new id is offered.
    again = await node.db.write(lambda c: outbox.next_txn(c, "plain", now, 50, "t-2"))
    assert again.txn == formed.txn
    # An item that goes stale dissolves it; the rest form a new one.
    clock.advance("5h")
    later = clock()
    fresh = await node.db.write(lambda c: outbox.next_txn(c, "plain", later, 50, "t-3"))
    assert fresh.txn is None and fresh.dropped == {"expired": 3} and fresh.backlog == 0


async def test_delivery_removes_the_answered_and_keeps_what_to_retry(node: Node) -> None:
    alerts = [make_alert("origin", seq=n) for n in range(1, 4)]
    await node.pipeline.ingest([raw_envelope(a, ORIGIN) for a in alerts], from_peer="origin")
    now = node.clock()
    formed = await node.db.write(lambda c: outbox.next_txn(c, "plain", now, 2, "t-1"))
    assert formed.txn is not None and len(formed.txn.items) == 2
    keep = [formed.txn.items[1].n]
    await node.db.write(lambda c: outbox.delivered(c, "plain", "t-1", keep, now))
    record = await node.db.read(lambda c: outbox.delivery(c, "plain"))
    assert (record.backlog, record.last_success, record.failures) == (2, now, 0)
    nxt = await node.db.write(lambda c: outbox.next_txn(c, "plain", now, 50, "t-2"))
    assert nxt.txn is not None
    assert [i.alert_id for i in nxt.txn.items] == [alerts[1].id, alerts[2].id]


async def test_backlog_cap_drops_the_oldest_new_alerts_only(node: Node) -> None:
    alerts = [make_alert("origin", seq=n) for n in range(1, 5)]
    cancel = make_alert("origin", seq=5, msg_type="cancel", references=[alerts[0].id])
    await node.pipeline.ingest(
        [raw_envelope(a, ORIGIN) for a in [*alerts, cancel]], from_peer="origin"
    )
    dropped = await node.db.write(lambda c: outbox.trim(c, "plain", cap=2))
    assert dropped == 3
    left = [alert_id for peer, alert_id, _ in await rows(node) if peer == "plain"]
    assert left == [alerts[3].id, cancel.id]
