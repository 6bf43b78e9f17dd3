"""Tips and the verification desk's rules (DESIGN §10): pure, no clock, no I/O.

A **tip** is a report from the public or a hotline volunteer. ``TipIn`` is
what arrives (from the form, the API, the SMS and CAP bridges); every field is
bounded by msgspec ``Meta`` and human text holds no control characters
(``__post_init__``, so a JSON body with one is a 400 and a bridge that builds
one gets a ``ValueError``). ``clean`` then strips Unicode format characters
(bidi overrides and isolates, zero-width spaces, BOMs) that would let a tip
reorder or hide text when a verifier reads it; ZWJ/ZWNJ stay, scripts need
them.

The desk's state machine is one function, ``step``: given a tip's state, its
history and a new event, it returns the next state or raises ``Conflict``::

    new -> claimed -> confirmed | false_alarm | unable | duplicate | disputed
        -> published | closed        (a published tip is never closed)

Open tips (every state but ``published`` and ``closed``) expire after
``tip_ttl`` (an ``expire`` event closes them). Verifiers are counted as
**persons** (``who``: the event's ``person``, which the shell resolves from
the token or Matrix id, else the actor), so one person with two tokens, or
a token and a Matrix id, is one verifier (DESIGN §17).

What the desk judged holds only for what it saw. An ``update`` that changes
the tip (``changed`` names the fields) *resets* it: outcomes before it no
longer count and a judged tip goes back to ``claimed``. Outcomes are read
per person, latest wins, since the last reset; a ``confirmed`` standing
against a ``false_alarm`` makes the tip ``disputed`` until the persons agree
again (one changes their outcome) or a publisher's outcome (``ruling``)
settles it; after a ruling, only outcomes recorded after it can dispute it
again.
``publish_certainty`` applies the two-person rule: a ``confirmed`` alert
needs ``confirmations`` distinct persons whose latest outcome since the last
reset is ``confirmed``; a ``false_alarm`` publishes at once as a rumor debunk.

``clusters`` groups tips for corroboration: tips received within
``cluster_window`` of each other that share a geohash prefix or an area code
are linked, and a cluster is a connected group; it counts distinct reporters
(keyed hashes) and channels, never who they are.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Final, Literal, get_args

import msgspec
from msgspec import Meta, Struct

from relay.core.errors import BadInput, Conflict
from relay.core.model import Agency, AreaCode, Certainty, LangTag, UtcTime

Channel = Literal["web", "sms", "hotline", "matrix", "cap"]
TipState = Literal[
    "new",
    "claimed",
    "confirmed",
    "false_alarm",
    "unable",
    "duplicate",
    "disputed",
    "published",
    "closed",
]
Outcome = Literal["confirmed", "false_alarm", "unable", "duplicate"]
Action = Literal["claim", "outcome", "publish", "close", "expire", "update"]
#: What an update can change: the fields a verifier checked.
Field = Literal[
    "text", "where", "observed_at", "language", "activity", "agencies", "vehicles", "size"
]

CHANNELS: Final[tuple[str, ...]] = get_args(Channel)
#: What a token may file tips as; sms, cap and matrix are the node's own lines (DESIGN §17).
OPERATOR_CHANNELS: Final[tuple[str, ...]] = ("hotline", "web")
TIP_STATES: Final[tuple[str, ...]] = get_args(TipState)
OUTCOMES: Final[tuple[str, ...]] = get_args(Outcome)
OPEN_STATES: Final[frozenset[str]] = frozenset(TIP_STATES) - {"published", "closed"}
#: States an update with changes sends back to ``claimed``.
JUDGED_STATES: Final[frozenset[str]] = frozenset((*OUTCOMES, "disputed"))
FIELDS: Final[tuple[str, ...]] = get_args(Field)
# A tip's number on its node, its id: a ULID.
TIP_ID_PATTERN: Final = r"^[0-9A-HJKMNP-TV-Z]{26}$"

TipGeohash = Annotated[str, Meta(pattern=r"^[0-9b-hjkmnp-z]{4,7}$")]
TipText = Annotated[str, Meta(min_length=1, max_length=2000)]
PlaceLabel = Annotated[str, Meta(min_length=1, max_length=200)]
ShortField = Annotated[str, Meta(max_length=200)]
Note = Annotated[str, Meta(max_length=1000)]
Actor = Annotated[str, Meta(min_length=1, max_length=300)]
Person = Annotated[str, Meta(min_length=1, max_length=100)]
TipId = Annotated[str, Meta(pattern=TIP_ID_PATTERN)]

_LINE_CONTROLS: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_LINES_CONTROLS: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_KEEP_FORMAT: Final = frozenset("\u200c\u200d")  # ZWNJ, ZWJ: needed by scripts


def _refuse_controls(where: str, value: str | None, *, lines: bool = False) -> None:
    if value is not None and (_LINES_CONTROLS if lines else _LINE_CONTROLS).search(value):
        raise ValueError(f"control character in text at `$.{where}`")


class Where(Struct, frozen=True, forbid_unknown_fields=True):
    """Where it was seen: a label people recognise, and what clustering compares."""

    label: PlaceLabel
    geohash: TipGeohash | None = None
    codes: Annotated[list[AreaCode], Meta(max_length=16)] = []

    def __post_init__(self) -> None:
        _refuse_controls("where.label", self.label)
        if len(set(self.codes)) != len(self.codes):
            raise ValueError("where.codes lists a code twice")


class TipIn(Struct, frozen=True, forbid_unknown_fields=True):
    """A tip as it arrives; the node adds ``id``, ``received_at`` and ``state``."""

    text: TipText
    where: Where
    channel: Channel = "hotline"
    observed_at: UtcTime | None = None
    language: LangTag | None = None
    activity: ShortField | None = None
    agencies: Annotated[list[Agency], Meta(max_length=8)] = []
    vehicles: ShortField | None = None
    size: ShortField | None = None

    def __post_init__(self) -> None:
        _refuse_controls("text", self.text, lines=True)
        for name in ("activity", "vehicles", "size"):
            _refuse_controls(name, getattr(self, name))


def strip_format(text: str) -> str:
    """``text`` without Unicode format characters (category Cf) but ZWJ/ZWNJ."""
    if text.isascii():
        return text
    return "".join(c for c in text if c in _KEEP_FORMAT or unicodedata.category(c) != "Cf")


def _stripped(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    cleaned = strip_format(value)
    if not cleaned.strip() and value.strip():
        raise BadInput("AVISA_BAD_TIP", f"{name} holds only invisible characters")
    return cleaned


def clean(tip: TipIn) -> TipIn:
    """``tip`` with format characters stripped from every human field."""
    label = _stripped(tip.where.label, "where.label") or ""
    text = _stripped(tip.text, "text") or ""
    if not label.strip() or not text.strip():
        raise BadInput("AVISA_BAD_TIP", "a tip needs some text and a place")
    return msgspec.structs.replace(
        tip,
        text=text,
        where=msgspec.structs.replace(tip.where, label=label),
        activity=_stripped(tip.activity, "activity"),
        vehicles=_stripped(tip.vehicles, "vehicles"),
        size=_stripped(tip.size, "size"),
    )


# --- the desk's history and state machine ------------------------------------


class TipEvent(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One line of a tip's history: who did what, when."""

    at: UtcTime
    actor: Actor
    action: Action
    outcome: Outcome | None = None
    note: Note | None = None
    duplicate_of: TipId | None = None
    alert_id: Annotated[str, Meta(max_length=100)] | None = None
    # The person behind ``actor`` when the desk knows one (a token's --person, a linked
    # Matrix id): what the two-person rule counts.
    person: Person | None = None
    # An update: which fields changed (none: nothing to judge again).
    changed: Annotated[list[Field], Meta(max_length=len(FIELDS))] = []
    # A publisher's outcome that settles a disputed tip.
    ruling: bool = False

    def __post_init__(self) -> None:
        _refuse_controls("note", self.note, lines=True)
        _refuse_controls("actor", self.actor)
        _refuse_controls("person", self.person)
        if (self.action == "outcome") != (self.outcome is not None):
            raise ValueError("an outcome event, and only one, names an outcome")
        if (self.outcome == "duplicate") != (self.duplicate_of is not None):
            raise ValueError("a duplicate outcome, and only one, names duplicate_of")


