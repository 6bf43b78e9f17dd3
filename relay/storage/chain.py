"""Each origin's hash chain, kept incrementally in the writer's transaction (plain SQL).

The rule is ``relay.core.checkpoints``; this is its state. ``chain`` holds
``(network, seq, head)`` rows, the head over messages ``1…seq``: one per
origin per writer job that moved its chain (the head the job ended at), not
one per message — on the ingest path a row per message cost the writer more
than the rest of the chain together. The highest row is the origin's current
head; the rows below it let a checkpoint at an older ``seq`` be compared when
a job ended there, which is where an origin's checkpoints fall (the origin
signs its head, and the transaction carrying its newest message ends there).
``chain_pending`` holds the digests of messages beyond a gap (a peer's
transactions land out of order, or a message never came): when the gap is
filled, the run of waiting digests is chained in the same step and their
rows deleted.

``OriginChain`` is one origin's chain for one writer job: read with one
statement the first time the job meets the origin, advanced in memory for
each message, written back at the flush with one multi-row INSERT per table
(``Writes.flush``). A message at or below the head changes nothing (it was
chained already: the same message from another peer, a duplicate).

Bounds: at most ``MAX_PENDING`` waiting digests per origin (beyond that a
digest is dropped; the message can be fetched again once the gap is
repaired), and ``purge`` keeps the newest ``KEEP_HEADS`` heads per origin.

``checkpoints`` keeps the newest checkpoint of each other origin this node
holds, as the envelope bytes it verified (its own is kept in memory by
``relay.federation.checkpointing``): one row per origin, replaced by a newer
one, so its size is bounded by the origins.

A node that first hears of an origin at ``seq`` 500 cannot compute
``head_499``: what it receives waits until message 1… arrive, or a verified
checkpoint anchors the chain (``anchor``, ``relay.federation.repair``). A
node's own chain begins with ``start_own`` when the table is new.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from relay.core.checkpoints import ZERO_HEAD, Checkpoint, advance, entry_digest
from relay.core.envelope import open_envelope
from relay.core.times import from_epoch, to_epoch

MAX_PENDING = 4096
KEEP_HEADS = 4096

INSERT_HEAD = "INSERT OR IGNORE INTO chain (network, seq, head) VALUES (?, ?, ?)"
INSERT_PENDING = "INSERT OR IGNORE INTO chain_pending (network, seq, digest) VALUES (?, ?, ?)"
_READ = (
    "SELECT (SELECT seq FROM chain WHERE network = ?1 ORDER BY seq DESC LIMIT 1),"
    " (SELECT head FROM chain WHERE network = ?1 ORDER BY seq DESC LIMIT 1),"
    " (SELECT count(*) FROM chain_pending WHERE network = ?1)"
)


class OriginChain:
    """One origin's chain in a writer job: its head, what waits beyond it, what to write."""

    def __init__(self, conn: sqlite3.Connection, network: str) -> None:
        seq, head, waiting = conn.execute(_READ, (network,)).fetchone()
        self.network = network
        self.seq: int = 0 if seq is None else int(seq)
        self.head: bytes = ZERO_HEAD if head is None else bytes(head)
        self._conn = conn
        self._waiting_count = int(waiting)
        self._waiting: dict[int, bytes] | None = None  # read only when a gap is filled
        self._start = self.seq  # a head row is written at the flush if the chain moved
        self.pending: list[tuple[str, int, bytes]] = []
        self._drained_to = 0  # waiting rows at or below this seq are deleted at the flush

    def observe(self, seq: int, digest: bytes) -> None:
        """One message of the origin: chain it (and what waited behind it) or keep it waiting."""
        if seq == self.seq + 1:  # the common case, kept short: it runs for every message
            self.seq, self.head = seq, hashlib.sha256(self.head + digest).digest()
            if self._waiting_count:
                self._drain()
        elif seq > self.seq:
            self._wait(seq, digest)

    def anchor(self, seq: int, head: bytes) -> None:
        """Take ``(seq, head)`` from a verified checkpoint as the head, when the messages
        before it can no longer be had (``relay.federation.repair``); what waited beyond
        it is chained from there, what waited below it is dropped."""
        if seq <= self.seq:
            return
        self._step(seq, head)
        self._drained_to = seq
        self._drain()

    def _drain(self) -> None:
        if not self._waiting_count:
            return
        waiting = self._read_waiting()
        for step_seq, head in advance(self.seq, self.head, waiting):
            self._step(step_seq, head)
            del waiting[step_seq]
            self._drained_to = step_seq
            self._waiting_count -= 1

    def _step(self, seq: int, head: bytes) -> None:
        self.seq, self.head = seq, head

    @property
    def heads(self) -> list[tuple[str, int, bytes]]:
        """The row to insert at the flush: the head the chain reached, if it moved."""
        return [(self.network, self.seq, self.head)] if self.seq > self._start else []

    def _wait(self, seq: int, digest: bytes) -> None:
        if self._waiting_count >= MAX_PENDING:
            return
        if self._waiting is not None:
            if seq in self._waiting:
                return
            self._waiting[seq] = digest
        self._waiting_count += 1
        self.pending.append((self.network, seq, digest))

    def _read_waiting(self) -> dict[int, bytes]:
        if self._waiting is None:
            rows = self._conn.execute(
                "SELECT seq, digest FROM chain_pending WHERE network = ? AND seq > ?",
                (self.network, self.seq),
            ).fetchall()
            self._waiting = {int(seq): bytes(digest) for seq, digest in rows}
            for _, seq, digest in self.pending:  # this job's, not written yet
                self._waiting.setdefault(seq, digest)
        return self._waiting

    def save(self, conn: sqlite3.Connection) -> None:
        """Delete the waiting rows this job chained (the new rows are the caller's INSERTs)."""
        if self._drained_to:
            conn.execute(
                "DELETE FROM chain_pending WHERE network = ? AND seq <= ?",
                (self.network, self._drained_to),
            )
            self._drained_to = 0


