"""Texts from phones and the gateway's reports: what the line answers (DESIGN §11).

``TextAnswers`` is the inbound half of ``bridges.sms.bridge.SmsBridgeRunner``
(the ``InboundSink`` its gateway hands requests to). Each inbound text is
parsed (``bridges.sms.keywords``), applied and answered in **one
transaction**, together with recording its id: a replayed id changes
nothing, and a crash leaves either everything or nothing. A text that is
neither a keyword nor a carrier word becomes a tip at the node's desk
(``relay.runtime.desk``, DESIGN §10) before that transaction; its
acknowledgement follows. The answer goes out through the same durable queue
as alerts, sealed to its number, which is erased once sent.

At most ``MAX_REPLIES_PER_HOUR`` answers go to one number in an hour (a STOP
is always confirmed); past that a text is still applied, just not answered.
All answers together (desk receipts too) take from one budget per hour,
``[bridges.sms] max_replies_per_hour`` (``bridges.sms.optout``).

STOP means stop (DESIGN §17): the number joins the opted-out set (keyed
hashes only), its subscription and everything queued for it go, and its
open tips lose their sealed contact (``Desk.forget_contact``, done first: a
retried STOP redoes it). From then on nothing is queued for it, except the
one confirmation of that STOP: a subscribe keyword is not applied, HELP is
not answered, a texted report still reaches the desk but without a way to
reply. START lifts it. A carrier's opt-out counts as a STOP. Premium-rate
numbers (and short codes, which are not numbers) get nothing at all: their
texts are acknowledged to the gateway, counted, and dropped.

An answer's language follows the one rule (``relay.core.language.negotiate``):
the subscriber's stored language (a keyword just texted is stored as theirs),
else the language of the word texted (``ALTO`` is Spanish, a configured
keyword has its ``lang``), else the node's first language; only languages the
node serves (``[node] languages``) are chosen. A texted tip is filed in the
subscriber's language, else the node's first. The words are the node's
catalogues' (``sms.reply.*``, ``bridges.sms.compose``).

Delivery reports update their queue row; a carrier's "opted out/blocked"
unsubscribes the number. ``reply`` is the desk's ``reply_sender``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog

from bridges.base import BridgeNode
from bridges.sms import keywords, optout
from bridges.sms import store as sms_store
from bridges.sms.compose import Layout, Reply, fit, reply_text
from bridges.sms.gateway import Inbound, Report
from bridges.sms.gsm import Encoded
from bridges.store import Conn
from relay.core import phone
from relay.core.bridgeconfig import SmsBridge
from relay.core.errors import BadInput
from relay.core.language import negotiate
from relay.core.sealing import Sealer, SealError
from relay.core.times import to_epoch
from relay.core.tips import TipIn, Where
from relay.runtime.desk import Desk

HASH_PURPOSE = b"sms-subscriber"
MAX_TIP_TEXT = 2000
# Answers to one number per hour: a number texting in a loop (or a script posting
# as one) cannot make the line text it without end. A STOP is always confirmed.
MAX_REPLIES_PER_HOUR = 6
REPLY_WINDOW_S = 3600
_log = structlog.get_logger("avisa.sms")


_TIP_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def make_tip(text: str, lang: str) -> TipIn:
    """A texted report as the desk takes it: controls (other than newlines) become spaces."""
    cleaned = _TIP_CONTROLS.sub(" ", text)[:MAX_TIP_TEXT]
    return TipIn(text=cleaned, where=Where(label="SMS"), channel="sms", language=lang)


@dataclass(slots=True)
class LineStats:
    sent: int = 0
    refused: int = 0
    retried: int = 0
    opted_out: int = 0
    requeued_in_doubt: int = 0
    inbound: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    over_budget: int = 0


class TextAnswers:
    """Inbound texts and delivery reports; mixed into the line's runner."""

    node: BridgeNode
    config: SmsBridge
    sealer: Sealer
    layout: Layout
    stats: LineStats

    def wake_from_thread(self) -> None:
        raise NotImplementedError

    def wake_now(self) -> None:
        raise NotImplementedError

    def _desk(self) -> Desk:
        return self.node.desk

    def _carrier_opt_out(
        self, conn: Conn, queue_id: int, sealed: bytes | None, stopped: list[bytes]
    ) -> None:
        """A carrier says the number refuses texts: as if it texted STOP. ``sealed`` (read
        before the row lost it) joins ``stopped``, whose open tips the caller then forgets."""
        hashed = sms_store.hash_of(conn, queue_id)
        if hashed is None:
            return
        if sms_store.unsubscribe(conn, hashed):
            self.stats.opted_out += 1
        optout.opt_out(conn, hashed, to_epoch(self.node.clock()))
        if sealed is not None:
            stopped.append(sealed)

    async def _forget_contacts(self, stopped: list[bytes]) -> None:
        for sealed in stopped:
            try:
                number = self.sealer.open(sealed).decode()
            except (SealError, UnicodeDecodeError):
                continue
            await self._desk().forget_contact(number)

    async def reported(self, report: Report) -> bool:
        stopped: list[bytes] = []

        def job(conn: Conn) -> bool:
            sealed = sms_store.sealed_for(conn, report.queue_id) if report.opted_out else None
            known = sms_store.record_report(conn, report.queue_id, report.state, report.detail)
            if known and report.opted_out:
                self._carrier_opt_out(conn, report.queue_id, sealed, stopped)
            return known

        known = bool(await self.node.db.write(job))
        await self._forget_contacts(stopped)
        return known

    async def received(self, message: Inbound) -> str:
        outcome = await self._received(message)
        self.stats.inbound[outcome] = self.stats.inbound.get(outcome, 0) + 1
        return outcome

    async def _received(self, message: Inbound) -> str:
        now = to_epoch(self.node.clock())
        if message.text is None:
            seen = await self.node.db.write(
                partial(sms_store.mo_seen, mo_id=message.mo_id, now=now)
            )
            return "replayed" if seen else "not_text"
        number = phone.normalize(message.sender, self.config.region)
        never = phone.never_texted(number)
        if never is not None:
            seen = await self.node.db.write(
                partial(sms_store.mo_seen, mo_id=message.mo_id, now=now)
            )
            if not seen:
                _log.info("text refused: the line never answers such numbers", kind=never)
            return "replayed" if seen else f"refused_{never}"
        hashed = self.sealer.keyed_hash(number.encode(), HASH_PURPOSE)
        command = keywords.parse(message.text, self.config.keywords, self.config.zips)
        if isinstance(command, keywords.Empty):
            seen = await self.node.db.write(
                partial(sms_store.mo_seen, mo_id=message.mo_id, now=now)
            )
            return "replayed" if seen else "empty"
        if isinstance(command, keywords.Stop):  # first: a retried STOP redoes it
            await self._desk().forget_contact(number)
        tip_lang: str | None = None
        if isinstance(command, keywords.Other) and self._takes_tips():
            tip_lang = await self._tip(message.mo_id, number, hashed, command.text)
            if tip_lang == "":
                return "replayed"
        sealed = self.sealer.seal(number.encode())
        return await self.node.db.write(
            partial(self._answer, message.mo_id, hashed, sealed, command, tip_lang, now)
        )

    def _takes_tips(self) -> bool:
        return self.config.tips

    async def _tip(self, mo_id: str, number: str, hashed: bytes, text: str) -> str | None:
        """A texted report to the desk; its language, "" for a replay, None if refused.
        From a number that opted out it goes without its contact: no receipt can follow."""
        if await self.node.db.read(partial(sms_store.mo_handled, mo_id=mo_id)):
            return ""
        subscribed = await self.node.db.read(partial(sms_store.subscriber, hashed=hashed))
        tip_lang = self._language(subscribed.lang if subscribed else None)
        desk = self._desk()
        try:
            if await self.node.db.read(partial(optout.opted_out, hashed=hashed)):
                reporter = desk.reporter_hash(number)
                await desk.submit(make_tip(text, tip_lang), reporter=reporter)
            else:
                await desk.submit(make_tip(text, tip_lang), contact=number)
        except BadInput as refused:  # a sender over its cap, a full desk: expected, no trace
            _log.info("the desk refused a texted tip", errcode=refused.errcode)
            return None
        except Exception:  # noqa: BLE001 - the sender still gets an answer; logged
            _log.exception("the desk did not take a texted tip")
            return None
        return tip_lang

    def _answer(
        self,
        mo_id: str,
        hashed: bytes,
        sealed: bytes,
        command: keywords.Command,
        tip_lang: str | None,
        now: int,
        conn: Conn,
    ) -> str:
        """Apply one inbound command and queue its one reply (one transaction)."""
        if sms_store.mo_seen(conn, mo_id, now):
            return "replayed"
        current = sms_store.subscriber(conn, hashed)
        lang = self._reply_lang(current, command)
        keyword = self._keyword_for(lang)
        outcome: str
        if isinstance(command, keywords.Start):
            optout.opt_in(conn, hashed)
        elif optout.opted_out(conn, hashed):
            # Nothing is applied or answered until START; a report went to the desk.
            sms_store.unsubscribe(conn, hashed)
            return _kind(command, tip_lang) + "_opted_out"
        if isinstance(command, keywords.Subscribe):
            sms_store.subscribe(
                conn, hashed, sealed, command.keyword, command.lang, command.areas, now
            )
            # the keyword's language is the subscriber's stored choice from now on
            lang, keyword, outcome = self._language(command.lang), command.keyword, "subscribed"
            text = self._reply("subscribed", lang, keyword, zip_code=command.unknown_zip or "")
        elif isinstance(command, keywords.Stop):
            sms_store.unsubscribe(conn, hashed)
            optout.opt_out(conn, hashed, now)
            outcome, text = "stopped", self._reply("stopped", lang, keyword)
        elif isinstance(command, keywords.Start):
            if current is None:
                chosen = self._keyword_config(lang)
                sms_store.subscribe(
                    conn, hashed, sealed, chosen.word.upper(), chosen.lang, chosen.areas, now
                )
            outcome, text = "started", self._reply("started", lang, keyword)
        elif tip_lang is not None:
            outcome, text = "tip", self._reply("tip", tip_lang, keyword)
            lang = tip_lang
        else:
            what: Reply = "help" if self._takes_tips() else "help_no_tips"
            outcome = "help" if isinstance(command, keywords.Help) else "unknown"
            text = self._reply(what, lang, keyword)
        recent = sms_store.replies_since(conn, hashed, now - REPLY_WINDOW_S)
        if recent >= MAX_REPLIES_PER_HOUR and outcome != "stopped":
            return outcome + "_unanswered"  # applied, but no more answers this hour
        if not self._queue_reply(conn, hashed, sealed, lang, text, now):
            return outcome + "_over_budget"
        self.wake_from_thread()
        return outcome

    def _queue_reply(
        self,
        conn: Conn,
        hashed: bytes,
        sealed: bytes,
        lang: str,
        text: Encoded,
        now: int,
    ) -> bool:
        """The one way an answer is queued, within the line's budget of answers per
        hour. Callers have checked the opt-out (a STOP's own confirmation passes)."""
        if not optout.spend_reply(conn, now, self.config.max_replies_per_hour):
            self.stats.over_budget += 1
            if self.stats.over_budget % 100 == 1:  # a flood: a line now and then, not each
                _log.warning(
                    "answers per hour spent; texts applied, not answered",
                    refused=self.stats.over_budget,
                )
            return False
        sms_store.enqueue_reply(conn, hashed, sealed, lang, text, now)
        return True

    def _reply(self, what: Reply, lang: str, keyword: str, zip_code: str = "") -> Encoded:
        words = self.node.catalogues.words(lang)
        return reply_text(
            what,
            words,
            self.layout,
            keyword=keyword,
            zip_code=zip_code,
            help_texts=self.config.help,
        )

    def _language(self, explicit: str | None, keyword_language: str | None = None) -> str:
        """The one rule (``relay.core.language.negotiate``): a subscriber's stored
        language, else the language of the word texted, else the node's first."""
        served = self.node.catalogues.languages
        return negotiate(served, explicit=explicit, keyword_language=keyword_language)

    def _reply_lang(self, current: sms_store.Subscriber | None, command: keywords.Command) -> str:
        hint = getattr(command, "lang", None)
        return self._language(current.lang if current else None, str(hint) if hint else None)

    def _keyword_config(self, lang: str) -> Any:
        for keyword in self.config.keywords:
            if keyword.lang == lang:
                return keyword
        return self.config.keywords[0]

    def _keyword_for(self, lang: str) -> str:
        return str(self._keyword_config(lang).word).upper()

    async def reply(self, number: str, lang: str, text: str) -> None:
        """The desk's ``reply_sender``: one text to a reporter, through the queue;
        ``BadInput`` (the desk counts it as not replied) when nothing may be sent."""
        e164 = phone.normalize(number, self.config.region)
        if phone.never_texted(e164) is not None:
            raise BadInput("AVISA_NOT_TEXTED", "the line never texts such numbers")
        hashed = self.sealer.keyed_hash(e164.encode(), HASH_PURPOSE)
        sealed = self.sealer.seal(e164.encode())
        encoded = reply_text_free(text, self.layout)
        now = to_epoch(self.node.clock())

        def job(conn: Conn) -> bool:
            if optout.opted_out(conn, hashed):
                return False
            return self._queue_reply(conn, hashed, sealed, lang, encoded, now)

        if not await self.node.db.write(job):
            raise BadInput("AVISA_NOT_TEXTED", "opted out (STOP), or the answers per hour spent")
        self.wake_now()


def reply_text_free(text: str, layout: Layout) -> Encoded:

    return fit("", ["", text, ""], "", layout)


def _kind(command: keywords.Command, tip_lang: str | None) -> str:
    """What a text was, for the line's counts: subscribe, stop, help, tip, unknown."""
    if tip_lang is not None:
        return "tip"
    for kind, name in ((keywords.Subscribe, "subscribe"), (keywords.Stop, "stop")):
        if isinstance(command, kind):
            return name
    return "help" if isinstance(command, keywords.Help) else "unknown"
