"""The text line: follow the feed into a durable queue, send it paced, answer texts.

Three parts run inside the node:

- **the follower** (a ``bridges.base.RouteConsumer`` with the durable cursor
  ``sms``): for each accepted alert whose certainty is listed, the recipients
  (subscribers whose areas overlap the alert's, ``relay.core.policy.area_matches``)
  and one text per subscriber language are written to ``sms_queue`` *in the
  same transaction that moves the cursor*; an update or cancel goes to the
  recipients of its original (``bridges.sms.store.enqueue_followup``); a
  withdrawal (the alert went back to review) to those it reached, and a
  reviewer's accept after one to those told of the withdrawal;
- **the sender**: claims due rows (marking them ``sending`` on disk first),
  hands them to the gateway at most ``throughput`` per second with a few in
  flight, and records the outcome. A gateway that is down or busy (503,
  timeouts) pauses the sender with ``bridges.base.Backoff``; a refusal fails
  one row; a carrier opt-out unsubscribes the number;
- **the inbound side** (``bridges.sms.inbound.TextAnswers``, mixed in): texts
  and delivery reports the gateway's webhooks hand over.

Exactly once across crashes: a row is ``sending`` before the gateway hears of
it and ``sent`` after; a crash in between leaves it in doubt. Every text
carries its row id in its delivery-report URL, so the gateway's report
(Kannel's "submitted to SMSC", Twilio's status callback) settles a row in
doubt as sent. Only a row that no report settles within ``in_doubt_grace``
of the line being up again is sent again.

Numbers exist in clear only in memory, between opening a sealed row and the
gateway call; logs and status carry counts, never numbers or texts.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import structlog
from aiohttp import web

from bridges.base import (
    BridgeNode,
    Delivered,
    FeedSource,
    Handled,
    RateLimited,
    RouteConsumer,
    Skipped,
    Sleep,
    secret_file,
    supervised,
)
from bridges.sms import optout
from bridges.sms import store as sms_store
from bridges.sms.compose import Layout, Status, language_for, texts_for, withdrawal_text
from bridges.sms.gateway import (
    Gateway,
    GatewaySettings,
    HttpGateway,
    Outgoing,
    Refused,
    not_found,
    secret_matches,
)
from bridges.sms.gsm import Encoded
from bridges.sms.inbound import LineStats, TextAnswers
from bridges.store import Conn
from relay.core import phone
from relay.core.backoff import Backoff
from relay.core.bridgeconfig import SmsBridge
from relay.core.errors import TransportError
from relay.core.model import Alert
from relay.core.policy import area_matches
from relay.core.sealing import Sealer
from relay.core.times import parse_duration, to_epoch
from relay.runtime.aio import cancel_all
from relay.runtime.log import declare_secret
from relay.storage import sealkey, store

CURSOR = "sms"
BATCH = 64  # claimed at once: at most this many are in doubt after a crash
IN_FLIGHT = 16
PURGE_EVERY = timedelta(minutes=10)
_log = structlog.get_logger("avisa.sms")


def inbound_secret(config: SmsBridge, data_dir: Any) -> str:
    secret = secret_file(
        data_dir, config.inbound_secret_file, "bridges.sms.inbound_secret_file", "secret"
    )
    declare_secret(secret)  # masked in every log line, wherever it shows up
    return secret


def make_gateway(config: SmsBridge, data_dir: Any, callback_base: str) -> Gateway:
    password = secret_file(data_dir, config.password_file, "bridges.sms.password_file", "password")
    declare_secret(password)
    account = config.account_sid if config.gateway == "twilio" else config.username
    settings = GatewaySettings(
        config.sendsms_url, account, password, config.sender, inbound_secret(config, data_dir)
    )
    return gateway_class(config.gateway)(settings, callback_base)


def gateway_class(name: str) -> type[HttpGateway]:
    """The backend ``[bridges.sms] gateway`` names, imported only when configured."""
    if name == "twilio":
        from bridges.sms.twilio import TwilioGateway

        return TwilioGateway
    from bridges.sms.kannel import KannelGateway

    return KannelGateway


@dataclass(slots=True)
class Pacer:
    """At most ``rate`` starts per second (0: no limit), on the event loop's clock."""

    rate: int
    next_slot: float = 0.0

    async def slot(self) -> None:
        if self.rate <= 0:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self.next_slot)
        self.next_slot = start + 1.0 / self.rate
        if start > now:
            await asyncio.sleep(start - now)