def rows_of(chains: Sequence[OriginChain]) -> tuple[list[tuple[str, int, bytes]], ...]:
    """The new head rows and waiting rows of a job's chains, for one INSERT each."""
    heads = [row for chain in chains for row in chain.heads]
    pending = [row for chain in chains for row in chain.pending]
    return heads, pending


def anchor(conn: sqlite3.Connection, network: str, seq: int, head: bytes) -> None:
    """``OriginChain.anchor`` in a job of its own."""
    origin_chain = OriginChain(conn, network)
    origin_chain.anchor(seq, head)
    conn.executemany(INSERT_HEAD, origin_chain.heads)
    origin_chain.save(conn)


def start_own(conn: sqlite3.Connection, network: str) -> int:
    """Begin this node's own chain from the messages it stores, once: when it was upgraded
    with messages already signed, the chain table starts empty. The newest run of
    consecutive ``seq`` it holds is chained from ``head_0`` if it starts at 1, else from
    32 zero bytes after the run's first ``seq`` − 1 (the messages before it have passed
    retention everywhere: peers anchor at this node's checkpoint). How many it chained."""
    if conn.execute("SELECT 1 FROM chain WHERE network = ? LIMIT 1", (network,)).fetchone():
        return 0
    rows = conn.execute(
        "SELECT seq, envelope FROM alerts WHERE network = ? ORDER BY seq DESC", (network,)
    ).fetchall()
    run: list[tuple[int, bytes]] = []
    for seq, envelope in rows:
        if run and seq != run[-1][0] - 1:
            break
        run.append((int(seq), bytes(envelope)))
    if not run:
        return 0
    run.reverse()
    origin_chain = OriginChain(conn, network)
    if run[0][0] > 1:
        origin_chain.anchor(run[0][0] - 1, ZERO_HEAD)
    for seq, envelope in run:
        opened, payload = open_envelope(envelope)
        origin_chain.observe(seq, entry_digest(opened.payloadType, payload))
    conn.executemany(INSERT_HEAD, origin_chain.heads)
    origin_chain.save(conn)
    return origin_chain.seq - (run[0][0] - 1)


