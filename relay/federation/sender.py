"""One task per peer: push its outbox, pull catch-up from it, back off, isolate poison.

A ``PeerLink`` does one thing at a time, so at most one transaction is ever
in flight to a peer. Each step:

1. pull catch-up if needed (on start, after an outage ended, after a ``seq``
   gap was noticed in what the peer delivered; gaps are looked for at most
   once per ``gap_pull_interval``);
2. take the transaction in flight, or form a new one of up to ``batch_limit``
   items (cancels, then updates, then alerts; expired and withdrawn items are
   dropped, never sent), endorse where the peer's entry says so, PUT it;
3. on a 200, every item is answered: ``rejected`` is a final answer (counted
   by reason), except ``rate_limited``, which stays queued for a minute.

Failures. A transport failure (no connection, timeout, 5xx, 401, 429…)
keeps the same transaction (same txn id, so the receiver's idempotency holds)
and waits ``backoff_delay``: exponential, equal jitter, capped. Waiting is on
the node's clock through the injected ``sleep``, so tests watch backoff on a
fake clock without sleeping. A link in backoff still wakes on new alerts queued
for its peer to keep its backlog figure fresh, and ends the backoff early when the peer
signs a request to us after we failed to connect or got a 401/403 (it is
back, or knows us now). A 4xx about the request's content halves the batch
until the offending item travels alone; that item is quarantined and
reported, and the queue behind it moves on. Three quarantines in a row
without a success mean the peer itself is broken: the link backs off
instead of quarantining everything.

Batching. While a transaction is in flight, new items wait and go in the
next one. A link that goes idle and is woken within ``burst_window_s`` of
its last send lingers ``linger_s`` (real time, ``NodeClock.linger``) so the rest of a burst joins
the transaction, but only while a burst is evidently under way (its last
transaction carried more than one item): alerts that arrive one at a time,
even many a second, each go at once, since lingering would only delay them.

Waking. An idle link sleeps until the feed says an accepted batch queued something
for its peer (``FeedSignal.wait_queued``; a batch that cannot say, such as a cancel,
wakes every link, which then looks with a read), its trust changes, its peer
delivers a transaction while a look for gaps is due, or 30 s pass. Each wake on a
hop's path is a thread hand-off avoided or paid: at 40 nodes on two cores, waiting
for a core at each hand-off was most of a hop's latency (bench/README.md, Coalition).
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from relay.core.backoff import backoff_delay
from relay.core.errors import TransportError
from relay.core.forwarding import outgoing
from relay.core.model import envelope_decoder
from relay.core.times import Sleep, rfc3339
from relay.federation import catchup
from relay.federation.transport import PeerRefused, PeerUnavailable, Result
from relay.runtime.aio import cancel_all
from relay.storage import gaps, outbox
from relay.storage.db import Connection
from relay.storage.trust import PeerRecord

if TYPE_CHECKING:
    from relay.federation.service import Federation

MAX_BATCH = 50
IDLE_RECHECK_S = 30.0
RATE_LIMIT_PAUSE_S = 60.0
MAX_POISON_STREAK = 3
# Up to this many items are made ready (decoded, endorsed: one signature each, about
# 60 µs) on the event loop itself: a thread hand-off costs more on a busy host.
INLINE_ITEMS = 4
_log = structlog.get_logger("avisa.federation")


@dataclass(slots=True)
class Timing:
    """Knobs of every link; ``sleep`` follows the node's clock (``NodeClock.sleep``)."""

    sleep: Sleep
    random: Callable[[], float] = random.random
    linger_s: float = 0.015
    burst_window_s: float = 0.25
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    request_timeout_s: float = 30.0
    gap_pull_interval: timedelta = timedelta(minutes=1)


@dataclass(slots=True)
class LinkStatus:
    backlog: int = 0
    quarantined: int = 0
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    failures: int = 0
    failures_total: int = 0
    delivered_total: int = 0
    backoff_s: float = 0.0
    next_attempt: datetime | None = None
    wake_on_contact: bool = False
    rejected: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        # An error a later success followed is history (say, the minutes of the key
        # ceremony): it is not shown, so it never sits beside a healthy badge.
        since = self.last_error_at
        current = self.last_error is not None and (
            self.failures > 0
            or self.last_success is None
            or (since is not None and since > self.last_success)
        )
        return {
            "last_success": rfc3339(self.last_success) if self.last_success else None,
            "backlog": self.backlog,
            "backoff": self.backoff_s,
            "next_attempt": rfc3339(self.next_attempt) if self.next_attempt else None,
            "last_error": self.last_error if current else None,
            "last_error_at": rfc3339(since) if current and since else None,
            "failures": self.failures,
            "quarantined": self.quarantined,
        }


