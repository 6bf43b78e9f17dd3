"""What the Matrix bridge remembers, in the node's database (migration 0300_matrix).

``matrix_posts`` maps each delivered message (alert, update or cancel) of a
route to the Matrix event it produced, and to the *root*: the original event
in the room that every later edit replaces (``m.replace`` always points at the
original, never at an edit). Exactly one row per root is ``current``: the
newest version, whose status (active, cancelled, superseded, expired,
withdrawn — taken back for review, migration 0450_protocol) and expiry drive
the expiry sweep. Rows go when the alerts themselves would
(``retention`` after expiry).

``matrix_devices`` keeps the device id a password login was given, so the
next login reuses the same device: the same end-to-end keys, and the same
scope for transaction ids, which is what makes a resend after a crash
idempotent on the homeserver.

Every function runs inside a transaction its caller owns.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from relay.core.times import to_epoch

PostStatus = Literal["active", "cancelled", "superseded", "expired", "withdrawn"]


@dataclass(frozen=True, slots=True)
class Post:
    """The current version of one message in a room."""

    alert_id: str
    room_id: str
    root_id: str
    root_event_id: str
    status: PostStatus
    expires_at: int


_POST = "alert_id, room_id, root_id, root_event_id, status, expires_at"


def current_post(conn: sqlite3.Connection, route: str, alert_ids: list[str]) -> Post | None:
    """The current version of the message any of ``alert_ids`` produced in the route."""
    if not alert_ids:
        return None
    marks = ",".join("?" * len(alert_ids))
    row = conn.execute(
        f"SELECT root_event_id FROM matrix_posts WHERE route = ? AND alert_id IN ({marks})"  # noqa: S608
        " LIMIT 1",
        (route, *alert_ids),
    ).fetchone()
    if row is None:
        return None
    current = conn.execute(
        f"SELECT {_POST} FROM matrix_posts"  # noqa: S608
        " WHERE route = ? AND root_event_id = ? AND current = 1",
        (route, row[0]),
    ).fetchone()
    return None if current is None else Post(*current)


def own_post(conn: sqlite3.Connection, route: str, alert_id: str) -> Post | None:
    """The message ``alert_id`` itself produced in the route, if it is still current."""
    row = conn.execute(
        f"SELECT {_POST} FROM matrix_posts"  # noqa: S608
        " WHERE route = ? AND alert_id = ? AND current = 1",
        (route, alert_id),
    ).fetchone()
    return None if row is None else Post(*row)


def record_root(
    conn: sqlite3.Connection,
    route: str,
    alert_id: str,
    room_id: str,
    event_id: str,
    expires_at: datetime,
) -> None:
    conn.execute(
        "INSERT INTO matrix_posts (route, alert_id, room_id, event_id, root_id, root_event_id,"
        " status, expires_at, current) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, 1)"
        " ON CONFLICT (route, alert_id) DO NOTHING",
        (route, alert_id, room_id, event_id, alert_id, event_id, to_epoch(expires_at)),
    )


def record_edit(
    conn: sqlite3.Connection,
    route: str,
    root: Post,
    alert_id: str,
    event_id: str,
    status: PostStatus,
    expires_at: datetime,
) -> None:
    """A newer version (update or cancel) of ``root``'s message; it becomes current."""
    conn.execute(
        "UPDATE matrix_posts SET current = 0 WHERE route = ? AND root_event_id = ?",
        (route, root.root_event_id),
    )
    conn.execute(
        "INSERT INTO matrix_posts (route, alert_id, room_id, event_id, root_id, root_event_id,"
        " status, expires_at, current) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)"
        " ON CONFLICT (route, alert_id) DO UPDATE SET current = 1, status = excluded.status",
        (
            route,
            alert_id,
            root.room_id,
            event_id,
            root.root_id,
            root.root_event_id,
            status,
            to_epoch(expires_at),
        ),
    )


def mark_expired(conn: sqlite3.Connection, route: str, alert_id: str) -> None:
    conn.execute(
        "UPDATE matrix_posts SET status = 'expired' WHERE route = ? AND alert_id = ?"
        " AND status = 'active'",
        (route, alert_id),
    )


def due_to_expire(
    conn: sqlite3.Connection, route: str, now: datetime, limit: int = 100
) -> list[Post]:
    rows = conn.execute(
        f"SELECT {_POST} FROM matrix_posts"  # noqa: S608
        " WHERE route = ? AND current = 1 AND status = 'active' AND expires_at <= ?"
        " ORDER BY expires_at LIMIT ?",
        (route, to_epoch(now), limit),
    ).fetchall()
    return [Post(*row) for row in rows]


def purge(conn: sqlite3.Connection, route: str, now: datetime, retention: timedelta) -> int:
    """Forget messages whose newest version expired ``retention`` ago."""
    cutoff = to_epoch(now - retention)
    return conn.execute(
        "DELETE FROM matrix_posts WHERE route = ? AND root_event_id IN ("
        " SELECT root_event_id FROM matrix_posts"
        " WHERE route = ? AND current = 1 AND expires_at <= ?)",
        (route, route, cutoff),
    ).rowcount


def device_for(conn: sqlite3.Connection, user_id: str) -> str | None:
    row = conn.execute(
        "SELECT device_id FROM matrix_devices WHERE user_id = ?", (user_id,)
    ).fetchone()
    return None if row is None else str(row[0])


def save_device(conn: sqlite3.Connection, user_id: str, device_id: str) -> None:
    conn.execute(
        "INSERT INTO matrix_devices (user_id, device_id) VALUES (?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET device_id = excluded.device_id",
        (user_id, device_id),
    )
