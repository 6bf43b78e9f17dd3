"""What the CAP importer keeps in SQLite (migration ``0600_cap``).

- ``cap_imports``: every outside message read, by CAP's own key
  (``sender,identifier``), with the ``root``: the key its tip was filed under,
  so an Update or Cancel that references any message of the chain reaches
  the same tip. A message read once is never filed again.
- ``cap_entries``: index entries (id and updated) already read, so a poll of
  an unchanged Atom index fetches nothing but the index.
- ``cap_sources``: each source's ``ETag`` and ``Last-Modified``, so polls stay
  conditional across restarts.

Rows are kept until the message's expiry (or its sending, when it gives
none) plus the node's retention, then purged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Imported:
    ref: str
    root: str
    source: str
    msg_type: str
    sent: int
    expires_at: int | None
    outcome: str
    keep_until: int


_CHUNK = 500  # host parameters per statement, well under SQLite's limit


def known(conn: sqlite3.Connection, refs: Iterable[str]) -> dict[str, Imported]:
    wanted = list(dict.fromkeys(refs))
    columns = "ref, root, source, msg_type, sent, expires_at, outcome, keep_until"
    found: dict[str, Imported] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        query = f"SELECT {columns} FROM cap_imports WHERE ref IN ({marks})"  # noqa: S608
        found.update((row[0], Imported(*row)) for row in conn.execute(query, chunk))
    return found


def record_all(conn: sqlite3.Connection, items: Iterable[Imported]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO cap_imports"
        " (ref, root, source, msg_type, sent, expires_at, outcome, keep_until)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (i.ref, i.root, i.source, i.msg_type, i.sent, i.expires_at, i.outcome, i.keep_until)
            for i in items
        ],
    )


def seen_entries(conn: sqlite3.Connection, source: str, keys: Iterable[str]) -> set[str]:
    wanted = list(dict.fromkeys(keys))
    seen: set[str] = set()
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT entry FROM cap_entries WHERE source = ? AND entry IN ({marks})",  # noqa: S608
            (source, *chunk),
        )
        seen.update(row[0] for row in rows)
    return seen


def mark_entries(
    conn: sqlite3.Connection, source: str, keys: Iterable[str], keep_until: int
) -> None:
    conn.executemany(
        "INSERT INTO cap_entries (source, entry, keep_until) VALUES (?, ?, ?)"
        " ON CONFLICT (source, entry) DO UPDATE SET keep_until = excluded.keep_until",
        [(source, key, keep_until) for key in keys],
    )


def validators(conn: sqlite3.Connection, source: str) -> tuple[str | None, str | None]:
    row = conn.execute(
        "SELECT etag, last_modified FROM cap_sources WHERE source = ?", (source,)
    ).fetchone()
    return (None, None) if row is None else (row[0], row[1])


def save_validators(
    conn: sqlite3.Connection, source: str, etag: str | None, last_modified: str | None
) -> None:
    conn.execute(
        "INSERT INTO cap_sources (source, etag, last_modified) VALUES (?, ?, ?)"
        " ON CONFLICT (source) DO UPDATE SET etag = excluded.etag,"
        " last_modified = excluded.last_modified",
        (source, etag, last_modified),
    )


def purge(conn: sqlite3.Connection, now_s: int) -> int:
    removed = conn.execute("DELETE FROM cap_imports WHERE keep_until <= ?", (now_s,)).rowcount
    removed += conn.execute("DELETE FROM cap_entries WHERE keep_until <= ?", (now_s,)).rowcount
    return int(removed)
