"""The durable per-peer outbox, delivery state and quarantine (plain SQL).

Every function takes an open connection inside a transaction the caller
owns. A message's rows (``Router.rows``) are written in the very writer job
that makes it active (``relay.storage.writes.Writes``), so an accepted alert
and its outbox rows are on disk together or not at all; a crash can neither
lose a queued message nor queue one that was not stored.

A row names the alert, not the bytes: the envelope is read (and endorsed)
when the transaction is formed, so a message cancelled, superseded, purged
or expired while it waited is dropped instead of sent.

Transactions: ``next_txn`` returns the transaction in flight for a peer if
every item in it is still sendable, so a retry carries the same txn id and
the same items and the receiver's idempotency holds; if anything in it went
stale, the transaction is dissolved and a fresh one (new id) is formed. New
transactions take items in ``priority`` order (cancels, updates, alerts),
then queue order.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from relay.core.forwarding import PRIORITY, should_forward
from relay.core.model import Alert
from relay.core.policy import Relay, relay_of
from relay.core.times import from_epoch, to_epoch

#: Beyond this a peer's backlog loses its oldest new alerts (catch-up can refill them).
MAX_BACKLOG = 100_000
_ITEM_COLUMNS = "o.n, o.alert_id, o.txn_id, o.expires_at, a.envelope, a.state, a.msg_type"


@dataclass(frozen=True, slots=True)
class Queued:
    n: int
    alert_id: str
    envelope: bytes
    msg_type: str


@dataclass(frozen=True, slots=True)
class Txn:
    txn_id: str
    items: tuple[Queued, ...]


@dataclass(frozen=True, slots=True)
class Formed:
    """What ``next_txn`` found: the transaction to send (if any) and what it dropped."""

    txn: Txn | None
    dropped: Counter[str]
    backlog: int


INSERT_ROW = (
    "INSERT INTO outbox (peer, alert_id, priority, expires_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (peer, alert_id) DO NOTHING"
)


class Router:
    """The outbox rows of newly active messages, with one job's lookups cached.

    Peers and their keys only change in jobs of their own, so within one job
    the forwarding peers and the network of each keyid are read once.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._peers: list[tuple[str, Relay]] | None = None  # forwarding peers
        self._trusted: set[str] = set()  # every peer network
        self._networks: dict[str, str | None] = {}

    def rows(
        self, alert: Alert, from_peer: str | None, keyids: Sequence[str]
    ) -> list[tuple[str, str, int, int]]:
        """(peer, alert id, priority, expiry) for each peer the message should go to."""
        if self._peers is None:
            query = "SELECT network, forward, relay FROM peers"
            rows = self._conn.execute(query).fetchall()
            self._trusted = {net for net, _, _ in rows}
            self._peers = [(net, relay_of(relay)) for net, forward, relay in rows if forward]
        if not self._peers:
            return []
        unknown = [keyid for keyid in dict.fromkeys(keyids) if keyid not in self._networks]
        if unknown:
            self._networks.update(dict.fromkeys(unknown))
            marks = ",".join("?" * len(unknown))
            query = f"SELECT keyid, network FROM peer_keys WHERE keyid IN ({marks})"  # noqa: S608
            self._networks.update(self._conn.execute(query, unknown).fetchall())
        signers = {net for keyid in keyids if (net := self._networks[keyid]) is not None}
        priority, expires_at = PRIORITY[alert.msg_type], to_epoch(alert.expires_at)
        return [
            (peer, alert.id, priority, expires_at)
            for peer, relay in self._peers
            if should_forward(
                peer, alert.network, from_peer, signers, relay, alert.network in self._trusted
            )
        ]


def _sendable(row: Sequence[Any], now: int) -> bool:
    _, _, _, expires_at, envelope, state, _ = row
    return envelope is not None and state == "active" and int(expires_at) > now


def _queued(row: Sequence[Any]) -> Queued:
    n, alert_id, _, _, envelope, _, msg_type = row
    return Queued(int(n), str(alert_id), bytes(envelope), str(msg_type))


