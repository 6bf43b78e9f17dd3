"""Who this node trusts: peers, their keys, operator tokens; and the snapshot.

Peers and tokens live in the store so that ``avisa trust …`` and ``avisa
token …`` can change them while the node runs: each change bumps
``meta.trust_version`` in the same transaction, and the running node reloads
a new immutable ``TrustSnapshot`` when it sees the version move. Decisions
always use one snapshot from start to end.

Operator tokens are 32 random bytes shown once; only their SHA-256 is stored,
and a presented token is compared against every stored hash in constant time.
A token holds one or more roles (DESIGN §6, §10): ``intake`` submits and reads
tips, ``verifier`` claims them and records outcomes, ``publisher`` signs
alerts (from tips too), ``reviewer`` works the held queue, ``admin`` may do
everything. Tokens made before roles were sets keep their one role.

Each token belongs to a **person** (``--person``, by default its label), and
the desk room's Matrix ids can be linked to persons (``desk_persons``), so the
two-person rule counts people, not credentials (DESIGN §17): ``person_of``
names the person behind a tip history's actor (``token:<id>`` or a Matrix id).

Peers also come from subscribed coalition trust lists (DESIGN §15): the
snapshot adds, next to the ``peers`` table's, the peers the held version of
each subscription gives (``list_peers``, the rule in ``keys.cards.trustmerge``).
They are never copied into ``peers``, so a new version or an unsubscribe needs
no cleanup: subscribing, advancing and unsubscribing bump ``trust_version``
like any trust change. ``avisa trust deny`` (``trust_deny``) beats every list,
and so does a list key revoked here (``avisa trust revoke``, ``trust_revoked_keys``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from keys.cards.trustmerge import Held, Local, merge
from keys.core.keyring import KeyEntry, Keyring
from relay.core.config import Config
from relay.core.errors import BadInput
from relay.core.model import CERTAINTIES, KINDS
from relay.core.policy import PeerPolicy, Policy, relay_of
from relay.core.times import (
    from_epoch,
    from_epoch_or_none,
    parse_duration,
    to_epoch,
    to_epoch_or_none,
)
from relay.storage import evidence, trustlists

Role = Literal["intake", "verifier", "publisher", "reviewer", "admin", "metrics"]
ROLES: tuple[Role, ...] = ("intake", "verifier", "publisher", "reviewer", "admin", "metrics")
Roles = frozenset[Role]


@dataclass(frozen=True, slots=True)
class PeerRecord:
    network: str
    url: str
    keys: tuple[KeyEntry, ...]
    policy: PeerPolicy


# --- tokens ---------------------------------------------------------------


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_roles(text: str) -> Roles:
    """``"intake,verifier"`` → the set; ``BadInput`` for an unknown or empty role."""
    names = [name.strip() for name in text.split(",")]
    unknown = [name for name in names if name not in ROLES]
    if not names or unknown:
        raise BadInput("AVISA_USAGE", f"roles are a comma-separated list of {', '.join(ROLES)}")
    return frozenset(names)  # type: ignore[arg-type]


def _roles_text(roles: Iterable[Role]) -> str:
    return ",".join(role for role in ROLES if role in set(roles))


def add_token(
    conn: sqlite3.Connection,
    role: Role | Iterable[Role],
    label: str,
    now: datetime,
    person: str | None = None,
) -> str:
    """Create a token with one role or several; the raw value is returned once, never stored.
    ``person`` (default: the label) is who the two-person rule counts."""
    roles: Roles = frozenset((role,) if isinstance(role, str) else role)
    if not roles or not roles <= set(ROLES):
        raise BadInput("AVISA_USAGE", f"roles are some of {', '.join(ROLES)}")
    chosen = person if person else label.strip()[:100]
    person = check_person(chosen) if chosen else None
    token = "avisa_" + secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO tokens (hash, roles, label, created_at, person) VALUES (?, ?, ?, ?, ?)",
        (token_hash(token), _roles_text(roles), label, to_epoch(now), person),
    )
    bump_version(conn)
    return token


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What may be shown about a token: never the token, only its hash's prefix."""

    token_id: str
    roles: Roles
    label: str
    created_at: datetime
    person: str | None = None

    @property
    def role(self) -> str:
        """The roles as ``avisa token list`` prints them."""
        return _roles_text(self.roles)


