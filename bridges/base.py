"""The bridge interface: accepted alerts leave the node through durable cursors.

A bridge delivers the node's feed somewhere outside (Matrix rooms, SMS
subscribers, CAP feeds). Each *route* of a bridge is its own consumer of the
feed with its own cursor in the ``cursors`` table (``bridges.store``), so one
failing room never holds back another, and a restart resumes where the last
durable delivery left off:

    read the feed after the cursor → filter → deliver (idempotent far side)
      → record what was delivered and move the cursor, in one transaction

A ``withdraw`` event (an accepted alert sent back to review, e.g. its key was
revoked) goes to ``withdraw`` instead of ``handle``: a bridge that keeps what
it showed takes it back there.

A process that dies between the far side taking a delivery and that
transaction delivers the item again on restart; the adapter makes that a
no-op (Matrix: the same transaction id, derived from alert id and route).
Items that need no delivery (filtered out, expired, already replaced) only
move the cursor, and that move is written lazily: deciding the skip again
after a crash gives the same answer.

Failures are typed: ``RateLimited`` waits as long as the far side asked, a
``TransportError`` backs off exponentially up to a cap (``relay.core.backoff``,
without jitter), ``Undeliverable``
skips the one item it concerns. An unexpected exception is logged and
retried like a transport failure, and after a few tries on the same item
skipped, so a poison item never stalls a route. Time and sleep are injected
(the node's clock by default): backoff is tested on a fake clock without waiting.

A bridge sees its node only as a ``BridgeHost`` (a ``FeedSource`` plus its
data directory, configuration and retention), never the whole ``Node``.

``RouteFilter`` is the pure part: area (``relay.core.policy.area_matches``), kind,
certainty and language.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import structlog

from bridges.render import WordSource, pick_languages
from bridges.store import Conn, Record, load_cursor, save_cursor
from relay.core.backoff import Backoff
from relay.core.config import Config
from relay.core.errors import AvisaError, ConfigError, TransportError
from relay.core.model import Alert
from relay.core.policy import area_matches
from relay.core.times import rfc3339
from relay.runtime.clock import NodeClock
from relay.runtime.desk import Desk
from relay.runtime.feed import FeedSignal
from relay.runtime.metrics import Metrics
from relay.runtime.node import Service
from relay.storage import store
from relay.storage.catalogues import Catalogues
from relay.storage.db import Database
from relay.storage.files import is_private

Sleep = Callable[[float], Awaitable[None]]

BATCH = 100
POISON_AFTER = 5
_log = structlog.get_logger("avisa.bridge")


async def supervised(work: Callable[[], Awaitable[None]], sleep: Sleep, what: str) -> None:
    """Run ``work`` for good: a task that fails on a bug is logged and restarted after a
    backoff (up to 5 minutes), never left dead; only cancelling stops it. Every bridge's
    long-running tasks run under this."""
    backoff = Backoff(cap=300.0)
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - logged; the bridge must keep running
            _log.exception("bridge task failed; restarting", task=what)
            await sleep(backoff.next_delay())


class RateLimited(TransportError):
    """The far side asked us to wait ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Undeliverable(AvisaError):
    """This one item can never be delivered (too large, refused as malformed)."""


# What the node needs from a running bridge: ``stop()`` and ``status()``.
Bridge = Service


class FeedSource(Protocol):
    """The parts of ``relay.runtime.node.Node`` a route reads from."""

    @property
    def db(self) -> Database: ...

    @property
    def clock(self) -> NodeClock: ...

    @property
    def feed(self) -> FeedSignal: ...


class BridgeHost(FeedSource, Protocol):
    """What a bridge needs of its node besides the feed: where its files are, its
    configuration (policy defaults), how long alerts are kept and its words."""

    @property
    def data_dir(self) -> Path: ...

    @property
    def config(self) -> Config: ...

    @property
    def retention(self) -> timedelta: ...

    @property
    def catalogues(self) -> WordSource:
        """The node's words (``[node] languages``): what a bridge's messages say."""
        ...