def next_txn(
    conn: sqlite3.Connection, peer: str, now: datetime, limit: int, new_txn_id: str
) -> Formed:
    """The peer's transaction in flight if still intact, else a new one of up to ``limit``."""
    now_s = to_epoch(now)
    dropped: Counter[str] = Counter()
    current = conn.execute(
        f"SELECT {_ITEM_COLUMNS} FROM outbox AS o LEFT JOIN alerts AS a ON a.id = o.alert_id"  # noqa: S608
        " WHERE o.peer = ? AND o.txn_id IS NOT NULL ORDER BY o.priority, o.n",
        (peer,),
    ).fetchall()
    if current and all(_sendable(row, now_s) for row in current):
        txn = Txn(str(current[0][2]), tuple(_queued(row) for row in current))
        return Formed(txn, dropped, backlog(conn, peer))
    release(conn, peer)
    dropped["expired"] += conn.execute(
        "DELETE FROM outbox WHERE peer = ? AND expires_at <= ?", (peer, now_s)
    ).rowcount
    items: list[Queued] = []
    while (wanted := limit - len(items)) > 0:
        rows = conn.execute(
            f"SELECT {_ITEM_COLUMNS} FROM outbox AS o LEFT JOIN alerts AS a ON a.id = o.alert_id"  # noqa: S608
            " WHERE o.peer = ? AND o.txn_id IS NULL AND o.n NOT IN"
            f" ({','.join('?' * len(items))}) ORDER BY o.priority, o.n LIMIT ?",
            (peer, *(item.n for item in items), wanted),
        ).fetchall()
        stale = [int(row[0]) for row in rows if not _sendable(row, now_s)]
        items.extend(_queued(row) for row in rows if _sendable(row, now_s))
        if stale:
            conn.executemany("DELETE FROM outbox WHERE n = ?", [(n,) for n in stale])
            dropped["withdrawn"] += len(stale)
        if not stale or len(rows) < wanted:
            break
    if not items:
        return Formed(None, dropped, backlog(conn, peer))
    conn.executemany("UPDATE outbox SET txn_id = ? WHERE n = ?", [(new_txn_id, i.n) for i in items])
    return Formed(Txn(new_txn_id, tuple(items)), dropped, backlog(conn, peer))


def delivered(
    conn: sqlite3.Connection, peer: str, txn_id: str, keep: Sequence[int], now: datetime
) -> None:
    """The peer answered the transaction: it leaves the queue, except items to retry."""
    conn.executemany("UPDATE outbox SET txn_id = NULL WHERE n = ?", [(n,) for n in keep])
    conn.execute("DELETE FROM outbox WHERE peer = ? AND txn_id = ?", (peer, txn_id))
    record_success(conn, peer, now)


def release(conn: sqlite3.Connection, peer: str) -> None:
    """Dissolve the peer's transaction in flight; its items go back to the queue."""
    conn.execute("UPDATE outbox SET txn_id = NULL WHERE peer = ? AND txn_id IS NOT NULL", (peer,))


def drop(conn: sqlite3.Connection, ns: Sequence[int]) -> None:
    """Take these items (by ``Queued.n``) out of the queue unsent, with no record."""
    conn.executemany("DELETE FROM outbox WHERE n = ?", [(n,) for n in ns])


def quarantine(
    conn: sqlite3.Connection, peer: str, item: Queued, reason: str, now: datetime
) -> None:
    """Take a poison item out of the queue and keep a record of it."""
    row = conn.execute("SELECT expires_at FROM outbox WHERE n = ?", (item.n,)).fetchone()
    conn.execute("DELETE FROM outbox WHERE n = ?", (item.n,))
    conn.execute(
        "INSERT INTO quarantine (peer, alert_id, at, reason, expires_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (peer, alert_id) DO UPDATE SET at = excluded.at, reason = excluded.reason",
        (peer, item.alert_id, to_epoch(now), reason, row[0] if row else to_epoch(now)),
    )


def trim(conn: sqlite3.Connection, peer: str, cap: int = MAX_BACKLOG) -> int:
    """Drop the oldest new alerts beyond ``cap``; cancels and updates are kept."""
    return conn.execute(
        "DELETE FROM outbox WHERE n IN (SELECT n FROM outbox WHERE peer = ? AND priority = ?"
        " AND txn_id IS NULL ORDER BY n LIMIT max(0, (SELECT count(*) FROM outbox"
        " WHERE peer = ?) - ?))",
        (peer, PRIORITY["alert"], peer, cap),
    ).rowcount


def has_items(conn: sqlite3.Connection, peer: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM outbox WHERE peer = ? LIMIT 1", (peer,)).fetchone() is not None
    )


def backlog(conn: sqlite3.Connection, peer: str) -> int:
    return int(conn.execute("SELECT count(*) FROM outbox WHERE peer = ?", (peer,)).fetchone()[0])


# --- delivery state ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    last_success: datetime | None = None
    last_error: str | None = None
    failures: int = 0
    backlog: int = 0
    last_error_at: datetime | None = None
    quarantined: int = 0


def record_success(conn: sqlite3.Connection, peer: str, now: datetime) -> None:
    conn.execute(
        "INSERT INTO peer_delivery (peer, last_success, failures) VALUES (?, ?, 0)"
        " ON CONFLICT (peer) DO UPDATE SET last_success = excluded.last_success, failures = 0",
        (peer, to_epoch(now)),
    )


