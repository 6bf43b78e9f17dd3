"""Peer keys in SQLite with their provenance, and the writes that change them.

``relay.storage.trust`` owns the ``peers`` and ``peer_keys`` tables and builds the
node's ``TrustSnapshot``; this module adds what key management needs on top:
``learned_at`` and ``introduced_by`` per key, the last key document trusted
per peer (``peer_key_documents``), and three store helpers. Each runs inside
the caller's transaction, persists a pure result (``keys.cards.apply``,
``keys.cards.cardcheck``, ``keys.cards.keyset``), moves alerts that rested on a newly
revoked key back to review, and bumps ``trust_version`` so a running node
reloads within seconds:

- ``store_document``: a fetched or handed-over key document of a peer we
  already trust (federation calls this with the bytes it got from
  ``GET /federation/v1/keys``);
- ``store_card``: ``avisa trust add`` after ``check_card`` said yes;
- ``store_keys``: any other ``ApplyResult`` (``avisa trust revoke``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from keys.cards.apply import apply_document
from keys.cards.card import VerifiedDocument, verify_key_document
from keys.cards.cardcheck import CardPlan
from keys.cards.keyset import ApplyResult
from keys.core.keyring import KeyEntry
from keys.store.requeue import requeue_revoked
from relay.core.config import Config
from relay.core.errors import BadPeerData
from relay.core.policy import PeerPolicy
from relay.core.times import (
    from_epoch,
    from_epoch_or_none,
    parse_duration,
    to_epoch,
    to_epoch_or_none,
)
from relay.storage import trust


def load_known(conn: sqlite3.Connection) -> list[KeyEntry]:
    """Every peer key, every network, with provenance."""
    return [
        KeyEntry(
            network,
            bytes(public_key),
            from_epoch_or_none(valid_from),
            from_epoch_or_none(valid_until),
            from_epoch_or_none(revoked_at),
            from_epoch_or_none(learned_at),
            introduced_by,
        )
        for network, public_key, valid_from, valid_until, revoked_at, learned_at, introduced_by in (
            conn.execute(
                "SELECT network, public_key, valid_from, valid_until, revoked_at, learned_at,"
                " introduced_by FROM peer_keys ORDER BY rowid"
            )
        )
    ]


def save_entries(conn: sqlite3.Connection, entries: Iterable[KeyEntry]) -> None:
    """Upsert keys as the pure layer computed them (it only ever narrows trust)."""
    for entry in entries:
        conn.execute(
            "INSERT INTO peer_keys (keyid, network, public_key, valid_from, valid_until,"
            " revoked_at, learned_at, introduced_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (keyid) DO UPDATE SET valid_from = excluded.valid_from,"
            " valid_until = excluded.valid_until, revoked_at = excluded.revoked_at,"
            " learned_at = excluded.learned_at, introduced_by = excluded.introduced_by"
            " WHERE peer_keys.network = excluded.network",
            (
                entry.keyid,
                entry.network,
                entry.public_key,
                to_epoch_or_none(entry.valid_from),
                to_epoch_or_none(entry.valid_until),
                to_epoch_or_none(entry.revoked_at),
                to_epoch_or_none(entry.learned_at),
                entry.introduced_by,
            ),
        )
    trust.bump_version(conn)


def last_document(conn: sqlite3.Connection, network: str) -> tuple[datetime, bytes] | None:
    row = conn.execute(
        "SELECT issued_at, document FROM peer_key_documents WHERE network = ?", (network,)
    ).fetchone()
    return None if row is None else (from_epoch(row[0]), bytes(row[1]))


def save_document(conn: sqlite3.Connection, verified: VerifiedDocument, now: datetime) -> None:
    """Remember the newest trusted document per peer (replay protection for cards)."""
    conn.execute(
        "INSERT INTO peer_key_documents (network, issued_at, received_at, document)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (network) DO UPDATE SET"
        " issued_at = excluded.issued_at, received_at = excluded.received_at,"
        " document = excluded.document WHERE excluded.issued_at >= peer_key_documents.issued_at",
        (verified.network, to_epoch(verified.document.issued_at), to_epoch(now), verified.raw),
    )


def _requeue(
    conn: sqlite3.Connection,
    config: Config,
    own_keys: Sequence[KeyEntry],
    revoked: dict[str, datetime],
    now: datetime,
) -> list[str]:
    if not revoked:
        return []
    snapshot = trust.load_snapshot(conn, config, own_keys)
    return requeue_revoked(conn, snapshot, revoked, now)


@dataclass(frozen=True, slots=True)
class Stored:
    """A persisted result and the alerts it moved back to ``held``."""

    result: ApplyResult
    held_again: list[str]


def store_document(
    conn: sqlite3.Connection,
    config: Config,
    own_keys: Sequence[KeyEntry],
    raw: bytes,
    now: datetime,
    expected_network: str | None = None,
) -> Stored:
    """Verify and apply a peer's key document; persist; requeue; bump trust_version.

    Raises ``BadPeerData`` (a 4xx, nothing written) for a malformed or badly
    self-signed document, one from another network than ``expected_network``,
    this node's own, or a network we do not trust.
    """
    verified = verify_key_document(raw)
    network = verified.network
    if expected_network is not None and network != expected_network:
        raise BadPeerData("AVISA_WRONG_NETWORK", f"key document of {network}, not of the peer")
    if network == config.node.network:
        raise BadPeerData("AVISA_WRONG_NETWORK", "this is this node's own key document")
    skew = parse_duration(config.policy.max_future_skew)
    result = apply_document([*load_known(conn), *own_keys], verified, now, skew)
    save_entries(conn, result.entries)
    if result.trusted:
        save_document(conn, verified, now)
    return Stored(result, _requeue(conn, config, own_keys, result.revoked, now))


def store_keys(
    conn: sqlite3.Connection,
    config: Config,
    own_keys: Sequence[KeyEntry],
    result: ApplyResult,
    now: datetime,
) -> Stored:
    save_entries(conn, result.entries)
    return Stored(result, _requeue(conn, config, own_keys, result.revoked, now))


def store_card(
    conn: sqlite3.Connection,
    config: Config,
    own_keys: Sequence[KeyEntry],
    plan: CardPlan,
    policy: PeerPolicy,
    verified: VerifiedDocument,
    now: datetime,
) -> list[str]:
    """Trust a card ``check_card`` accepted: the peer, its scope, its keys, its document."""
    trust.save_peer(conn, trust.PeerRecord(plan.network, plan.url, (), policy), now)
    save_entries(conn, plan.entries)
    save_document(conn, verified, now)
    return _requeue(conn, config, own_keys, plan.revoked, now)