class BridgeNode(BridgeHost, Protocol):
    """What ``bridges.runner`` hands the bridges it starts: a ``BridgeHost``, the
    desk (tips in: the desk room, the CAP importer), the metrics registry and the
    catalogues (the words of what a bridge says itself: the text line's replies)."""

    @property
    def desk(self) -> Desk: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def catalogues(self) -> Catalogues:
        """The words of the node's languages (``relay.storage.catalogues``)."""
        ...

    @property
    def tombstone_ttl(self) -> timedelta:
        """How long a withdrawn alert's tombstone is kept (the SMS bridge keeps as long)."""
        ...


# --- filtering (pure) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteFilter:
    """Which alerts a route wants; an empty tuple means all."""

    areas: tuple[str, ...] = ()
    kinds: frozenset[str] = frozenset()
    certainties: frozenset[str] = frozenset()
    languages: tuple[str, ...] = ()

    def languages_for(self, alert: Alert) -> list[str]:
        return pick_languages(alert.text, self.languages)

    def skip_reason(self, alert: Alert) -> str | None:
        """Why the route does not want ``alert``, or None when it does."""
        if self.areas and not any(area_matches(alert, area) for area in self.areas):
            return "area"
        if self.kinds and alert.kind not in self.kinds:
            return "kind"
        if alert.certainty not in self.certainties:
            return "certainty"
        if not self.languages_for(alert):
            return "language"
        return None


# --- status -------------------------------------------------------


@dataclass(slots=True)
class RouteStatus:
    cursor: int = 0
    delivered: int = 0
    edited: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    backoff_until: datetime | None = None
    failures: int = 0
    rate_limited: int = 0

    def as_dict(self, head: int) -> dict[str, Any]:
        def when(moment: datetime | None) -> str | None:
            return rfc3339(moment) if moment else None

        return {
            "cursor": self.cursor,
            "backlog": max(0, head - self.cursor),
            "delivered": self.delivered,
            "edited": self.edited,
            "skipped": dict(sorted(self.skipped.items())),
            "last_success": when(self.last_success),
            "last_error": self.last_error,
            "last_error_at": when(self.last_error_at),
            "backoff_until": when(self.backoff_until),
            "failures": self.failures,
            "rate_limited": self.rate_limited,
        }


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: str


@dataclass(frozen=True, slots=True)
class Delivered:
    """Done on the far side; ``record`` is written with the cursor move."""

    record: Record
    edit: bool = False


#: What a route did with one feed item (not ``relay.runtime.pipeline.Outcome``, a decision).
Handled = Skipped | Delivered


