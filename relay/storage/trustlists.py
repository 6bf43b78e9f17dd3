"""The trust list versions this node keeps and serves (migration ``0750_trustlists``).

One row per (list, version): the envelope exactly as published, its payload's
SHA-256 (``digest``, what the next version's ``previous`` names), and its
times as epoch seconds. Any node may host a list (``avisa trustlist
publish``); ``GET /trustlists/v1/{list}`` serves the highest version kept and
``/{list}/{version}`` every kept one (``relay.http.trustlists``).

Nothing here judges a list: ``keys.store.trustlist_ops`` walks a candidate
forward from ``head`` with ``keys.cards.trustwalk`` and calls ``put`` in the
same transaction, so what is stored always chains.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from keys.cards.trustlist import OpenedList, read_list
from relay.core.times import from_epoch, to_epoch


@dataclass(frozen=True, slots=True)
class KeptList:
    """A summary row for ``avisa trustlist list``."""

    list: str
    latest: int
    versions: int
    issued_at: datetime
    expires_at: datetime


def put(conn: sqlite3.Connection, opened: OpenedList, now: datetime) -> None:
    """Keep ``opened``; a copy of a kept version (same payload) replaces its envelope."""
    document = opened.document
    conn.execute(
        "INSERT INTO trustlist_versions"
        " (list, version, digest, issued_at, expires_at, stored_at, envelope)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (list, version) DO UPDATE SET envelope = excluded.envelope,"
        " stored_at = excluded.stored_at WHERE digest = excluded.digest",
        (
            document.list,
            document.version,
            opened.digest,
            to_epoch(document.issued_at),
            to_epoch(document.expires_at),
            to_epoch(now),
            opened.raw,
        ),
    )


def envelope(conn: sqlite3.Connection, list_id: str, version: int | None = None) -> bytes | None:
    """The kept envelope of ``version`` (default: the highest kept)."""
    if version is None:
        row = conn.execute(
            "SELECT envelope FROM trustlist_versions WHERE list = ? ORDER BY version DESC LIMIT 1",
            (list_id,),
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT envelope FROM trustlist_versions WHERE list = ? AND version = ?",
            (list_id, version),
        ).fetchone()
    return None if row is None else bytes(row[0])


def head(conn: sqlite3.Connection, list_id: str) -> OpenedList | None:
    """The highest kept version, read again under every bound (it was when stored)."""
    raw = envelope(conn, list_id)
    return None if raw is None else read_list(raw)


def version_of(conn: sqlite3.Connection, list_id: str, version: int) -> OpenedList | None:
    raw = envelope(conn, list_id, version)
    return None if raw is None else read_list(raw)


def kept(conn: sqlite3.Connection) -> list[KeptList]:
    rows = conn.execute(
        "SELECT t.list, t.version, c.n, t.issued_at, t.expires_at FROM trustlist_versions t"
        " JOIN (SELECT list, MAX(version) AS top, COUNT(*) AS n FROM trustlist_versions"
        " GROUP BY list) c ON c.list = t.list AND c.top = t.version ORDER BY t.list"
    ).fetchall()
    return [
        KeptList(name, latest, count, from_epoch(issued), from_epoch(expires))
        for name, latest, count, issued, expires in rows
    ]
