"""What the node keeps about alerts: rows, the feed, tombstones, decisions.

All functions here take an open ``sqlite3.Connection`` and run inside a
transaction the caller owns (a ``Database.write`` job, or ``db.transaction``
for the CLI), so an accepted alert, its feed row, its effects on the alerts it
updates or cancels and its decision are written together or not at all.

``alerts`` keeps each envelope as the bytes the node verified (the payload
exactly as signed) plus the few columns queries need. ``feed`` is the
append-only change log in acceptance order; its ``pos`` is the cursor for the
SSE stream, bridges and federation catch-up. A cancel or update leaves a
``tombstone`` for every id it names, kept longer than any alert could live, so
a withdrawn alert can never be replayed back in. Storing an accepted or held
message — its row, feed row, tombstones, outbox rows and the origin's ``seq``
and gaps — has one implementation, ``relay.storage.writes.Writes``; this
module holds the reads, the decision log, a reviewer's rejection and
``purge``, which deletes what has passed retention (with ``secure_delete``
and a WAL truncate afterwards the bytes leave the file).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec

from relay.core.envelope import payload_bytes
from relay.core.model import Alert, Area, decode_alert, envelope_decoder
from relay.core.policy import Decision, PolicyState
from relay.core.times import from_epoch, to_epoch
from relay.storage import chain

State = Literal["active", "held", "cancelled", "superseded"]
MAX_CHAIN = 64  # updates followed from a superseded id to its newest version
ViewState = Literal["active", "held", "cancelled", "superseded", "expired"]


class AlertView(msgspec.Struct, frozen=True, omit_defaults=True):
    """One alert as the local API shows it (DESIGN §6); ``origin_status`` only when its
    origin is ``silent`` and it is active (DESIGN §16)."""

    alert: Alert
    origin: str
    endorsed_by: list[str]
    state: ViewState
    received_at: datetime
    origin_status: str | None = None


@dataclass(frozen=True, slots=True)
class StoredAlert:
    alert: Alert
    envelope: bytes
    endorsed_by: list[str]
    state: State
    reason: str
    received_at: datetime
    from_peer: str | None
    pos: int | None

    @property
    def keyids(self) -> list[str]:
        """The keyids of the envelope's signatures, in order."""
        return [signature.keyid for signature in envelope_decoder.decode(self.envelope).signatures]

    def view_state(self, now: datetime) -> ViewState:
        if self.state == "active" and self.alert.msg_type == "cancel":
            return "cancelled"  # a withdrawal is never in force
        if self.state == "active" and self.alert.expires_at <= now:
            return "expired"
        return self.state

    def view(self, now: datetime, silent: Container[str] = ()) -> AlertView:
        """As the API shows it; ``silent``: the origins gone silent."""
        state = self.view_state(now)
        quiet = state == "active" and self.alert.network in silent
        return AlertView(
            alert=self.alert,
            origin=self.alert.network,
            endorsed_by=self.endorsed_by,
            state=state,
            received_at=self.received_at,
            origin_status="silent" if quiet else None,
        )


class Incoming(msgspec.Struct, frozen=True):
    """An envelope that parsed, verified and decoded; ready for policy."""

    envelope_bytes: bytes
    alert: Alert
    endorsed_by: list[str]
    #: SHA-256 of its PAE bytes when its origin's own key signed it (it joins the
    #: origin's hash chain, ``relay.storage.chain``); None otherwise.
    digest: bytes | None = None


_COLUMNS = "envelope, endorsed_by, state, reason, received_at, from_peer, pos"


def _row_to_stored(row: Sequence[Any]) -> StoredAlert:
    envelope, endorsed_by, state, reason, received_at, from_peer, pos = row
    alert = decode_alert(payload_bytes(envelope_decoder.decode(envelope)))
    return StoredAlert(
        alert=alert,
        envelope=bytes(envelope),
        endorsed_by=json.loads(endorsed_by),
        state=state,
        reason=reason,
        received_at=from_epoch(received_at),
        from_peer=from_peer,
        pos=pos,
    )


# --- the write side -------------------------------------------------------