_CLOSED = ("AVISA_TIP_CLOSED", "the tip is already published or closed")
_PUBLISHED = (
    "AVISA_TIP_PUBLISHED",
    "the tip was published as an alert and stays published; to take it back, retract the alert",
)


def who(event: TipEvent) -> str:
    """The person an event counts as: its ``person``, else its actor."""
    return event.person or event.actor


def changed_fields(before: TipIn, after: TipIn) -> list[Field]:
    """The fields of a tip that differ between two versions of it."""
    return [name for name in FIELDS if getattr(before, name) != getattr(after, name)]  # type: ignore[misc]


def _resets(event: TipEvent) -> bool:
    return event.action == "update" and bool(event.changed)


def _since(history: Sequence[TipEvent], stop: Callable[[TipEvent], bool]) -> Sequence[TipEvent]:
    """The events after the last one ``stop`` picks (that one included if it is an outcome)."""
    for i in range(len(history) - 1, -1, -1):
        if stop(history[i]):
            return history[i:] if history[i].action == "outcome" else history[i + 1 :]
    return history


def standing(history: Sequence[TipEvent]) -> dict[str, Outcome]:
    """Each person's latest outcome since the last change of the tip."""
    latest: dict[str, Outcome] = {}
    for event in _since(history, _resets):
        if event.outcome is not None:
            latest[who(event)] = event.outcome
    return latest


