"""The one way an accepted or held message is stored: a writer job's ``Writes``.

The pipeline decides a job's envelopes one by one, in order, and stores
each through ``Writes.save``; a reviewer's accept of a held alert goes
through ``Writes.activate``, the part of ``save`` that makes a stored
message active. Most messages are plain new alerts: ``msg_type`` alert,
an id the store has never seen. For those, everything the decision needs
from the store is known before anything is written: one query per table
(``Known``) says which of the job's ids the store already holds or has
tombstoned. Their rows (alert, feed entry, outbox rows, decision) are
buffered and go in with one multi-row INSERT per table.

Everything else — updates and cancels, ids the store already knows, an id
that an earlier envelope of the same job wrote or referenced — is written
at once, after ``flush`` has written what is buffered, so it sees exactly
what it would have seen had every envelope been written alone
(``policy_state`` flushes before it reads). Outcomes and rows are the same
either way (the test suite checks this table by table); only the number of
statements changes. Either way, an origin's highest ``seq`` and its gaps
(``gaps.OriginGaps``) are read once per job and written back at the flush,
and the outbox rows are those of ``outbox.Router``. So is each origin's hash
chain (``chain.OriginChain``), which ``advance_chain`` moves for every message
its origin signed, stored or not.

A feed position is taken from the feed's AUTOINCREMENT counter
(``sqlite_sequence``), which only this writer connection moves and which is
re-read after every flush, so a new alert's row is written once, with its
position, instead of inserted and then updated.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from relay.core.model import Alert
from relay.core.policy import Decision, PolicyState
from relay.core.times import to_epoch
from relay.storage import chain, gaps, outbox, store

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


@lru_cache(maxsize=1024)
def _endorsers_json(endorsers: tuple[str, ...]) -> str:
    return json.dumps(list(endorsers))


INSERT_ALERT = (
    "INSERT INTO alerts (id, network, seq, msg_type, kind, certainty, sent_at, expires_at,"
    " received_at, state, reason, from_peer, endorsed_by, pos, envelope)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: An id the store may hold already: only a held alert is overwritten (re-held or accepted).
UPSERT_ALERT = (
    INSERT_ALERT + " ON CONFLICT (id) DO UPDATE SET state = excluded.state,"
    " reason = excluded.reason, endorsed_by = excluded.endorsed_by,"
    " envelope = excluded.envelope, from_peer = excluded.from_peer,"
    " received_at = excluded.received_at WHERE alerts.state = 'held'"
)
UPSERT_ORIGIN = (
    "INSERT INTO origins (network, max_seq) VALUES (?, ?) ON CONFLICT (network)"
    " DO UPDATE SET max_seq = max(max_seq, excluded.max_seq)"
)
INSERT_FEED = "INSERT INTO feed (pos, alert_id, event) VALUES (?, ?, ?)"
UPSERT_TOMBSTONE = (
    "INSERT INTO tombstones (id, kind, by_id, keep_until) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, by_id = excluded.by_id,"
    " keep_until = max(keep_until, excluded.keep_until)"
    " WHERE excluded.kind = 'cancelled' OR tombstones.kind = 'superseded'"
)


def alert_row(
    item: store.Incoming,
    decision: Decision,
    from_peer: str | None,
    received_s: int,
    pos: int | None,
    endorsed_by_json: str,
) -> tuple[object, ...]:
    """The ``alerts`` row of an accepted or held alert, in the column order of its INSERTs."""
    alert = item.alert
    return (
        alert.id,
        alert.network,
        alert.seq,
        alert.msg_type,
        alert.kind,
        alert.certainty,
        to_epoch(alert.sent_at),
        to_epoch(alert.expires_at),
        received_s,
        "active" if decision.accepted else "held",
        decision.reason,
        from_peer,
        endorsed_by_json,
        pos,
        item.envelope_bytes,
    )


class Writes:
    """One writer job's stores; ``flush`` writes what is buffered (the job ends with it)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        now: datetime,
        tombstone_ttl: timedelta,
        ids: Iterable[str] = (),
    ) -> None:
        """``ids``: every id the job will pass to ``policy_state``, looked up with one query
        (``Known``); an id left out counts as one the store has never seen."""
        self._conn = conn
        self._now_s = to_epoch(now)
        self._keep_tombstones_until = to_epoch(now + tombstone_ttl)
        self._known = Known.lookup(conn, ids)
        self._touched: set[str] = set()  # ids an earlier message of this job wrote or named
        self._alerts: list[tuple[object, ...]] = []
        self._feed: list[tuple[int, str, str]] = []
        self._outbox: list[tuple[str, str, int, int]] = []
        self._decisions: list[tuple[object, ...]] = []
        self._origins: dict[str, int] = {}
        self._tops: dict[str, int | None] = {}
        self._gaps: dict[str, gaps.OriginGaps] = {}
        self._chains: dict[str, chain.OriginChain] = {}
        self._head: int | None = None
        self._router = outbox.Router(conn)
        #: Peers whose outbox got rows in this job; None once that is not known
        #: (an update, a cancel or a held alert made active: rare, every sender looks).
        self.queued_for: set[str] | None = set()

    def policy_state(
        self, alert: Alert, from_peer: str | None, recent_from_peer: int
    ) -> tuple[PolicyState, bool]:
        """What the store says about ``alert`` for the policy, and whether it is new (its
        rows can wait in the buffers). Call it for each message in turn, then ``save``."""
        new = (
            alert.msg_type == "alert"
            and alert.id not in self._touched
            and self._known.is_new(alert.id)
        )
        self._touched.add(alert.id)
        self._touched.update(alert.references)
        if new:
            return PolicyState(from_peer=from_peer, recent_from_peer=recent_from_peer), True
        self.flush()  # the store must show everything decided before this message
        return store.policy_state(self._conn, alert, from_peer, recent_from_peer), False

    def save(
        self,
        item: store.Incoming,
        keyids: list[str],
        decision: Decision,
        from_peer: str | None,
        *,
        new: bool,
    ) -> int | None:
        """Store an accepted or held message (``new`` as ``policy_state`` said); its feed
        position if accepted."""
        alert = item.alert
        self._observe_seq(alert.network, alert.seq, from_peer)
        endorsers = _endorsers_json(tuple(item.endorsed_by))
        if not new:
            self.flush()
            row = alert_row(item, decision, from_peer, self._now_s, None, endorsers)
            self._conn.execute(UPSERT_ALERT, row)
            return self.activate(alert, keyids, from_peer) if decision.accepted else None
        pos = None
        if decision.accepted:
            pos = self._next_pos()
            self._feed.append((pos, alert.id, alert.msg_type))
            self._queue(alert, keyids, from_peer)
        self._alerts.append(alert_row(item, decision, from_peer, self._now_s, pos, endorsers))
        return pos

    def activate(self, alert: Alert, keyids: Sequence[str], from_peer: str | None) -> int:
        """Make a stored message active now: feed row, its effect on the messages it
        updates or cancels, outbox rows. ``keyids`` and ``from_peer`` as stored."""
        self.flush()
        conn = self._conn
        pos = self._next_pos()
        conn.execute(INSERT_FEED, (pos, alert.id, alert.msg_type))
        conn.execute("UPDATE alerts SET state = 'active', pos = ? WHERE id = ?", (pos, alert.id))
        if alert.msg_type != "alert":
            self._apply_references(alert)
        self._queue(alert, keyids, from_peer)
        self.queued_for = None
        self.flush()
        return pos

    def _apply_references(self, alert: Alert) -> None:
        kind = "cancelled" if alert.msg_type == "cancel" else "superseded"
        for ref in alert.references:
            self._conn.execute(
                "UPDATE alerts SET state = ? WHERE id = ? AND state != 'cancelled'", (kind, ref)
            )
            self._conn.execute(UPSERT_TOMBSTONE, (ref, kind, alert.id, self._keep_tombstones_until))

    def _queue(self, alert: Alert, keyids: Sequence[str], from_peer: str | None) -> None:
        rows = self._router.rows(alert, from_peer, keyids)
        self._outbox.extend(rows)
        if self.queued_for is not None:
            self.queued_for.update(peer for peer, _, _, _ in rows)

    def decision(self, decision: Decision, alert: Alert | None, peer: str | None) -> None:
        """``store.record_decision``, buffered (rows keep the order decisions were made in)."""
        self._decisions.append(store.decision_row(self._now_s, decision, alert, peer))

    def advance_chain(self, item: store.Incoming) -> None:
        """Advance its origin's hash chain by a verified message (``relay.storage.chain``),
        in this transaction; a message its origin did not sign (``digest`` None) is not
        chained. Called for every verified message, whatever the policy decides: the
        chain is what the origin signed, not what this node accepted."""
        digest = item.digest
        if digest is None:
            return
        alert = item.alert
        origin_chain = self._chains.get(alert.network)
        if origin_chain is None:
            origin_chain = chain.OriginChain(self._conn, alert.network)
            self._chains[alert.network] = origin_chain
        origin_chain.observe(alert.seq, digest)

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

    def _save_chains(self) -> None:
        if not self._chains:
            return
        heads, pending = chain.rows_of(list(self._chains.values()))
        insert_rows(self._conn, chain.INSERT_HEAD, heads)
        insert_rows(self._conn, chain.INSERT_PENDING, pending)
        for origin_chain in self._chains.values():
            origin_chain.save(self._conn)
        self._chains = {}

    def _next_pos(self) -> int:
        if self._head is None:
            self._head = store.feed_head(self._conn)
        self._head += 1
        return self._head

    def flush(self) -> None:
        conn = self._conn
        insert_rows(conn, INSERT_ALERT, self._alerts)
        insert_rows(conn, INSERT_FEED, self._feed)
        insert_rows(conn, UPSERT_ORIGIN, list(self._origins.items()))
        insert_rows(conn, outbox.INSERT_ROW, self._outbox)
        insert_rows(conn, store.INSERT_DECISION, self._decisions)
        for origin_gaps in self._gaps.values():
            origin_gaps.save(conn)
        self._save_chains()
        self._alerts, self._feed, self._outbox, self._decisions = [], [], [], []
        self._origins, self._tops, self._gaps, self._head = {}, {}, {}, None