class RouteConsumer(ABC):
    """One route: follows the feed from its durable cursor and delivers."""

    def __init__(
        self,
        cursor_name: str,
        node: FeedSource,
        *,
        sleep: Sleep | None = None,
        retry_max: float = 300.0,
        idle_wait: float = 30.0,
    ) -> None:
        self.cursor_name = cursor_name
        self.node = node
        self.sleep = sleep or node.clock.sleep
        self.idle_wait = idle_wait
        self.status = RouteStatus()
        self.backoff = Backoff(cap=retry_max)
        self._unsaved_cursor = False
        self._poison: tuple[int, int] = (0, 0)

    @abstractmethod
    async def prepare(self) -> None:
        """Get ready to deliver (log in, join a room); raises TransportError."""

    @abstractmethod
    async def handle(self, pos: int, stored: store.StoredAlert) -> Handled:
        """Deliver one feed item, idempotently; or say why it is skipped."""

    async def withdraw(self, pos: int, stored: store.StoredAlert) -> Handled:
        """Take back ``stored``, accepted earlier and now back in review (its key was
        revoked): a bridge that keeps what it showed (a Matrix room, a feed) overrides
        this to retract it. The default has nothing to take back."""
        return Skipped("withdrawn")

    async def periodic(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Work between batches (expiry edits); runs in the route's own task."""

    async def run(self) -> None:
        await self.retrying(self.prepare)
        self.status.cursor = await self.node.db.read(partial(load_cursor, name=self.cursor_name))
        while True:
            await self.retrying(self.periodic)
            rows = await self.node.db.read(
                partial(store.feed_events_since, pos=self.status.cursor, limit=BATCH)
            )
            if not rows:
                await self.node.feed.wait_beyond(self.status.cursor, self.idle_wait)
                continue
            for pos, event, stored in rows:
                await self.retrying(partial(self._one, pos, stored, event == "withdraw"))
            await self._save_skipped_cursor()

    async def retrying(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` until it succeeds, waiting between failures."""
        while True:
            try:
                await work()
            except RateLimited as exc:
                wait = exc.retry_after
                self.status.rate_limited += 1
                self._failed(exc)
            except TransportError as exc:
                wait = self.backoff.next_delay()
                self._failed(exc)
            else:
                self.backoff.reset()
                self.status.backoff_until = None
                self.status.failures = 0
                return
            self.status.backoff_until = self.node.clock() + timedelta(seconds=wait)
            await self.sleep(wait)

    def _failed(self, error: Exception) -> None:
        self.status.failures += 1
        self.status.last_error = str(error)[:300]
        self.status.last_error_at = self.node.clock()

    async def _one(self, pos: int, stored: store.StoredAlert, withdrawn: bool = False) -> None:
        outcome = await self._guarded(pos, stored, withdrawn)
        if isinstance(outcome, Skipped):
            self.status.skipped[outcome.reason] = self.status.skipped.get(outcome.reason, 0) + 1
            self.status.cursor = pos
            self._unsaved_cursor = True
            return
        name = self.cursor_name

        def job(conn: Conn) -> None:
            outcome.record(conn)
            save_cursor(conn, name, pos)

        await self.node.db.write(job)
        self._unsaved_cursor = False
        self.status.cursor = pos
        self.status.last_success = self.node.clock()
        if outcome.edit:
            self.status.edited += 1
        else:
            self.status.delivered += 1

    async def _guarded(self, pos: int, stored: store.StoredAlert, withdrawn: bool) -> Handled:
        try:
            return await (self.withdraw if withdrawn else self.handle)(pos, stored)
        except TransportError:
            raise
        except Undeliverable as exc:
            _log.warning(
                "undeliverable", route=self.cursor_name, alert_id=stored.alert.id, why=str(exc)
            )
            return Skipped("undeliverable")
        except Exception as exc:  # noqa: BLE001 - a bug must not kill or stall the route
            seen_pos, tries = self._poison
            tries = tries + 1 if seen_pos == pos else 1
            self._poison = (pos, tries)
            _log.exception("delivery failed", route=self.cursor_name, alert_id=stored.alert.id)
            if tries >= POISON_AFTER:
                return Skipped("undeliverable")
            raise TransportError(f"internal error ({type(exc).__name__}, logged)") from None

    async def _save_skipped_cursor(self) -> None:
        if self._unsaved_cursor:
            await self.node.db.write(
                partial(save_cursor, name=self.cursor_name, pos=self.status.cursor)
            )
            self._unsaved_cursor = False

    def state(self, head: int) -> dict[str, Any]:
        return self.status.as_dict(head)


def secret_file(data_dir: Path, name: str, setting: str, what: str = "secret") -> str:
    """The one-line secret in ``DIR/name``, which only its owner may read."""
    path = data_dir / name
    try:
        if not is_private(path):
            raise ConfigError(setting, f"{path} must be readable by its owner only (chmod 600)")
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(setting, f"cannot read {path}: {type(exc).__name__}") from None
    if not value or "\n" in value:
        raise ConfigError(setting, f"{path} must hold the {what} on one line")
    return value


def certainties_or(default: Sequence[str], configured: Sequence[str] | None) -> frozenset[str]:
    return frozenset(default if configured is None else configured)