def _judged(history: Sequence[TipEvent]) -> TipState:
    """The state after the last event of ``history``, an outcome."""
    last = history[-1]
    assert last.outcome is not None
    window = _since(history, lambda event: _resets(event) or event.ruling)
    latest = {who(event): event.outcome for event in window if event.outcome is not None}
    if {"confirmed", "false_alarm"} <= set(latest.values()):
        return "disputed"
    return last.outcome


def step(state: TipState, event: TipEvent, history: Sequence[TipEvent] = ()) -> TipState:
    """The state after ``event`` (``history``: the events before it; outcomes need
    it); ``Conflict`` when the desk's rules forbid it."""
    if event.action == "expire":
        return "closed" if state in OPEN_STATES else state
    if event.action == "close":
        if state == "published":
            raise Conflict(*_PUBLISHED)
        if state == "closed":
            raise Conflict(*_CLOSED)
        return "closed"
    if state not in OPEN_STATES:
        raise Conflict(*_CLOSED)
    if event.action == "claim":
        return "claimed" if state == "new" else state
    if event.action == "outcome":
        if state == "new":
            raise Conflict("AVISA_NOT_CLAIMED", "claim the tip before recording an outcome")
        if event.ruling and state != "disputed":
            raise Conflict("AVISA_TIP_STATE", "only a disputed tip is settled by a ruling")
        return _judged([*history, event])
    if event.action == "update":
        return "claimed" if _resets(event) and state in JUDGED_STATES else state
    raise Conflict("AVISA_TIP_STATE", "publish goes through publish_certainty")


def confirmers(history: Sequence[TipEvent]) -> frozenset[str]:
    """Persons whose latest outcome since the last change of the tip is ``confirmed``."""
    return frozenset(
        person for person, outcome in standing(history).items() if outcome == "confirmed"
    )


