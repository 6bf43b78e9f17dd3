"""Equivocation evidence: two signed words of one origin that cannot both be true.

DESIGN §16. ``chain_evidence`` keeps, per origin, what showed it signed two
different heads for one ``seq`` (``relay.federation.repair`` finds them):

- ``checkpoints``: two checkpoints with the same ``(network, seq)`` and
  different heads; ``first`` the one held, ``second`` the other, both as
  signed, so anyone can check them with the origin's key;
- ``chain``: a checkpoint whose head is not the one this node's chain of
  the origin (its own validly signed messages) reached at that ``seq``;
  ``first`` the checkpoint, ``second`` the message at that ``seq`` held here.

One row per ``(network, seq, kind)`` (seeing the same split again adds
nothing) and at most ``MAX_PER_ORIGIN`` per origin, the newest: storage is
bounded whatever an origin signs. While an origin has evidence not cleared
it is ``equivocating`` and the trust snapshot holds its new alerts for review
(``relay.core.policy``, reason ``equivocation``); ``clear`` is the operator's
decision (``avisa trust equivocation clear NETWORK``, the desk). Callers bump
the trust version in the same transaction (``relay.storage.trust``), so a
running node's next snapshot sees the change.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from relay.core.times import from_epoch, to_epoch

MAX_PER_ORIGIN = 8
Kind = Literal["checkpoints", "chain"]


@dataclass(frozen=True, slots=True)
class Evidence:
    id: int
    network: str
    seq: int
    kind: str
    first: bytes
    second: bytes
    from_peer: str | None
    seen_at: datetime
    cleared_at: datetime | None


def record(
    conn: sqlite3.Connection,
    network: str,
    seq: int,
    kind: Kind,
    pair: tuple[bytes, bytes],
    from_peer: str | None,
    now: datetime,
) -> bool:
    """Keep one piece of evidence (the newest ``MAX_PER_ORIGIN`` per origin); False if
    this ``(network, seq, kind)`` was already kept."""
    inserted = conn.execute(
        "INSERT OR IGNORE INTO chain_evidence (network, seq, kind, first, second, from_peer,"
        " seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (network, seq, kind, pair[0], pair[1], from_peer, to_epoch(now)),
    ).rowcount
    if not inserted:
        return False
    conn.execute(
        "DELETE FROM chain_evidence WHERE network = ?1 AND id NOT IN"
        " (SELECT id FROM chain_evidence WHERE network = ?1 ORDER BY id DESC LIMIT ?2)",
        (network, MAX_PER_ORIGIN),
    )
    return True


def listing(conn: sqlite3.Connection, network: str | None = None) -> list[Evidence]:
    """What is kept, newest first (of one origin, if given)."""
    rows = conn.execute(
        "SELECT id, network, seq, kind, first, second, from_peer, seen_at, cleared_at"
        " FROM chain_evidence WHERE ?1 IS NULL OR network = ?1 ORDER BY id DESC",
        (network,),
    ).fetchall()
    return [
        Evidence(
            int(row[0]),
            str(row[1]),
            int(row[2]),
            str(row[3]),
            bytes(row[4]),
            bytes(row[5]),
            row[6],
            from_epoch(row[7]),
            None if row[8] is None else from_epoch(row[8]),
        )
        for row in rows
    ]


def clear(conn: sqlite3.Connection, network: str, now: datetime) -> int:
    """The operator has decided about ``network``: its evidence is kept, marked cleared,
    and its new alerts are no longer held. How many pieces it cleared."""
    return conn.execute(
        "UPDATE chain_evidence SET cleared_at = ? WHERE network = ? AND cleared_at IS NULL",
        (to_epoch(now), network),
    ).rowcount


def equivocating(conn: sqlite3.Connection) -> frozenset[str]:
    """The origins with evidence not cleared."""
    rows = conn.execute(
        "SELECT DISTINCT network FROM chain_evidence WHERE cleared_at IS NULL"
    ).fetchall()
    return frozenset(str(row[0]) for row in rows)
