"""The clocks: the system clock, the tests' fake clock, sleeping on a clock.

``system_clock`` is the only place the wall clock is read; tests pass a
``FakeClock`` they move by hand, so expiry, backoff and retention are tested
without sleeping. ``sleeper`` gives the waits measured on a clock (backoff)
that follow it; ``file_clock`` lets tests of whole ``avisa run`` processes
move their time by rewriting a file (``AVISA_TEST_CLOCK_FILE``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from relay.core.times import Clock, Sleep, parse_duration

#: Names a file holding the time, for tests that run nodes as processes. Never in production.
TEST_CLOCK_ENV = "AVISA_TEST_CLOCK_FILE"


def system_clock() -> datetime:
    return datetime.now(UTC)


class FakeClock:
    """A clock for tests: starts at ``start`` and moves only when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | str) -> None:
        self.now += parse_duration(delta) if isinstance(delta, str) else delta


def sleeper(clock: Clock, poll_s: float = 0.01) -> Sleep:
    """A sleep measured on ``clock``: real sleeping on the system clock; any other
    clock (fake, test file) is polled until it has moved ``seconds`` forward."""
    if clock is system_clock:
        return asyncio.sleep

    async def sleep(seconds: float) -> None:
        until = clock() + timedelta(seconds=seconds)
        while clock() < until:
            await asyncio.sleep(poll_s)

    return sleep


def file_clock(path: Path) -> Clock:
    """The time is the RFC 3339 instant written in ``path`` (tests of whole processes)."""

    def now() -> datetime:
        return datetime.fromisoformat(path.read_text().strip()).astimezone(UTC)

    now()  # fail at start-up, not at the first request, if the file is unusable
    return now