def publish_certainty(
    state: TipState, history: Sequence[TipEvent], confirmations: int
) -> Certainty:
    """What an alert published from the tip may say, or ``Conflict`` (409)."""
    if state not in OPEN_STATES:
        raise Conflict(*_CLOSED)
    if state == "false_alarm":
        return "false"
    if state == "disputed":
        raise Conflict(
            "AVISA_DISPUTED",
            "verifiers disagree (confirmed and false alarm): a publisher's outcome settles it",
        )
    if state != "confirmed":
        raise Conflict(
            "AVISA_NEEDS_CONFIRMATION",
            f"the tip is {state}: only a confirmed tip or a false alarm is published",
        )
    have = len(confirmers(history))
    if have < confirmations:
        raise Conflict(
            "AVISA_NEEDS_CONFIRMATION",
            f"{have} of {confirmations} distinct verifiers confirmed it",
        )
    return "confirmed"


def expired(state: TipState, received_at: datetime, now: datetime, ttl: timedelta) -> bool:
    return state in OPEN_STATES and received_at + ttl <= now


# --- what the desk shows ------------------------------------------------------


class Cluster(Struct, frozen=True):
    """Tips that corroborate each other: ``id`` is the earliest tip's id."""

    id: str
    tips: int
    reporters: int
    channels: list[str]


class Tip(Struct, frozen=True, omit_defaults=True):
    """A tip as the desk shows it: never its contact, never its reporter hash."""

    id: str
    number: int
    channel: Channel
    received_at: datetime
    state: TipState
    text: str
    where: Where
    observed_at: datetime | None = None
    language: str | None = None
    activity: str | None = None
    agencies: list[str] = []
    vehicles: str | None = None
    size: str | None = None
    alert_id: str | None = None
    confirmations: int = 0
    history: list[TipEvent] = []
    cluster: Cluster | None = None


class ClusterInput(Struct, frozen=True):
    id: str
    number: int
    received_at: datetime
    geohash: str | None
    codes: tuple[str, ...]
    reporter: bytes | None
    channel: str


def _near(a: ClusterInput, b: ClusterInput, window: timedelta, precision: int) -> bool:
    if abs(a.received_at - b.received_at) > window:
        return False
    same_cell = (
        a.geohash is not None
        and b.geohash is not None
        and len(a.geohash) >= precision <= len(b.geohash)
        and a.geohash[:precision] == b.geohash[:precision]
    )
    return same_cell or bool(set(a.codes) & set(b.codes))


def clusters(tips: Sequence[ClusterInput], window: timedelta, precision: int) -> dict[str, Cluster]:
    """Each tip id → its cluster (a tip alone is a cluster of one).

    Union-find over pairs; tips are few (``max_open_tips`` bounds them) and
    sorted by time, so only pairs within ``window`` are compared.
    """
    ordered = sorted(tips, key=lambda tip: (tip.received_at, tip.number))
    parent = list(range(len(ordered)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, tip in enumerate(ordered):
        for j in range(i + 1, len(ordered)):
            if ordered[j].received_at - tip.received_at > window:
                break
            if _near(tip, ordered[j], window, precision):
                parent[root(j)] = root(i)
    groups: dict[int, list[ClusterInput]] = {}
    for i, tip in enumerate(ordered):
        groups.setdefault(root(i), []).append(tip)
    result: dict[str, Cluster] = {}
    for members in groups.values():
        reporters = {tip.reporter if tip.reporter is not None else tip.id for tip in members}
        cluster = Cluster(
            id=members[0].id,
            tips=len(members),
            reporters=len(reporters),
            channels=sorted({tip.channel for tip in members}),
        )
        for tip in members:
            result[tip.id] = cluster
    return result


tip_in_decoder: Final = msgspec.json.Decoder(TipIn)
_encoder: Final = msgspec.json.Encoder()


def encode(value: Struct) -> bytes:
    return _encoder.encode(value)
