"""Time helpers shared by core and shell: durations, epoch conversion, clocks.

The core never reads the time itself; it receives ``now`` from a ``Clock``.
``SystemClock`` is the only place the wall clock is read; tests pass a
``FakeClock`` they move by hand, so expiry, backoff and retention are tested
without sleeping. ``sleeper`` gives the waits measured on a clock (backoff)
that follow it; ``file_clock`` lets tests of whole ``avisa run`` processes
move their time by rewriting a file (``AVISA_TEST_CLOCK_FILE``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]

#: Names a file holding the time, for tests that run nodes as processes. Never in production.
TEST_CLOCK_ENV = "AVISA_TEST_CLOCK_FILE"

_DURATION = re.compile(r"^([0-9]{1,6})(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"4h"``, ``"7d"`` → timedelta; ValueError otherwise."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration like 30s, 15m, 4h or 7d: {text!r}")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit in ("d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def to_epoch(moment: datetime) -> int:
    """Whole seconds since the epoch (what the store keeps); ``moment`` must be aware."""
    if moment.tzinfo is None:
        raise TypeError("to_epoch needs an aware datetime")
    return int(moment.timestamp())


def from_epoch(seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def rfc3339(moment: datetime) -> str:
    """``2026-11-23T13:42:58Z``: the one time format on the wire."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def whole_seconds(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


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
