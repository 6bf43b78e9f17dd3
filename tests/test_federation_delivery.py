"""Delivery to a peer that fails: backoff on the fake clock, expiry, order, poison, gaps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from relay.core.times import rfc3339
from relay.runtime.clock import FakeClock
from tests.fedkit import Front, Member, headline_of, members, pulled, trusts
from tests.helpers import wait_for


async def failures_reach(a: Member, network: str, count: int) -> None:
    async def reached() -> bool:
        return (await a.peer(network))["failures"] >= count

    await wait_for(reached, what=f"{count} failures")


@asynccontextmanager
async def a_to_b_through_front(
    tmp_path: Path, clock: FakeClock
) -> AsyncIterator[tuple[Member, Member, Front]]:
    """A and B peered, A reaching B through a ``Front``; both done with start-up pulls."""
    async with members(tmp_path, clock, ["net-a", "net-b"]) as net:
        a, b = net["net-a"], net["net-b"]
        front = Front(b.url)
        await front.start()
        try:
            await trusts(b, a)
            await trusts(a, b, url=front.url)
            await wait_for(lambda: pulled(a, "net-b"), what="a->b start-up pull")
            await wait_for(lambda: pulled(b, "net-a"), what="b->a start-up pull")
            yield a, b, front
        finally:
            await front.stop()


async def test_peer_answering_500s_gets_backoff_on_the_fake_clock_then_delivery(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with a_to_b_through_front(tmp_path, clock) as (a, b, front):
        a.node.federation.timing.random = lambda: 0.5  # jitter at its midpoint
        front.status = 500
        short = (await a.publish(expires_in="10m"))["id"]
        # Backoff 1 s × 2^(n-1), half fixed and half jitter (0.5 here): 0.75, 1.5, 3.
        for n, expected in enumerate([0.75, 1.5, 3.0], start=1):
            await failures_reach(a, "net-b", n)
            status = await a.peer("net-b")
            assert status["backoff"] == expected, status
            assert status["next_attempt"] == rfc3339(clock.now + timedelta(seconds=expected))
            assert (status["last_error"], status["last_error_at"]) == (
                "HTTP 500",
                rfc3339(clock.now),
            )
            assert len(front.puts()) == n
            if n == 1:
                await asyncio.sleep(0.2)  # real time passes, the fake clock does not
                assert len(front.puts()) == 1
            clock.advance(timedelta(seconds=expected))
        await failures_reach(a, "net-b", 4)
        # The same transaction was retried under the same id every time.
        assert len(set(front.puts())) == 1

        # While A waits, more is published; none of it goes out before the backoff ends.
        kept = (await a.publish())["id"]
        replaced = (await a.publish())["id"]
        update = (await a.update(replaced))["id"]
        cancel = (await a.cancel(kept))["id"]

        async def backlog_seen() -> bool:
            return (await a.peer("net-b"))["backlog"] == 5

        await wait_for(backlog_seen, what="backlog counted during backoff")
        assert len(front.puts()) == 4

        clock.advance("11m")  # the short alert expires while B is failing
        await failures_reach(a, "net-b", 5)
        assert len(set(front.puts())) == 2  # expiry dissolved the transaction
        front.status = None
        clock.advance(timedelta(seconds=(await a.peer("net-b"))["backoff"]))

        async def delivered() -> bool:
            status = await a.peer("net-b")
            return status["failures"] == 0 and status["backlog"] == 0

        await wait_for(delivered, what="delivery after the outage")
        received = [d["alert_id"] for d in await b.decisions() if d["peer"] == "net-a"]
        # Cancels first, then updates; the expired and the withdrawn never travel.
        assert received == [cancel, update]
        assert short not in await b.stored_ids()
        status = await a.peer("net-b")
        assert status["last_success"] == rfc3339(clock.now)
        # the outage's error is history once a delivery came after it (issue 27)
        assert (status["backoff"], status["next_attempt"], status["last_error"]) == (
            0.0,
            None,
            None,
        )
        metrics = await a.metrics()
        for line in (
            'avisa_peer_failures_total{peer="net-b"} 5',
            'avisa_peer_backlog{peer="net-b"} 0',
            'avisa_peer_dropped_total{peer="net-b",reason="expired"} 1',
            'avisa_peer_dropped_total{peer="net-b",reason="withdrawn"} 2',
        ):
            assert line in metrics, line


async def test_poison_envelope_is_quarantined_and_the_queue_keeps_flowing(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with a_to_b_through_front(tmp_path, clock) as (a, b, front):

        def poison(envelope: dict[str, Any]) -> bool:
            return headline_of(envelope) == "POISON"

        front.status, front.refuse = 503, poison
        ids = [
            (await a.publish(text={"en": {"headline": headline, "body": ""}}))["id"]
            for headline in ("one", "two", "POISON", "four", "five")
        ]
        await failures_reach(a, "net-b", 1)
        front.status = None  # B is back, but refuses any transaction with the poison in it

        async def settled() -> bool:
            # Time moves on while we look (a second a check), so every backoff the
            # sender sleeps ends, however the check and its sleep interleave.
            clock.advance("1s")
            status = await a.peer("net-b")
            return status["backlog"] == 0 and status["quarantined"] == 1

        await wait_for(settled, what="poison isolated, the rest delivered")
        assert await b.stored_ids() == set(ids) - {ids[2]}
        status, body = await a.call("GET", "/api/v1/peers")
        assert body["peers"][0]["quarantined"] == 1
        assert 'avisa_peer_quarantined{peer="net-b"} 1' in await a.metrics()
        quarantined = await a.node.db.read(
            lambda c: c.execute("SELECT alert_id, reason FROM quarantine").fetchall()
        )
        assert quarantined == [(ids[2], "HTTP 400 AVISA_TEST_REFUSED")]

        later = (await a.publish())["id"]

        async def flows() -> bool:
            return later in await b.stored_ids()

        await wait_for(flows, what="the queue keeps flowing")


async def test_seq_gap_triggers_a_pull_that_fills_it(tmp_path: Path, clock: FakeClock) -> None:
    async with a_to_b_through_front(tmp_path, clock) as (a, b, front):
        first = (await a.publish())["id"]

        async def at_b(alert_id: str) -> bool:
            return alert_id in await b.stored_ids()

        await wait_for(lambda: at_b(first), what="first at B")
        # B's front refuses the second alert, so A's push gives up on it...
        front.refuse = lambda envelope: headline_of(envelope) == "lost"
        lost = (await a.publish(text={"en": {"headline": "lost", "body": ""}}))["id"]
        await wait_for(lambda: _quarantined(a, "net-b"), what="the second alert quarantined at A")
        assert not await at_b(lost)
        # ...and the third shows B a hole in A's seq: B pulls from A and fills it.
        clock.advance("61s")
        third = (await a.publish())["id"]
        await wait_for(lambda: at_b(third), what="third at B")
        await wait_for(lambda: at_b(lost), what="the gap filled by catch-up")
        gaps = await b.node.db.read(
            lambda c: c.execute("SELECT seq_from, seq_to, pulled FROM seq_gaps").fetchall()
        )
        assert gaps == []


async def _quarantined(a: Member, network: str) -> bool:
    return bool((await a.peer(network))["quarantined"])


async def test_a_link_that_sent_its_whole_queue_does_not_look_again(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Each alert costs the link two bookkeeping commits (form, delivered): once the
    peer took everything the queue held, the link knows it is empty (without the
    knowledge, a third: a writer job that forms nothing)."""
    async with members(tmp_path, clock, ["net-a", "net-b"]) as net:
        a, b = net["net-a"], net["net-b"]
        await trusts(b, a)
        await trusts(a, b)
        await wait_for(lambda: pulled(a, "net-b"), what="a->b start-up pull")
        await wait_for(lambda: pulled(b, "net-a"), what="b->a start-up pull")
        db = a.node.db

        async def at_b(alert_id: str) -> bool:
            return alert_id in await b.stored_ids()

        async def sent_all() -> bool:
            return (await a.peer("net-b"))["backlog"] == 0

        before = db.lazy_commits
        for _ in range(5):
            alert_id = (await a.publish())["id"]
            await wait_for(lambda alert_id=alert_id: at_b(alert_id), what="the alert at B")
            await wait_for(sent_all, what="A's queue for B empty")
        assert db.lazy_commits - before <= 2 * 5
