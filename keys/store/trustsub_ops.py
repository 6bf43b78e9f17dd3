"""Subscribing to a coalition's trust list: ``avisa trustlist subscribe|refresh|unsubscribe``.

The fetching is the caller's (``relay.federation.trustfetch``, at the edge);
these operations judge what was fetched and store it, each in one IMMEDIATE
transaction on the data directory, node running or not:

- ``subscribe``: walk from nothing with the fingerprint the operator typed
  (version 1's maintainer set, read aloud once with a maintainer) to the
  newest version fetched; a refusal stores nothing.
- ``refresh`` (``refresh_on`` in the running node's own transaction,
  ``relay.federation.trustrefresh``): walk from the version held; what chains is held, the first
  refusal is recorded (reason, message, time) and shown by ``list`` and
  ``GET /api/v1/trustlists``; an equivocating copy is kept as evidence. A
  held version past its expiry with nothing newer is recorded ``expired``
  (the list is frozen). A fetch that failed is recorded as ``unreachable``
  (or the reason the newest version could not even be read).
- ``unsubscribe``: forget the subscription (its evidence stays).

Subscribing, advancing and unsubscribing bump ``trust_version``: the members
of the held versions are peers of the node's next snapshot
(``relay.storage.trust.list_peers``), and what only a list gave goes with it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from keys.cards.trustlist import OpenedList, TrustListRefused, read_list
from keys.cards.trustwalk import walk
from keys.core.fingerprint import normalize
from keys.store.own_ops import open_store
from relay.core.errors import BadInput
from relay.core.model import MAX_SCOPE, SCOPE_PATTERN, valid_node_url
from relay.core.times import Clock, rfc3339
from relay.storage import db, trust, trustlists

_SCOPE = re.compile(SCOPE_PATTERN)


def check_request(url: str, fingerprint: str, max_speaks_for: Sequence[str]) -> None:
    """The operator's options, before anything is fetched."""
    if not valid_node_url(url):
        raise BadInput(
            "AVISA_BAD_URL",
            "the list's URL is http(s)://host[:port]/path, e.g."
            " https://avisa.example.org/trustlists/v1/socal",
        )
    digits = normalize(fingerprint)
    if not (digits.isdigit() and len(digits) == 30):
        raise BadInput(
            "AVISA_BAD_FINGERPRINT",
            "--fingerprint is the 30 digits (six groups of five) a maintainer reads to you"
            " from 'avisa trustlist show' or 'verify'",
        )
    bad = [code for code in max_speaks_for if not _SCOPE.match(code)]
    if bad or len(max_speaks_for) > MAX_SCOPE or len(set(max_speaks_for)) != len(max_speaks_for):
        raise BadInput(
            "AVISA_BAD_SCOPE",
            "--max-speaks-for takes area codes (fips:06037, zip:93101, iso:us-ca) or geohash"
            f" prefixes, each once, at most {MAX_SCOPE}",
        )


def _opened(raws: Sequence[bytes]) -> list[OpenedList]:
    return [read_list(raw) for raw in raws]


def subscribe(
    data_dir: Path,
    url: str,
    fingerprint: str,
    max_speaks_for: Sequence[str],
    raws: Sequence[bytes],
    clock: Clock,
) -> OpenedList:
    """Walk from nothing to the newest version fetched and hold it; or refuse and keep nothing."""
    check_request(url, fingerprint, max_speaks_for)
    candidates = _opened(raws)
    with open_store(data_dir) as (_, conn):

        def job(c: sqlite3.Connection) -> OpenedList:
            now = clock()
            result = walk(None, candidates, now, fingerprint)
            if result.refusal is not None:
                raise result.refusal
            head = result.accepted[-1]
            if trustlists.subscriptions(c, head.document.list):
                raise BadInput(
                    "AVISA_ALREADY_SUBSCRIBED",
                    f"already subscribed to {head.document.list}; 'avisa trustlist refresh'"
                    " fetches it again",
                )
            trustlists.subscribe(c, url, normalize(fingerprint), max_speaks_for, head, now)
            trust.bump_version(c)  # its members are peers now: a running node reloads
            return head

        return db.transaction(conn, job)


def target(data_dir: Path, list_id: str) -> tuple[str, int]:
    """What a refresh fetches: the subscription's URL and the version held."""
    with open_store(data_dir) as (_, conn):
        found = trustlists.subscriptions(conn, list_id)
    if not found:
        raise BadInput("AVISA_NOT_SUBSCRIBED", f"this node is not subscribed to {list_id}")
    return found[0].url, found[0].held.version