def last_deliverer(conn: sqlite3.Connection, network: str) -> str | None:
    """The peer that delivered the origin's highest-numbered message this node stores."""
    row = conn.execute(
        "SELECT from_peer FROM alerts WHERE network = ? AND from_peer IS NOT NULL"
        " ORDER BY seq DESC LIMIT 1",
        (network,),
    ).fetchone()
    return None if row is None else str(row[0])


def head_at(conn: sqlite3.Connection, network: str, seq: int) -> bytes | None:
    """The origin's head after message ``seq``, if this node has chained that far."""
    row = conn.execute(
        "SELECT head FROM chain WHERE network = ? AND seq = ?", (network, seq)
    ).fetchone()
    return None if row is None else bytes(row[0])


def latest(conn: sqlite3.Connection, network: str) -> tuple[int, bytes]:
    """The origin's current head ``(seq, head)``; ``(0, 32 zero bytes)`` before message 1."""
    row = conn.execute(
        "SELECT seq, head FROM chain WHERE network = ? ORDER BY seq DESC LIMIT 1", (network,)
    ).fetchone()
    return (0, ZERO_HEAD) if row is None else (int(row[0]), bytes(row[1]))


def purge(conn: sqlite3.Connection) -> int:
    """Keep the newest ``KEEP_HEADS`` heads of each origin; the number deleted."""
    return conn.execute(
        "DELETE FROM chain WHERE seq <= (SELECT max(seq) FROM chain AS newest"
        " WHERE newest.network = chain.network) - ?",
        (KEEP_HEADS,),
    ).rowcount


# --- checkpoints: the newest of each origin ---------------------------------------


def save_checkpoint(
    conn: sqlite3.Connection,
    checkpoint: Checkpoint,
    envelope: bytes,
    from_peer: str | None,
    now: datetime,
    cosignatures: bytes = b"",
) -> None:
    """Keep ``checkpoint`` as its origin's newest (the caller checked that it is newer),
    with the cosignatures it came with (``relay.core.cosign.encode_cosignatures``)."""
    conn.execute(
        "INSERT INTO checkpoints (network, seq, head, issued_at, envelope, from_peer,"
        " received_at, cosignatures) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (network)"
        " DO UPDATE SET seq = excluded.seq, head = excluded.head,"
        " issued_at = excluded.issued_at, envelope = excluded.envelope,"
        " from_peer = excluded.from_peer, received_at = excluded.received_at,"
        " cosignatures = excluded.cosignatures",
        (
            checkpoint.network,
            checkpoint.seq,
            bytes.fromhex(checkpoint.head),
            to_epoch(checkpoint.issued_at),
            envelope,
            from_peer,
            to_epoch(now),
            cosignatures,
        ),
    )


def checkpoint_cosignatures(conn: sqlite3.Connection, network: str) -> bytes:
    """The cosignatures kept with the newest checkpoint of ``network`` (b"" if none)."""
    row = conn.execute(
        "SELECT cosignatures FROM checkpoints WHERE network = ?", (network,)
    ).fetchone()
    return b"" if row is None else bytes(row[0])


def checkpoint_times(conn: sqlite3.Connection) -> dict[str, datetime]:
    """Per origin, when its newest checkpoint held here was issued (for silence)."""
    rows = conn.execute("SELECT network, issued_at FROM checkpoints").fetchall()
    return {str(network): from_epoch(issued_at) for network, issued_at in rows}


def checkpoint_envelope(conn: sqlite3.Connection, network: str) -> bytes | None:
    """The newest checkpoint of ``network`` this node holds, as signed."""
    row = conn.execute("SELECT envelope FROM checkpoints WHERE network = ?", (network,)).fetchone()
    return None if row is None else bytes(row[0])


def checkpoint_of(conn: sqlite3.Connection, network: str) -> Checkpoint | None:
    """The newest checkpoint of ``network`` this node holds."""
    row = conn.execute(
        "SELECT seq, head, issued_at FROM checkpoints WHERE network = ?", (network,)
    ).fetchone()
    if row is None:
        return None
    return Checkpoint(network, int(row[0]), bytes(row[1]).hex(), from_epoch(row[2]))
