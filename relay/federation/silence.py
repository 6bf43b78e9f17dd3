"""Silent origins: no fresh checkpoint from a peer's origin for ``stale_after``.

DESIGN §16. An origin signs a checkpoint every ``checkpoint_every`` even when
nothing changed, so its ``issued_at`` is its heartbeat. ``Silence`` keeps, in
memory, the ``issued_at`` of the newest checkpoint this node holds of each
origin (read from ``relay.storage.chain`` at start, then told by
``relay.federation.repair`` of each one it takes, directly or relayed), and
the pure rule (``relay.core.checkpoints.silent_origins``, the node clock's
``now``) says which trusted origins are silent and since when. Nothing is
stored: silence is derived from what is held and the time, so the API, the
stream and the desk read it for free (``Node.silent_origins``).

Every ``checkpoint_every`` the watcher (``run``) looks again: an origin that
has just gone silent is logged and counted; for each silent origin, one
``GET /federation/v1/checkpoints/{origin}`` at the url of its peer entry (one
try per origin per round, so never a storm), and what it answers is taken
like any checkpoint (``Repairs.receive``): a fresh one ends the silence and
starts a repair if it shows a gap.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import structlog

from relay.core.checkpoints import Checkpoint, silent_origins
from relay.core.times import rfc3339
from relay.federation.host import FederationHost
from relay.federation.repair import Repairs
from relay.federation.transport import PeerClient, PeerRefused, PeerUnavailable
from relay.runtime.clock import every
from relay.runtime.metrics import _labels
from relay.storage import chain

_log = structlog.get_logger("avisa.federation")


class Silence:
    """Which origins have gone quiet; asks them directly; counts for ``/metrics``."""

    def __init__(
        self, host: FederationHost, repairs: Repairs, client: Callable[[], PeerClient]
    ) -> None:
        self.host = host
        self._repairs = repairs
        self._client = client
        self.stale_after: timedelta = host.config.stale_after()
        self.issued: dict[str, datetime] = {}
        self._known_silent: set[str] = set()
        self.went_silent: Counter[str] = Counter()  # per origin: times it went silent
        #: Per (origin, result): direct asks answered "fresh", "stale" or "failed".
        self.asked: Counter[tuple[str, str]] = Counter()

    async def load(self) -> None:
        """The newest checkpoint times held, at start."""
        self.issued = await self.host.db.read(chain.checkpoint_times)

    def heard(self, checkpoint: Checkpoint) -> None:
        """A checkpoint of an origin was taken (it is newer than any held)."""
        self.issued[checkpoint.network] = checkpoint.issued_at

    def _watched(self) -> Iterable[str]:
        own = self.host.network
        return (network for network in self.host.trust.peers if network != own)

    def silent(self) -> dict[str, datetime]:
        """Silent trusted origins, each with its last word's time (now, by the node clock)."""
        return silent_origins(self.issued, self._watched(), self.host.clock(), self.stale_after)

    def status_of(self, origin: str) -> dict[str, Any]:
        """For ``/api/v1/peers`` and the desk: ``origin_status`` (``live``, ``silent`` or
        ``unknown``: never heard from) and ``last_checkpoint`` (its ``issued_at``)."""
        issued = self.issued.get(origin)
        if issued is None:
            return {"origin_status": "unknown", "last_checkpoint": None}
        quiet = silent_origins({origin: issued}, [origin], self.host.clock(), self.stale_after)
        return {"origin_status": "silent" if quiet else "live", "last_checkpoint": rfc3339(issued)}

    async def run(self) -> None:
        """Until cancelled: every ``checkpoint_every``, note new silences and ask each
        silent origin for its checkpoint."""
        interval = self.host.config.duration("federation", "checkpoint_every").total_seconds()
        await every(self.host.clock, interval, self.check, "silent-origins")

    async def check(self) -> None:
        silent = self.silent()
        for origin, since in silent.items():
            if origin not in self._known_silent:
                self.went_silent[origin] += 1
                _log.warning("origin silent", origin=origin, since=rfc3339(since))
        self._known_silent = set(silent)
        for origin in silent:
            await self.ask(origin)

    async def ask(self, origin: str) -> None:
        """One GET of the origin's own checkpoint at its peer entry's url."""
        record = self.host.trust.peers.get(origin)
        if record is None or not record.url:
            return
        try:
            raw = await self._client().checkpoint(origin, record.url, origin)
        except (PeerRefused, PeerUnavailable):
            self.asked[origin, "failed"] += 1
            return
        result = await self._repairs.receive(raw, origin, origin)
        fresh = isinstance(result, Checkpoint)
        self.asked[origin, "fresh" if fresh else "stale"] += 1
        if fresh:
            self._known_silent.discard(origin)

    def metrics_lines(self) -> list[str]:
        now, silent = self.host.clock(), self.silent()
        lines = ["# TYPE avisa_origin_silent gauge"]
        lines += [
            f"avisa_origin_silent{_labels({'origin': origin})} {int(origin in silent)}"
            for origin in sorted(set(self._watched()) & set(self.issued))
        ]
        lines.append("# TYPE avisa_origin_checkpoint_age_seconds gauge")
        lines += [
            f"avisa_origin_checkpoint_age_seconds{_labels({'origin': origin})}"
            f" {(now - self.issued[origin]).total_seconds():g}"
            for origin in sorted(set(self._watched()) & set(self.issued))
        ]
        lines.append("# TYPE avisa_origin_went_silent_total counter")
        lines += [
            f"avisa_origin_went_silent_total{_labels({'origin': origin})} {count}"
            for origin, count in sorted(self.went_silent.items())
        ]
        lines.append("# TYPE avisa_origin_asked_total counter")
        for (origin, result), count in sorted(self.asked.items()):
            lines.append(
                f"avisa_origin_asked_total{_labels({'origin': origin, 'result': result})} {count}"
            )
        return lines
