"""What federation remembers between requests (plain SQL): ``fed_txns``, ``pull_cursors``.

``fed_txns`` holds the reply this node gave to each peer transaction
``(origin, txn_id)``, with the SHA-256 of the body it answered, so a retry is
answered byte for byte (DESIGN §5; ``relay.federation.inbound``). How long a
reply stands is federation's rule (``relay.federation.service.REPLY_TTL``):
these functions take the cutoff, never a clock. ``stored_reply`` and
``store_reply`` run inside the pipeline's writer job that stores the
transaction's alerts, so an answer and what it describes commit together.

``pull_cursors`` holds, per peer, the position in that peer's feed up to which
this node has pulled catch-up (``relay.federation.catchup``); the cursor moves
in the same transaction as the page's outcomes.

Every function takes an open connection inside a transaction the caller owns.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from relay.core.times import to_epoch


@dataclass(frozen=True, slots=True)
class StoredReply:
    reply: bytes
    body_sha256: bytes | None  # None for replies stored before migration 0450


def stored_reply(
    conn: sqlite3.Connection, origin: str, txn_id: str, newer_than: datetime
) -> StoredReply | None:
    """The reply given to ``(origin, txn_id)`` if it was stored after ``newer_than``."""
    row = conn.execute(
        "SELECT reply, body_sha256 FROM fed_txns WHERE origin = ? AND txn_id = ? AND at > ?",
        (origin, txn_id, to_epoch(newer_than)),
    ).fetchone()
    if row is None:
        return None
    return StoredReply(bytes(row[0]), None if row[1] is None else bytes(row[1]))


def store_reply(
    conn: sqlite3.Connection,
    origin: str,
    txn_id: str,
    reply: bytes,
    digest: bytes,
    *,
    at: datetime,
    replaces_before: datetime,
) -> bytes:
    """Keep ``reply`` for ``(origin, txn_id)`` unless a reply newer than ``replaces_before``
    stands; return the reply that stands (the one kept, or the one already there)."""
    written = conn.execute(
        "INSERT INTO fed_txns (origin, txn_id, at, reply, body_sha256) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (origin, txn_id) DO UPDATE SET at = excluded.at, reply = excluded.reply,"
        " body_sha256 = excluded.body_sha256 WHERE fed_txns.at <= ?",
        (origin, txn_id, to_epoch(at), reply, digest, to_epoch(replaces_before)),
    ).rowcount
    if written:
        return reply
    stored = stored_reply(conn, origin, txn_id, replaces_before)
    return reply if stored is None else stored.reply


def purge_replies(conn: sqlite3.Connection, before: datetime) -> None:
    """Forget every reply stored at or before ``before``."""
    conn.execute("DELETE FROM fed_txns WHERE at <= ?", (to_epoch(before),))


def pull_cursor(conn: sqlite3.Connection, peer: str) -> int:
    """How far this node has pulled ``peer``'s feed (0 before the first pull)."""
    row = conn.execute("SELECT cursor FROM pull_cursors WHERE peer = ?", (peer,)).fetchone()
    return 0 if row is None else int(row[0])


def save_pull_cursor(conn: sqlite3.Connection, peer: str, cursor: int, now: datetime) -> None:
    conn.execute(
        "INSERT INTO pull_cursors (peer, cursor, pulled_at) VALUES (?, ?, ?) ON CONFLICT (peer)"
        " DO UPDATE SET cursor = excluded.cursor, pulled_at = excluded.pulled_at",
        (peer, cursor, to_epoch(now)),
    )
