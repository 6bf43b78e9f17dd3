"""Gaps in an origin's ``seq``: messages this node has evidently not seen (plain SQL).

Each origin numbers the messages it signs 1, 2, 3, … (DESIGN §2). When a
message from a peer carries a ``seq`` more than one above the highest this
node has stored for that origin, the numbers between are recorded as a gap,
with the peer that delivered it; a message that later fills a number splits
or closes its gap. A new gap asks the sender task for that peer to pull
catch-up (``needs_pull``); after the pull the gap is marked ``pulled`` so it
triggers no more pulls, but stays on record until it ages out.

Gaps are normal: a node never gets messages its peers refused, did not
forward, or withdrew before sending. They are a hint to look, never an error.
The first message seen from an origin opens no gap: a node that joins late
cannot know what came before. ``OriginGaps.observe`` runs in the writer job
that stores the message (``relay.storage.writes``), before the origin's
``max_seq`` moves.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import NamedTuple

from relay.core.times import to_epoch

MAX_GAPS_PER_ORIGIN = 64


def highest_seq(conn: sqlite3.Connection, network: str) -> int | None:
    """The origin's highest ``seq`` stored so far (``origins.max_seq``), None before its first."""
    row = conn.execute("SELECT max_seq FROM origins WHERE network = ?", (network,)).fetchone()
    return None if row is None else int(row[0])


class Gap(NamedTuple):
    seq_from: int
    seq_to: int
    peer: str | None
    noticed_at: int
    pulled: int


class OriginGaps:
    """One origin's gaps in memory for a writer job: read once, written back once.

    ``observe`` is the one gap tracker: each message from a peer, with the
    origin's highest ``seq`` before it (``top``), opens, splits or closes
    gaps; ``save`` writes the outcome with one DELETE and one INSERT. When a
    peer's transactions land out of order, each message of the earlier one
    fills a gap without a statement of its own.
    """

    def __init__(self, conn: sqlite3.Connection, network: str) -> None:
        rows = conn.execute(
            "SELECT seq_from, seq_to, peer, noticed_at, pulled FROM seq_gaps"
            " WHERE network = ? ORDER BY seq_from",
            (network,),
        ).fetchall()
        self.network = network
        self.gaps = [Gap(*row) for row in rows]
        self.changed = False

    def observe(self, seq: int, top: int, from_peer: str, now_s: int) -> None:
        if seq > top + 1:
            kept = [gap for gap in self.gaps if gap.seq_from != top + 1]
            kept.append(Gap(top + 1, seq - 1, from_peer, now_s, 0))
            self.gaps = sorted(kept)[-MAX_GAPS_PER_ORIGIN:]
            self.changed = True
        elif seq <= top:
            self._fill(seq)

    def _fill(self, seq: int) -> None:
        for index, gap in enumerate(self.gaps):
            if gap.seq_from <= seq <= gap.seq_to:
                parts = [
                    gap._replace(seq_from=low, seq_to=high)
                    for low, high in ((gap.seq_from, seq - 1), (seq + 1, gap.seq_to))
                    if low <= high
                ]
                self.gaps[index : index + 1] = parts
                self.changed = True
                return

    def save(self, conn: sqlite3.Connection) -> None:
        if not self.changed:
            return
        conn.execute("DELETE FROM seq_gaps WHERE network = ?", (self.network,))
        conn.executemany(
            "INSERT INTO seq_gaps (network, seq_from, seq_to, peer, noticed_at, pulled)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(self.network, *gap) for gap in self.gaps],
        )
        self.changed = False


def needs_pull(conn: sqlite3.Connection, peer: str) -> bool:
    """A gap noticed in what ``peer`` delivered that no pull has looked at yet."""
    row = conn.execute(
        "SELECT 1 FROM seq_gaps WHERE peer = ? AND pulled = 0 LIMIT 1", (peer,)
    ).fetchone()
    return row is not None


def mark_pulled(conn: sqlite3.Connection, peer: str) -> None:
    conn.execute("UPDATE seq_gaps SET pulled = 1 WHERE peer = ? AND pulled = 0", (peer,))


class PeerGaps(NamedTuple):
    """The gaps noticed in what one peer delivered (``/api/v1/peers``, ``/metrics``)."""

    ranges: int  # open gaps
    missing: int  # messages in them
    unpulled: int  # gaps no catch-up pull has looked at yet
    newest: list[dict[str, object]]  # up to ``SHOWN`` of them, newest first


SHOWN = 20


def by_peer(conn: sqlite3.Connection) -> dict[str, PeerGaps]:
    """Per peer, the ``seq`` gaps it left that this node is waiting to fill."""
    found: dict[str, PeerGaps] = {}
    for peer, ranges, missing, unpulled in conn.execute(
        "SELECT peer, count(*), sum(seq_to - seq_from + 1), sum(pulled = 0) FROM seq_gaps"
        " WHERE peer IS NOT NULL GROUP BY peer"
    ):
        rows = conn.execute(
            "SELECT network, seq_from, seq_to, pulled FROM seq_gaps WHERE peer = ?"
            " ORDER BY noticed_at DESC, network, seq_from LIMIT ?",
            (peer, SHOWN),
        ).fetchall()
        newest: list[dict[str, object]] = [
            {"origin": origin, "from": int(low), "to": int(high), "pulled": bool(pulled)}
            for origin, low, high, pulled in rows
        ]
        found[str(peer)] = PeerGaps(int(ranges), int(missing), int(unpulled), newest)
    return found


def purge(conn: sqlite3.Connection, noticed_before: datetime) -> None:
    conn.execute("DELETE FROM seq_gaps WHERE noticed_at <= ?", (to_epoch(noticed_before),))
