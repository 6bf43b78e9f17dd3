"""What the node keeps about tips: the tip, its history, its sealed contact.

A tip row holds the ``TipIn`` as the node's own JSON encoding (``body``), the
columns queries and clustering need, the reporter's keyed hash, the reply
address only **sealed** (``relay.core.sealing``; the key is ``DIR/desk.key``,
never in this file) and an outside reference (a CAP alert's
``sender,identifier``), unique per node. ``number`` is a small per-node
counter (``tip_numbers``) so a verifier can type ``!claim 12``.

Every change of state appends one ``tip_history`` row in the same
transaction, so the desk's state and its history never disagree; a tip's
content changes only through ``revise``, which records what changed; a tip
holds at most ``MAX_HISTORY`` claims, outcomes and updates. A tip
leaving the open states (published, closed, expired) loses its contact at
once. ``purge`` deletes tips and their history ``retention`` after they came
in; with ``secure_delete`` and the WAL truncate the node runs after purging,
their bytes leave the file (DESIGN §8).

Floods hit their source (DESIGN §17). ``sent_since`` counts a sender's tips
(its reporter hash: a phone, a client bucket, a CAP source) for the per-hour
and per-day caps. The open tips are bounded (``[desk] max_open_tips``): when
a new tip would pass the bound, unclaimed tips of the **heaviest sender**
(most open tips, the new one included) expire first, oldest first; a
sender's only open tip is never expired for another sender's. Tips without a
sender (the hotline's, typed in by a volunteer) weigh together as one. When
no tip may go, the new tip is refused.

Functions take a connection inside a transaction the caller owns.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from relay.core.errors import BadInput, Conflict, NotFound
from relay.core.times import from_epoch, to_epoch
from relay.core.tips import (
    OPEN_STATES,
    ClusterInput,
    Tip,
    TipEvent,
    TipIn,
    TipState,
    changed_fields,
    step,
)
from relay.storage.trust import person_of

_tip_decoder = msgspec.json.Decoder(TipIn)
_event_decoder = msgspec.json.Decoder(TipEvent)
_encoder = msgspec.json.Encoder()
_OPEN = tuple(sorted(OPEN_STATES))
_OPEN_SQL = "state IN (" + ",".join("?" * len(_OPEN)) + ")"
_COLUMNS = "id, number, state, channel, received_at, alert_id, body"
# Events one tip may collect; closing, publishing and expiry are always recorded.
MAX_HISTORY = 200


@dataclass(frozen=True, slots=True)
class Stored:
    """A tip's row: what the desk shows, plus what it never shows."""

    tip: Tip
    reporter: bytes | None
    has_contact: bool


def _number(conn: sqlite3.Connection) -> int:
    conn.execute("UPDATE tip_numbers SET last = last + 1")
    return int(conn.execute("SELECT last FROM tip_numbers").fetchone()[0])


def by_source(conn: sqlite3.Connection, source_ref: str) -> str | None:
    row = conn.execute("SELECT id FROM tips WHERE source_ref = ?", (source_ref,)).fetchone()
    return None if row is None else str(row[0])


def sent_since(conn: sqlite3.Connection, reporter: bytes, since: datetime) -> int:
    """Tips from ``reporter`` received after ``since``, in any state."""
    row = conn.execute(
        "SELECT count(*) FROM tips WHERE reporter = ? AND received_at > ?",
        (reporter, to_epoch(since)),
    ).fetchone()
    return int(row[0])


def make_room(
    conn: sqlite3.Connection, now: datetime, max_open: int, reporter: bytes | None = None
) -> list[str]:
    """Expire unclaimed tips of the heaviest senders until one more (from
    ``reporter``) fits; ids expired, or ``AVISA_DESK_FULL``."""
    sql = f"SELECT count(*) FROM tips WHERE {_OPEN_SQL}"  # noqa: S608 - fixed text
    (count,) = conn.execute(sql, _OPEN).fetchone()
    excess = count - max_open + 1
    if excess <= 0:
        return []
    victims = _heaviest_first(conn, excess, reporter)
    if len(victims) < excess:
        raise BadInput(
            "AVISA_DESK_FULL", "the desk holds as many open tips as it may; try again later"
        )
    for tip_id in victims:
        record(conn, tip_id, TipEvent(at=now, actor="desk", action="expire", note="desk full"))
    return victims