def policy_state(
    conn: sqlite3.Connection, alert: Alert, from_peer: str | None, recent_from_peer: int = 0
) -> PolicyState:
    row = conn.execute("SELECT state FROM alerts WHERE id = ?", (alert.id,)).fetchone()
    stored: Literal["no", "held", "accepted"] = (
        "no" if row is None else "held" if row[0] == "held" else "accepted"
    )
    tomb = conn.execute("SELECT kind FROM tombstones WHERE id = ?", (alert.id,)).fetchone()
    cancelled_refs = bool(alert.references) and (
        conn.execute(
            f"SELECT 1 FROM tombstones WHERE kind = 'cancelled' AND id IN "
            f"({','.join('?' * len(alert.references))}) LIMIT 1",
            alert.references,
        ).fetchone()
        is not None
    )
    return PolicyState(
        stored=stored,
        tombstone=None if tomb is None else tomb[0],
        references_cancelled=cancelled_refs,
        from_peer=from_peer,
        recent_from_peer=recent_from_peer,
        referenced_areas=_referenced_areas(conn, alert),
    )


def _referenced_areas(conn: sqlite3.Connection, alert: Alert) -> tuple[Area, ...]:
    """For an update: the areas of the messages it references held here (the freeze of a
    trust list lets an update through only when it narrows them, relay.core.policy)."""
    if alert.msg_type != "update":
        return ()
    rows = conn.execute(
        f"SELECT envelope FROM alerts WHERE network = ? AND id IN "
        f"({','.join('?' * len(alert.references))})",
        (alert.network, *alert.references),
    ).fetchall()
    return tuple(decode_alert(payload_bytes(envelope_decoder.decode(r[0]))).area for r in rows)


INSERT_DECISION = (
    "INSERT INTO decisions (at, alert_id, network, peer, action, reason) VALUES (?, ?, ?, ?, ?, ?)"
)


def decision_row(
    at_s: int, decision: Decision, alert: Alert | None, peer: str | None
) -> tuple[object, ...]:
    """The ``decisions`` row of one decision, in the column order of ``INSERT_DECISION``."""
    alert_id, network = (alert.id, alert.network) if alert else (None, None)
    return (at_s, alert_id, network, peer, decision.action, decision.reason)


def record_decision(
    conn: sqlite3.Connection,
    now: datetime,
    decision: Decision,
    alert: Alert | None,
    peer: str | None,
) -> None:
    """One decision, written now (a writer job's go through ``Writes.decision``)."""
    conn.execute(INSERT_DECISION, decision_row(to_epoch(now), decision, alert, peer))


def next_seq(conn: sqlite3.Connection, network: str) -> int:
    row = conn.execute("SELECT max_seq FROM origins WHERE network = ?", (network,)).fetchone()
    seq = 1 if row is None else int(row[0]) + 1
    conn.execute(
        "INSERT INTO origins (network, max_seq) VALUES (?, ?) ON CONFLICT (network)"
        " DO UPDATE SET max_seq = excluded.max_seq",
        (network, seq),
    )
    return seq


def reject_held(
    conn: sqlite3.Connection, alert_id: str, now: datetime, tombstone_ttl: timedelta
) -> bool:
    """Drop a held alert and remember the verdict, so no peer can re-queue it."""
    cursor = conn.execute("DELETE FROM alerts WHERE id = ? AND state = 'held'", (alert_id,))
    if cursor.rowcount == 0:
        return False
    conn.execute(
        "INSERT OR IGNORE INTO tombstones (id, kind, by_id, keep_until)"
        " VALUES (?, 'rejected', 'reviewer', ?)",
        (alert_id, to_epoch(now + tombstone_ttl)),
    )
    return True


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    alerts: int
    tombstones: int
    decisions: int