@dataclass(frozen=True, slots=True)
class Unfetched:
    """Why a check fetched nothing to walk: ``unreachable`` or the newest version's refusal."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Refreshed:
    list: str
    version: int
    accepted: tuple[int, ...]
    refusal: tuple[str, str] | None
    expires_at: datetime | None = None


#: How far ahead a held version's expiry is announced (log, desk, API).
EXPIRY_WARNING = timedelta(days=7)


def expiring_soon(expires_at: datetime, now: datetime) -> bool:
    """Not yet expired, but within ``EXPIRY_WARNING``: maintainers must publish a new version."""
    return now < expires_at <= now + EXPIRY_WARNING


def refresh(
    data_dir: Path,
    list_id: str,
    fetched: Sequence[bytes] | Unfetched,
    clock: Clock,
) -> Refreshed:
    """Judge what a check fetched, or record why fetching failed (reason, message); the
    running node calls ``refresh_on`` in one of its own write transactions."""
    with open_store(data_dir) as (_, conn):
        return db.transaction(conn, lambda c: refresh_on(c, list_id, fetched, clock()))


def refresh_on(
    conn: sqlite3.Connection,
    list_id: str,
    fetched: Sequence[bytes] | Unfetched,
    now: datetime,
) -> Refreshed:
    found = trustlists.subscriptions(conn, list_id)
    if not found:
        raise BadInput("AVISA_NOT_SUBSCRIBED", f"this node is not subscribed to {list_id}")
    held = found[0].held
    accepted: tuple[OpenedList, ...] = ()
    refusal: tuple[str, str] | None = None
    if isinstance(fetched, Unfetched):
        refusal = (fetched.reason, fetched.message)
    else:
        try:
            result = walk(held, _opened(fetched), now, None)
        except TrustListRefused as exc:
            refusal = (exc.reason, exc.message)
        else:
            accepted = result.accepted
            for copy in result.evidence:
                trustlists.keep_evidence(conn, copy, now)
            if result.refusal is not None:
                refusal = (result.refusal.reason, result.refusal.message)
    head = accepted[-1] if accepted else held
    if accepted:
        trustlists.advance(conn, head, now)
        trust.bump_version(conn)
    if refusal is None and head.document.expires_at <= now:
        at = rfc3339(head.document.expires_at)
        refusal = ("expired", f"version {head.version} expired at {at}; no newer version")
    trustlists.checked(conn, list_id, refusal, now)
    return Refreshed(
        list_id,
        head.version,
        tuple(v.version for v in accepted),
        refusal,
        head.document.expires_at,
    )


def _unsubscribe(conn: sqlite3.Connection, list_id: str) -> bool:
    trust.bump_version(conn)
    return trustlists.unsubscribe(conn, list_id)


def unsubscribe(data_dir: Path, list_id: str) -> None:
    with open_store(data_dir) as (_, conn):
        if not db.transaction(conn, lambda c: _unsubscribe(c, list_id)):
            raise BadInput("AVISA_NOT_SUBSCRIBED", f"this node is not subscribed to {list_id}")


def view(sub: trustlists.Subscription, evidence: int, now: datetime) -> dict[str, Any]:
    """One subscription as ``avisa trustlist list --json`` and ``/api/v1/trustlists`` show it."""
    document = sub.held.document
    refusal = None
    if sub.refusal is not None:
        refusal = {
            "reason": sub.refusal,
            "message": sub.refusal_message,
            "at": rfc3339(sub.refused_at or now),
        }
    return {
        "list": sub.list,
        "url": sub.url,
        "version": document.version,
        "issued_at": rfc3339(document.issued_at),
        "expires_at": rfc3339(document.expires_at),
        "expired": document.expires_at <= now,
        "expires_soon": expiring_soon(document.expires_at, now),
        "members": len(document.members),
        "maintainers": list(document.maintainers.networks),
        "threshold": document.maintainers.threshold,
        "fingerprint": " ".join(sub.fingerprint[i : i + 5] for i in range(0, 30, 5)),
        "max_speaks_for": list(sub.max_speaks_for),
        "checked_at": rfc3339(sub.checked_at),
        "refusal": refusal,
        "evidence": evidence,
    }


def views(conn: sqlite3.Connection, now: datetime) -> list[dict[str, Any]]:
    return [
        view(sub, trustlists.evidence_count(conn, sub.list), now)
        for sub in trustlists.subscriptions(conn)
    ]


def listing(data_dir: Path, clock: Clock) -> list[dict[str, Any]]:
    with open_store(data_dir) as (_, conn):
        return views(conn, clock())
