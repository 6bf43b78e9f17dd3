"""Each origin's hash chain (DESIGN §16): the pure rule, and the incremental state the
writer keeps on a real SQLite file, in order, out of order, across jobs and through
the pipeline."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from relay.core.checkpoints import (
    ZERO_HEAD,
    advance,
    chain_heads,
    entry_digest,
    next_head,
)
from relay.core.envelope import open_envelope
from relay.core.model import ALERT_PAYLOAD_TYPE
from relay.storage import chain, db, store
from relay.storage.writes import Writes
from tests.helpers import T0, make_alert, raw_envelope
from tests.test_pipeline_batch import ORIGIN, RELAY, STRANGER, tables, twin

TTL = timedelta(days=8)


def digest_of(seq: int) -> bytes:
    """A stand-in entry digest for message ``seq`` (the storage side takes any 32 bytes)."""
    return hashlib.sha256(b"message %d" % seq).digest()


def expected_heads(*seqs: int) -> list[tuple[str, int, bytes]]:
    """The rows of the heads after messages ``seqs`` (the seqs where jobs ended)."""
    heads = chain_heads([digest_of(n) for n in range(1, max(seqs) + 1)])
    return [("origin", n, heads[n - 1]) for n in seqs]


# --- the pure rule -----------------------------------------------------------


def test_the_chain_is_sha256_of_the_previous_head_and_the_pae_digest() -> None:
    payload = b'{"id":"x"}'
    pae = b"DSSEv1 %d %s %d %s" % (
        len(ALERT_PAYLOAD_TYPE),
        ALERT_PAYLOAD_TYPE.encode(),
        10,
        payload,
    )
    digest = entry_digest(ALERT_PAYLOAD_TYPE, payload)
    assert digest == hashlib.sha256(pae).digest()
    assert bytes(32) == ZERO_HEAD
    first = next_head(ZERO_HEAD, digest)
    assert first == hashlib.sha256(bytes(32) + digest).digest()
    assert chain_heads([digest, digest]) == [first, hashlib.sha256(first + digest).digest()]


def test_advance_stops_at_the_first_gap() -> None:
    waiting = {2: digest_of(2), 3: digest_of(3), 5: digest_of(5)}
    head_1 = next_head(ZERO_HEAD, digest_of(1))
    steps = advance(1, head_1, waiting)
    assert [seq for seq, _ in steps] == [2, 3]
    assert steps[-1][1] == chain_heads([digest_of(n) for n in (1, 2, 3)])[-1]
    assert advance(3, steps[-1][1], waiting) == []


# --- the stored state --------------------------------------------------------


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = db.open_sync(tmp_path / "avisa.db")
    yield connection
    connection.close()


def chain_seqs(conn: sqlite3.Connection, seqs: list[int], network: str = "origin") -> None:
    """One writer job that chains message ``seq`` of ``network`` for each seq, in order."""

    def job(c: sqlite3.Connection) -> None:
        writes = Writes(c, T0, TTL)
        for seq in seqs:
            alert = make_alert(network, seq=seq)
            writes.advance_chain(store.Incoming(b"{}", alert, [], digest_of(seq)))
        writes.flush()

    db.transaction(conn, job)


def heads(conn: sqlite3.Connection) -> list[tuple[str, int, bytes]]:
    return conn.execute("SELECT network, seq, head FROM chain ORDER BY network, seq").fetchall()


def waiting(conn: sqlite3.Connection) -> list[int]:
    return [row[0] for row in conn.execute("SELECT seq FROM chain_pending ORDER BY seq")]


def test_in_order_one_job_and_many_jobs_give_the_same_heads(conn: sqlite3.Connection) -> None:
    chain_seqs(conn, [1, 2, 3])
    chain_seqs(conn, [4])
    chain_seqs(conn, [5, 6])
    assert heads(conn) == expected_heads(3, 4, 6)  # one row per job: where it ended
    assert chain.latest(conn, "origin") == (6, expected_heads(6)[0][2])
    assert chain.head_at(conn, "origin", 3) == expected_heads(3)[0][2]
    assert chain.head_at(conn, "origin", 5) is None  # inside a job: not kept
    assert chain.head_at(conn, "origin", 7) is None
    assert chain.latest(conn, "elsewhere") == (0, ZERO_HEAD)


def test_beyond_a_gap_waits_until_the_gap_is_filled(conn: sqlite3.Connection) -> None:
    chain_seqs(conn, [1, 4, 5])
    assert heads(conn) == expected_heads(1)
    assert waiting(conn) == [4, 5]
    chain_seqs(conn, [7, 3])  # still a gap at 2
    assert heads(conn) == expected_heads(1)
    assert waiting(conn) == [3, 4, 5, 7]
    chain_seqs(conn, [2])
    assert heads(conn) == expected_heads(1, 5)
    assert waiting(conn) == [7]
    chain_seqs(conn, [6])
    assert heads(conn) == expected_heads(1, 5, 7)
    assert waiting(conn) == []


def test_a_gap_filled_within_one_job(conn: sqlite3.Connection) -> None:
    chain_seqs(conn, [3, 2, 5, 1, 4, 4, 2])
    assert heads(conn) == expected_heads(5)
    assert waiting(conn) == []


def test_without_message_one_nothing_is_chained(conn: sqlite3.Connection) -> None:
    """A node that joins late cannot compute the heads before what it first sees."""
    chain_seqs(conn, [500, 501])
    assert heads(conn) == []
    assert waiting(conn) == [500, 501]


def test_a_message_seen_again_changes_nothing(conn: sqlite3.Connection) -> None:
    chain_seqs(conn, [1, 2])

    def job(c: sqlite3.Connection) -> None:
        writes = Writes(c, T0, TTL)
        other = hashlib.sha256(b"something else").digest()
        writes.advance_chain(store.Incoming(b"{}", make_alert("origin", seq=2), [], other))
        writes.advance_chain(store.Incoming(b"{}", make_alert("origin", seq=3), [], None))
        writes.flush()

    db.transaction(conn, job)
    assert heads(conn) == expected_heads(2)
    assert waiting(conn) == []  # a message its origin did not sign is not chained


def test_waiting_digests_are_bounded(conn: sqlite3.Connection) -> None:
    beyond = list(range(3, 3 + chain.MAX_PENDING + 10))
    chain_seqs(conn, beyond[:100])
    chain_seqs(conn, beyond[100:])
    assert len(waiting(conn)) == chain.MAX_PENDING
    chain_seqs(conn, [1, 2])  # the kept run is chained; what was dropped must be fetched again
    assert chain.latest(conn, "origin")[0] == 2 + chain.MAX_PENDING
    assert waiting(conn) == []


def test_purge_keeps_the_newest_heads_of_each_origin(conn: sqlite3.Connection) -> None:
    rows = [("origin", n, digest_of(n)) for n in range(1, chain.KEEP_HEADS + 21)]
    rows.append(("other", 2, digest_of(2)))
    db.transaction(conn, lambda c: c.executemany(chain.INSERT_HEAD, rows))
    assert db.transaction(conn, chain.purge) == 20
    kept = conn.execute("SELECT min(seq), count(*) FROM chain WHERE network = 'origin'")
    assert kept.fetchone() == (21, chain.KEEP_HEADS)
    assert chain.latest(conn, "origin") == (chain.KEEP_HEADS + 20, rows[-2][2])
    assert chain.latest(conn, "other") == (2, digest_of(2))


# --- through the pipeline ------------------------------------------------------


def pae_digest(raw: bytes) -> bytes:
    envelope, payload = open_envelope(raw)
    return entry_digest(envelope.payloadType, payload)


async def test_the_pipeline_chains_what_the_origin_signed_whatever_the_decision(
    tmp_path: Path,
) -> None:
    """Accepted, held, rejected by policy and endorsed copies all chain the origin's bytes;
    a forgery, an unknown origin's alert and an endorser's word alone do not."""
    outside = make_alert("origin", seq=2, codes=("fips:36061",), geohash="dr5reg")
    expired = make_alert("origin", seq=3, sent_at=T0 - timedelta(days=1))
    messages = [
        raw_envelope(make_alert("origin", seq=1), ORIGIN, RELAY),  # accepted
        raw_envelope(outside, ORIGIN),  # held
        raw_envelope(expired, ORIGIN),  # rejected: expired
        raw_envelope(make_alert("origin", seq=4), ORIGIN),
    ]
    strangers = [
        raw_envelope(make_alert("elsewhere", seq=1, codes=("fips:36061",)), STRANGER, RELAY)
    ]
    posing = [raw_envelope(make_alert("origin", seq=5), RELAY)]  # the relay's key, origin's name
    async with twin(tmp_path, "hub", 600) as node:
        # Out of order, in two transactions, then a duplicate.
        await node.pipeline.ingest(messages[2:] + strangers + posing, from_peer="relay")
        assert (await tables(node))["chain"] == []
        await node.pipeline.ingest(messages[:2], from_peer="relay")
        await node.pipeline.ingest([messages[0]], from_peer="relay")
        rows = (await tables(node))["chain"]
        digests = [pae_digest(raw) for raw in messages]
        assert rows == [("origin", 4, chain_heads(digests)[-1])]
        assert (await tables(node))["chain_pending"] == []


async def test_an_upgraded_node_begins_its_own_chain_from_what_it_stores(tmp_path: Path) -> None:
    """The chain table is new after the upgrade: ``start_own`` chains the stored run."""
    messages = [raw_envelope(make_alert("origin", seq=n), ORIGIN) for n in range(1, 5)]
    async with twin(tmp_path, "hub", 600) as node:
        await node.pipeline.ingest(messages, from_peer="relay")
        chained = (await tables(node))["chain"]
        assert [row[1] for row in chained] == [4]

        def upgraded(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM chain")
            return chain.start_own(conn, "origin")

        assert await node.db.write(upgraded) == 4
        assert (await tables(node))["chain"] == chained
        assert await node.db.write(lambda conn: chain.start_own(conn, "origin")) == 0

        def purged(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM chain")
            conn.execute("DELETE FROM alerts WHERE seq <= 2")
            return chain.start_own(conn, "origin")

        assert await node.db.write(purged) == 2  # 3 and 4, from zeros after 2
        digests = [pae_digest(raw) for raw in messages[2:]]
        heads = chain_heads(digests, ZERO_HEAD)
        assert (await tables(node))["chain"] == [("origin", 4, heads[1])]