def purge(
    conn: sqlite3.Connection, now: datetime, retention: timedelta, decision_log_max: int
) -> PurgeCounts:
    """Delete alerts ``retention`` after expiry, stale tombstones, old decisions."""
    cutoff = to_epoch(now - retention)
    conn.execute(
        "DELETE FROM feed WHERE alert_id IN (SELECT id FROM alerts WHERE expires_at <= ?)",
        (cutoff,),
    )
    alerts = conn.execute("DELETE FROM alerts WHERE expires_at <= ?", (cutoff,)).rowcount
    tombstones = conn.execute(
        "DELETE FROM tombstones WHERE keep_until <= ?", (to_epoch(now),)
    ).rowcount
    decisions = conn.execute(
        "DELETE FROM decisions WHERE at <= ? OR n <= (SELECT max(n) FROM decisions) - ?",
        (cutoff, decision_log_max),
    ).rowcount
    chain.purge(conn)
    return PurgeCounts(alerts, tombstones, decisions)


# --- the read side --------------------------------------------------------


def newest_version(conn: sqlite3.Connection, alert_id: str) -> tuple[str, str | None]:
    """Follow "superseded by" from ``alert_id``: (the newest id, ``cancelled`` or None)."""
    for _ in range(MAX_CHAIN):
        row = conn.execute(
            "SELECT kind, by_id FROM tombstones WHERE id = ?", (alert_id,)
        ).fetchone()
        if row is None or row[0] == "rejected":
            return alert_id, None
        if row[0] == "cancelled":
            return str(row[1]), "cancelled"
        alert_id = str(row[1])
    return alert_id, None


def message_at(conn: sqlite3.Connection, network: str, seq: int) -> bytes | None:
    """The envelope of message ``seq`` of ``network`` as verified, unless none is stored or
    it is held (a message this node has not decided is not passed on). Expired ones too:
    a peer that fetches one to repair its chain chains it and its policy refuses it."""
    row = conn.execute(
        "SELECT envelope FROM alerts WHERE network = ? AND seq = ? AND state != 'held' LIMIT 1",
        (network, seq),
    ).fetchone()
    return None if row is None else bytes(row[0])


def get(conn: sqlite3.Connection, alert_id: str) -> StoredAlert | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    return None if row is None else _row_to_stored(row)


def listing(
    conn: sqlite3.Connection,
    now: datetime,
    *,
    active_only: bool,
    held: bool = False,
    limit: int = 100,
    keep: Callable[[Alert], bool] = lambda alert: True,
) -> list[StoredAlert]:
    """Newest first, up to ``limit`` for which ``keep`` holds.

    ``active_only`` hides cancelled, superseded and expired alerts (a cancel message
    stays: the CAP feed carries it while it matters; the API leaves it out).
    """
    params: tuple[int, ...] = ()
    if held:
        where = "state = 'held'"
    elif active_only:
        where, params = "state = 'active' AND expires_at > ?", (to_epoch(now),)
    else:
        where = "state != 'held'"
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM alerts WHERE {where} ORDER BY received_at DESC, rowid DESC",
        params,
    )
    found: list[StoredAlert] = []
    for row in rows:
        stored = _row_to_stored(row)
        if keep(stored.alert):
            found.append(stored)
            if len(found) == limit:
                break
    return found


_FEED_COLUMNS = ", ".join("a." + c.strip() for c in _COLUMNS.split(","))


def feed_since(conn: sqlite3.Connection, pos: int, limit: int) -> list[tuple[int, StoredAlert]]:
    """Accepted messages after ``pos`` in acceptance order (the stream, catch-up)."""
    rows = conn.execute(
        f"SELECT feed.pos, {_FEED_COLUMNS} FROM feed JOIN alerts AS a ON a.id = feed.alert_id"
        " WHERE feed.pos > ? AND feed.event != 'withdraw' ORDER BY feed.pos LIMIT ?",
        (pos, limit),
    ).fetchall()
    return [(int(row[0]), _row_to_stored(row[1:])) for row in rows]


FeedEvent = Literal["alert", "update", "cancel", "withdraw"]


def feed_events_since(
    conn: sqlite3.Connection, pos: int, limit: int
) -> list[tuple[int, FeedEvent, StoredAlert]]:
    """Every feed event after ``pos``, withdrawals included (bridges)."""
    rows = conn.execute(
        f"SELECT feed.pos, feed.event, {_FEED_COLUMNS}"
        " FROM feed JOIN alerts AS a ON a.id = feed.alert_id"
        " WHERE feed.pos > ? ORDER BY feed.pos LIMIT ?",
        (pos, limit),
    ).fetchall()
    return [(int(row[0]), row[1], _row_to_stored(row[2:])) for row in rows]


