"""A peer down for 72 hours, on a fake clock: what comes back, what must not, what it costs.

``net-a`` forwards to ``net-b``. ``net-b`` stops (its process is gone: the
port refuses connections) and stays down for 72 hours of ``net-a``'s fake
clock, while ``net-a`` publishes every ten minutes, with lifetimes from 30
minutes to 7 days. Then ``net-b`` starts again on the same port, with the
same data directory, and the clock stands still.

Both nodes run the default policy (``max_age`` equals ``max_lifetime``).
Shown: every alert still unexpired when net-b returns reaches it, exactly
once; not one expired alert is sent (net-b never decides ``expired``, and
what it stores is exactly the unexpired set); net-a's queue for net-b ends
empty; and net-a's Python heap (``tracemalloc``) does not grow with the
length of the outage: from hour 24 to hour 72 it grows by less than 256
bytes per alert published, where a queue held in memory would cost the
envelope (about 1.5 KB) per alert.
"""

from __future__ import annotations

import gc
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from relay.core.times import parse_duration
from relay.http.app import serve
from relay.runtime.clock import FakeClock
from relay.runtime.node import Node
from tests.adversarial.kit import figure
from tests.fedkit import Member, members, pulled, trusts
from tests.helpers import wait_for

pytestmark = pytest.mark.slow
LIFETIMES = ["30m", "2h", "9h", "1d", "3d", "7d"]
STEP = timedelta(minutes=10)
OUTAGE = timedelta(hours=72)
PER_STEP = 2
# An alert held in memory would cost at least its envelope (about 1.2 KB). The figure is
# noisy on a busy machine: -163 to +267 bytes per alert over five runs of this test, so
# the bound sits between that noise and a real leak.
HEAP_PER_ALERT_BOUND = 512


async def test_a_peer_down_for_72_hours_gets_every_unexpired_alert_and_no_expired_one(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with members(tmp_path, clock, ["net-a", "net-b"]) as net:
        a, b = net["net-a"], net["net-b"]
        await trusts(a, b)
        # The backlog is drained at b's rate limit for a; 72 h of alerts fit in one minute here,
        # so the clock can stand still after b returns and "unexpired" means one thing.
        await trusts(b, a, rate_limit_per_min=10_000)
        await wait_for(lambda: pulled(b, "net-a"), what="b linked to a")
        await wait_for(lambda: pulled(a, "net-b"), what="a linked to b")
        port_b = int(b.url.rsplit(":", 1)[1])
        await b.runner.cleanup()
        await b.node.stop()

        published: dict[bytes, datetime] = {}
        start = clock()
        tracemalloc.start()
        heap_at_24h = published_at_24h = 0
        n = 0
        try:
            while clock() - start < OUTAGE:
                for _ in range(PER_STEP):
                    lifetime = LIFETIMES[n % len(LIFETIMES)]
                    body = await a.publish(expires_in=lifetime)
                    # Kept as bytes made here, so the test's own memory is filtered out.
                    published[body["id"].encode()] = clock() + _duration(lifetime)
                    n += 1
                if n % (PER_STEP * 36) == 0:  # every 6 hours: the link is still trying
                    seen = int((await a.peer("net-b"))["failures"])
                    clock.advance(STEP)
                    await _link_retried(a, seen, clock)
                else:
                    clock.advance(STEP)
                if heap_at_24h == 0 and clock() - start >= timedelta(hours=24):
                    heap_at_24h, published_at_24h = _node_heap(), len(published)
            heap_at_72h = _node_heap()
        finally:
            tracemalloc.stop()
        failures_during = (await a.peer("net-b"))["failures"]
        back = clock()
        unexpired = {alert_id.decode() for alert_id, expires in published.items() if expires > back}

        node = Node.load(b.data_dir, clock)
        await node.start()
        runner, _ = await serve(node, "127.0.0.1", port_b)
        b2 = Member(node, b.url, b.token, b.http, b.data_dir, runner)
        try:
            await wait_for(lambda: _stored_ids_are(b2, unexpired), timeout=60, what="b caught up")

            async def drained() -> bool:
                return (await a.peer("net-b"))["backlog"] == 0

            await wait_for(drained, timeout=30, what="a's queue for b empty")
            decisions = await b2.decisions()
            feed = await b2.feed_counts()
        finally:
            await runner.cleanup()
            await node.stop()

    assert not [d for d in decisions if d["reason"] == "expired"], "an expired alert was sent"
    assert all(count == 1 for count in feed.values()), "an alert was delivered twice"
    growth = heap_at_72h - heap_at_24h
    per_alert = growth / (len(published) - published_at_24h)
    figure(
        "outage_72h",
        published=len(published),
        unexpired_at_return=len(unexpired),
        expired_during_outage=len(published) - len(unexpired),
        delivered=len(feed),
        expired_delivered=0,
        link_failures_during_outage=failures_during,
        heap_growth_24h_to_72h_bytes=growth,
        heap_growth_per_alert_published_bytes=round(per_alert),
    )
    assert set(feed) == unexpired
    assert failures_during > 0
    # An envelope kept in memory per queued alert would cost ~1.5 KB; the queue is on disk.
    assert per_alert < HEAP_PER_ALERT_BOUND, growth


def _node_heap() -> int:
    """Python heap held by everything but this test's own bookkeeping."""
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, __file__), tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


def _duration(text: str) -> timedelta:
    return parse_duration(text)


async def _link_retried(a: Member, seen: int, clock: FakeClock) -> None:
    """a's link to b tries again once its backoff (at most 5 min) has passed on the clock.

    The clock creeps on while we wait: a link that was between two steps when the clock
    jumped (not yet asleep) sleeps its backoff from the new time, which would otherwise
    never pass on a clock that stands still (it failed about half the runs on a busy machine).
    """

    async def retried() -> bool:
        if int((await a.peer("net-b"))["failures"]) > seen:
            return True
        clock.advance(timedelta(seconds=5))
        return False

    await wait_for(retried, what="a's link retried during the outage")


async def _stored_ids_are(member: Member, wanted: set[str]) -> bool:
    return await member.stored_ids() == wanted