def _stored_roles(text: str) -> Roles:
    return frozenset(name for name in text.split(",") if name in ROLES)


def list_tokens(conn: sqlite3.Connection) -> list[TokenInfo]:
    rows = conn.execute(
        "SELECT hash, roles, label, created_at, person FROM tokens ORDER BY created_at"
    )
    return [
        TokenInfo(bytes(h)[:6].hex(), _stored_roles(roles), label, from_epoch(at), person)
        for h, roles, label, at, person in rows
    ]


def revoke_token(conn: sqlite3.Connection, token_id: str) -> int:
    """Delete the tokens whose hash starts with ``token_id`` (as ``list_tokens`` shows it)."""
    if not re.fullmatch(r"[0-9a-f]{6,64}", token_id):
        raise BadInput("AVISA_USAGE", "a token id is the hex shown by 'avisa token list'")
    matches = [
        bytes(h)
        for (h,) in conn.execute("SELECT hash FROM tokens")
        if bytes(h).hex().startswith(token_id)
    ]
    if len(matches) != 1:
        raise BadInput("AVISA_USAGE", f"{len(matches)} tokens match {token_id}; give exactly one")
    conn.execute("DELETE FROM tokens WHERE hash = ?", (matches[0],))
    bump_version(conn)
    return 1


def load_tokens(conn: sqlite3.Connection) -> tuple[tuple[bytes, Roles], ...]:
    return tuple(
        (bytes(h), _stored_roles(roles))
        for h, roles in conn.execute("SELECT hash, roles FROM tokens")
    )


def token_id(token: str) -> str:
    """How a token is named in lists and a tip's history: its hash's first 6 bytes."""
    return token_hash(token)[:6].hex()


def roles_for(token: str, tokens: Iterable[tuple[bytes, Roles]]) -> Roles | None:
    """The token's roles, comparing against every stored hash in constant time."""
    return roles_for_hash(token_hash(token), tokens)


def roles_for_hash(presented: bytes, tokens: Iterable[tuple[bytes, Roles]]) -> Roles | None:
    """``roles_for`` of a token known only by its hash (a web desk session keeps no token)."""
    found: Roles | None = None
    for stored, roles in tokens:
        if hmac.compare_digest(stored, presented):
            found = roles
    return found


# --- persons ----------------------------------------------------------------

MATRIX_ID = re.compile(r"@[a-z0-9._=/+-]{1,255}:[A-Za-z0-9.:\[\]-]{1,255}")


def check_person(name: str) -> str:
    """A person's name as the desk shows it: 1-100 printable characters."""
    name = name.strip()
    if not 1 <= len(name) <= 100 or not name.isprintable():
        raise BadInput("AVISA_USAGE", "a person is named by 1-100 printable characters")
    return name


def link_person(conn: sqlite3.Connection, user_id: str, person: str) -> None:
    """Link a Matrix id (as the desk room names actors) to a person."""
    if not MATRIX_ID.fullmatch(user_id):
        raise BadInput("AVISA_USAGE", "a Matrix id looks like @user:example.org")
    conn.execute(
        "INSERT INTO desk_persons (actor, person) VALUES (?, ?)"
        " ON CONFLICT (actor) DO UPDATE SET person = excluded.person",
        (user_id, check_person(person)),
    )


def unlink_person(conn: sqlite3.Connection, user_id: str) -> bool:
    return conn.execute("DELETE FROM desk_persons WHERE actor = ?", (user_id,)).rowcount > 0


