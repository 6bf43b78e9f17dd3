"""``FeedSignal``: the newest feed position, and a way to wait until it moves.

It wakes whoever follows the feed (SSE streams, bridges; the federation
sender's peer links only for advances that may have queued for their peer,
``wait_queued``): they keep their own cursor and read from the store, so a slow or
restarted consumer never loses an event, and the signal itself holds no
queue that could grow. ``wait_beyond``'s timeout is a safety net (look
again now and then), not a timer of the protocol: it runs on the event
loop's time under every clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection


class FeedSignal:
    """The newest feed position, and a way to wait until it moves past yours.

    An advance may say for which peers it queued outbox rows (``queued_for``),
    so a peer's sender need not look at the outbox after every accepted
    batch; an advance that does not say counts as "maybe for everyone".
    """

    def __init__(self, head: int = 0) -> None:
        self.head = head
        self._moved = asyncio.Event()
        self._queued_at: dict[str, int] = {}
        self._queued_for_anyone_at = head
        self._peer_moved: dict[str, asyncio.Event] = {}  # per peer waiting in wait_queued

    def advance(self, pos: int, queued_for: Collection[str] | None = None) -> None:
        if pos <= self.head:
            return
        self.head = pos
        if queued_for is None:
            self._queued_for_anyone_at = pos
            woken = list(self._peer_moved)
        else:
            for peer in queued_for:
                self._queued_at[peer] = pos
            woken = [peer for peer in queued_for if peer in self._peer_moved]
        for peer in woken:
            self._peer_moved.pop(peer).set()
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    def may_have_queued(self, peer: str, since: int) -> bool:
        """Whether an advance past ``since`` may have queued outbox rows for ``peer``."""
        return max(self._queued_at.get(peer, 0), self._queued_for_anyone_at) > since

    def named(self, peer: str, since: int) -> bool:
        """Whether an advance past ``since`` said it queued outbox rows for ``peer`` (an
        advance that names no peer may have, ``may_have_queued``, but did not say so)."""
        return self._queued_at.get(peer, 0) > since

    async def wait_queued(self, peer: str, since: int, timeout: float) -> bool:
        """True once an advance past ``since`` may have queued outbox rows for ``peer``;
        False if ``timeout`` seconds pass first. Advances for other peers wake nobody
        here: at 40 nodes, waking every idle peer link on every accepted message cost
        each node more than a tenth of its CPU."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not self.may_have_queued(peer, since):
                    await self._peer_moved.setdefault(peer, asyncio.Event()).wait()
        return self.may_have_queued(peer, since)

    async def wait_beyond(self, pos: int, timeout: float) -> bool:
        """True once ``head > pos``; False if ``timeout`` seconds pass first."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.head <= pos:
                    await self._moved.wait()
        return self.head > pos