def record_failure(conn: sqlite3.Connection, peer: str, error: str, now: datetime) -> None:
    conn.execute(
        "INSERT INTO peer_delivery (peer, last_error, last_error_at, failures) VALUES (?, ?, ?, 1)"
        " ON CONFLICT (peer) DO UPDATE SET last_error = excluded.last_error,"
        " last_error_at = excluded.last_error_at, failures = peer_delivery.failures + 1",
        (peer, error, to_epoch(now)),
    )


def delivery(conn: sqlite3.Connection, peer: str) -> DeliveryRecord:
    row = conn.execute(
        "SELECT last_success, last_error, failures, last_error_at FROM peer_delivery"
        " WHERE peer = ?",
        (peer,),
    ).fetchone()
    quarantined = conn.execute("SELECT count(*) FROM quarantine WHERE peer = ?", (peer,)).fetchone()
    if row is None:
        return DeliveryRecord(backlog=backlog(conn, peer), quarantined=int(quarantined[0]))
    last_success, last_error, failures, last_error_at = row
    return DeliveryRecord(
        last_success=None if last_success is None else from_epoch(last_success),
        last_error=last_error,
        last_error_at=None if last_error_at is None else from_epoch(last_error_at),
        failures=int(failures),
        backlog=backlog(conn, peer),
        quarantined=int(quarantined[0]),
    )


def quarantined(conn: sqlite3.Connection, peer: str, limit: int = 20) -> list[tuple[str, str]]:
    """The newest quarantined alert ids for a peer, with the reason."""
    return [
        (str(alert_id), str(reason))
        for alert_id, reason in conn.execute(
            "SELECT alert_id, reason FROM quarantine WHERE peer = ? ORDER BY at DESC LIMIT ?",
            (peer, limit),
        )
    ]


def forget_unrouted(conn: sqlite3.Connection) -> int:
    """Drop queued items for peers that were removed or no longer get forwards."""
    return conn.execute(
        "DELETE FROM outbox WHERE peer NOT IN (SELECT network FROM peers WHERE forward = 1)"
    ).rowcount


def purge(conn: sqlite3.Connection, now: datetime, quarantine_cutoff: datetime) -> Counter[str]:
    """Housekeeping: expired items waiting for any peer; quarantine records past retention.

    Returns how many expired items were dropped per peer: dropped here or when a
    transaction is formed, an expired item counts the same (``dropped["expired"]``).
    """
    dropped = Counter(
        str(peer)
        for (peer,) in conn.execute(
            "DELETE FROM outbox WHERE expires_at <= ? AND txn_id IS NULL RETURNING peer",
            (to_epoch(now),),
        )
    )
    conn.execute("DELETE FROM quarantine WHERE expires_at <= ?", (to_epoch(quarantine_cutoff),))
    return dropped


# --- quarantine, for the operator (``avisa outbox list|release``) ---------------


@dataclass(frozen=True, slots=True)
class Quarantined:
    peer: str
    alert_id: str
    at: datetime
    reason: str
    state: str  # the alert's state now: active, expired, cancelled, superseded, held, gone


def quarantine_listing(
    conn: sqlite3.Connection, now: datetime, peer: str | None = None, limit: int = 1000
) -> list[Quarantined]:
    """Quarantined items, newest first, with what became of each alert since."""
    rows = conn.execute(
        "SELECT q.peer, q.alert_id, q.at, q.reason, a.state, a.expires_at FROM quarantine AS q"
        " LEFT JOIN alerts AS a ON a.id = q.alert_id WHERE ? IS NULL OR q.peer = ?"
        " ORDER BY q.at DESC, q.peer, q.alert_id LIMIT ?",
        (peer, peer, limit),
    ).fetchall()
    listing = []
    for peer_name, alert_id, at, reason, stored_state, expires_at in rows:
        state = "gone" if stored_state is None else str(stored_state)
        if state == "active" and int(expires_at) <= to_epoch(now):
            state = "expired"
        listing.append(Quarantined(peer_name, alert_id, from_epoch(at), reason, state))
    return listing


def release_quarantined(conn: sqlite3.Connection, peer: str, alert_id: str, now: datetime) -> str:
    """Put a quarantined item back in the peer's queue. ``queued``, or why not:
    ``unknown`` (not quarantined for that peer), or the alert's state when it can no
    longer be sent (``gone``, ``expired``, ``cancelled``, ``superseded``, ``held``);
    those stay in quarantine until it expires."""
    found = [item for item in quarantine_listing(conn, now, peer) if item.alert_id == alert_id]
    if not found:
        return "unknown"
    if found[0].state != "active":
        return found[0].state
    msg_type, expires_at = conn.execute(
        "SELECT msg_type, expires_at FROM alerts WHERE id = ?", (alert_id,)
    ).fetchone()
    conn.execute(INSERT_ROW, (peer, alert_id, PRIORITY[msg_type], expires_at))
    conn.execute("DELETE FROM quarantine WHERE peer = ? AND alert_id = ?", (peer, alert_id))
    return "queued"
