"""relay.storage.fedstate on a real SQLite file: stored replies stand for their window,
an old one is replaced, the purge forgets by age; pull cursors start at 0 and move."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from relay.storage import db, fedstate

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(hours=24)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[db.Connection]:
    connection = db.open_sync(tmp_path / "avisa.db")
    try:
        yield connection
    finally:
        connection.close()


def _store(conn: db.Connection, reply: bytes, digest: bytes, at: datetime) -> bytes:
    return db.transaction(
        conn,
        lambda c: fedstate.store_reply(
            c, "ventura", "t1", reply, digest, at=at, replaces_before=at - TTL
        ),
    )


def test_a_reply_stands_for_its_window(conn: db.Connection) -> None:
    assert fedstate.stored_reply(conn, "ventura", "t1", T0 - TTL) is None
    assert _store(conn, b'{"results":[1]}', b"d1", T0) == b'{"results":[1]}'
    stored = fedstate.stored_reply(conn, "ventura", "t1", T0 + timedelta(hours=1) - TTL)
    assert stored == fedstate.StoredReply(b'{"results":[1]}', b"d1")
    # Another origin's txn with the same id is another transaction.
    assert fedstate.stored_reply(conn, "oxnard", "t1", T0 - TTL) is None
    # Past the window it is not an answer any more.
    assert fedstate.stored_reply(conn, "ventura", "t1", T0) is None


def test_a_second_reply_within_the_window_keeps_the_first(conn: db.Connection) -> None:
    _store(conn, b"first", b"d1", T0)
    assert _store(conn, b"second", b"d2", T0 + timedelta(hours=2)) == b"first"
    stored = fedstate.stored_reply(conn, "ventura", "t1", T0 - TTL)
    assert stored == fedstate.StoredReply(b"first", b"d1")


def test_a_reply_older_than_the_window_is_replaced(conn: db.Connection) -> None:
    _store(conn, b"first", b"d1", T0)
    later = T0 + TTL + timedelta(seconds=1)
    assert _store(conn, b"second", b"d2", later) == b"second"
    assert fedstate.stored_reply(conn, "ventura", "t1", later - TTL) == fedstate.StoredReply(
        b"second", b"d2"
    )


def test_purge_forgets_replies_by_age(conn: db.Connection) -> None:
    _store(conn, b"old", b"d1", T0)
    db.transaction(
        conn,
        lambda c: fedstate.store_reply(
            c, "ventura", "t2", b"new", b"d2", at=T0 + TTL, replaces_before=T0
        ),
    )
    db.transaction(conn, lambda c: fedstate.purge_replies(c, T0))
    assert fedstate.stored_reply(conn, "ventura", "t1", T0 - TTL) is None
    assert fedstate.stored_reply(conn, "ventura", "t2", T0) is not None


def test_pull_cursor_starts_at_zero_and_moves(conn: db.Connection) -> None:
    assert fedstate.pull_cursor(conn, "ventura") == 0
    db.transaction(conn, lambda c: fedstate.save_pull_cursor(c, "ventura", 40, T0))
    db.transaction(conn, lambda c: fedstate.save_pull_cursor(c, "ventura", 90, T0))
    assert fedstate.pull_cursor(conn, "ventura") == 90
    assert fedstate.pull_cursor(conn, "oxnard") == 0
