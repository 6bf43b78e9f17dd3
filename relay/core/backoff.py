"""The one backoff policy: exponential, capped, with equal jitter.

After ``n`` consecutive failures the ceiling is ``base * 2**(n-1)``, at most
``cap``; the wait is half the ceiling fixed and half drawn at random, so
nodes that failed together do not retry together. The draw is injected
(``random.random`` in the shell, a constant in tests); a caller that wants
no jitter (one bridge talking to its own homeserver) draws ``1.0``, which
waits the whole ceiling: 1 s, 2 s, 4 s … Used by the federation sender
(``relay.federation.sender``) and the bridges (``bridges.base``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def backoff_delay(failures: int, draw: float, base: float, cap: float) -> float:
    """Seconds to wait after ``failures`` consecutive failures: half fixed, half random."""
    ceiling = min(cap, base * 2.0 ** min(max(failures, 1) - 1, 40))
    return ceiling / 2 + draw * ceiling / 2


def no_jitter() -> float:
    return 1.0


@dataclass(slots=True)
class Backoff:
    """Counts consecutive failures; ``next_delay`` after each, ``reset`` after a success."""

    cap: float = 300.0
    base: float = 1.0
    draw: Callable[[], float] = no_jitter
    failures: int = 0

    def next_delay(self) -> float:
        self.failures += 1
        return backoff_delay(self.failures, self.draw(), self.base, self.cap)

    def reset(self) -> None:
        self.failures = 0
