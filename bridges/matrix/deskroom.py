"""The desk room in Matrix (``[desk.matrix]``): tips posted, verifiers act by message.

Volunteers already live in chat; a phone-only verifier can work the desk
without a web page. The bot logs in with its own ``MatrixSession`` (its own
user, so its device and keys are its own), joins one room, and:

- posts every new tip (``Desk.on_new``): its number, channel, place, the
  reporter's words and what corroborates it ("3 reports, 2 reporters") —
  never a contact, which a ``Tip`` does not hold. The words go out as plain
  ``body`` and as ``html.escape``d ``formatted_body``: HTML in a tip is text.
  ``m.mentions: {}`` keeps a tip's "@room" from pinging anyone;
- reads commands from the room: ``!claim 12 [note]``, ``!confirmed 12 [note]``,
  ``!false 12``, ``!unable 12``, ``!duplicate 12 9``, ``!close 12`` from the
  listed ``verifiers``, ``!publish 12`` from the listed ``publishers``, and
  answers each in the room (a reply to the command). The actor in the tip's
  history is the sender's Matrix id; the desk counts the person it is linked
  to (``avisa desk link``), so the two-person rule counts people, and the
  answers name them. A tip whose verifiers disagree is answered as disputed;
  a listed publisher's ``!confirmed``/``!false`` on it settles it.

The room's words are catalogued (ids ``deskroom.*``) and said in every
language the node serves, first language first, joined by `` / ``
(``RoomWords``): one room holds volunteers of each language, and nobody there
chose one. Commands (``!claim``) and codes are typed alike in every language.

nio runs event callbacks inside sync, so the callback only queues (bounded;
overflow is counted and answered with nothing); one worker does the desk's
work and the sends, in order. Messages that arrived before the bot's first
sync finished are history, not commands, and are ignored. Sends carry a
transaction id derived from the tip or the command's event id, so a retry
never posts twice.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections import OrderedDict
from typing import Any, Final

import structlog
from nio import MatrixRoom, RoomMessageText

from bridges.base import BridgeNode, Sleep
from bridges.matrix.session import MatrixSession, txn_id
from bridges.render import WordSource
from relay.core.backoff import Backoff
from relay.core.bridgeconfig import MatrixBridge
from relay.core.config import DeskMatrix
from relay.core.errors import BadInput, TransportError
from relay.core.language import N_
from relay.core.times import parse_duration
from relay.core.tipdrafts import TipDraft
from relay.core.tips import Tip
from relay.runtime.aio import cancel_all

HTML_FORMAT: Final = "org.matrix.custom.html"
QUEUE_MAX: Final = 1000
SEEN_MAX: Final = 4096
SEND_TRIES: Final = 5
_COMMAND: Final = re.compile(
    r"^!(claim|confirmed|false|unable|duplicate|close|publish)\s+#?([0-9]{1,9})(?:\s+(.*))?$",
    re.DOTALL | re.IGNORECASE,
)
_OUTCOMES: Final = {"confirmed": "confirmed", "false": "false_alarm", "unable": "unable"}
_DONE: Final = {
    "claim": N_("deskroom.done.claim"),
    "confirmed": N_("deskroom.done.confirmed"),
    "false": N_("deskroom.done.false"),
    "unable": N_("deskroom.done.unable"),
    "duplicate": N_("deskroom.done.duplicate"),
    "close": N_("deskroom.done.close"),
}
_DETAILS: Final = (
    ("agencies", N_("deskroom.tip.agencies")),
    ("vehicles", N_("deskroom.tip.vehicles")),
    ("size", N_("deskroom.tip.size")),
)
# Every message of the room, not only the last one per sync: commands must not be lost.
_DESK_FILTER: Final[dict[str, Any]] = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {
        "timeline": {"limit": 50},
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    },
}
# The commands are typed as they are in every language; only the note's word is said.
_COMMANDS: Final = (
    "!claim N · !confirmed N [%s] · !false N · !unable N · !duplicate N M · !close N · !publish N"
)
_log = structlog.get_logger("avisa.deskroom")


class RoomWords:
    """The room's words: each sentence in every language the node serves, its first
    language first, joined by `` / `` (one room, read by volunteers of each language)."""

    def __init__(self, catalogues: WordSource) -> None:
        self.each = tuple(catalogues.words(language) for language in catalogues.languages)

    def __call__(self, message: str, /, **values: object) -> str:
        return " / ".join(dict.fromkeys(w.gettext(message, **values) for w in self.each))


def _backed(tip: Tip, say: RoomWords) -> str:
    """What corroborates a tip, in each language: ``3 reports, 2 reporters, 2 channels``."""
    cluster = tip.cluster
    if cluster is None or cluster.tips <= 1:
        return ""
    tips, reporters, channels = cluster.tips, cluster.reporters, len(cluster.channels)
    each = dict.fromkeys(
        ", ".join((
            w.ngettext("deskroom.count.reports", "deskroom.count.reports", tips),
            w.ngettext("deskroom.count.reporters", "deskroom.count.reporters", reporters),
            w.ngettext("deskroom.count.channels", "deskroom.count.channels", channels),
        ))
        for w in say.each
    )  # fmt: skip
    return " / ".join(each) + f" ({', '.join(cluster.channels)})"


def tip_content(tip: Tip, say: RoomWords) -> dict[str, Any]:
    """A new tip as a message: plain text, and the same escaped as HTML."""
    backed = _backed(tip, say)
    head = " · ".join((say(N_("deskroom.tip"), number=tip.number), tip.channel, tip.where.label))
    values = {"agencies": ", ".join(tip.agencies), "vehicles": tip.vehicles, "size": tip.size}
    details = [f"{say(label)}: {values[name]}" for name, label in _DETAILS if values[name]]
    lines = [head, tip.text, *details, *([backed] if backed else []), f"!claim {tip.number}"]
    quoted = html.escape(tip.text).replace("\n", "<br>")
    rich = [
        f"<b>{html.escape(head)}</b>",
        f"<blockquote>{quoted}</blockquote>",
        *(html.escape(line) for line in details),
        *([f"<i>{html.escape(backed)}</i>"] if backed else []),
        f"<code>!claim {tip.number}</code>",
    ]
    return {
        "msgtype": "m.text",
        "body": "\n".join(lines),
        "format": HTML_FORMAT,
        "formatted_body": "<br>".join(rich),
        "m.mentions": {},
        "org.avisa.tip": tip.number,
    }


def _person(tip: Tip, sender: str) -> str:
    """How an answer names who acted: their person and Matrix id, or the id alone."""
    last = tip.history[-1] if tip.history else None
    if last is not None and last.actor == sender and last.person:
        return f"{last.person} ({sender})"
    return sender


def reply_content(text: str, event_id: str) -> dict[str, Any]:
    return {
        "msgtype": "m.notice",
        "body": text,
        "m.mentions": {},
        "m.relates_to": {"m.in_reply_to": {"event_id": event_id}},
    }


def desk_login(config: DeskMatrix) -> MatrixBridge:
    """The desk room's Matrix login, as a bridge login without routes."""
    return MatrixBridge(
        homeserver=config.homeserver,
        user_id=config.user_id,
        routes=[],
        password_file=config.password_file,
        access_token_file=config.access_token_file,
        device_name=config.device_name,
    )


