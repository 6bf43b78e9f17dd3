"""One transaction of many envelopes leaves exactly what the same envelopes sent one by one do.

The writer job buffers the rows of plain new alerts and writes them per
table (``relay.storage.writes``); everything else goes one by one after a flush.
These tests send a mix chosen to cross every boundary between the two paths
(duplicates, updates and cancels of alerts in the same batch, an update that
arrives before its original, held and re-held alerts, seq gaps, forgeries,
rate limits) once as one batch and once envelope by envelope to a twin node,
and compare every outcome and every row the pipeline writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from keys.core.keyring import KeyEntry
from relay.cli import datadir
from relay.core.envelope import sign
from relay.core.model import Envelope, Signature, encode_alert, encode_envelope
from relay.core.policy import PeerPolicy
from relay.runtime.clock import FakeClock
from relay.runtime.feed import FeedSignal
from relay.runtime.node import Node
from relay.runtime.pipeline import INLINE_BYTES, Outcome
from relay.storage import trust
from tests.helpers import T0, key, make_alert, raw_envelope

ORIGIN, RELAY, DOWN, STRANGER = key(1), key(2), key(3), key(9)
TABLES = {
    "alerts": "SELECT * FROM alerts ORDER BY id",
    "feed": "SELECT * FROM feed ORDER BY pos",
    "tombstones": "SELECT * FROM tombstones ORDER BY id",
    "origins": "SELECT * FROM origins ORDER BY network",
    "seq_gaps": "SELECT * FROM seq_gaps ORDER BY network, seq_from",
    "outbox": "SELECT * FROM outbox ORDER BY n",
    "decisions": "SELECT * FROM decisions ORDER BY n",
    "sequence": "SELECT * FROM sqlite_sequence WHERE name != 'tokens' ORDER BY name",
    # Heads are kept where a job ended: the same newest head either way.
    "chain": "SELECT network, max(seq), head FROM chain GROUP BY network ORDER BY network",
    "chain_pending": "SELECT * FROM chain_pending ORDER BY network, seq",
}


@asynccontextmanager
async def twin(root: Path, name: str, rate_limit: int) -> AsyncIterator[Node]:
    clock = FakeClock(T0 + timedelta(minutes=1))
    result = datadir.initialize(root / name, "hub", "127.0.0.1:0", clock=clock)
    node = Node.load(result.data_dir, clock)
    await node.start()
    for network, peer_key, limit in (
        ("origin", ORIGIN, 600),
        ("relay", RELAY, rate_limit),
        ("down", DOWN, 600),
    ):
        record = trust.PeerRecord(
            network,
            "http://127.0.0.1:9",
            (KeyEntry(network, peer_key.public_key),),
            PeerPolicy(network=network, speaks_for=("fips:06",), rate_limit_per_min=limit),
        )
        await node.db.write(lambda c, r=record: trust.save_peer(c, r, clock()))
    await node.reload_trust()
    try:
        yield node
    finally:
        await node.stop()


async def tables(node: Node) -> dict[str, list[tuple[Any, ...]]]:
    def read(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
        return {name: conn.execute(query).fetchall() for name, query in TABLES.items()}

    return await node.db.read(read)


def forged(seq: int) -> bytes:
    good = sign(encode_alert(make_alert("origin", seq=seq)), ORIGIN)
    sig = good.signatures[0].sig
    bad = Signature(keyid=ORIGIN.keyid, sig=sig[:10] + ("B" if sig[10] == "A" else "A") + sig[11:])
    return encode_envelope(Envelope(good.payloadType, good.payload, [bad]))


def mixed() -> list[bytes]:
    o = "origin"
    first, gap_filler, third = (make_alert(o, seq=n) for n in (1, 2, 3))
    outside = make_alert(o, seq=6, codes=("fips:36061",), geohash="dr5reg")
    later = make_alert(o, seq=9)
    early_original = make_alert(o, seq=11)
    stranger = make_alert("elsewhere", seq=1, codes=("fips:36061",))
    return [
        raw_envelope(first, ORIGIN, RELAY),
        raw_envelope(first, ORIGIN, RELAY),  # duplicate within the batch
        raw_envelope(third, ORIGIN, RELAY),  # opens a gap at seq 2
        raw_envelope(make_alert(o, seq=4, msg_type="update", references=[first.id]), ORIGIN),
        raw_envelope(make_alert(o, seq=5, msg_type="cancel", references=[third.id]), ORIGIN),
        raw_envelope(third, ORIGIN, RELAY),  # replay of what was just cancelled
        raw_envelope(outside, ORIGIN),  # held: outside speaks_for, no endorsement
        raw_envelope(outside, ORIGIN),  # held again
        raw_envelope(gap_filler, ORIGIN, RELAY),  # fills the gap
        forged(7),
        raw_envelope(make_alert(o, seq=8, sent_at=T0 - timedelta(days=1)), ORIGIN),  # expired
        raw_envelope(later, ORIGIN, RELAY),
        raw_envelope(make_alert(o, seq=10, msg_type="update", references=[later.id]), ORIGIN),
        # An update that arrives before the alert it replaces.
        raw_envelope(
            make_alert(o, seq=12, msg_type="update", references=[early_original.id]), ORIGIN
        ),
        raw_envelope(early_original, ORIGIN, RELAY),
        raw_envelope(
            make_alert(o, seq=13, msg_type="update", references=[third.id]), ORIGIN
        ),  # updates a cancelled alert
        raw_envelope(stranger, STRANGER, RELAY),  # unknown origin, endorsed by the sender
        raw_envelope(make_alert(o, seq=20), ORIGIN),  # a second gap
        raw_envelope(make_alert(o, seq=15), ORIGIN),  # inside it
        b'{"payloadType": 1}',
    ]


def summary(outcomes: list[Outcome]) -> list[tuple[Any, ...]]:
    return [(o.id, o.status, o.reason, o.pos) for o in outcomes]


@pytest.mark.parametrize("rate_limit", [600, 8])
async def test_one_batch_equals_one_by_one(tmp_path: Path, rate_limit: int) -> None:
    envelopes = mixed()
    async with (
        twin(tmp_path, "batched", rate_limit) as batched,
        twin(tmp_path, "single", rate_limit) as single,
    ):
        together = await batched.pipeline.ingest(envelopes, from_peer="relay")
        alone = []
        for raw in envelopes:
            alone += await single.pipeline.ingest([raw], from_peer="relay")
        assert summary(together) == summary(alone)
        statuses = {o.reason for o in together}
        # The mix really crosses every path it is meant to.
        expected = {"authoritative", "duplicate", "cancelled", "outside_speaks_for"}
        expected |= {"bad_signature", "expired", "superseded", "endorsed", "malformed"}
        assert expected <= statuses or rate_limit < 600
        assert await tables(batched) == await tables(single)


async def test_batches_in_a_row_equal_one_by_one(tmp_path: Path) -> None:
    envelopes = mixed()
    async with (
        twin(tmp_path, "batched", 600) as batched,
        twin(tmp_path, "single", 600) as single,
    ):
        for start in range(0, len(envelopes), 7):
            await batched.pipeline.ingest(envelopes[start : start + 7], from_peer="relay")
        for raw in envelopes:
            await single.pipeline.ingest([raw], from_peer="relay")
        assert await tables(batched) == await tables(single)


async def test_out_of_order_transactions_and_the_gap_cap_equal_one_by_one(
    tmp_path: Path,
) -> None:
    """Later transactions first, then the earlier ones fill their gaps; more gaps than
    an origin may keep (every other seq, 70 times): gap rows are the same either way."""
    seqs = [*range(41, 61), *range(1, 21), *range(21, 41), *range(200, 341, 2), *range(201, 260, 2)]
    envelopes = [raw_envelope(make_alert("origin", seq=n), ORIGIN, RELAY) for n in seqs]
    async with (
        twin(tmp_path, "batched", 10_000) as batched,
        twin(tmp_path, "single", 10_000) as single,
    ):
        for start in range(0, len(envelopes), 20):
            await batched.pipeline.ingest(envelopes[start : start + 20], from_peer="relay")
        for raw in envelopes:
            await single.pipeline.ingest([raw], from_peer="relay")
        together, alone = await tables(batched), await tables(single)
        assert together == alone
        # 71 gaps opened, the 64 highest kept (201..211 forgotten), 213..259 filled.
        assert len(together["seq_gaps"]) == 64 - 24


async def test_a_flood_of_forgeries_leaves_a_bounded_decision_log(tmp_path: Path) -> None:
    async with twin(tmp_path, "flooded", 600) as node:
        flood = [forged(seq) for seq in range(1, 301)]
        outcomes = []
        for start in range(0, len(flood), 50):
            outcomes += await node.pipeline.ingest(flood[start : start + 50], from_peer="relay")
        assert {(o.id, o.status, o.reason) for o in outcomes} == {
            (None, "rejected", "bad_signature")
        }
        assert len(outcomes) == 300
        rows = (await tables(node))["decisions"]
        assert 1 <= len(rows) <= 10  # at most 10 a second per peer and reason
        assert node.metrics.decisions[("reject", "bad_signature", "relay")] == 300
        assert isinstance(node.clock, FakeClock)
        node.clock.advance("1s")
        await node.pipeline.ingest(flood[:50], from_peer="relay")
        assert 11 <= len((await tables(node))["decisions"]) <= 20
        # Verified input is recorded in full, however much of it comes.
        await node.pipeline.ingest(
            [raw_envelope(make_alert("origin", seq=n), ORIGIN) for n in range(1, 41)],
            from_peer="relay",
        )
        decided = [row for row in (await tables(node))["decisions"] if row[2] is not None]
        assert len(decided) == 40


async def test_the_feed_says_whose_outbox_a_batch_filled(tmp_path: Path) -> None:
    async with twin(tmp_path, "hub", 600) as node:
        first = make_alert("origin", seq=1)
        before = node.feed.head
        await node.pipeline.ingest([raw_envelope(first, ORIGIN, RELAY)], from_peer="relay")
        assert node.feed.head > before
        # Only "down" gets it: the origin and the relay signed it.
        assert node.feed.may_have_queued("down", before)
        assert not node.feed.may_have_queued("origin", before)
        assert not node.feed.may_have_queued("relay", before)
        # An update is written one by one (not buffered): everyone looks.
        middle = node.feed.head
        update = make_alert("origin", seq=2, msg_type="update", references=[first.id])
        await node.pipeline.ingest([raw_envelope(update, ORIGIN)], from_peer="relay")
        assert node.feed.may_have_queued("origin", middle)


async def test_a_peer_link_waits_only_for_what_may_be_queued_for_its_peer() -> None:
    feed = FeedSignal(head=10)
    down = asyncio.create_task(feed.wait_queued("down", 10, timeout=30))
    other = asyncio.create_task(feed.wait_queued("other", 10, timeout=30))
    await asyncio.sleep(0)
    feed.advance(11, queued_for={"down"})
    assert await asyncio.wait_for(down, 5) is True
    assert not other.done()  # an advance for another peer wakes nobody here
    feed.advance(12)  # "maybe for everyone" (a reload, a released hold) wakes every link
    assert await asyncio.wait_for(other, 5) is True
    # Named (go straight to form a transaction) or only maybe (look with a read first).
    assert feed.named("down", 10) and not feed.named("down", 11)
    assert not feed.named("other", 10) and feed.may_have_queued("other", 11)
    # Already queued since the position given: no wait; nothing new: the timeout answers.
    assert await feed.wait_queued("down", 10, timeout=0.01) is True
    assert await feed.wait_queued("down", 12, timeout=0.01) is False


async def test_a_small_transaction_is_verified_where_it_arrives_and_decided_alike(
    tmp_path: Path,
) -> None:
    """Up to INLINE_BYTES the envelopes are read and verified on the event loop; the
    outcomes are those of the same envelopes in a larger batch (one rule, two places)."""
    async with twin(tmp_path, "hub", 600) as node:
        good = raw_envelope(make_alert("origin", seq=1), ORIGIN)
        forged = good.replace(b'"sig":"', b'"sig":"A', 1)
        assert len(good) + len(forged) <= INLINE_BYTES
        small = await node.pipeline.ingest(lambda: [good, forged], "relay", size=2 * len(good))
        assert [o.status for o in small] == ["accepted", "rejected"]
        padding = [raw_envelope(make_alert("origin", seq=n), ORIGIN) for n in range(2, 12)]
        big = await node.pipeline.ingest([good, forged, *padding], from_peer="relay")
        assert [o.status for o in big[:2]] == ["duplicate", "rejected"]
        assert small[1].reason == big[1].reason
