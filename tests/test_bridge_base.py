"""``bridges.base``: durable cursors, backoff and filters, on a real node and a fake clock.

The far side here is a scripted ``RouteConsumer`` subclass (the interface a
bridge implements), not a mock of a homeserver: what is under test is the
cursor, retry and skip machinery every bridge shares. Sleeping advances the
fake clock instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bridges.base import (
    Delivered,
    Handled,
    RateLimited,
    RouteConsumer,
    RouteFilter,
    Skipped,
    Undeliverable,
)
from bridges.matrix import store as matrix_store
from bridges.store import load_cursor
from relay.core.errors import TransportError
from relay.runtime.clock import FakeClock
from relay.runtime.node import Node
from relay.storage import store
from tests.conftest import start_node
from tests.helpers import T0, make_alert, raw_envelope, wait_for


class Scripted(RouteConsumer):
    """Delivers everything, except what ``script`` says to fail first."""

    def __init__(self, node: Node, clock: FakeClock, **options: float) -> None:
        self.waits: list[float] = []
        self.clock = clock
        super().__init__("test:route", node, sleep=self.fake_sleep, idle_wait=0.05, **options)
        self.script: dict[str, list[Exception]] = {}
        self.always: dict[str, Exception] = {}
        self.delivered: list[str] = []
        self.skip: set[str] = set()

    async def fake_sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))
        await asyncio.sleep(0)

    async def prepare(self) -> None:
        return None

    async def handle(self, pos: int, stored: store.StoredAlert) -> Handled:
        alert_id = stored.alert.id
        if alert_id in self.always:
            raise self.always[alert_id]
        failures = self.script.get(alert_id)
        if failures:
            raise failures.pop(0)
        if alert_id in self.skip:
            return Skipped("not_wanted")
        self.delivered.append(alert_id)

        def record(conn: sqlite3.Connection) -> None:
            conn.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT)")
            conn.execute("INSERT INTO seen (id) VALUES (?)", (alert_id,))

        return Delivered(record)


@pytest.fixture
async def node(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Node]:
    node, runner, _, _ = await start_node(tmp_path, clock)
    yield node
    await runner.cleanup()
    await node.stop()


async def publish(node: Node, count: int) -> list[str]:
    alerts = [make_alert(seq=n + 1) for n in range(count)]
    outcomes = await node.pipeline.ingest([raw_envelope(a, node.key) for a in alerts], None)
    assert [o.status for o in outcomes] == ["accepted"] * count
    return [a.id for a in alerts]


@contextlib.asynccontextmanager
async def running(consumer: Scripted) -> AsyncIterator[Scripted]:
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_cursor_is_durable_and_a_new_consumer_resumes(node: Node, clock: FakeClock) -> None:
    first = await publish(node, 3)
    async with running(Scripted(node, clock)) as consumer:
        await wait_for(
            lambda: len(consumer.delivered) == 3 and consumer.status.cursor == node.feed.head,
            10,
            "three deliveries, recorded",
        )
    assert consumer.delivered == first
    assert await node.db.read(lambda c: load_cursor(c, "test:route")) == node.feed.head
    seen = await node.db.read(lambda c: [r[0] for r in c.execute("SELECT id FROM seen")])
    assert seen == first  # each record written with its cursor move

    later = await publish(node, 2)
    async with running(Scripted(node, clock)) as restarted:
        await wait_for(lambda: len(restarted.delivered) == 2, 10, "the new ones only")
    assert restarted.delivered == later


async def test_transport_errors_back_off_exponentially_up_to_the_cap(
    node: Node, clock: FakeClock
) -> None:
    (alert_id,) = await publish(node, 1)
    consumer = Scripted(node, clock, retry_max=8.0)
    consumer.script[alert_id] = [TransportError("send: homeserver unreachable")] * 6
    started = clock()
    async with running(consumer):
        # Delivered, and recorded: the route resets its failures once the write is done.
        await wait_for(
            lambda: consumer.delivered == [alert_id] and consumer.status.failures == 0,
            10,
            "delivery after failures",
        )
    assert consumer.waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert clock() - started == timedelta(seconds=31)
    status = consumer.status.as_dict(node.feed.head)
    assert status["failures"] == 0 and status["backoff_until"] is None
    assert status["last_error"] == "send: homeserver unreachable"
    assert status["last_success"] == "2026-11-23T12:00:31Z" and status["backlog"] == 0


async def test_backoff_until_is_reported_while_waiting(node: Node, clock: FakeClock) -> None:
    (alert_id,) = await publish(node, 1)
    consumer = Scripted(node, clock)
    gate = asyncio.Event()

    async def held_sleep(seconds: float) -> None:
        consumer.waits.append(seconds)
        await gate.wait()

    consumer.sleep = held_sleep
    consumer.script[alert_id] = [TransportError("send: M_UNKNOWN")]
    async with running(consumer):
        await wait_for(lambda: consumer.waits == [1.0], 10, "the first backoff")
        state = consumer.status.as_dict(node.feed.head)
        assert state["backoff_until"] == "2026-11-23T12:00:01Z" and state["backlog"] == 1
        gate.set()
        await wait_for(lambda: consumer.delivered == [alert_id], 10, "delivery")


async def test_rate_limit_waits_what_the_far_side_said(node: Node, clock: FakeClock) -> None:
    (alert_id,) = await publish(node, 1)
    consumer = Scripted(node, clock)
    consumer.script[alert_id] = [
        RateLimited("send: M_LIMIT_EXCEEDED", 2.5),
        TransportError("send: HTTP 502"),
    ]
    async with running(consumer):
        await wait_for(lambda: consumer.delivered == [alert_id], 10, "delivery")
    # The server's wait, exactly; a rate limit does not grow the exponential backoff.
    assert consumer.waits == [2.5, 1.0]
    assert consumer.status.rate_limited == 1


async def test_a_poison_item_is_skipped_and_the_route_moves_on(
    node: Node, clock: FakeClock
) -> None:
    poison, good = await publish(node, 2)
    consumer = Scripted(node, clock)
    consumer.always[poison] = ValueError("a bug in a renderer")
    async with running(consumer):
        await wait_for(lambda: consumer.delivered == [good], 10, "the next item")
    assert consumer.waits == [1.0, 2.0, 4.0, 8.0]  # four retries, then skipped
    assert consumer.status.skipped == {"undeliverable": 1}


async def test_undeliverable_skips_at_once(node: Node, clock: FakeClock) -> None:
    refused, good = await publish(node, 2)
    consumer = Scripted(node, clock)
    consumer.always[refused] = Undeliverable("send: M_TOO_LARGE")
    async with running(consumer):
        await wait_for(lambda: consumer.delivered == [good], 10, "the next item")
    assert consumer.waits == [] and consumer.status.skipped == {"undeliverable": 1}


async def test_skips_move_the_cursor_durably(node: Node, clock: FakeClock) -> None:
    ids = await publish(node, 3)
    consumer = Scripted(node, clock)
    consumer.skip.update(ids)

    async def saved() -> bool:
        return await node.db.read(lambda c: load_cursor(c, "test:route")) == node.feed.head

    async with running(consumer):
        await wait_for(saved, 10, "the skip cursor to be saved")
    assert consumer.delivered == [] and consumer.status.skipped == {"not_wanted": 3}


def test_route_filter() -> None:
    confirmed = frozenset({"confirmed", "false"})
    alert = make_alert(codes=["fips:06111"], geohash="9q4gch")
    assert RouteFilter(certainties=confirmed).skip_reason(alert) is None
    assert RouteFilter(areas=("fips:06",), certainties=confirmed).skip_reason(alert) is None
    assert RouteFilter(areas=("9q4g",), certainties=confirmed).skip_reason(alert) is None
    assert RouteFilter(areas=("fips:06083", "9q5"), certainties=confirmed).skip_reason(alert) == (
        "area"
    )
    assert RouteFilter(kinds=frozenset({"court"}), certainties=confirmed).skip_reason(alert) == (
        "kind"
    )
    unconfirmed = make_alert(certainty="unconfirmed")
    assert RouteFilter(certainties=confirmed).skip_reason(unconfirmed) == "certainty"
    assert RouteFilter(languages=("es",), certainties=confirmed).skip_reason(alert) == "language"
    assert RouteFilter(languages=("es", "en"), certainties=confirmed).languages_for(alert) == ["en"]


def test_matrix_posts_follow_a_chain_to_its_root(tmp_path: Path) -> None:
    from relay.storage.db import open_sync

    conn = open_sync(tmp_path / "db.sqlite")
    route, expires = "matrix:@a:x:#r:x", T0 + timedelta(hours=1)
    matrix_store.record_root(conn, route, "v/A", "!room", "$a", expires)
    root = matrix_store.current_post(conn, route, ["v/A"])
    assert root is not None and root.root_event_id == "$a" and root.status == "active"
    matrix_store.record_edit(conn, route, root, "v/U", "$u", "active", expires + timedelta(hours=1))
    current = matrix_store.current_post(conn, route, ["v/U", "v/A"])
    assert current is not None and current.alert_id == "v/U" and current.root_event_id == "$a"
    assert matrix_store.current_post(conn, route, ["v/other"]) is None
    assert matrix_store.current_post(conn, "another route", ["v/A"]) is None

    assert matrix_store.due_to_expire(conn, route, expires) == []  # the update lives longer
    later = expires + timedelta(hours=1)
    assert [p.alert_id for p in matrix_store.due_to_expire(conn, route, later)] == ["v/U"]
    matrix_store.mark_expired(conn, route, "v/U")
    assert matrix_store.due_to_expire(conn, route, later) == []

    assert matrix_store.purge(conn, route, later + timedelta(days=6), timedelta(days=7)) == 0
    assert matrix_store.purge(conn, route, later + timedelta(days=7), timedelta(days=7)) == 2
    conn.close()
