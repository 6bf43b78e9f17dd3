"""The node's one clock: now, elapsed seconds, sleeping, repeating work.

Modelled on Synapse's ``Clock``: everything of the running node that reads
the time or waits for it goes through the ``NodeClock`` it was given, never
through ``datetime.now``, ``time.monotonic`` or ``asyncio.sleep`` directly.

- ``system_clock`` is the only place the wall clock and the event loop's
  timers are used.
- ``FakeClock`` (tests) moves only when told: ``advance`` wakes every sleeper
  whose time has come, at once, so backoff, expiry, retention and the
  housekeeping loops are tested without sleeping and without polling.
- ``file_clock`` reads the time from a file (``AVISA_TEST_CLOCK_FILE``), for
  tests that run whole ``avisa run`` processes and move their time by
  rewriting it; its sleepers watch that file.

A ``NodeClock`` is called for *now* (so it is also the pure core's ``Clock``,
which only ever receives the time), gives ``monotonic`` seconds for
intervals, ``sleep``s, and ``linger``s: the one real-time wait, a few
milliseconds that let work already under way on the event loop catch up (a
burst joining a transaction). That is a matter of scheduling, not a timer
of the protocol, so every clock, the fake ones too, lingers in real time.
``every`` is the one periodic-task helper.

Deadlines on real I/O stay on the event loop's time under every clock: a
request body's deadline, a worker's start-up, a homeserver's reply, the
feed signal's "look again anyway" timeout. They bound waits on sockets and
processes, which a fake clock does not move.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import structlog

from relay.core.times import parse_duration

#: Names a file holding the time, for tests that run nodes as processes. Never in production.
TEST_CLOCK_ENV = "AVISA_TEST_CLOCK_FILE"
FILE_POLL_S = 0.01
PRUNE_AT = 1024
_log = structlog.get_logger("avisa.clock")


class NodeClock(Protocol):
    """What the running node reads the time and waits with."""

    def __call__(self) -> datetime:
        """Now, an aware UTC datetime."""
        ...

    def monotonic(self) -> float:
        """Seconds on a counter that never goes back, for measuring intervals."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock."""
        ...

    async def linger(self, seconds: float) -> None:
        """Wait ``seconds`` of real time for the event loop's other work (never a timer)."""
        ...


async def _real_pause(seconds: float) -> None:
    await asyncio.sleep(seconds)


class SystemClock:
    """The wall clock and the event loop's timers."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def linger(self, seconds: float) -> None:
        await _real_pause(seconds)


system_clock = SystemClock()


class FakeClock:
    """A clock for tests: starts at ``start`` and moves only when told.

    ``advance`` wakes, in deadline order, every ``sleep`` whose time has come;
    a sleeper waiting longer keeps waiting, however much real time passes.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
        self._start = self.now
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return (self.now - self._start).total_seconds()

    def advance(self, delta: timedelta | str) -> None:
        self.now += parse_duration(delta) if isinstance(delta, str) else delta
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, waiter = heapq.heappop(self._sleepers)
            if not waiter.done():
                waiter.set_result(None)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        waiter = asyncio.get_running_loop().create_future()
        deadline = self.now + timedelta(seconds=seconds)
        if len(self._sleepers) > PRUNE_AT:  # cancelled sleeps (lost races) would pile up
            self._sleepers = [entry for entry in self._sleepers if not entry[2].done()]
            heapq.heapify(self._sleepers)
        heapq.heappush(self._sleepers, (deadline, next(self._order), waiter))
        try:
            await waiter
        finally:
            waiter.cancel()  # no-op once woken; a cancelled sleeper is skipped by advance

    def sleepers(self) -> int:
        """How many sleeps wait on this clock (tests wait for a loop to be parked)."""
        return sum(not waiter.done() for _, _, waiter in self._sleepers)

    async def linger(self, seconds: float) -> None:
        await _real_pause(seconds)


class FileClock:
    """The time is the RFC 3339 instant written in ``path`` (tests of whole processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self()  # fail at start-up, not at the first request, if the file is unusable

    def __call__(self) -> datetime:
        return datetime.fromisoformat(self.path.read_text().strip()).astimezone(UTC)

    def monotonic(self) -> float:
        return self().timestamp()

    async def sleep(self, seconds: float) -> None:
        """Watch the file until it says ``seconds`` have passed (another process moves it)."""
        until = self() + timedelta(seconds=seconds)
        while self() < until:
            await _real_pause(FILE_POLL_S)

    async def linger(self, seconds: float) -> None:
        await _real_pause(seconds)


def file_clock(path: Path) -> FileClock:
    return FileClock(path)


async def every(
    clock: NodeClock, seconds: float, work: Callable[[], Awaitable[object]], what: str
) -> None:
    """Run ``work`` every ``seconds`` on ``clock``, first after one interval, until cancelled.

    A failure is logged and the loop goes on: housekeeping must outlive one bad run.
    """
    while True:
        await clock.sleep(seconds)
        try:
            await work()
        except Exception:  # noqa: BLE001 - housekeeping must outlive one failure
            _log.exception("background task failed", task=what)
