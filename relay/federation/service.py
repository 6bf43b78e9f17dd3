"""``Federation``: the node's side of the network, started by the composition root.

It sees its node only as a ``FederationHost`` (``relay.federation.host``).

It keeps one ``PeerLink`` task per trusted peer (``reconcile`` starts and
stops them when the trust snapshot changes), one HTTP client session shared
by all links, the inbound gate (per-peer concurrency and request rate) and
the per-transaction locks that make a retried ``txn_id`` wait for the first
attempt instead of racing it. It reports status per peer for
``/api/v1/peers`` and Prometheus lines for ``/metrics``, and runs the
housekeeping of the federation tables (stored replies older than 24 h,
expired queue items, old quarantine records and gaps).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import structlog

from relay.core.errors import BadInput
from relay.core.times import parse_duration, to_epoch
from relay.federation import trustrefresh
from relay.federation.checkpointing import Checkpointer
from relay.federation.host import FederationHost
from relay.federation.keyrefresh import KeyRefresher
from relay.federation.relaying import CheckpointRelay
from relay.federation.repair import Repairs
from relay.federation.sender import LinkStatus, PeerLink, Timing
from relay.federation.silence import Silence
from relay.federation.transport import PeerClient
from relay.runtime.aio import cancel_all
from relay.runtime.clock import every
from relay.runtime.metrics import _labels
from relay.runtime.pipeline import RateCounter
from relay.storage import fedstate, gaps, outbox
from relay.storage.db import Connection
from relay.storage.trust import PeerRecord

REPLY_TTL = timedelta(hours=24)
MAX_IN_FLIGHT_PER_PEER = 4
MIN_REQUESTS_PER_MIN = 60
FAILING_AFTER = 3  # consecutive failures of a link before checkpoints skip its peer
_log = structlog.get_logger("avisa.federation")


@dataclass(slots=True)
class _SharedLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class InboundGate:
    """Per-peer limits on requests to us: how many at once, how many a minute."""

    def __init__(self) -> None:
        self._in_flight: Counter[str] = Counter()
        self._rates = RateCounter()

    @contextlib.contextmanager
    def admit(self, peer: str) -> Iterator[None]:
        if self._in_flight[peer] >= MAX_IN_FLIGHT_PER_PEER:
            raise BadInput("AVISA_TOO_MANY_REQUESTS", "too many concurrent requests")
        self._in_flight[peer] += 1
        try:
            yield
        finally:
            self._in_flight[peer] -= 1

    def in_flight(self, peer: str) -> int:
        return self._in_flight[peer]

    def count(self, peer: str, now: datetime, per_minute: int) -> None:
        if self._rates.hit(peer, now) > max(per_minute, MIN_REQUESTS_PER_MIN):
            raise BadInput("AVISA_RATE_LIMITED", "request rate limit reached; retry later")


class Federation:
    def __init__(self, host: FederationHost, timing: Timing | None = None) -> None:
        self.host = host
        #: Tests may replace this before ``start`` (deterministic jitter, shorter waits).
        self.timing = timing or Timing(sleep=host.clock.sleep)
        self.gate = InboundGate()
        self.links: dict[str, PeerLink] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._txn_locks: dict[tuple[str, str], _SharedLock] = {}
        self._session: aiohttp.ClientSession | None = None
        self._client: PeerClient | None = None
        self.keys = KeyRefresher(self)
        self._key_tasks: dict[str, asyncio.Task[None]] = {}
        self._housekeeping: asyncio.Task[None] | None = None
        self._trustlists: asyncio.Task[None] | None = None
        self.checkpointer = Checkpointer(host, lambda: self.client, self._failing)
        self.repairs = Repairs(host, lambda: self.client, self.timing.backoff_cap_s)
        self.repairs.relay = CheckpointRelay(host, self.checkpointer)
        self.silence = Silence(host, self.repairs, lambda: self.client)
        self.repairs.heard = self.silence.heard
        self._silence: asyncio.Task[None] | None = None
        self._checkpoints: asyncio.Task[None] | None = None
        # Each link's peer record when last reconciled: a reload that changed nothing
        # about a peer (the periodic one, mostly) does not interrupt its link.
        self._records: dict[str, PeerRecord] = {}

    @property
    def client(self) -> PeerClient:
        if self._client is None:
            raise RuntimeError("federation is not started")
        return self._client

    async def start(self) -> None:
        if self._session is not None:
            return
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit_per_host=4), raise_for_status=False
        )
        host = self.host
        # The key is looked up per request: a rotation takes effect at once.
        self._client = PeerClient(
            self._session,
            lambda: host.key,
            host.network,
            host.clock,
            self.timing.request_timeout_s,
        )
        await self.housekeeping()
        await self.reconcile()
        interval = parse_duration(host.config.store.purge_interval).total_seconds()
        self._housekeeping = asyncio.create_task(
            every(host.clock, interval, self.housekeeping, "federation-housekeeping"),
            name="avisa-federation-housekeeping",
        )
        await self.checkpointer.begin()
        await self.silence.load()
        self._silence = asyncio.create_task(self.silence.run(), name="avisa-federation-silence")
        self._checkpoints = asyncio.create_task(
            self.checkpointer.run(), name="avisa-federation-checkpoints"
        )
        refresh = host.config.duration("trustlists", "refresh").total_seconds()
        self._trustlists = asyncio.create_task(
            every(host.clock, refresh, self.refresh_trustlists, "trustlist-refresh"),
            name="avisa-trustlist-refresh",
        )

    async def refresh_trustlists(self) -> None:
        """Check every subscribed trust list now (``relay.federation.trustrefresh``)."""
        if self._session is not None:
            await trustrefresh.refresh_all(self.host, self._session)

    async def stop(self) -> None:
        await self.keys.stop()
        await self.checkpointer.stop()
        await self.repairs.stop()
        tasks = [*self._tasks.values(), *self._key_tasks.values()]
        for task in (self._housekeeping, self._checkpoints, self._trustlists, self._silence):
            if task is not None:
                tasks.append(task)
        self._housekeeping = self._checkpoints = self._trustlists = self._silence = None
        self._key_tasks.clear()
        await cancel_all(tasks)
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def reconcile(self) -> None:
        """Match the running links to the peers in the current trust snapshot."""
        if self._client is None:
            return
        peers = self.host.trust.peers
        wanted = {n for n, r in peers.items() if r.policy.linked}
        wanted -= {self.host.network}
        for network in set(self._tasks) - wanted:
            self._tasks.pop(network).cancel()
            self._key_tasks.pop(network).cancel()
            self.links.pop(network, None)
            self._records.pop(network, None)
        for network, link in self.links.items():
            if self._records.get(network) != peers[network]:
                link.wake()  # forward/endorse/url/keys changed: look again now
        self._records = {network: peers[network] for network in wanted}
        for network in wanted - set(self._tasks):
            link = PeerLink(self, network)
            self.links[network] = link
            task = asyncio.create_task(link.run(), name=f"avisa-peer-{network}")
            task.add_done_callback(_report_end)
            self._tasks[network] = task
            self._key_tasks[network] = asyncio.create_task(
                self.keys.every(network), name=f"avisa-peer-keys-{network}"
            )
        await self.host.db.write(outbox.forget_unrouted)

    def _failing(self, network: str) -> bool:
        """The link to ``network`` has failed several times in a row: the peer is down (its
        outbox keeps what it misses; checkpoints to it wait until the link succeeds)."""
        link = self.links.get(network)
        return link is not None and link.status.failures >= FAILING_AFTER

    def peer_alive(self, network: str) -> None:
        link = self.links.get(network)
        if link is not None:
            link.peer_alive()

    def delivered_here(self, network: str) -> None:
        """``network`` delivered a transaction: its link looks for gaps if that is due."""
        link = self.links.get(network)
        if link is not None:
            link.delivered_here()

    @contextlib.asynccontextmanager
    async def txn_lock(self, origin: str, txn_id: str) -> AsyncIterator[None]:
        """Serialise attempts of one transaction so a retry sees the first one's reply."""
        key = (origin, txn_id)
        held = self._txn_locks.setdefault(key, _SharedLock())
        held.users += 1
        try:
            async with held.lock:
                yield
        finally:
            held.users -= 1
            if not held.users:
                del self._txn_locks[key]

    # --- housekeeping -----------------------------------------------------------

    async def housekeeping(self) -> None:
        host = self.host
        now = host.clock()
        retention = host.retention_window()
        lifetime = host.trust.policy.max_lifetime

        def job(conn: Connection) -> Counter[str]:
            fedstate.purge_replies(conn, now - REPLY_TTL)
            expired = outbox.purge(conn, now, now - retention)
            gaps.purge(conn, now - lifetime)
            return expired

        expired = await host.db.write(job)
        for network, count in expired.items():
            link = self.links.get(network)
            if link is not None:
                link.status.dropped["expired"] += count

    # --- status ------------------------------------------------------------------

    def peer_status(self, network: str) -> dict[str, Any]:
        link = self.links.get(network)
        if link is None:
            return {}
        withheld = {"withheld": self.repairs.withheld_by(network)}
        return link.status.as_dict() | withheld | self.silence.status_of(network)

    def silent_origins(self) -> dict[str, datetime]:
        """Trusted origins with no fresh checkpoint for ``stale_after``: since when."""
        return self.silence.silent()

    def metrics_lines(self) -> Iterable[str]:
        yield "# TYPE avisa_checkpoints_signed_total counter"
        yield f"avisa_checkpoints_signed_total {self.checkpointer.issued}"
        yield from self.repairs.metrics_lines()
        yield from self.silence.metrics_lines()
        relay = self.repairs.relay
        if relay is not None:
            yield "# TYPE avisa_checkpoints_cosigned_total counter"
            yield f"avisa_checkpoints_cosigned_total {relay.cosigned}"
            yield "# TYPE avisa_checkpoints_relayed_total counter"
            for origin, count in sorted(relay.relayed.items()):
                yield f"avisa_checkpoints_relayed_total{_labels({'origin': origin})} {count}"
        statuses = {network: link.status for network, link in sorted(self.links.items())}
        for name, kind, value in _SERIES:
            yield f"# TYPE {name} {kind}"
            for network, status in statuses.items():
                yield f"{name}{_labels({'peer': network})} {value(status):g}"
        for name, attribute in (
            ("avisa_peer_rejected_total", "rejected"),
            ("avisa_peer_dropped_total", "dropped"),
        ):
            yield f"# TYPE {name} counter"
            for network, status in statuses.items():
                for reason, count in sorted(getattr(status, attribute).items()):
                    yield f"{name}{_labels({'peer': network, 'reason': reason})} {count}"


def _report_end(task: asyncio.Task[None]) -> None:
    """A link only ends when cancelled or its peer is gone; anything else is a bug to see."""
    if not task.cancelled() and task.exception() is not None:
        _log.error("peer link ended", task=task.get_name(), exc_info=task.exception())


def _last_success(status: LinkStatus) -> float:
    return float(to_epoch(status.last_success)) if status.last_success else 0.0


_SERIES: tuple[tuple[str, str, Callable[[LinkStatus], float]], ...] = (
    ("avisa_peer_backlog", "gauge", lambda s: s.backlog),
    ("avisa_peer_quarantined", "gauge", lambda s: s.quarantined),
    ("avisa_peer_backoff_seconds", "gauge", lambda s: s.backoff_s),
    ("avisa_peer_consecutive_failures", "gauge", lambda s: s.failures),
    ("avisa_peer_last_success_timestamp_seconds", "gauge", _last_success),
    ("avisa_peer_failures_total", "counter", lambda s: s.failures_total),
    ("avisa_peer_delivered_total", "counter", lambda s: s.delivered_total),
)