class AlertFollower(RouteConsumer):
    """Turns accepted alerts into queue rows, with the cursor, in one transaction."""

    def __init__(
        self, line: SmsBridgeRunner, node: FeedSource, keep: timedelta, **kwargs: Any
    ) -> None:
        super().__init__(CURSOR, node, **kwargs)
        self.line = line
        self.keep = keep
        self._next_purge = datetime.min.replace(tzinfo=UTC)

    async def prepare(self) -> None:
        return None

    async def periodic(self) -> None:
        """Forget finished queue rows, texts and inbound ids older than ``keep``."""
        now = self.node.clock()
        if now < self._next_purge:
            return
        before = to_epoch(now - self.keep)
        await self.node.db.write(partial(sms_store.purge, before=before))
        self._next_purge = now + PURGE_EVERY

    async def withdraw(self, pos: int, stored: store.StoredAlert) -> Handled:
        """Back in review: one text to those it reached, in their language."""
        alert = stored.alert
        line = self.line
        sent = await self.node.db.read(partial(sms_store.root_of, references=[alert.id]))
        if sent is None:
            return Skipped("not_sent_here")
        now = to_epoch(self.node.clock())

        def record(conn: Conn) -> None:
            texts = {lang: line.withdrawal_for(alert, lang) for lang in sms_store.languages(conn)}
            if sms_store.enqueue_withdrawal(conn, alert.id, pos, texts, now):
                line.wake_from_thread()

        return Delivered(record, edit=True)

    async def handle(self, pos: int, stored: store.StoredAlert) -> Handled:
        alert = stored.alert
        line = self.line
        again = await self.node.db.read(partial(sms_store.was_withdrawn, alert_id=alert.id))
        if alert.msg_type != "alert":
            root = await self.node.db.read(partial(sms_store.root_of, references=alert.references))
            if root is not None:
                return self._followup(pos, alert, root, again)
            if alert.msg_type == "cancel":
                return Skipped("not_sent_here")
        if alert.certainty not in line.config.certainties:
            return Skipped("certainty")
        if alert.expires_at <= self.node.clock():
            return Skipped("expired")
        if stored.state in ("cancelled", "superseded"):
            return Skipped("replaced")
        now = to_epoch(self.node.clock())
        status: Status = "alert" if alert.msg_type == "alert" else "update"

        def record(conn: Conn) -> None:
            if again:
                self._reinstate(conn, pos, alert, now)
            wanted = [
                areas
                for areas in sms_store.area_sets(conn)
                if any(area_matches(alert, area) for area in areas)
            ]
            if wanted:
                texts = line.texts_for(alert, status, sms_store.languages(conn))
                if sms_store.enqueue_alert(conn, alert.id, wanted, texts, now):
                    line.wake_from_thread()

        return Delivered(record, edit=again)

    def _reinstate(self, conn: Conn, pos: int, alert: Alert, now: int) -> None:
        """Accepted again after a withdrawal: those told of it get the alert again,
        marked in force again (others who got it hear nothing new, and those whose
        copy the withdrawal dropped get the alert as anyone new would)."""
        texts = self.line.texts_for(alert, "reinstated", sms_store.languages(conn))
        if sms_store.enqueue_reinstatement(conn, alert.id, pos, texts, now):
            self.line.wake_from_thread()

    def _followup(self, pos: int, alert: Alert, root: str, again: bool) -> Handled:
        line = self.line
        cancel = alert.msg_type == "cancel"
        now = to_epoch(self.node.clock())

        def record(conn: Conn) -> None:
            if again:
                self._reinstate(conn, pos, alert, now)
            texts = line.texts_for(
                alert, "cancel" if cancel else "update", sms_store.languages(conn)
            )
            if sms_store.enqueue_followup(conn, alert.id, root, texts, cancel=cancel, now=now):
                line.wake_from_thread()

        return Delivered(record, edit=True)