def _heaviest_first(conn: sqlite3.Connection, wanted: int, reporter: bytes | None) -> list[str]:
    """Up to ``wanted`` unclaimed tips, each from the sender with most open tips then
    (ties: the sender whose oldest unclaimed tip is oldest). SQLite counts; Python picks."""
    sql = (
        "SELECT reporter, count(*), sum(state = 'new'),"  # noqa: S608 - fixed text
        " min(CASE WHEN state = 'new' THEN received_at END)"
        f" FROM tips WHERE +{_OPEN_SQL} GROUP BY reporter"  # +: tips_sender covers it
    )
    # sender (None: the tips without one, together) -> [open tips, unclaimed, oldest unclaimed]
    senders: dict[bytes | None, list[int]] = {
        None if sender is None else bytes(sender): [weight, unclaimed, oldest or 0]
        for sender, weight, unclaimed, oldest in conn.execute(sql, _OPEN)
    }
    senders.setdefault(reporter, [0, 0, 0])[0] += 1
    taken: Counter[bytes | None] = Counter()
    for _ in range(wanted):
        candidates = [s for s, (w, new, _) in senders.items() if new > taken[s] and w > 1]
        if not candidates:
            break
        heaviest = max(candidates, key=lambda s: (senders[s][0], -senders[s][2]))
        taken[heaviest] += 1
        senders[heaviest][0] -= 1
    victims: list[str] = []
    for sender, n in taken.items():
        rows = conn.execute(
            "SELECT id FROM tips WHERE reporter IS ? AND state = 'new'"
            " ORDER BY received_at, number LIMIT ?",
            (sender, n),
        )
        victims += [str(row[0]) for row in rows]
    return victims


def insert(
    conn: sqlite3.Connection,
    tip_id: str,
    tip: TipIn,
    now: datetime,
    *,
    reporter: bytes | None,
    contact: bytes | None,
    source_ref: str | None,
) -> int:
    """Store a new tip in state ``new``; returns its number."""
    number = _number(conn)
    conn.execute(
        "INSERT INTO tips (id, number, state, channel, received_at, geohash, codes, reporter,"
        " contact, source_ref, body) VALUES (?, ?, 'new', ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            tip_id,
            number,
            tip.channel,
            to_epoch(now),
            tip.where.geohash,
            json.dumps(tip.where.codes),
            reporter,
            contact,
            source_ref,
            _encoder.encode(tip),
        ),
    )
    return number


def revise(
    conn: sqlite3.Connection, tip_id: str, tip: TipIn, now: datetime, actor: str, why: str
) -> list[str]:
    """The one way a stored tip's content changes: the fields that differ from the
    stored version are replaced and recorded in one ``update`` event (which, after an
    outcome, sends the tip back to ``claimed``: ``tips.step``). Nothing changed:
    nothing recorded. ``why`` says from where (a source's reference)."""
    row = conn.execute("SELECT body FROM tips WHERE id = ?", (tip_id,)).fetchone()
    if row is None:
        raise NotFound("no such tip")
    changed = changed_fields(_tip_decoder.decode(row[0]), tip)
    if not changed:
        return []
    conn.execute(
        "UPDATE tips SET body = ?, geohash = ?, codes = ? WHERE id = ?",
        (_encoder.encode(tip), tip.where.geohash, json.dumps(tip.where.codes), tip_id),
    )
    note = f"{'/'.join(changed)} ← {why}"[:1000]
    event = TipEvent(at=now, actor=actor, action="update", changed=changed, note=note)
    record(conn, tip_id, event)
    return list(changed)


def find(conn: sqlite3.Connection, ref: str) -> str:
    """A tip's id from its id or its number (as the desk room types it)."""
    if ref.isascii() and ref.isdigit() and len(ref) < 12:
        row = conn.execute("SELECT id FROM tips WHERE number = ?", (int(ref),)).fetchone()
    else:
        row = conn.execute("SELECT id FROM tips WHERE id = ?", (ref,)).fetchone()
    if row is None:
        raise NotFound("no such tip (it may have expired and been deleted)")
    return str(row[0])


def state_of(conn: sqlite3.Connection, tip_id: str) -> TipState:
    row = conn.execute("SELECT state FROM tips WHERE id = ?", (tip_id,)).fetchone()
    if row is None:
        raise NotFound("no such tip")
    return row[0]  # type: ignore[no-any-return]


def record(
    conn: sqlite3.Connection, tip_id: str, event: TipEvent, state: TipState | None = None
) -> TipState:
    """Append ``event`` and move the tip to its next state (``step``, or ``state``
    when the caller decided it, as publishing does). Leaving the open states
    drops the contact in the same transaction."""
    current = state_of(conn, tip_id)
    before = history(conn, tip_id) if event.action == "outcome" else []
    after = state if state is not None else step(current, event, before)
    if event.action in ("claim", "outcome", "update"):
        (events,) = conn.execute(
            "SELECT count(*) FROM tip_history WHERE tip_id = ?", (tip_id,)
        ).fetchone()
        if events >= MAX_HISTORY:
            raise Conflict("AVISA_TIP_BUSY", f"the tip has {MAX_HISTORY} events; close it")
    contact = "contact" if after in OPEN_STATES else "NULL"
    conn.execute(
        f"UPDATE tips SET state = ?, contact = {contact},"  # noqa: S608 - two fixed words
        " alert_id = coalesce(?, alert_id) WHERE id = ?",
        (after, event.alert_id, tip_id),
    )
    conn.execute(
        "INSERT INTO tip_history (tip_id, event) VALUES (?, ?)", (tip_id, _encoder.encode(event))
    )
    return after


