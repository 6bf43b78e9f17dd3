"""Time values and their text forms: durations, epoch seconds, RFC 3339.

Pure: the core never reads the time itself; it receives ``now`` from a
``Clock`` (a callable the shell passes in). The clocks themselves (the
system clock, the fake clock of the tests, sleeping on a clock) live in
``relay.runtime.clock``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]

DURATION_PATTERN = r"^[0-9]{1,6}[smhd]$"
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


def to_epoch_or_none(moment: datetime | None) -> int | None:
    """``to_epoch`` of an optional moment (a nullable column)."""
    return None if moment is None else to_epoch(moment)


def from_epoch_or_none(seconds: int | None) -> datetime | None:
    """``from_epoch`` of a nullable column."""
    return None if seconds is None else from_epoch(seconds)


def rfc3339(moment: datetime) -> str:
    """``2026-11-23T13:42:58Z``: the one time format on the wire."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def whole_seconds(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)
