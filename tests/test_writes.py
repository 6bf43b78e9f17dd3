"""``Writes``, the one way a message is stored: seq gaps and activation, row by row.

``tests/test_pipeline_batch.py`` checks that buffering changes nothing (one
batch against one by one); these pin what the rows are, on a real SQLite file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from relay.core.policy import Decision
from relay.storage import db, gaps, store
from relay.storage.writes import Writes
from tests.helpers import T0, key, make_alert, raw_envelope

ACCEPT = Decision("accept", "authoritative")
HOLD = Decision("hold", "outside_speaks_for")
TTL = timedelta(days=8)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = db.open_sync(tmp_path / "avisa.db")
    yield connection
    connection.close()


def store_seqs(
    conn: sqlite3.Connection, seqs: list[int], from_peer: str | None = "relay"
) -> list[int | None]:
    """One writer job that stores a new alert of "origin" for each ``seq``, in order."""
    alerts = [make_alert("origin", seq=seq) for seq in seqs]

    def job(c: sqlite3.Connection) -> list[int | None]:
        writes = Writes(c, T0, TTL, (alert.id for alert in alerts))
        positions = []
        for alert in alerts:
            _, new = writes.policy_state(alert, from_peer, 0)
            item = store.Incoming(raw_envelope(alert, key(1)), alert, [])
            positions.append(writes.save(item, [], ACCEPT, from_peer, new=new))
        writes.flush()
        return positions

    return db.transaction(conn, job)


def gap_rows(conn: sqlite3.Connection) -> list[tuple[int, int, str | None]]:
    return conn.execute("SELECT seq_from, seq_to, peer FROM seq_gaps ORDER BY seq_from").fetchall()


def test_gaps_open_split_and_close_across_jobs(conn: sqlite3.Connection) -> None:
    store_seqs(conn, [3])
    assert gap_rows(conn) == []  # the first message of an origin opens no gap
    store_seqs(conn, [4, 9])
    assert gap_rows(conn) == [(5, 8, "relay")]
    store_seqs(conn, [6])
    assert gap_rows(conn) == [(5, 5, "relay"), (7, 8, "relay")]
    store_seqs(conn, [5, 8, 7])
    assert gap_rows(conn) == []
    assert gaps.highest_seq(conn, "origin") == 9


def test_a_message_of_this_node_notes_no_gap(conn: sqlite3.Connection) -> None:
    store_seqs(conn, [1, 5], from_peer=None)
    assert gap_rows(conn) == []
    assert gaps.highest_seq(conn, "origin") == 5


def test_an_origin_keeps_its_highest_gaps_only(conn: sqlite3.Connection) -> None:
    seqs = [1, *range(3, 3 + 2 * (gaps.MAX_GAPS_PER_ORIGIN + 5), 2)]
    store_seqs(conn, seqs[:10])
    store_seqs(conn, seqs[10:])
    rows = gap_rows(conn)
    assert len(rows) == gaps.MAX_GAPS_PER_ORIGIN
    assert rows[-1][0] == seqs[-1] - 1
    assert [low for low, high, _ in rows] == [high for _, high, _ in rows]  # each one seq wide


def test_feed_positions_follow_on_whichever_way_a_message_is_written(
    conn: sqlite3.Connection,
) -> None:
    """New alerts (buffered), an update (written at once) and a held alert a reviewer
    accepts (``activate``) take feed positions from one counter, in order."""
    first, second = store_seqs(conn, [1, 2])
    assert (first, second) == (1, 2)
    original = conn.execute("SELECT id FROM alerts ORDER BY pos LIMIT 1").fetchone()[0]
    update = make_alert("origin", seq=3, msg_type="update", references=[original])
    held = make_alert("origin", seq=4)

    def job(c: sqlite3.Connection) -> tuple[int | None, ...]:
        writes = Writes(c, T0, TTL, [update.id, held.id])
        _, update_new = writes.policy_state(update, "relay", 0)
        _, held_new = writes.policy_state(held, "relay", 0)
        assert (update_new, held_new) == (False, True)
        updated = writes.save(store.Incoming(b"{}", update, []), [], ACCEPT, "relay", new=False)
        kept = writes.save(store.Incoming(b"{}", held, []), [], HOLD, "relay", new=True)
        writes.flush()
        return updated, kept

    assert db.transaction(conn, job) == (3, None)
    accepted = db.transaction(conn, lambda c: Writes(c, T0, TTL).activate(held, [], "relay"))
    assert accepted == 4
    assert conn.execute("SELECT pos, alert_id FROM feed ORDER BY pos").fetchall()[2:] == [
        (3, update.id),
        (4, held.id),
    ]
    states = dict(conn.execute("SELECT id, state FROM alerts").fetchall())
    assert states[original] == "superseded"
    assert states[held.id] == "active"
    tombstone = conn.execute("SELECT kind, by_id FROM tombstones WHERE id = ?", (original,))
    assert tombstone.fetchone() == ("superseded", update.id)