class DeskRoom:
    """The desk room's bot; a ``node.bridges`` service."""

    def __init__(self, node: BridgeNode, config: DeskMatrix, *, sleep: Sleep | None = None) -> None:
        sleep = sleep or node.clock.sleep
        self.node = node
        self.config = config
        self.desk = node.desk
        self.say = RoomWords(node.catalogues)
        retry_max = parse_duration(config.retry_max).total_seconds()
        self.session = MatrixSession(
            desk_login(config), "desk.matrix", node.data_dir, node.db, node.clock, sleep, retry_max,
            sync_filter=_DESK_FILTER,
        )  # fmt: skip
        self.session.callbacks.append((self._on_message, (RoomMessageText,)))
        self.sleep = sleep
        self.verifiers = frozenset(config.verifiers)
        self.publishers = frozenset(config.publishers)
        self.room_id: str | None = None
        self._work: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(QUEUE_MAX)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self.posted = 0
        self.handled = 0
        self.dropped = 0
        self.last_error: str | None = None
        self.desk.on_new.append(self._on_new_tip)

    # --- intake (never blocks) ------------------------------------------------

    def _queue(self, item: tuple[str, Any]) -> None:
        try:
            self._work.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1

    def _on_new_tip(self, tip: Tip) -> None:
        self._queue(("tip", tip.id))

    async def _on_message(self, room: MatrixRoom, event: RoomMessageText) -> None:
        if room.room_id != self.room_id or event.sender == self.config.user_id:
            return
        if not self.session.ready.is_set() or event.event_id in self._seen:
            return  # history from before the first sync, or seen already
        self._seen[event.event_id] = None
        while len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)
        body = (event.body or "").strip()
        if body.startswith("!"):
            self._queue(("command", (event.sender, body[:2000], event.event_id)))

    # --- the worker -----------------------------------------------------------

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self.session.run(), name="avisa-desk-sync"))
        self._tasks.append(asyncio.create_task(self._run(), name="avisa-desk-room"))

    async def _run(self) -> None:
        backoff = Backoff(cap=parse_duration(self.config.retry_max).total_seconds())
        while self.room_id is None:
            try:
                room_id = await self.session.join(self.config.room)
                if self.config.encrypted and not self.session.is_encrypted(room_id):
                    await self.session.enable_encryption(room_id)
                self.room_id = room_id
            except TransportError as exc:
                self.last_error = str(exc)
                await self.sleep(backoff.next_delay())
        while True:
            kind, item = await self._work.get()
            if kind == "tip":
                await self._post_tip(item)
            else:
                await self._command(*item)

    async def _send(self, content: dict[str, Any], txn: str) -> None:
        assert self.room_id is not None
        backoff = Backoff(cap=parse_duration(self.config.retry_max).total_seconds())
        for _ in range(SEND_TRIES):
            try:
                await self.session.send(self.room_id, content, txn)
                self.last_error = None
                return
            except TransportError as exc:
                self.last_error = str(exc)
                await self.sleep(getattr(exc, "retry_after", None) or backoff.next_delay())
        self.dropped += 1
        _log.warning("desk room send gave up", error=self.last_error)

    async def _post_tip(self, tip_id: str) -> None:
        try:
            listed = await self.desk.listing(open_only=False, cluster=True, limit=200)
            tip = next((t for t in listed if t.id == tip_id), None) or await self.desk.get(tip_id)
        except BadInput:
            return  # gone already (purged)
        txn = txn_id(f"desk:{self.config.room}", tip.id, "new")
        await self._send(tip_content(tip, self.say), txn)
        self.posted += 1

    async def _command(self, sender: str, body: str, event_id: str) -> None:
        text = await self._act(sender, body)
        await self._send(
            reply_content(text, event_id), txn_id(f"desk:{self.config.room}", event_id, "reply")
        )
        self.handled += 1

    async def _act(self, sender: str, body: str) -> str:
        say = self.say
        match = _COMMAND.match(body)
        if match is None:
            commands, note = say(N_("deskroom.commands")), say(N_("deskroom.note"))
            return f"{commands}: {_COMMANDS % note}"
        verb, number, rest = match.group(1).lower(), match.group(2), (match.group(3) or "").strip()
        if verb == "publish":
            allowed = self.publishers
        elif verb in _OUTCOMES or verb == "duplicate":
            allowed = self.verifiers | self.publishers  # a publisher only settles a dispute
        else:
            allowed = self.verifiers
        if sender not in allowed:
            return f"✗ #{number}: " + say(N_("deskroom.may_not"), person=sender, command="!" + verb)
        try:
            return await self._do(verb, number, rest, sender)
        except BadInput as exc:
            return f"✗ #{number}: {exc.errcode}: {exc.message}"

    async def _do(self, verb: str, number: str, rest: str, sender: str) -> str:
        desk, note, say = self.desk, rest[:1000] or None, self.say
        if verb == "publish":
            alert_id, _ = await desk.publish(number, sender, TipDraft())
            return f"✓ #{number} " + say(N_("deskroom.published"), alert=alert_id)
        if verb == "claim":
            await desk.claim(number, sender, note)
        elif verb == "close":
            await desk.close(number, sender, note)
        elif verb == "duplicate":
            other, _, note_rest = rest.partition(" ")
            if not other.lstrip("#").isdigit():
                usage = say(N_("deskroom.duplicate.usage"))
                return f"✗ #{number}: !duplicate {number} N ({usage})"
            await desk.outcome(number, sender, "duplicate", note_rest[:1000] or None,
                               other.lstrip("#"), **self._may(sender))  # fmt: skip
        else:
            shown = await desk.outcome(number, sender, _OUTCOMES[verb], note, **self._may(sender))  # type: ignore[arg-type]
            person = _person(shown, sender)
            if shown.state == "disputed":
                disputed = say(N_("deskroom.disputed"))
                return f"⚠ #{number} {disputed} ({person})"
            if verb == "confirmed":
                needed = desk.section.confirmations
                counted = f"{shown.confirmations}/{needed}"
                return f"✓ #{number} " + say(
                    N_("deskroom.confirmed_by"), person=person, count=counted
                )
        return f"✓ #{number} " + say(_DONE[verb], person=sender)

    def _may(self, sender: str) -> dict[str, bool]:
        return {"may_verify": sender in self.verifiers, "may_rule": sender in self.publishers}

    # --- Service ----------------------------------------------------------------

    async def stop(self) -> None:
        if self._on_new_tip in self.desk.on_new:
            self.desk.on_new.remove(self._on_new_tip)
        await cancel_all(self._tasks)
        self._tasks.clear()
        await self.session.close()

    def status(self) -> dict[str, Any]:
        return {
            "type": "desk-matrix",
            "user_id": self.config.user_id,
            "room_id": self.room_id,
            "logged_in": self.session.ready.is_set(),
            "last_error": self.last_error,
            "tips_posted": self.posted,
            "commands_handled": self.handled,
            "dropped": self.dropped,
            "queued": self._work.qsize(),
        }
