"""Polling outside CAP sources and filing what they say as tips (DESIGN §12).

Each ``[[bridges.cap.sources]]`` entry gets one ``SourcePoller``: every
``every`` it makes a conditional GET (``If-None-Match`` / ``If-Modified-Since``
from the last answer, kept in SQLite), reads a CAP message or an Atom/RSS
index of them, and hands each new message to the desk:

- an Alert that has not expired → ``desk.submit`` (``channel = "cap"``,
  ``source_ref = sender,identifier``): a tip, never a publication;
- an Update of a message we filed → ``desk.update_from_source`` on the tip
  of the chain's first message (an Update of something we never saw is filed
  as a new tip);
- a Cancel of a message we filed → ``desk.close_from_source``.

Index entries already read are remembered (``bridges.cap.store``), so an
unchanged entry costs nothing; messages behind links are fetched at most
four at a time, and only from the source's own origin (scheme, host, port):
an index cannot make the node contact another host. Messages of one poll are
taken oldest first, so an Update in the same index as its Alert finds it.

The HTTP side is ``bridges.cap.fetch``; the per-source counters are
``bridges.cap.sourcestatus``. Nothing stops a poller but ``stop()``. A
document that fails any check in ``bridges.cap.parse`` is counted under its
reason and logged with the reason only; a source that fails (connection,
timeout, an HTTP error) is retried after ``relay.core.backoff.Backoff``
(starting at ``every``, doubling up to an hour); an unexpected error is logged
and the next poll comes as usual. Per-source counters are the bridge's
``status()``, shown by ``GET /api/v1/bridges``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol
from urllib.parse import urljoin

import aiohttp
import structlog

from bridges.base import Sleep
from bridges.cap import store as cap_store
from bridges.cap.fetch import Fetched, Gone, fetch, new_session, same_origin
from bridges.cap.parse import (
    CapMessage,
    IndexEntry,
    Limits,
    Refused,
    index_entries,
    kind_of,
    parse_document,
    read_cap,
)
from bridges.cap.sourcestatus import SourceStatus, bump, metrics_lines, source_label
from bridges.cap.totip import Unmappable, to_tip
from relay.core.backoff import Backoff
from relay.core.bridgeconfig import CapSource
from relay.core.config import Config
from relay.core.errors import BadInput, TransportError
from relay.core.times import parse_duration, to_epoch
from relay.core.tips import TipIn
from relay.runtime.aio import cancel_all
from relay.runtime.clock import NodeClock, every
from relay.storage.db import Database

_log = structlog.get_logger("avisa.cap")
LINKED_AT_ONCE = 4
MAX_INDEX_ENTRIES = 2000
MAX_BACKOFF_S = 3600.0
PURGE_EVERY_S = 600.0  # on the node's clock
CLOSE_NOTE = "Cancelada por la fuente (CAP Cancel) / Cancelled by the source (CAP Cancel)"


class TipDesk(Protocol):
    """The desk's side of the tip interface (``relay.runtime.desk.Desk``)."""

    async def submit(
        self,
        tip: TipIn,
        *,
        contact: str | None = None,
        reporter: bytes | None = None,
        source_ref: str | None = None,
        source: str | None = None,
    ) -> str: ...

    async def update_from_source(self, source_ref: str, tip: TipIn) -> bool: ...

    async def close_from_source(self, source_ref: str, note: str) -> bool: ...


class ImportNode(Protocol):
    """What the importer reads of ``relay.runtime.node.Node``."""

    @property
    def db(self) -> Database: ...

    @property
    def clock(self) -> NodeClock: ...

    @property
    def config(self) -> Config: ...

    @property
    def retention(self) -> timedelta: ...