def withdraw(conn: sqlite3.Connection, alert_id: str) -> int:
    """An accepted alert goes back to review: consumers that have not seen it yet never
    will (its feed rows go), and those that have get a ``withdraw`` event; its position."""
    conn.execute("DELETE FROM feed WHERE alert_id = ?", (alert_id,))
    cursor = conn.execute("INSERT INTO feed (alert_id, event) VALUES (?, 'withdraw')", (alert_id,))
    return int(cursor.lastrowid or 0)


class Delivered(msgspec.Struct, frozen=True):
    """An active alert as a peer delivered it: what re-deciding it needs."""

    id: str
    envelope: bytes
    received_at: datetime
    from_peer: str


def delivered_since(conn: sqlite3.Connection, since: datetime) -> list[Delivered]:
    """Active alerts a peer delivered at or after ``since``, in the order they arrived."""
    rows = conn.execute(
        "SELECT id, envelope, received_at, from_peer FROM alerts"
        " WHERE state = 'active' AND from_peer IS NOT NULL AND received_at >= ?"
        " ORDER BY received_at",
        (to_epoch(since),),
    ).fetchall()
    return [Delivered(str(i), bytes(raw), from_epoch(at), str(peer)) for i, raw, at, peer in rows]


def hold(conn: sqlite3.Connection, alert_id: str, reason: str) -> None:
    """An active alert goes back to ``held`` for ``reason``, off the feed (see ``withdraw``)."""
    conn.execute(
        "UPDATE alerts SET state = 'held', reason = ?, pos = NULL WHERE id = ?",
        (reason, alert_id),
    )


def was_withdrawn(conn: sqlite3.Connection, alert_id: str) -> bool:
    """Whether ``alert_id`` was taken back after it was accepted (a ``withdraw`` event)."""
    row = conn.execute(
        "SELECT 1 FROM feed WHERE alert_id = ? AND event = 'withdraw' LIMIT 1", (alert_id,)
    ).fetchone()
    return row is not None


def feed_head(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'feed'").fetchone()
    return 0 if row is None else int(row[0])


class DecisionRow(msgspec.Struct, frozen=True):
    at: datetime
    alert_id: str | None
    network: str | None
    peer: str | None
    decision: str
    reason: str


def decisions(conn: sqlite3.Connection, limit: int) -> list[DecisionRow]:
    rows = conn.execute(
        "SELECT at, alert_id, network, peer, action, reason FROM decisions ORDER BY n DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [
        DecisionRow(from_epoch(at), alert_id, network, peer, action, reason)
        for at, alert_id, network, peer, action, reason in rows
    ]


def counts(conn: sqlite3.Connection, now: datetime) -> dict[str, int]:
    """Gauges for /metrics: alerts by shown state."""
    result = dict.fromkeys(("active", "held", "cancelled", "superseded", "expired"), 0)
    for state, expired, cancel, count in conn.execute(
        "SELECT state, expires_at <= ?, msg_type = 'cancel', count(*) FROM alerts GROUP BY 1, 2, 3",
        (to_epoch(now),),
    ):
        key = "cancelled" if state == "active" and cancel else state
        key = "expired" if key == "active" and expired else key
        result[key] += int(count)
    return result


def acceptance(conn: sqlite3.Connection, alert_id: str) -> tuple[int, str | None, str] | None:
    """When and how an alert came to be accepted here (``at``, ``peer``, ``reason``), from
    the decision log; None once that row is purged (``decisions_retention``)."""
    row = conn.execute(
        "SELECT at, peer, reason FROM decisions WHERE alert_id = ? AND action = 'accept'"
        " ORDER BY n DESC LIMIT 1",
        (alert_id,),
    ).fetchone()
    return None if row is None else (int(row[0]), row[1], str(row[2]))