class SmsBridgeRunner(TextAnswers):
    """One text line (``[bridges.sms]``) running inside the node."""

    def __init__(
        self,
        node: BridgeNode,
        config: SmsBridge,
        *,
        sleep: Sleep = asyncio.sleep,
        idle_wait: float = 30.0,
        gateway: Gateway | None = None,
    ) -> None:
        self.node = node
        self.config = config
        self.sleep = sleep
        self.sealer: Sealer = sealkey.load_or_create(node.data_dir)
        self.layout = Layout(config.accents, config.max_segments)
        self.gateway_secret = inbound_secret(config, node.data_dir)
        self.gateway = gateway or make_gateway(config, node.data_dir, node.config.public_url)
        retry_max = parse_duration(config.retry_max).total_seconds()
        self.grace = parse_duration(config.in_doubt_grace)
        self._up_since = node.clock()
        # Rows stay while an update or cancel of what they carried may still come.
        keep = node.tombstone_ttl + node.retention
        self.follower = AlertFollower(
            self, node, keep, sleep=sleep, retry_max=retry_max, idle_wait=idle_wait
        )
        self.backoff = Backoff(cap=retry_max)
        self.pacer = Pacer(config.throughput)
        self.stats = LineStats()
        self.idle_wait = idle_wait
        self.ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # --- life cycle -----------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._desk().reply_sender = self.reply
        self._tasks.append(
            asyncio.create_task(
                supervised(self.follower.run, self.sleep, "sms feed"), name="sms-feed"
            )
        )
        self._tasks.append(
            asyncio.create_task(
                supervised(self._send_loop, self.sleep, "sms send"), name="sms-send"
            )
        )

    def listening(self, base_url: str) -> None:
        """The node's HTTP side is up at ``base_url``: report URLs can be given out."""
        configured = self.node.config.node.url.rstrip("/")
        if not configured or configured.endswith(":0"):
            self.gateway.callback_base = base_url.rstrip("/")
        self.ready.set()

    async def webhook(self, request: web.Request) -> web.StreamResponse:
        """``/sms/v1/{backend}/{secret}[/report]``: 404 unless backend and secret match."""
        backend = request.match_info.get("backend", "")
        given = request.match_info.get("secret", "")
        if backend != self.gateway.name or not secret_matches(given, self.gateway_secret):
            raise not_found()
        if request.match_info.get("what") == "report":
            return await self.gateway.on_report(request, self)
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["POST"])
        return await self.gateway.on_message(request, self)

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks.clear()
        desk = self._desk()
        if desk.reply_sender == self.reply:
            desk.reply_sender = None
        await self.gateway.close()

    def status(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "type": "sms",
            "gateway": self.gateway.name,
            "ready": self.ready.is_set(),
            "sent": stats.sent,
            "refused": stats.refused,
            "retried": stats.retried,
            "opted_out_by_carrier": stats.opted_out,
            "requeued_in_doubt": stats.requeued_in_doubt,
            "replies_over_budget": stats.over_budget,
            "inbound": dict(sorted(stats.inbound.items())),
            "last_error": stats.last_error,
            "feed": self.follower.state(int(self.node.feed.head)),
        }

    async def counts(self) -> dict[str, Any]:
        """Subscribers per keyword and language, the queue by state, numbers opted out:
        counts only."""

        def job(conn: Conn) -> dict[str, Any]:
            return {**sms_store.counts(conn), "opted_out": optout.count(conn)}

        return await self.node.db.read(job)

    # --- texts ------------------------------------------------------------------------

    def texts_for(self, alert: Alert, status: Status, langs: list[str]) -> dict[str, Encoded]:
        return texts_for(alert, status, langs, self.node.catalogues.words, self.layout)

    def withdrawal_for(self, alert: Alert, lang: str) -> Encoded:
        chosen = language_for(alert, lang)
        return withdrawal_text(alert, chosen, self.node.catalogues.words(chosen), self.layout)

    def wake_now(self) -> None:
        self._wake.set()

    def wake_from_thread(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # --- sending -----------------------------------------------------------------------

    async def _send_loop(self) -> None:
        await self.ready.wait()
        self._up_since = self.node.clock()
        while True:
            # Cleared before looking, so a wake-up while we look is never lost.
            self._wake.clear()
            await self._requeue_in_doubt()
            now = to_epoch(self.node.clock())
            batch = await self.node.db.write(partial(sms_store.claim_due, now=now, limit=BATCH))
            if not batch:
                await self._idle()
                continue
            await self._send_batch(batch)

    async def _idle(self) -> None:
        due = await self.node.db.read(sms_store.next_due)
        wait = self.idle_wait
        if due is not None:
            wait = min(wait, max(0.05, due - to_epoch(self.node.clock())))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), wait)

    async def _requeue_in_doubt(self) -> None:
        now = self.node.clock()
        if now - self._up_since < self.grace:  # reports can only arrive while we are up
            return
        oldest = await self.node.db.read(sms_store.oldest_sending)
        if oldest is None or oldest >= to_epoch(now - self.grace):
            return
        count = await self.node.db.write(
            partial(
                sms_store.requeue_in_doubt,
                sent_before=to_epoch(now - self.grace),
                now=to_epoch(now),
            )
        )
        self.stats.requeued_in_doubt += count
        if count:
            _log.warning("resending texts no delivery report settled", count=count)

    async def _send_batch(self, batch: list[sms_store.Claimed]) -> None:
        gate = asyncio.Semaphore(IN_FLIGHT)
        sent: list[tuple[int, str]] = []
        retry: list[int] = []
        refused: list[tuple[int, Refused]] = []
        wait = 0.0

        async def one(item: sms_store.Claimed) -> None:
            nonlocal wait
            async with gate:
                if retry:  # the gateway is failing: leave the rest of the batch queued
                    retry.append(item.queue_id)
                    return
                await self.pacer.slot()
                try:
                    number = self.sealer.open(item.sealed).decode()
                    never = phone.never_texted(number)
                    if never is not None:  # subscribed before the line refused such numbers
                        raise Refused(f"never texted: {never}")
                    ref = await self.gateway.send(
                        Outgoing(item.queue_id, number, item.body, item.coding)  # type: ignore[arg-type]
                    )
                except RateLimited as exc:
                    wait = max(wait, exc.retry_after)
                    self.stats.last_error = str(exc)[:200]
                    retry.append(item.queue_id)
                except TransportError as exc:
                    self.stats.last_error = str(exc)[:200]
                    retry.append(item.queue_id)
                except Refused as exc:
                    refused.append((item.queue_id, exc))
                else:
                    sent.append((item.queue_id, ref))

        await asyncio.gather(*(one(item) for item in batch))
        if retry:
            wait = max(wait, self.backoff.next_delay())
        else:
            self.backoff.reset()
        stopped = await self.node.db.write(partial(self._record, sent, retry, refused))
        await self._forget_contacts(stopped)
        self.stats.sent += len(sent)
        self.stats.retried += len(retry)
        self.stats.refused += len(refused)
        if retry:
            _log.warning("sms gateway failing; backing off", queued=len(retry), wait_s=wait)
            await self.sleep(wait)

    def _record(
        self,
        sent: list[tuple[int, str]],
        retry: list[int],
        refused: list[tuple[int, Refused]],
        conn: Conn,
    ) -> list[bytes]:
        """Outcomes of a batch; the sealed numbers of carrier opt-outs (as STOPs)."""
        sms_store.mark_sent(conn, sent)
        # Due again at once: the sender itself waits ``wait`` before its next claim.
        sms_store.mark_retry(conn, retry, to_epoch(self.node.clock()))
        opted = [queue_id for queue_id, exc in refused if exc.opted_out]
        sealed = {queue_id: sms_store.sealed_for(conn, queue_id) for queue_id in opted}
        sms_store.mark_failed(conn, [queue_id for queue_id, _ in refused], "refused")
        stopped: list[bytes] = []
        for queue_id in opted:
            self._carrier_opt_out(conn, queue_id, sealed[queue_id], stopped)
        return stopped