class SourcePoller:
    def __init__(
        self,
        node: ImportNode,
        desk: TipDesk,
        source: CapSource,
        http: Callable[[], aiohttp.ClientSession],
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.node = node
        self.desk = desk
        self.source = source
        self.http = http
        self.sleep = sleep
        self.every = parse_duration(source.every).total_seconds()
        self.backoff = Backoff(cap=max(self.every, MAX_BACKOFF_S), base=self.every)
        cap = node.config.bridges.cap
        self.limits = Limits(max_bytes=cap.max_document_bytes)
        self.status = SourceStatus(source_label(source), source.every)

    # --- the loop -----------------------------------------------------------

    async def run(self) -> None:
        while True:
            await self.sleep(await self.poll())

    async def poll(self) -> float:
        """One poll, whatever happens; returns how long to wait before the next."""
        now = self.node.clock()
        self.status.polls += 1
        self.status.last_poll = now
        try:
            await self.poll_once()
        except TransportError as exc:
            wait = self.backoff.next_delay()
            self.status.failed(str(exc), now)
            self.status.backoff_until = now + timedelta(seconds=wait)
            _log.warning("cap source failed", source=self.status.name, error=str(exc), wait=wait)
            return wait
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the poller
            _log.exception("cap poll failed", source=self.status.name)
            self.status.failed(f"internal error ({type(exc).__name__}, logged)", now)
            return self.every
        self.backoff.reset()
        self.status.failures = 0
        self.status.backoff_until = None
        self.status.last_success = now
        return self.every

    async def poll_once(self) -> None:
        url = self.source.url
        etag, modified = await self.node.db.read(partial(cap_store.validators, source=url))
        try:
            fetched = await self.fetch(url, etag, modified)
        except Refused as exc:
            self.refused(exc)
            return
        if fetched.status == 304:
            self.status.not_modified += 1
            return
        await self.read_document(fetched.body)
        await self.node.db.write(
            partial(
                cap_store.save_validators,
                source=url,
                etag=fetched.etag,
                last_modified=fetched.last_modified,
            )
        )

    # --- HTTP ---------------------------------------------------------------

    async def fetch(
        self, url: str, etag: str | None = None, modified: str | None = None
    ) -> Fetched:
        return await fetch(self.http(), url, self.limits.max_bytes, etag, modified)

    # --- documents ----------------------------------------------------------

    def refused(self, exc: Refused) -> None:
        bump(self.status.refused, exc.reason)
        _log.warning(
            "cap document refused", source=self.status.name, reason=exc.reason, at=exc.where
        )

    def skipped(self, reason: str) -> None:
        bump(self.status.skipped, reason)

    async def read_document(self, body: bytes) -> None:
        self.status.documents += 1
        try:
            root = parse_document(body, self.limits)
            kind = kind_of(root)
            if kind == "cap":
                messages = [read_cap(root)]
            else:
                await self.read_index(index_entries(root, MAX_INDEX_ENTRIES))
                return
        except Refused as exc:
            self.refused(exc)
            return
        await self.take_all(messages)

    async def read_index(self, entries: Sequence[IndexEntry]) -> None:
        url = self.source.url
        keys = [entry.key for entry in entries]
        seen = await self.node.db.read(partial(cap_store.seen_entries, source=url, keys=keys))
        fresh = [entry for entry in entries if entry.key not in seen]
        gate = asyncio.Semaphore(LINKED_AT_ONCE)
        results = await asyncio.gather(*(self.entry_message(entry, gate) for entry in fresh))
        messages = [message for done, message in results if message is not None]
        await self.take_all(messages)
        done_keys = [entry.key for entry, (done, _) in zip(fresh, results, strict=True) if done]
        keep = to_epoch(self.node.clock() + self.node.retention)
        await self.node.db.write(
            partial(cap_store.mark_entries, source=url, keys=done_keys, keep_until=keep)
        )

    async def entry_message(
        self, entry: IndexEntry, gate: asyncio.Semaphore
    ) -> tuple[bool, CapMessage | None]:
        """The entry's message; ``(False, None)`` when it should be tried again later."""
        try:
            if entry.embedded is not None:
                return True, read_cap(entry.embedded)
            if not entry.link:
                self.skipped("no_cap")
                return True, None
            link = urljoin(self.source.url, entry.link)
            if not same_origin(link, self.source.url):
                self.skipped("foreign_link")
                return True, None
            async with gate:
                fetched = await self.fetch(link)
            root = parse_document(fetched.body, self.limits)
            if kind_of(root) != "cap":
                raise Refused("not_cap")
            return True, read_cap(root)
        except Refused as exc:
            self.refused(exc)
            return True, None
        except Gone:
            self.skipped("link_gone")
            return True, None
        except TransportError:
            self.skipped("fetch_failed")
            return False, None

    async def take_all(self, messages: Sequence[CapMessage]) -> None:
        """Take messages oldest first; what was read is recorded in one write.

        A crash before that write only repeats work the desk refuses to do
        twice (``source_ref`` is unique per node), so batching loses nothing.
        """
        ordered = sorted(messages, key=lambda message: message.sent)
        refs = [ref for message in ordered for ref in _refs(message)]
        known = await self.node.db.read(partial(cap_store.known, refs=refs))
        done: list[cap_store.Imported] = []
        try:
            for message in ordered:
                self.status.messages += 1
                item = await self.take(message, known)
                if item is not None:
                    done.append(item)
                    known[item.ref] = item
        finally:
            if done:
                await self.node.db.write(partial(cap_store.record_all, items=done))

    # --- one message --------------------------------------------------------

    async def take(
        self, message: CapMessage, known: dict[str, cap_store.Imported]
    ) -> cap_store.Imported | None:
        """File, update or close a tip for ``message``; what to remember of it."""
        now = self.node.clock()
        item = None
        if message.ref in known:
            outcome = "duplicate"
        else:
            roots = [known[ref].root for ref in _refs(message)[1:] if ref in known]
            outcome, root = await self._act(message, roots[0] if roots else None, now)
            item = self._imported(message, root, outcome, now)
        if outcome in ("filed", "updated", "closed"):
            setattr(self.status, outcome, getattr(self.status, outcome) + 1)
        else:
            self.skipped(outcome)
        return item

    async def _act(self, message: CapMessage, root: str | None, now: datetime) -> tuple[str, str]:
        if message.status != "Actual":
            return "not_actual", message.ref
        if message.msg_type not in ("Alert", "Update", "Cancel"):
            return "not_an_alert", message.ref
        if message.msg_type == "Cancel":
            if root is None:
                return "cancel_unknown", message.ref
            note = CLOSE_NOTE + (f": {message.note[:800]}" if message.note else "")
            closed = await self.desk.close_from_source(root, note)
            return ("closed" if closed else "tip_gone"), root
        expires = message.expires()
        if expires is not None and expires <= now:
            return "expired", root or message.ref
        try:
            tip = to_tip(message)
        except Unmappable:
            return "unmappable", root or message.ref
        if message.msg_type == "Update" and root is not None:
            updated = await self.desk.update_from_source(root, tip)
            return ("updated" if updated else "tip_gone"), root
        try:
            await self.desk.submit(tip, source_ref=message.ref, source=self.source.url)
        except BadInput:  # a rule of the desk's (text of invisible characters only)
            return "refused_by_desk", message.ref
        return "filed", message.ref

    def _imported(
        self, message: CapMessage, root: str, outcome: str, now: datetime
    ) -> cap_store.Imported:
        expires = message.expires()
        last = max(expires or message.sent, now)
        return cap_store.Imported(
            ref=message.ref,
            root=root,
            source=self.source.url,
            msg_type=message.msg_type,
            sent=to_epoch(message.sent),
            expires_at=to_epoch(expires) if expires else None,
            outcome=outcome,
            keep_until=to_epoch(last + self.node.retention),
        )


def _refs(message: CapMessage) -> list[str]:
    """The message's own key, then the keys of what it replaces."""
    return [message.ref, *(reference.ref for reference in message.references)]


class CapImporter:
    """The running CAP import: one poller per source, a shared HTTP session, purging."""

    def __init__(
        self,
        node: ImportNode,
        desk: TipDesk,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.node = node
        self._session: aiohttp.ClientSession | None = None
        self.pollers = [
            SourcePoller(node, desk, source, self.session, sleep=sleep)
            for source in node.config.bridges.cap.sources
        ]
        self._tasks: list[asyncio.Task[None]] = []

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = new_session()
        return self._session

    def start(self) -> None:
        for poller in self.pollers:
            self._tasks.append(asyncio.create_task(poller.run(), name="avisa-cap-poll"))
        purging = every(self.node.clock, PURGE_EVERY_S, self._purge, "cap purge")
        self._tasks.append(asyncio.create_task(purging, name="avisa-cap-purge"))

    async def _purge(self) -> None:
        now_s = to_epoch(self.node.clock())
        await self.node.db.write(partial(cap_store.purge, now_s=now_s))

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def status(self) -> dict[str, Any]:
        return {"type": "cap", "sources": [poller.status.as_dict() for poller in self.pollers]}

    def metrics_lines(self) -> Iterable[str]:
        """Per source (by its place in the config: a URL may hold a key), for /metrics."""
        return metrics_lines(poller.status for poller in self.pollers)