def linked_persons(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return [(str(a), str(p)) for a, p in conn.execute("SELECT actor, person FROM desk_persons")]


def person_of(conn: sqlite3.Connection, actor: str) -> str | None:
    """The person behind a tip history's actor: ``token:<id>`` or a linked Matrix id."""
    if actor.startswith("token:"):
        prefix = actor.removeprefix("token:")
        if not re.fullmatch(r"[0-9a-f]{12}", prefix):
            return None
        row = conn.execute(
            "SELECT person FROM tokens WHERE substr(hash, 1, 6) = ?", (bytes.fromhex(prefix),)
        ).fetchone()
    else:
        row = conn.execute("SELECT person FROM desk_persons WHERE actor = ?", (actor,)).fetchone()
    return None if row is None or row[0] is None else str(row[0])


# --- peers ----------------------------------------------------------------


def bump_version(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'trust_version'")


def trust_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'trust_version'").fetchone()
    return int(row[0])


def save_peer(conn: sqlite3.Connection, record: PeerRecord, now: datetime) -> None:
    """Insert or replace a peer and its keys."""
    policy = record.policy
    conn.execute(
        "INSERT INTO peers (network, url, speaks_for, kinds, certainties, rate_limit_per_min,"
        " forward, endorse, relay, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (network) DO UPDATE SET url = excluded.url,"
        " speaks_for = excluded.speaks_for, kinds = excluded.kinds,"
        " certainties = excluded.certainties,"
        " rate_limit_per_min = excluded.rate_limit_per_min,"
        " forward = excluded.forward, endorse = excluded.endorse, relay = excluded.relay",
        (
            record.network,
            record.url,
            json.dumps(list(policy.speaks_for)),
            json.dumps(sorted(policy.kinds)),
            json.dumps(sorted(policy.certainties)),
            policy.rate_limit_per_min,
            int(policy.forward),
            int(policy.endorse),
            policy.relay,
            to_epoch(now),
        ),
    )
    for key in record.keys:
        save_key(conn, key)
    bump_version(conn)


def save_key(conn: sqlite3.Connection, key: KeyEntry) -> None:
    conn.execute(
        "INSERT INTO peer_keys (keyid, network, public_key, valid_from, valid_until, revoked_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (keyid) DO UPDATE SET"
        " valid_from = excluded.valid_from, valid_until = excluded.valid_until,"
        " revoked_at = coalesce(peer_keys.revoked_at, excluded.revoked_at)"
        " WHERE peer_keys.network = excluded.network",
        (
            key.keyid,
            key.network,
            key.public_key,
            to_epoch_or_none(key.valid_from),
            to_epoch_or_none(key.valid_until),
            to_epoch_or_none(key.revoked_at),
        ),
    )
    bump_version(conn)


def remove_peer(conn: sqlite3.Connection, network: str) -> bool:
    removed = conn.execute("DELETE FROM peers WHERE network = ?", (network,)).rowcount > 0
    bump_version(conn)
    return removed


def load_peers(conn: sqlite3.Connection) -> list[PeerRecord]:
    keys: dict[str, list[KeyEntry]] = {}
    for network, public_key, valid_from, valid_until, revoked_at in conn.execute(
        "SELECT network, public_key, valid_from, valid_until, revoked_at FROM peer_keys"
        " ORDER BY rowid"
    ):
        keys.setdefault(network, []).append(
            KeyEntry(
                network,
                bytes(public_key),
                from_epoch_or_none(valid_from),
                from_epoch_or_none(valid_until),
                from_epoch_or_none(revoked_at),
            )
        )
    records = []
    for row in conn.execute(
        "SELECT network, url, speaks_for, kinds, certainties, rate_limit_per_min, forward,"
        " endorse, relay FROM peers ORDER BY network"
    ):
        network, url, speaks_for, kinds, certainties, rate, forward, endorse, relay = row
        policy = PeerPolicy(
            network=network,
            speaks_for=tuple(json.loads(speaks_for)),
            kinds=frozenset(json.loads(kinds)) & frozenset(KINDS),
            certainties=frozenset(json.loads(certainties)) & frozenset(CERTAINTIES),
            rate_limit_per_min=int(rate),
            forward=bool(forward),
            endorse=bool(endorse),
            relay=relay_of(relay),
        )
        records.append(PeerRecord(network, url, tuple(keys.get(network, ())), policy))
    return records


# --- denied networks and the peers trust lists give --------------------------


def deny(conn: sqlite3.Connection, network: str, reason: str, now: datetime) -> bool:
    """Refuse ``network`` whatever a list says; False when it was already denied."""
    cursor = conn.execute(
        "INSERT INTO trust_deny (network, reason, denied_at) VALUES (?, ?, ?)"
        " ON CONFLICT (network) DO NOTHING",
        (network, reason, to_epoch(now)),
    )
    bump_version(conn)
    return cursor.rowcount > 0


def undeny(conn: sqlite3.Connection, network: str) -> bool:
    removed = conn.execute("DELETE FROM trust_deny WHERE network = ?", (network,)).rowcount > 0
    bump_version(conn)
    return removed


def denied(conn: sqlite3.Connection) -> list[tuple[str, str, datetime]]:
    """Each denied network, why (the operator's words) and since when."""
    rows = conn.execute("SELECT network, reason, denied_at FROM trust_deny ORDER BY network")
    return [(str(n), str(r), from_epoch(at)) for n, r, at in rows]


def revoke_list_key(conn: sqlite3.Connection, network: str, keyid: str, at: datetime) -> None:
    """A key a trust list gives, void here from ``at`` (the earliest revocation stays)."""
    conn.execute(
        "INSERT INTO trust_revoked_keys (keyid, network, revoked_at) VALUES (?, ?, ?)"
        " ON CONFLICT (keyid) DO UPDATE SET"
        " revoked_at = min(trust_revoked_keys.revoked_at, excluded.revoked_at)",
        (keyid, network, to_epoch(at)),
    )
    bump_version(conn)


def revoked_list_keys(conn: sqlite3.Connection) -> dict[str, datetime]:
    rows = conn.execute("SELECT keyid, revoked_at FROM trust_revoked_keys")
    return {str(keyid): from_epoch(at) for keyid, at in rows}


def list_peers(
    conn: sqlite3.Connection,
    own_network: str,
    local: Iterable[PeerRecord],
    own_keys: Iterable[KeyEntry],
) -> list[PeerRecord]:
    """The peers the held version of each subscribed list gives (``keys.cards.trustmerge``)."""
    held = [
        Held(
            sub.list,
            sub.held.version,
            sub.held.document.expires_at,
            sub.held.document.members,
            sub.max_speaks_for,
        )
        for sub in trustlists.subscriptions(conn)
    ]
    if not held:
        return []
    known = [str(k) for (k,) in conn.execute("SELECT keyid FROM peer_keys")]
    decided = Local(
        own_network,
        trusted={peer.network for peer in local},
        denied={network for network, _, _ in denied(conn)},
        known_keys={*known, *(key.keyid for key in own_keys)},
        revoked=revoked_list_keys(conn),
    )
    return [PeerRecord(p.network, p.url, p.keys, p.policy) for p in merge(held, decided)]


# --- the snapshot ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrustSnapshot:
    policy: Policy
    keyring: Keyring
    peers: dict[str, PeerRecord] = field(default_factory=dict)
    tokens: tuple[tuple[bytes, Roles], ...] = ()
    version: int = 0


def policy_from_config(
    config: Config, peers: Iterable[PeerRecord], equivocating: frozenset[str] = frozenset()
) -> Policy:
    section = config.policy
    return Policy(
        equivocating=equivocating,
        own_network=config.node.network,
        peers={record.network: record.policy for record in peers},
        max_age=parse_duration(section.max_age),
        rotation_grace=parse_duration(section.rotation_grace),
        max_future_skew=parse_duration(section.max_future_skew),
        max_lifetime=parse_duration(section.max_lifetime),
        min_endorsements=section.min_endorsements,
        max_signatures=section.max_signatures,
        on_fail=section.on_fail,
        hold_certainties=frozenset(section.hold_certainties),
        bridge_certainties=frozenset(section.bridge_certainties),
    )


def load_snapshot(
    conn: sqlite3.Connection, config: Config, own_keys: Iterable[KeyEntry]
) -> TrustSnapshot:
    own_keys = list(own_keys)
    local = load_peers(conn)
    own_network = config.node.network
    peers = [*local, *list_peers(conn, own_network, local, own_keys)]
    entries = [*own_keys, *(key for p in peers if p.network != own_network for key in p.keys)]
    return TrustSnapshot(
        policy=policy_from_config(config, peers, evidence.equivocating(conn)),
        keyring=Keyring(entries),
        peers={peer.network: peer for peer in peers},
        tokens=load_tokens(conn),
        version=trust_version(conn),
    )