async def _race(**waits: Awaitable[object]) -> dict[str, object]:
    """Wait for the first of ``waits``; cancel the rest; the finished ones' results."""
    tasks = {name: asyncio.ensure_future(wait) for name, wait in waits.items()}
    try:
        await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_all(tasks.values())
    return {
        name: task.result()
        for name, task in tasks.items()
        if task.done() and not task.cancelled() and task.exception() is None
    }


class PeerLink:
    def __init__(self, federation: Federation, network: str) -> None:
        self.network = network
        self.status = LinkStatus()
        self.batch_limit = MAX_BATCH
        self.pull_needed = True
        self._fed = federation
        self._node = federation.host
        self._wake = asyncio.Event()
        self._seen = 0
        self._poison_streak = 0
        self._last_gap_look: datetime | None = None  # the last pull or look at the gaps
        self._last_sent = -1e9  # clock.monotonic() of the last transaction sent
        self._last_size = 0  # items in it
        # The feed head when the outbox last held nothing for this peer (None: not
        # known to be empty), and when that was looked at (clock.monotonic()).
        self._empty_at: int | None = None
        self._empty_checked = 0.0
        # The feed head when the transaction in flight was formed, if it took everything
        # the queue held: once the peer has taken it all, the queue is empty as of then.
        self._empty_after: int | None = None

    @property
    def _timing(self) -> Timing:
        return self._fed.timing

    def wake(self) -> None:
        """Look again now (trust changed), even in the middle of a backoff."""
        self._empty_at = None
        self._wake.set()

    def peer_alive(self) -> None:
        """The peer just signed a request to us: if we failed because it was down or did
        not know us yet, that has likely changed, so end the backoff now."""
        if self.status.failures and self.status.wake_on_contact:
            self._wake.set()

    def delivered_here(self) -> None:
        """The peer just delivered a transaction to us, which may show a hole in an
        origin's ``seq``: if a look for gaps is due and no pause is pending, look now
        (links wake only for what may be queued for their peer, so nothing else would)."""
        if self._gap_look_due(self._node.clock()) and self.status.next_attempt is None:
            self._wake.set()

    async def run(self) -> None:
        await self._refresh(load=True)
        while (peer := self._node.trust.peers.get(self.network)) is not None:
            try:
                wait = await self._step(peer)
            except TransportError as exc:
                wait = await self._failed(exc)
            except Exception:  # noqa: BLE001 - a bug must not end deliveries to this peer
                _log.exception("peer link step failed", peer=self.network)
                wait = await self._failed(TransportError("internal error"))
            if wait is None:
                await self._idle()
            elif wait > 0:
                await self._pause()

    async def _step(self, peer: PeerRecord) -> float | None:
        self._seen = self._node.feed.head
        self._wake.clear()  # a wake from here on (even mid-step) ends the coming wait
        if self.pull_needed or await self._gap_pull_due():
            paused = await self._pull(peer)
            if paused:
                return paused
        if not peer.policy.forward:
            if not self._known_empty():
                await self._refresh()
                self._known_empty_now(self._seen)
            return None
        txn = await self._form()
        if txn is None:
            return None
        return await self._send(peer, txn)

    # --- pushing ------------------------------------------------------------

    def _known_empty(self) -> bool:
        """The outbox held nothing for this peer at the last look, no accepted batch since
        may have queued anything for it (``FeedSignal``), and the look is recent."""
        return (
            self._empty_at is not None
            and self._node.clock.monotonic() - self._empty_checked < IDLE_RECHECK_S
            and not self._node.feed.may_have_queued(self.network, self._empty_at)
        )

    def _known_empty_now(self, head: int | None) -> None:
        self._empty_at, self._empty_checked = head, self._node.clock.monotonic()

    async def _form(self) -> outbox.Txn | None:
        # A wake that cannot have queued anything for this peer (a trust change, the
        # periodic look) is answered by the feed signal without touching the store. One
        # that named this peer goes straight to the writer job that forms the
        # transaction (a read first would be one more thread hand-off on every hop, and
        # on a busy host each is a wait for a core). One that named no peer (a cancel,
        # an update, a reload: every link wakes) is looked at with a read first, so a
        # cancel does not put every link of every node in the writer's queue.
        if self._known_empty():
            self.status.backlog = 0
            return None
        feed, head = self._node.feed, self._node.feed.head
        unnamed = self._empty_at is not None and not feed.named(self.network, self._empty_at)
        if unnamed and not await self._node.db.read(
            lambda conn: outbox.has_items(conn, self.network)
        ):
            self.status.backlog = 0
            self._known_empty_now(head)
            return None
        now, limit, txn_id = self._node.clock(), self.batch_limit, secrets.token_hex(16)
        # Not durable: after a power loss the items form a new transaction, nothing is lost.
        formed = await self._node.db.write(
            lambda conn: outbox.next_txn(conn, self.network, now, limit, txn_id), durable=False
        )
        self.status.dropped.update(formed.dropped)
        self.status.backlog = formed.backlog
        self._known_empty_now(head if formed.txn is None else None)
        took_all = formed.txn is not None and formed.backlog == len(formed.txn.items)
        self._empty_after = head if took_all else None
        if formed.backlog > outbox.MAX_BACKLOG:
            trimmed = await self._node.db.write(lambda conn: outbox.trim(conn, self.network))
            self.status.dropped["overflow"] += trimmed
            _log.warning("peer backlog over its cap", peer=self.network, dropped=trimmed)
        return formed.txn

    def _envelopes(self, peer: PeerRecord, items: Sequence[outbox.Queued]) -> list[bytes | None]:
        key, cap = self._node.key, self._node.trust.policy.max_signatures
        return [
            outgoing(
                item.envelope, envelope_decoder.decode(item.envelope), key, peer.policy.endorse, cap
            )
            for item in items
        ]

    async def _send(self, peer: PeerRecord, txn: outbox.Txn) -> float:
        if len(txn.items) <= INLINE_ITEMS:
            built = self._envelopes(peer, txn.items)
        else:
            loop = asyncio.get_running_loop()
            built = await loop.run_in_executor(self._node.pool, self._envelopes, peer, txn.items)
        envelopes = [data for data in built if data is not None]
        if len(envelopes) != len(built):
            await self._drop_uncapped(txn, built)
            return 0.0
        self._last_sent, self._last_size = self._node.clock.monotonic(), len(envelopes)
        try:
            results = await self._fed.client.send(self.network, peer.url, txn.txn_id, envelopes)
        except PeerRefused as exc:
            return await self._refused(txn, exc)
        matches = len(results) == len(txn.items) and all(
            result.id in (None, item.alert_id)
            for result, item in zip(results, txn.items, strict=True)
        )
        if not matches:
            raise PeerUnavailable("reply does not match the transaction")
        return await self._delivered(txn, results)

    async def _drop_uncapped(self, txn: outbox.Txn, built: Sequence[bytes | None]) -> None:
        over = [item.n for item, data in zip(txn.items, built, strict=True) if data is None]

        def job(conn: Connection) -> None:
            outbox.release(conn, self.network)
            outbox.drop(conn, over)

        await self._node.db.write(job)
        self.status.dropped["too_many_signatures"] += len(over)

    async def _delivered(self, txn: outbox.Txn, results: Sequence[Result]) -> float:
        keep = []
        for item, result in zip(txn.items, results, strict=True):
            if result.status != "rejected":
                continue
            if result.reason == "rate_limited":
                keep.append(item.n)
            else:
                self.status.rejected[result.reason] += 1
                _log.info(
                    "peer rejected", peer=self.network, alert_id=item.alert_id, reason=result.reason
                )
        now = self._node.clock()
        # Not durable: after a power loss the items go again, and the peer refuses the copies.
        await self._node.db.write(
            lambda conn: outbox.delivered(conn, self.network, txn.txn_id, keep, now), durable=False
        )
        if not keep and self._empty_after is not None:
            self._known_empty_now(self._empty_after)
        self._empty_after = None
        if self.status.failures:
            self.pull_needed = True  # an outage just ended: look for what it hid
        self._succeeded(now)
        self.status.delivered_total += len(txn.items) - len(keep)
        self.batch_limit = min(MAX_BATCH, self.batch_limit * 2)
        if keep:
            return self._set_backoff(RATE_LIMIT_PAUSE_S, now)
        return 0.0

    async def _refused(self, txn: outbox.Txn, exc: PeerRefused) -> float:
        if self._poison_streak >= MAX_POISON_STREAK:
            raise PeerUnavailable(f"peer refuses everything ({exc})", status=exc.status)
        if len(txn.items) > 1:
            self.batch_limit = max(1, len(txn.items) // 2)
            await self._node.db.write(lambda conn: outbox.release(conn, self.network))
            _log.info("peer refused a transaction; splitting it", peer=self.network, error=str(exc))
            return 0.0
        (item,) = txn.items
        now = self._node.clock()
        await self._node.db.write(
            lambda conn: outbox.quarantine(conn, self.network, item, str(exc), now)
        )
        self._poison_streak += 1
        self.status.quarantined += 1
        _log.warning("quarantined", peer=self.network, alert_id=item.alert_id, error=str(exc))
        return 0.0

    # --- pulling -------------------------------------------------------------

    def _gap_look_due(self, now: datetime) -> bool:
        last = self._last_gap_look
        return last is None or now - last >= self._timing.gap_pull_interval

    async def _gap_pull_due(self) -> bool:
        """A gap waits for a pull; looked for at most once per ``gap_pull_interval``
        (pulls are no more frequent than that anyway), not at every step."""
        now = self._node.clock()
        if not self._gap_look_due(now):
            return False
        self._last_gap_look = now
        return await self._node.db.read(lambda conn: gaps.needs_pull(conn, self.network))

    async def _pull(self, peer: PeerRecord) -> float | None:
        node = self._node
        try:
            pulled = await catchup.pull(
                self._fed.client, peer, node.db, node.pipeline.ingest, node.clock
            )
        except (PeerRefused, PeerUnavailable) as exc:
            if isinstance(exc, PeerUnavailable) and exc.status not in (404, 405):
                raise
            _log.warning("peer offers no catch-up", peer=self.network, error=str(exc))
            self.pull_needed = False
            return None
        now = node.clock()
        self._last_gap_look = now

        def job(conn: Any) -> None:
            gaps.mark_pulled(conn, self.network)
            outbox.record_success(conn, self.network, now)

        await node.db.write(job)
        self._succeeded(now)
        self.pull_needed = not pulled.complete
        if pulled.envelopes:
            _log.info(
                "pulled", peer=self.network, envelopes=pulled.envelopes, accepted=pulled.accepted
            )
        return None if pulled.complete else self._set_backoff(RATE_LIMIT_PAUSE_S, now)

    # --- state and waiting ---------------------------------------------------

    def _succeeded(self, now: datetime) -> None:
        status = self.status
        status.last_success, status.failures, status.wake_on_contact = now, 0, False
        status.backoff_s, status.next_attempt = 0.0, None
        self._poison_streak = 0

    def _set_backoff(self, delay: float, now: datetime) -> float:
        self.status.backoff_s = delay
        self.status.next_attempt = now + timedelta(seconds=delay)
        return delay

    async def _failed(self, exc: TransportError) -> float:
        status, timing, now = self.status, self._timing, self._node.clock()
        delay = backoff_delay(
            status.failures + 1, timing.random(), timing.backoff_base_s, timing.backoff_cap_s
        )
        retry_after = exc.retry_after if isinstance(exc, PeerUnavailable) else None
        if retry_after:
            delay = max(delay, min(retry_after, timing.backoff_cap_s))
        # Status changes all at once, before any await: whoever sees the failure sees its backoff.
        status.failures += 1
        status.failures_total += 1
        status.last_error, status.last_error_at = (error := str(exc)), now
        status.wake_on_contact = isinstance(exc, PeerUnavailable) and (
            exc.connection_failed or exc.status in (401, 403)
        )
        self._set_backoff(delay, now)
        await self._node.db.write(
            lambda conn: outbox.record_failure(conn, self.network, error, now)
        )
        _log.info("peer unreachable", peer=self.network, error=error, retry_in_s=round(delay, 3))
        return delay

    async def _refresh(self, load: bool = False) -> None:
        record = await self._node.db.read(lambda conn: outbox.delivery(conn, self.network))
        self.status.backlog, self.status.quarantined = record.backlog, record.quarantined
        if load:
            self.status.last_success = record.last_success
            self.status.last_error = record.last_error
            self.status.last_error_at = record.last_error_at
            self.status.failures = record.failures

    async def _pause(self) -> None:
        """Wait until ``next_attempt`` on the node's clock; refresh status as alerts come in."""
        clock, feed = self._node.clock, self._node.feed
        deadline = self.status.next_attempt or clock()
        while (remaining := (deadline - clock()).total_seconds()) > 0:
            woke = await _race(
                timer=self._timing.sleep(remaining),
                feed=feed.wait_queued(self.network, self._seen, IDLE_RECHECK_S),
                wake=self._wake.wait(),
            )
            if "wake" in woke:
                return
            if woke.get("feed"):
                self._seen = feed.head
                await self._refresh()

    async def _idle(self) -> None:
        woke = await _race(
            feed=self._node.feed.wait_queued(self.network, self._seen, IDLE_RECHECK_S),
            wake=self._wake.wait(),
        )
        recent = self._node.clock.monotonic() - self._last_sent < self._timing.burst_window_s
        if woke.get("feed") and recent and self._last_size > 1:
            await self._node.clock.linger(self._timing.linger_s)
