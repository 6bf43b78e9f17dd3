"""The verification desk of a running node: tips in, checked, published (DESIGN §10).

``Desk`` is the one door for tips, whoever brings them: the public form and
the API (``relay.http.desk``), the SMS and CAP bridges (``submit``,
``update_from_source``, ``close_from_source``), the desk room in Matrix. It
applies the core's rules (``relay.core.tips``) to the rows of
``relay.storage.tips``.

The reporter is protected here: a contact is normalised to E.164
(``relay.core.phone``), turned into a keyed hash (what corroboration
counts) and sealed (``relay.core.sealing``, key ``DIR/desk.key``) before
anything is written; it is opened only to send the reporter one reply
through ``reply_sender`` (set by the SMS bridge) when the tip is published
(``reporter.*``, in the tip's language if the node serves it, else in the
node's first: ``relay.core.language.negotiate``), and the row loses it when
the tip leaves the open states. Nothing here logs a tip's text, place or
contact: logs and metrics get counts.

"Verified" means verified at the desk (DESIGN §17): an update from a tip's
source that changes it is recorded with the fields it changed and sends a
judged tip back to ``claimed`` (the core's ``step``); outcomes are counted per
person (``storage.trust.person_of``, as the desk knows it when the history is
read, else as it was recorded); a
publisher's outcome on a disputed tip is a ruling. Each sender (reporter
hash; a CAP source's is keyed from its URL) may file ``tips_per_sender_hour``
and ``tips_per_sender_day`` tips (``AVISA_TOO_MANY_TIPS``, 429, nothing
stored). A tip leaving the open states loses its sealed contact, and the WAL
is checkpointed and truncated at once so the sealed bytes leave the files.

Changes of a tip are serialised by one lock, so "confirmed by two verifiers"
is still true when the alert is signed: publishing reads the tip, checks the
two-person rule, signs through the node's one publishing path
(``publish_draft``: the same pipeline as ``POST /api/v1/alerts``) and records
the alert's id on the tip, with no other change in between. The tip itself
never reaches the pipeline: only the draft the publisher completed.

``changes`` (a ``FeedSignal``, as the node's feed) advances after every
change of any tip, whoever made it: new, updated or closed from its source,
claimed, judged, published, expired, purged. Who shows tips (the web desk's
live stream) waits on it instead of looking again and again; the position
counts changes and says nothing about which tip.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Final

import msgspec
import structlog

from relay.core import drafts, phone, tips
from relay.core.config import DeskSection
from relay.core.drafts import Draft, ulid
from relay.core.errors import BadInput, Conflict, Forbidden
from relay.core.language import N_, Words, negotiate
from relay.core.sealing import Sealer, SealError
from relay.core.times import Clock, parse_duration
from relay.core.tipdrafts import TipDraft, prefill
from relay.core.tipplace import TipPlaces
from relay.core.tips import Outcome, Tip, TipEvent, TipIn
from relay.runtime import places as place_data
from relay.runtime.feed import FeedSignal
from relay.storage import tips as tip_store
from relay.storage import trust
from relay.storage.catalogues import Catalogues
from relay.storage.db import Connection, Database

_log = structlog.get_logger("avisa.desk")
#: ``Node.publish_draft``: signs a draft; the callback joins the alert's transaction.
PublishDraft = Callable[
    [Draft, None, Callable[[Connection, str], None]], Awaitable[tuple[str, bytes]]
]
ReplySender = Callable[[str, str, str], Awaitable[None]]
MAX_SOURCE_REF = 300
MAX_LIST = 1000

#: The one text a reporter gets when the desk publishes their tip, by certainty.
REPORTER_REPLIES: Final = {
    "confirmed": N_("reporter.confirmed"),
    "false": N_("reporter.false"),
}


class Desk:
    """Tips and the desk's actions on them; ``node.desk``."""

    def __init__(
        self,
        db: Database,
        sealer: Sealer,
        clock: Clock,
        section: DeskSection,
        publish_draft: PublishDraft,
        catalogues: Catalogues,
        home_codes: Sequence[str] = (),
    ) -> None:
        self.db = db
        self.catalogues = catalogues
        self.home_codes = tuple(home_codes)
        self.sealer = sealer
        self.clock = clock
        self.section = section
        self.tip_ttl = parse_duration(section.tip_ttl)
        self.retention = parse_duration(section.retention)
        self.cluster_window = parse_duration(section.cluster_window)
        self._publish_draft = publish_draft
        self._lock = asyncio.Lock()
        self.reply_sender: ReplySender | None = None
        # Called with each new tip (the desk room posts it); must not block.
        self.on_new: list[Callable[[Tip], None]] = []
        self.counters: Counter[tuple[str, str]] = Counter()
        self.changes = FeedSignal()

    def _changed(self) -> None:
        self.changes.advance(self.changes.head + 1)

    # --- the interface bridges use ------------------------------------------

    async def submit(
        self,
        tip: TipIn,
        *,
        contact: str | None = None,
        reporter: bytes | None = None,
        source_ref: str | None = None,
        source: str | None = None,
    ) -> str:
        """Store a new tip; returns its id (a ``source_ref`` seen before: that tip's id).
        ``source`` names an outside feed (a CAP source's URL): its sender hash."""
        tip = tips.clean(tip)
        sealed = None
        if contact is not None:
            number = phone.normalize(contact, self.section.phone_region).encode()
            reporter = self.sealer.keyed_hash(number, b"tip-reporter")
            sealed = self.sealer.seal(number)
            del number
        elif source is not None and reporter is None:
            reporter = self.sealer.keyed_hash(source.encode(), b"tip-source")
        if reporter is not None and not 8 <= len(reporter) <= 64:
            raise BadInput("AVISA_BAD_TIP", "a reporter hash is 8-64 bytes")
        _check_source_ref(source_ref)
        now = self.clock()
        tip_id = ulid(now, os.urandom(10))
        max_open = self.section.max_open_tips

        def job(conn: Connection) -> tuple[str, list[str]]:
            if source_ref is not None:
                known = tip_store.by_source(conn, source_ref)
                if known is not None:
                    return known, []
            if reporter is not None:
                self._check_sender(conn, reporter, now)
            evicted = tip_store.make_room(conn, now, max_open, reporter)
            tip_store.insert(
                conn, tip_id, tip, now, reporter=reporter, contact=sealed, source_ref=source_ref
            )
            return tip_id, evicted

        try:
            stored_id, evicted = await self.db.write(job)
        except BadInput as exc:
            self.counters[("refused", exc.errcode)] += 1
            raise
        if stored_id != tip_id:
            return stored_id
        self._changed()
        self.counters[("submitted", tip.channel)] += 1
        self.counters[("expired", "desk_full")] += len(evicted)
        if evicted:
            await self.db.checkpoint()
        if self.on_new:
            shown = await self.get(tip_id)
            for notify in self.on_new:
                notify(shown)
        return tip_id

    def _check_sender(self, conn: Connection, reporter: bytes, now: datetime) -> None:
        """``AVISA_TOO_MANY_TIPS`` once ``reporter`` filed its tips for the hour or the day."""
        caps = (
            (timedelta(hours=1), self.section.tips_per_sender_hour, "hour"),
            (timedelta(days=1), self.section.tips_per_sender_day, "day"),
        )
        for span, cap, name in caps:
            if tip_store.sent_since(conn, reporter, now - span) >= cap:
                raise BadInput(
                    "AVISA_TOO_MANY_TIPS",
                    f"this sender already sent {cap} tips in the last {name}; try again later",
                )

    async def update_from_source(self, source_ref: str, tip: TipIn) -> bool:
        """Replace an open tip's content from its source; False if none is open.
        A change after an outcome clears the outcomes (``tips.step``)."""
        _check_source_ref(source_ref)
        tip = tips.clean(tip)
        now = self.clock()

        def job(conn: Connection) -> bool:
            tip_id = tip_store.by_source(conn, source_ref)
            if tip_id is None or tip_store.state_of(conn, tip_id) not in tips.OPEN_STATES:
                return False
            tip_store.revise(conn, tip_id, tip, now, "source", source_ref)
            return True  # (the same message again changes nothing and records nothing)

        async with self._lock:
            try:
                changed = await self.db.write(job)
            except Conflict as exc:  # a feed that rewrote the tip MAX_HISTORY times
                self.counters[("refused", exc.errcode)] += 1
                return False
        if changed:
            self._changed()
        return changed

    async def close_from_source(self, source_ref: str, note: str) -> bool:
        """Close the tip its source withdrew; False if there is none or it is closed."""
        _check_source_ref(source_ref)
        now = self.clock()
        event = _event(now, "source", "close", note=note[:1000] or None)

        def job(conn: Connection) -> bool:
            tip_id = tip_store.by_source(conn, source_ref)
            if tip_id is None or tip_store.state_of(conn, tip_id) not in tips.OPEN_STATES:
                return False  # gone, closed, or published (a signed alert is retracted)
            tip_store.record(conn, tip_id, event)
            return True

        async with self._lock:
            changed = await self.db.write(job)
        if changed:
            await self.db.checkpoint()
            self._changed()
        return changed

    # --- the desk's actions -------------------------------------------------

    async def claim(self, ref: str, actor: str, note: str | None = None) -> Tip:
        return await self._act(ref, _event(self.clock(), actor, "claim", note=note))

    async def outcome(
        self,
        ref: str,
        actor: str,
        outcome: Outcome,
        note: str | None = None,
        duplicate_of: str | None = None,
        *,
        may_verify: bool = True,
        may_rule: bool = False,
    ) -> Tip:
        """Record ``actor``'s outcome. ``may_rule`` (a publisher): on a disputed tip the
        outcome settles it; without ``may_verify`` only that is allowed."""
        if outcome == "duplicate":
            if duplicate_of is None:
                raise BadInput("AVISA_BAD_REQUEST", "a duplicate names duplicate_of")
            duplicate_of = await self.db.read(lambda c: tip_store.find(c, duplicate_of or ""))
        elif duplicate_of is not None:
            raise BadInput("AVISA_BAD_REQUEST", "duplicate_of goes with outcome duplicate")
        event = _event(
            self.clock(), actor, "outcome", outcome=outcome, note=note, duplicate_of=duplicate_of
        )
        return await self._act(ref, event, may_verify=may_verify, may_rule=may_rule)

    async def close(self, ref: str, actor: str, note: str | None = None) -> Tip:
        return await self._act(ref, _event(self.clock(), actor, "close", note=note))

    async def _act(
        self, ref: str, event: TipEvent, *, may_verify: bool = True, may_rule: bool = False
    ) -> Tip:
        async with self._lock:

            def job(conn: Connection) -> str:
                tip_id = tip_store.find(conn, ref)
                if event.duplicate_of == tip_id:
                    raise BadInput("AVISA_BAD_REQUEST", "a tip is not a duplicate of itself")
                ruling = may_rule and tip_store.state_of(conn, tip_id) == "disputed"
                if not (may_verify or ruling):
                    raise Forbidden("a publisher records an outcome only to settle a disputed tip")
                person = trust.person_of(conn, event.actor)
                recorded = msgspec.structs.replace(event, person=person, ruling=ruling)
                tip_store.record(conn, tip_id, recorded)
                return tip_id

            tip_id = await self.db.write(job)
        if event.action == "close":
            await self.db.checkpoint()  # the sealed contact leaves the WAL now
        self._changed()
        self.counters[(event.action, event.outcome or "")] += 1
        return await self.get(tip_id)

    async def publish(self, ref: str, actor: str, draft: TipDraft) -> tuple[str, bytes]:
        """Sign the alert the tip became; returns its id and envelope bytes."""
        finder = await self.places()  # the first read of the gazetteer waits outside the lock
        async with self._lock:
            tip = await self.get(ref)
            certainty = tips.publish_certainty(tip.state, tip.history, self.section.confirmations)
            now = self.clock()
            contact: list[bytes | None] = []

            # In the alert's own transaction: a signed alert and a tip that says it was
            # published are committed together, so a crash can never leave a tip that
            # could be published twice.
            def record(conn: Connection, alert_id: str) -> None:
                contact.append(tip_store.sealed_contact(conn, tip.id))
                person = trust.person_of(conn, actor)
                event = _event(now, actor, "publish", alert_id=alert_id, person=person)
                tip_store.record(conn, tip.id, event, state="published")

            draft_in = prefill(tip, draft, certainty, finder, words=self.alert_words())
            alert_id, envelope = await self._publish_draft(draft_in, None, record)
            sealed = contact[0]
        await self.db.checkpoint()
        self._changed()
        self.counters[("publish", certainty)] += 1
        await self._reply(sealed, tip.language, certainty)
        return alert_id, envelope

    async def draft_for(self, ref: str, draft: TipDraft | None = None) -> Draft:
        """The alert draft ``publish`` would sign now with ``draft`` (nothing, by default)
        added, for a publisher to review; ``Conflict`` while the tip may not be published."""
        tip = await self.get(ref)
        certainty = tips.publish_certainty(tip.state, tip.history, self.section.confirmations)
        places = await self.places()
        return prefill(tip, draft or TipDraft(), certainty, places, words=self.alert_words())

    def alert_words(self) -> list[Words]:
        """The words of each language the node serves, first the default: an alert
        prefilled from a tip is written in all of them (``relay.core.tipdrafts``)."""
        return [self.catalogues.words(language) for language in self.catalogues.languages]

    async def places(self) -> TipPlaces:
        """The gazetteer (read on first use) with this node's home area."""
        return TipPlaces(await place_data.get(), self.home_codes)

    def warnings(self, draft: Draft, words: Words) -> list[str]:
        """What to say before signing ``draft`` (no area code, outside the home area)."""
        return drafts.warnings(draft, self.home_codes, words)

    async def _reply(self, sealed: bytes | None, language: str | None, certainty: str) -> None:
        send = self.reply_sender
        if sealed is None or send is None:
            return
        # The one rule (relay.core.language): the tip's language, else the node's first.
        lang = negotiate(self.catalogues.languages, explicit=language)
        text = self.catalogues.words(lang).gettext(REPORTER_REPLIES[certainty])
        try:
            number = self.sealer.open(sealed).decode()
            await send(number, lang, text)
        except (SealError, OSError, BadInput) as exc:
            self.counters[("reply_failed", type(exc).__name__)] += 1
            _log.warning("reply to reporter failed", error_type=type(exc).__name__)
        else:
            self.counters[("replied", "")] += 1

    # --- reading ------------------------------------------------------------

    async def get(self, ref: str) -> Tip:
        def job(conn: Connection) -> Tip:
            return tip_store.get(conn, tip_store.find(conn, ref))

        return _counted(await self.db.read(job))

    async def listing(
        self, *, open_only: bool = True, cluster: bool = False, limit: int = 200
    ) -> list[Tip]:
        """Newest first; with ``cluster`` each tip says what corroborates it."""
        limit = max(1, min(limit, MAX_LIST))

        def job(
            conn: Connection,
        ) -> tuple[list[Tip], list[tips.ClusterInput]]:
            found = tip_store.listing(conn, open_only=open_only, limit=limit)
            if not cluster or not found:
                return found, []
            since = min(tip.received_at for tip in found) - self.cluster_window * 4
            return found, tip_store.cluster_inputs(conn, since)

        found, inputs = await self.db.read(job)
        shown = [_counted(tip) for tip in found]
        if not cluster:
            return shown
        groups = tips.clusters(inputs, self.cluster_window, self.section.cluster_precision)
        return [msgspec.structs.replace(tip, cluster=groups.get(tip.id)) for tip in shown]

    # --- housekeeping -------------------------------------------------------

    async def housekeeping(self) -> tuple[int, int]:
        """Expire open tips past ``tip_ttl``, purge tips past ``retention``."""
        now = self.clock()
        ttl, retention = self.tip_ttl, self.retention

        def job(conn: Connection) -> tuple[int, int]:
            expired = tip_store.expire(conn, now, ttl)
            return len(expired), tip_store.purge(conn, now, retention)

        async with self._lock:
            expired, purged = await self.db.write(job)
        self.counters[("expired", "ttl")] += expired
        self.counters[("purged", "")] += purged
        if expired or purged:
            self._changed()
            _log.info("desk housekeeping", tips_expired=expired, tips_purged=purged)
        return expired, purged

    def metrics_lines(self) -> Iterable[str]:
        yield "# HELP avisa_desk_events_total Desk events by kind (counts only, never content)."
        yield "# TYPE avisa_desk_events_total counter"
        for (event, detail), count in sorted(self.counters.items()):
            yield f'avisa_desk_events_total{{event="{event}",detail="{detail}"}} {count}'

    # --- opting out -----------------------------------------------------------

    def reporter_hash(self, contact: str) -> bytes:
        """The keyed hash tips from ``contact`` carry (what corroboration counts)."""
        number = phone.normalize(contact, self.section.phone_region).encode()
        return self.sealer.keyed_hash(number, b"tip-reporter")

    async def forget_contact(self, contact: str) -> int:
        """The number texted STOP (or its carrier opted it out): its open tips lose their
        sealed contact, so no receipt ever goes to it; how many tips lost one."""
        reporter = self.reporter_hash(contact)
        forgotten = await self.db.write(lambda conn: tip_store.forget_contact_of(conn, reporter))
        if forgotten:
            self.counters[("contact_forgotten", "opted_out")] += forgotten
            self._changed()
        return forgotten


def _counted(tip: Tip) -> Tip:
    return msgspec.structs.replace(tip, confirmations=len(tips.confirmers(tip.history)))


def _event(now: datetime, actor: str, action: str, **fields: object) -> TipEvent:
    """A history event, its bounds checked like a body's (``BadInput`` 400)."""
    given = {name: value for name, value in fields.items() if value is not None}
    try:
        return msgspec.convert(
            {"at": now, "actor": actor, "action": action, **given},
            TipEvent,
            from_attributes=True,
        )
    except msgspec.ValidationError as exc:
        raise BadInput("AVISA_BAD_REQUEST", str(exc)) from None


def _check_source_ref(source_ref: str | None) -> None:
    if source_ref is None:
        return
    if not 1 <= len(source_ref) <= MAX_SOURCE_REF or not source_ref.isprintable():
        raise BadInput("AVISA_BAD_TIP", f"a source_ref is 1-{MAX_SOURCE_REF} printable characters")
