"""The node's alerts as a CAP 1.2 / Atom feed: what to show, cached with validators.

The feed lists the messages that are in force: accepted, unexpired, of a
certainty ``[bridges.cap] certainties`` lets out, newest first, at most
``max_entries``. An update is listed while the alert it replaces is not (the
store marks it superseded); a cancel is itself a message in force until the
alert it withdraws would have expired (``relay.core.drafts.cancel_of`` gives
it that expiry), so CAP readers see the Cancel while it matters and then
nothing, as they expect. An alert sent back to review after it was listed (its
key was revoked) leaves the feed with the next request, and its message URL
answers 410 ``AVISA_WITHDRAWN`` (as an expired one answers 410) until a
reviewer accepts it again; a held alert never listed stays a 404.

The feed speaks one language: ``?lang=`` if the node serves it, else the
node's first language (``relay.core.language.negotiate``; a hub rarely sends
``Accept-Language``, and a language in the URL caches cleanly). Its title and
its entries' fixed words are catalogued (``cap.*``); an entry shows the
alert's text in the feed's language when the alert has it.

Rendering 1,000 entries takes milliseconds, but a hub may poll every few
seconds, so the rendered feed is cached. It can only change when the node's
feed moves (an accepted message, a cancel, a reviewed hold) or when one of
its entries expires, so the cache (one per language) is keyed by the feed head (read from the
database: a revocation the CLI committed moves it at once) and the URL base,
and is valid until the earliest expiry among its entries. The ETag is a hash
of the entries; ``Last-Modified`` is when this process first built entries
with that hash (after a restart: the first build), so validators never claim
an older change than the truth.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bridges.cap.render import FeedInfo, render_alert, render_entry, render_feed
from bridges.render import WordSource
from bridges.store import Conn
from relay.core.config import Config
from relay.core.errors import Gone, NotFound
from relay.core.language import negotiate
from relay.core.model import Alert
from relay.core.times import Clock, whole_seconds
from relay.runtime.feed import FeedSignal
from relay.storage import store
from relay.storage.db import Database

FEED_PATH = "/cap/v1/feed.atom"


class ExportSource(Protocol):
    """What the export reads of ``relay.runtime.node.Node``."""

    @property
    def db(self) -> Database: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def feed(self) -> FeedSignal: ...

    @property
    def config(self) -> Config: ...

    @property
    def catalogues(self) -> WordSource: ...


@dataclass(frozen=True, slots=True)
class Document:
    body: bytes
    etag: str
    last_modified: datetime


def message_path(alert_id: str) -> str:
    return f"/cap/v1/alerts/{alert_id}.xml"


def etag_of(data: bytes) -> str:
    return '"' + hashlib.blake2b(data, digest_size=16).hexdigest() + '"'


def certainties(config: Config) -> frozenset[str]:
    cap = config.bridges.cap
    chosen = cap.certainties if cap.certainties is not None else config.policy.bridge_certainties
    return frozenset(chosen)


@dataclass(slots=True)
class _Cached:
    head: int
    base: str
    language: str
    valid_until: datetime | None
    document: Document


class CapExport:
    def __init__(self, node: ExportSource) -> None:
        self.node = node
        self.certainties = certainties(node.config)
        self.max_entries = node.config.bridges.cap.max_entries
        self._cache: dict[str, _Cached] = {}
        self._modified: dict[str, datetime] = {}

    def wants(self, alert: Alert) -> bool:
        return alert.certainty in self.certainties

    async def feed(self, base: str, lang: str | None = None) -> Document:
        """The Atom feed in ``lang`` (``?lang=``) if served, else the node's first
        language; from the cache while nothing that shows in it changed."""
        now = self.node.clock()
        language = negotiate(self.node.catalogues.languages, explicit=lang)
        # The database's head, not the node's signal: a revocation committed by the CLI
        # (another process) withdraws alerts before this node reloads its trust.
        head = await self.node.db.read(store.feed_head)
        cached = self._cache.get(language)
        if (
            cached is not None
            and cached.head == head
            and cached.base == base
            and (cached.valid_until is None or now < cached.valid_until)
        ):
            return cached.document
        rows = await self.node.db.read(
            lambda conn: store.listing(
                conn, now, active_only=True, limit=self.max_entries, keep=self.wants
            )
        )
        alerts = [row.alert for row in rows]
        document = self.render_feed(alerts, base, now, language)
        valid_until = min((alert.expires_at for alert in alerts), default=None)
        self._cache[language] = _Cached(head, base, language, valid_until, document)
        return document

    def render_feed(
        self, alerts: Sequence[Alert], base: str, now: datetime, language: str | None = None
    ) -> Document:
        words = self.node.catalogues.words(language)
        entries = [render_entry(alert, base + message_path(alert.id), words) for alert in alerts]
        etag = etag_of((words.language + "\n" + "".join(entries)).encode())
        # One remembered time per ETag seen lately (a feed flips between few states).
        modified = self._modified.setdefault(etag, whole_seconds(now))
        if len(self._modified) > 64:
            self._modified = {etag: modified}
        info = FeedInfo(
            self_url=base + FEED_PATH,
            network=self.node.config.node.network,
            title=words.gettext("cap.feed.title", network=self.node.config.node.network),
            language=words.language,
        )
        return Document(render_feed(info, entries, modified), etag, modified)

    async def message(self, alert_id: str) -> Document:
        """One alert as CAP 1.2; 404 unless shown here, 410 once expired or withdrawn."""
        now = self.node.clock()

        def load(conn: Conn) -> tuple[store.StoredAlert | None, dict[str, datetime]]:
            stored = store.get(conn, alert_id)
            if (
                stored is not None
                and stored.state == "held"
                and store.was_withdrawn(conn, alert_id)
            ):
                raise Gone("AVISA_WITHDRAWN", f"{alert_id} was withdrawn for review")
            sent: dict[str, datetime] = {}
            for ref in stored.alert.references if stored else ():
                referenced = store.get(conn, ref)
                if referenced is not None:
                    sent[ref] = referenced.alert.sent_at
            return stored, sent

        stored, ref_sent = await self.node.db.read(load)
        if stored is None or stored.state == "held" or not self.wants(stored.alert):
            raise NotFound(f"no CAP message {alert_id}")
        if stored.alert.expires_at <= now:
            raise Gone("AVISA_EXPIRED", f"{alert_id} has expired")
        body = render_alert(
            stored.alert, stored.envelope, ref_sent, catalogues=self.node.catalogues
        )
        return Document(body, etag_of(body), stored.alert.sent_at)
