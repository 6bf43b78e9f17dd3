"""Catch-up: ``GET /federation/v1/alerts?since=<cursor>&limit=<n>``, both sides.

Serving: the cursor is a position in this node's feed (``store.feed``). A
page walks up to ``limit`` feed entries after ``since`` and returns those
this node would forward to the caller right now, by the same rules as the
outbox (``forwarding``): active, unexpired, the caller's entry says
``forward``, not signed by the caller, not from it, endorsed if its entry
says so. ``next`` is the last position walked, so a page may hold fewer
envelopes than ``limit`` and the caller simply asks again; a page that walks
nothing returns ``next == since``.

Pulling: a node pulls from a peer on start, after an outage ends and when a
``seq`` gap was noticed in what that peer delivered. Each page goes through
the ordinary pipeline; the cursor is saved in the same transaction as the
page's outcomes, so a crash never skips a page. If the peer's own rate limit
(``rate_limited``) turned part of a page away, the cursor stays put and the
pull is repeated later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from keys.core.signing import NodeKey
from relay.core.forwarding import outgoing, should_forward, signer_networks
from relay.core.model import envelope_decoder
from relay.core.times import Clock
from relay.federation.transport import PeerClient
from relay.runtime.pipeline import Outcome
from relay.storage import fedstate, store
from relay.storage.db import Connection, Database
from relay.storage.trust import PeerRecord, TrustSnapshot

PAGE_LIMIT_MAX = 100
PAGE_LIMIT_DEFAULT = 50
PULL_PAGE = 50
MAX_PAGES_PER_PULL = 2000

Ingest = Callable[..., Awaitable[list[Outcome]]]


def page(
    conn: Connection,
    since: int,
    limit: int,
    caller: str,
    snapshot: TrustSnapshot,
    key: NodeKey,
    now: datetime,
) -> tuple[list[bytes], int]:
    """The envelopes after ``since`` that would be forwarded to ``caller``; and ``next``."""
    rows = store.feed_since(conn, since, limit)
    next_pos = rows[-1][0] if rows else since
    peer = snapshot.peers.get(caller)
    if peer is None or not peer.policy.forward:
        return [], next_pos
    found = []
    for _, stored in rows:
        alert = stored.alert
        if stored.state != "active" or alert.expires_at <= now:
            continue
        envelope = envelope_decoder.decode(stored.envelope)
        signers = signer_networks(envelope, snapshot.keyring)
        trusted = alert.network in snapshot.peers
        relay = peer.policy.relay
        if not should_forward(caller, alert.network, stored.from_peer, signers, relay, trusted):
            continue
        data = outgoing(
            stored.envelope, envelope, key, peer.policy.endorse, snapshot.policy.max_signatures
        )
        if data is not None:
            found.append(data)
    return found, next_pos


def encode_page(envelopes: Sequence[bytes], next_pos: int) -> bytes:
    return b'{"envelopes":[' + b",".join(envelopes) + b'],"next":"%d"}' % next_pos


# --- pulling ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pulled:
    envelopes: int
    accepted: int
    complete: bool


def _limited(outcomes: Sequence[Outcome]) -> bool:
    return any(outcome.reason == "rate_limited" for outcome in outcomes)


async def _take(
    raws: list[bytes],
    network: str,
    since: int,
    next_pos: int,
    db: Database,
    ingest: Ingest,
    clock: Clock,
) -> list[Outcome]:
    """Ingest one page; the cursor moves in the same transaction, unless rate limited."""

    def advance(conn: Connection, outcomes: list[Outcome]) -> None:
        if next_pos > since and not _limited(outcomes):
            fedstate.save_pull_cursor(conn, network, next_pos, clock())

    if raws:
        return await ingest(raws, from_peer=network, then=advance)
    if next_pos > since:
        await db.write(lambda conn: advance(conn, []))
    return []


async def pull(
    client: PeerClient, peer: PeerRecord, db: Database, ingest: Ingest, clock: Clock
) -> Pulled:
    """Pull everything ``peer`` has for us since our cursor, page by page."""
    network = peer.network
    cursor = await db.read(lambda conn: fedstate.pull_cursor(conn, network))
    seen = accepted = 0
    for _ in range(MAX_PAGES_PER_PULL):
        reply = await client.alerts(network, peer.url, cursor, PULL_PAGE)
        next_pos = int(reply.next)
        raws = [bytes(raw) for raw in reply.envelopes]
        outcomes = await _take(raws, network, cursor, next_pos, db, ingest, clock)
        seen += len(outcomes)
        accepted += sum(outcome.status == "accepted" for outcome in outcomes)
        if _limited(outcomes):
            return Pulled(seen, accepted, complete=False)
        if next_pos <= cursor:
            break
        cursor = next_pos
    return Pulled(seen, accepted, complete=True)
