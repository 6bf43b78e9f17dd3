"""A writer job's new alerts, written with one statement per table, not a dozen per alert.

The pipeline decides a transaction's envelopes one by one, in order. Most
are plain new alerts: ``msg_type`` alert, an id the store has never seen.
For those, everything the decision needs from the store is known before
anything is written: one query per table (``Known``) says which of the
job's ids the store already holds or has tombstoned. Their rows (alert,
feed entry, the origin's highest ``seq``, outbox rows, decision) are
buffered in ``Writes`` and go in with one multi-row INSERT per table; an
origin's ``seq`` gaps are read once and written back once (``gaps.OriginGaps``).

Everything else — updates and cancels, ids the store already knows, an id
that an earlier envelope of the same job wrote or referenced — takes the
one-by-one path of ``relay.storage.store``, after ``flush`` has written what is
buffered, so it sees exactly what it would have seen had every envelope been
written alone. Outcomes and rows are the same either way (the test suite
checks this table by table); only the number of statements changes.

A new alert's feed position is taken from the feed's AUTOINCREMENT counter
(``sqlite_sequence``), which only this writer connection moves and which is
re-read after every flush, so the alert row is written once, with its
position, instead of inserted and then updated.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from relay.core.model import Alert
from relay.core.policy import Decision, PolicyState
from relay.core.times import to_epoch
from relay.storage import gaps, outbox, store

# Bound parameters per statement stay well under SQLite's limit (32766).
_IN_CHUNK = 500
# Rows per multi-row INSERT at most (a transaction's 50 envelopes go in one statement).
_MAX_ROWS = 64


@lru_cache(maxsize=512)
def _multi_row(insert: str, rows: int) -> str:
    head, values, tail = insert.partition(" VALUES ")
    group, _, rest = tail.partition(")")
    return head + values + ", ".join([group + ")"] * rows) + rest


def insert_rows(conn: sqlite3.Connection, insert: str, rows: Sequence[Sequence[object]]) -> None:
    """Run ``insert`` (one ``VALUES (?, …)`` group) for every row, many rows per statement.

    One statement for many rows is one ``sqlite3_step``: the writer releases
    and re-takes the GIL once instead of once per row, and each time it
    re-takes it, it may have to wait for another thread's Python to yield
    (up to the interpreter's switch interval). Statements of each row count
    stay in SQLite's statement cache (``db.STATEMENT_CACHE``).
    """
    for start in range(0, len(rows), _MAX_ROWS):
        part = rows[start : start + _MAX_ROWS]
        conn.execute(_multi_row(insert, len(part)), [value for row in part for value in row])


@dataclass(frozen=True, slots=True)
class Known:
    """Of some ids: those the store holds (any state) or has tombstoned."""

    ids: frozenset[str]

    @classmethod
    def lookup(cls, conn: sqlite3.Connection, ids: Iterable[str]) -> Known:
        """One statement for both tables (each statement costs the writer a GIL hand-off)."""
        wanted = list(dict.fromkeys(ids))
        found: set[str] = set()
        for start in range(0, len(wanted), _IN_CHUNK):
            part = wanted[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(part))
            query = (
                f"SELECT id FROM alerts WHERE id IN ({marks})"  # noqa: S608
                f" UNION ALL SELECT id FROM tombstones WHERE id IN ({marks})"
            )
            found.update(row[0] for row in conn.execute(query, part + part))
        return cls(frozenset(found))

    def is_new(self, alert_id: str) -> bool:
        return alert_id not in self.ids


#: The policy state of an id the store has never seen, as ``store.policy_state`` would give it.
def new_state(from_peer: str | None, recent_from_peer: int) -> PolicyState:
    return PolicyState(from_peer=from_peer, recent_from_peer=recent_from_peer)


@lru_cache(maxsize=1024)
def _endorsers_json(endorsers: tuple[str, ...]) -> str:
    return json.dumps(list(endorsers))


class Writes:
    """Buffered rows of one writer job; ``flush`` before any one-by-one store call."""

    def __init__(self, conn: sqlite3.Connection, now: datetime) -> None:
        self._conn = conn
        self._now = now
        self._now_s = to_epoch(now)
        self._alerts: list[tuple[object, ...]] = []
        self._feed: list[tuple[int, str, str]] = []
        self._outbox: list[tuple[str, str, int, int]] = []
        self._decisions: list[tuple[object, ...]] = []
        self._origins: dict[str, int] = {}
        self._tops: dict[str, int | None] = {}
        self._gaps: dict[str, gaps.OriginGaps] = {}
        self._head: int | None = None
        self._router = outbox.Router(conn)
        #: Peers whose outbox got rows in this job; None once that is not known
        #: (an alert went through ``store.save``, which queues on its own).
        self.queued_for: set[str] | None = set()

    def saved_one_by_one(self, decision: Decision) -> None:
        if decision.accepted:
            self.queued_for = None

    def save_new(
        self,
        item: store.Incoming,
        keyids: list[str],
        decision: Decision,
        from_peer: str | None,
    ) -> int | None:
        """``store.save`` for an id the store has never seen; the feed position if accepted."""
        alert = item.alert
        self._observe_seq(alert.network, alert.seq, from_peer)
        pos = None
        if decision.accepted:
            pos = self._next_pos()
            self._feed.append((pos, alert.id, alert.msg_type))
            rows = self._router.rows(alert, from_peer, keyids)
            self._outbox.extend(rows)
            if self.queued_for is not None:
                self.queued_for.update(peer for peer, _, _, _ in rows)
        endorsers = _endorsers_json(tuple(item.endorsed_by))
        self._alerts.append(store.alert_row(item, decision, from_peer, self._now_s, pos, endorsers))
        return pos

    def decision(self, decision: Decision, alert: Alert | None, peer: str | None) -> None:
        """``store.record_decision``, buffered (rows keep the order decisions were made in)."""
        alert_id, network = (alert.id, alert.network) if alert else (None, None)
        self._decisions.append(
            (self._now_s, alert_id, network, peer, decision.action, decision.reason)
        )

    def _observe_seq(self, network: str, seq: int, from_peer: str | None) -> None:
        if network in self._tops:
            top = self._tops[network]
        else:
            top = gaps.highest_seq(self._conn, network)
        if from_peer is not None and top is not None and seq != top + 1:
            if network not in self._gaps:
                self._gaps[network] = gaps.OriginGaps(self._conn, network)
            self._gaps[network].observe(seq, top, from_peer, self._now_s)
        highest = seq if top is None else max(top, seq)
        self._tops[network] = self._origins[network] = highest

    def _next_pos(self) -> int:
        if self._head is None:
            self._head = store.feed_head(self._conn)
        self._head += 1
        return self._head

    def flush(self) -> None:
        conn = self._conn
        insert_rows(conn, store.INSERT_NEW_ALERT, self._alerts)
        insert_rows(conn, "INSERT INTO feed (pos, alert_id, event) VALUES (?, ?, ?)", self._feed)
        insert_rows(conn, store.UPSERT_ORIGIN, list(self._origins.items()))
        insert_rows(conn, outbox.INSERT_ROW, self._outbox)
        insert_rows(conn, store.INSERT_DECISION, self._decisions)
        for origin_gaps in self._gaps.values():
            origin_gaps.save(conn)
        self._alerts, self._feed, self._outbox, self._decisions = [], [], [], []
        self._origins, self._tops, self._gaps, self._head = {}, {}, {}, None