def sealed_contact(conn: sqlite3.Connection, tip_id: str) -> bytes | None:
    row = conn.execute("SELECT contact FROM tips WHERE id = ?", (tip_id,)).fetchone()
    return None if row is None or row[0] is None else bytes(row[0])


def history(conn: sqlite3.Connection, tip_id: str) -> list[TipEvent]:
    """The tip's events in order, each naming its actor's person as the desk knows it
    now (a Matrix id linked after it acted), else as it was recorded."""
    rows = conn.execute("SELECT event FROM tip_history WHERE tip_id = ? ORDER BY n", (tip_id,))
    events = [_event_decoder.decode(row[0]) for row in rows]
    persons = {actor: person_of(conn, actor) for actor in {event.actor for event in events}}
    return [
        msgspec.structs.replace(event, person=persons[event.actor])
        if persons[event.actor] not in (None, event.person)
        else event
        for event in events
    ]


def _tip(conn: sqlite3.Connection, row: Sequence[object], with_history: bool) -> Tip:
    tip_id, number, state, channel, received, alert_id, body = row
    tip_in = _tip_decoder.decode(body)  # type: ignore[arg-type]
    events = history(conn, str(tip_id)) if with_history else []
    return Tip(
        id=str(tip_id),
        number=int(number),  # type: ignore[call-overload]
        channel=channel,  # type: ignore[arg-type]
        received_at=from_epoch(int(received)),  # type: ignore[call-overload]
        state=state,  # type: ignore[arg-type]
        text=tip_in.text,
        where=tip_in.where,
        observed_at=tip_in.observed_at,
        language=tip_in.language,
        activity=tip_in.activity,
        agencies=list(tip_in.agencies),
        vehicles=tip_in.vehicles,
        size=tip_in.size,
        alert_id=alert_id,  # type: ignore[arg-type]
        history=events,
    )


def get(conn: sqlite3.Connection, tip_id: str, with_history: bool = True) -> Tip:
    sql = f"SELECT {_COLUMNS} FROM tips WHERE id = ?"  # noqa: S608 - fixed text
    row = conn.execute(sql, (tip_id,)).fetchone()
    if row is None:
        raise NotFound("no such tip")
    return _tip(conn, row, with_history)


def listing(conn: sqlite3.Connection, *, open_only: bool, limit: int) -> list[Tip]:
    """Newest first, each with its history (the desk shows who is on it)."""
    where, params = (_OPEN_SQL, _OPEN) if open_only else ("1", ())
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM tips WHERE {where} ORDER BY received_at DESC, number DESC"  # noqa: S608
        " LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [_tip(conn, row, True) for row in rows]


def cluster_inputs(conn: sqlite3.Connection, since: datetime) -> list[ClusterInput]:
    """Every tip received since ``since``: what corroboration compares."""
    rows = conn.execute(
        "SELECT id, number, received_at, geohash, codes, reporter, channel FROM tips"
        " WHERE received_at >= ?",
        (to_epoch(since),),
    )
    return [
        ClusterInput(
            tip_id,
            number,
            from_epoch(received),
            geohash,
            tuple(json.loads(codes)),
            None if reporter is None else bytes(reporter),
            channel,
        )
        for tip_id, number, received, geohash, codes, reporter, channel in rows
    ]


def expire(conn: sqlite3.Connection, now: datetime, ttl: timedelta) -> list[str]:
    """Close the open tips received ``ttl`` ago or earlier; ids closed."""
    due = [
        str(row[0])
        for row in conn.execute(
            f"SELECT id FROM tips WHERE {_OPEN_SQL} AND received_at <= ?",  # noqa: S608
            (*_OPEN, to_epoch(now - ttl)),
        )
    ]
    for tip_id in due:
        record(conn, tip_id, TipEvent(at=now, actor="desk", action="expire"))
    return due


def purge(conn: sqlite3.Connection, now: datetime, retention: timedelta) -> int:
    """Delete tips (and, by cascade, their history) received ``retention`` ago."""
    cutoff = to_epoch(now - retention)
    conn.execute(
        "DELETE FROM tip_history WHERE tip_id IN (SELECT id FROM tips WHERE received_at <= ?)",
        (cutoff,),
    )
    return int(conn.execute("DELETE FROM tips WHERE received_at <= ?", (cutoff,)).rowcount)


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT state, count(*) FROM tips GROUP BY state").fetchall())


def forget_contact_of(conn: sqlite3.Connection, reporter: bytes) -> int:
    """Erase the sealed contact of every open tip ``reporter`` sent (the number texted
    STOP: it gets no reply of any kind); how many tips lost it. Only open tips still
    hold one. Through the state index: the open tips are few (``max_open_tips``)."""
    sql = f"UPDATE tips SET contact = NULL WHERE {_OPEN_SQL} AND reporter = ?"  # noqa: S608
    return int(conn.execute(sql + " AND contact IS NOT NULL", (*_OPEN, reporter)).rowcount)
