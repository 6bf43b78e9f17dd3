"""The trust list versions this node keeps and serves (migration ``0750_trustlists``).

One row per (list, version): the envelope exactly as published, its payload's
SHA-256 (``digest``, what the next version's ``previous`` names), and its
times as epoch seconds. Any node may host a list (``avisa trustlist
publish``); ``GET /trustlists/v1/{list}`` serves the highest version kept and
``/{list}/{version}`` every kept one (``relay.http.trustlists``).

Subscriptions (``avisa trustlist subscribe``) are kept apart: one row per
list with its URL, the fingerprint the operator typed, the subscription's
``max_speaks_for``, the version held (envelope and expiry), when it was last
checked and the last refusal (reason, message, time); an equivocating copy is
kept in ``trustlist_evidence``.

Nothing here judges a list: ``keys.store.trustlist_ops`` and
``keys.store.trustsub_ops`` walk candidates forward with
``keys.cards.trustwalk`` and write in the same transaction, so what is stored
always chains.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from keys.cards.trustlist import OpenedList, read_list
from relay.core.times import from_epoch, from_epoch_or_none, to_epoch


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


@dataclass(frozen=True, slots=True)
class Subscription:
    list: str
    url: str
    fingerprint: str
    max_speaks_for: tuple[str, ...]
    held: OpenedList
    subscribed_at: datetime
    checked_at: datetime
    refusal: str | None
    refusal_message: str | None
    refused_at: datetime | None


def subscribe(
    conn: sqlite3.Connection,
    url: str,
    fingerprint: str,
    max_speaks_for: Sequence[str],
    held: OpenedList,
    now: datetime,
) -> None:
    document = held.document
    conn.execute(
        "INSERT INTO trustlist_subscriptions (list, url, fingerprint, max_speaks_for, version,"
        " expires_at, envelope, subscribed_at, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            document.list,
            url,
            fingerprint,
            json.dumps(list(max_speaks_for)),
            document.version,
            to_epoch(document.expires_at),
            held.raw,
            to_epoch(now),
            to_epoch(now),
        ),
    )


def advance(conn: sqlite3.Connection, held: OpenedList, now: datetime) -> None:
    """Hold a newer version (the refusal of an earlier check stays until ``refused``)."""
    conn.execute(
        "UPDATE trustlist_subscriptions SET version = ?, expires_at = ?, envelope = ?,"
        " checked_at = ? WHERE list = ?",
        (
            held.version,
            to_epoch(held.document.expires_at),
            held.raw,
            to_epoch(now),
            held.document.list,
        ),
    )


def checked(
    conn: sqlite3.Connection, list_id: str, refusal: tuple[str, str] | None, now: datetime
) -> None:
    """Record a check: its refusal (reason, message), or none (clears the last one)."""
    reason, message = refusal if refusal is not None else (None, None)
    conn.execute(
        "UPDATE trustlist_subscriptions SET checked_at = ?, refusal = ?, refusal_message = ?,"
        " refused_at = ? WHERE list = ?",
        (to_epoch(now), reason, message, None if reason is None else to_epoch(now), list_id),
    )


def keep_evidence(conn: sqlite3.Connection, copy: OpenedList, now: datetime) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO trustlist_evidence (list, version, digest, envelope, at)"
        " VALUES (?, ?, ?, ?, ?)",
        (copy.document.list, copy.version, copy.digest, copy.raw, to_epoch(now)),
    )


def unsubscribe(conn: sqlite3.Connection, list_id: str) -> bool:
    cursor = conn.execute("DELETE FROM trustlist_subscriptions WHERE list = ?", (list_id,))
    return cursor.rowcount > 0


def subscriptions(conn: sqlite3.Connection, list_id: str | None = None) -> list[Subscription]:
    rows = conn.execute(
        "SELECT list, url, fingerprint, max_speaks_for, envelope, subscribed_at, checked_at,"
        " refusal, refusal_message, refused_at FROM trustlist_subscriptions"
        " WHERE ? IS NULL OR list = ? ORDER BY list",
        (list_id, list_id),
    ).fetchall()
    return [_subscription(row) for row in rows]


def _subscription(row: tuple[Any, ...]) -> Subscription:
    name, url, fingerprint, scope, raw, subscribed, checked_at, refusal, message, refused = row
    return Subscription(
        name,
        url,
        fingerprint,
        tuple(json.loads(scope)),
        read_list(bytes(raw)),
        from_epoch(subscribed),
        from_epoch(checked_at),
        refusal,
        message,
        from_epoch_or_none(refused),
    )


def evidence_count(conn: sqlite3.Connection, list_id: str) -> int:
    row = conn.execute("SELECT COUNT(*) FROM trustlist_evidence WHERE list = ?", (list_id,))
    return int(row.fetchone()[0])
