"""The operator's trust operations: ``avisa trust add|set|update|list|remove|revoke``.

Like ``keys.store.own_ops``, each works directly on the data directory's SQLite in one
IMMEDIATE transaction (checks and writes together, so a refusal changes
nothing) and bumps ``trust_version`` so a running node reloads.

- ``add``: the key ceremony's last step. The card is checked by
  ``keys.cards.cardcheck.check_card`` against the fingerprint the operator typed; the
  peer's scope comes from the options, and when the peer is already trusted
  every option not given keeps its current value. For a peer already trusted,
  whose card is signed by a key we hold, the fingerprint may be left out: that
  key was verified when it was first trusted.
- ``set_scope``: change the settings of a peer already trusted (``avisa trust
  set``), by its name and without its card: a card kept from the ceremony is
  refused as stale once the peer's newer key document has reached us, so
  ``add`` is not the way to change a setting. Options not given keep their values.
- ``update``: apply a newer card or key document of a peer already trusted,
  without a fingerprint: only what chains to keys we trust is taken.
- ``revoke``: an operator's decision that a peer key is void from a time on; for a
  peer only a trust list gives, the revocation is kept apart
  (``trust_revoked_keys``) and beats every version of every list.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from keys.cards.card import KeyDocumentError, VerifiedDocument, verify_key_document
from keys.cards.cardcheck import CardPlan, CardRefused, check_card
from keys.cards.keyset import revoke_key
from keys.cards.statements import public_key_bytes
from keys.cards.trustmerge import source_view
from keys.core.fingerprint import fingerprint
from keys.core.keyring import KeyEntry
from keys.store import peerstore
from keys.store.own_ops import key_view, open_store, own_keyring, parse_at, resolve_keyid
from keys.store.requeue import requeue_revoked
from relay.core.config import Config
from relay.core.errors import BadInput
from relay.core.model import CERTAINTIES, KINDS, MAX_ENVELOPE_BYTES, MAX_SCOPE, SCOPE_PATTERN
from relay.core.policy import PeerPolicy, Relay
from relay.core.times import Clock, parse_duration, rfc3339
from relay.storage import db, trust

_SCOPE = re.compile(SCOPE_PATTERN)


@dataclass(frozen=True, slots=True)
class Scope:
    """``trust add`` options; None means "not given" (keep, or the default)."""

    speaks_for: Sequence[str] | None = None
    kinds: Sequence[str] | None = None
    certainties: Sequence[str] | None = None
    rate_limit_per_min: int | None = None
    forward: bool | None = None
    endorse: bool | None = None
    relay: Relay | None = None

    def policy(self, network: str, current: PeerPolicy | None) -> PeerPolicy:
        base = current or PeerPolicy(network)
        given = None if self.speaks_for is None else tuple(c.lower() for c in self.speaks_for)
        speaks_for = base.speaks_for if given is None else given
        county = next((code for code in given or () if re.fullmatch(r"[0-9]{2,5}", code)), None)
        if county:
            raise BadInput(
                "AVISA_BAD_SCOPE",
                f"--speaks-for {county}: did you mean fips:{county}? (a code needs its fips:,"
                " zip: or iso: prefix; digits alone would be a geohash prefix off West Africa)",
            )
        bad = [code for code in speaks_for if not _SCOPE.match(code)]
        if bad or len(speaks_for) > MAX_SCOPE or len(set(speaks_for)) != len(speaks_for):
            raise BadInput(
                "AVISA_BAD_SCOPE",
                f"--speaks-for takes area codes (fips:06037, zip:93101, iso:us-ca) or geohash"
                f" prefixes, each once, at most {MAX_SCOPE}; not {(bad or speaks_for)[0]!r}",
            )
        rate = (
            base.rate_limit_per_min if self.rate_limit_per_min is None else self.rate_limit_per_min
        )
        if not 1 <= rate <= 100_000:
            raise BadInput("AVISA_BAD_SCOPE", "--rate-limit must be 1 to 100000 per minute")
        return PeerPolicy(
            network=network,
            speaks_for=speaks_for,
            kinds=_choose(self.kinds, base.kinds, KINDS, "--kinds"),
            certainties=_choose(self.certainties, base.certainties, CERTAINTIES, "--certainties"),
            rate_limit_per_min=rate,
            forward=base.forward if self.forward is None else self.forward,
            endorse=base.endorse if self.endorse is None else self.endorse,
            relay=base.relay if self.relay is None else self.relay,
        )


def _choose(
    given: Sequence[str] | None, current: frozenset[str], allowed: Sequence[str], option: str
) -> frozenset[str]:
    if given is None:
        return current
    unknown = set(given) - set(allowed)
    if unknown or not given:
        raise BadInput("AVISA_BAD_SCOPE", f"{option} takes some of: {', '.join(allowed)}")
    return frozenset(given)


def read_card(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_ENVELOPE_BYTES + 1)
    except OSError as exc:
        raise BadInput("AVISA_NO_CARD", f"{path}: cannot read ({exc.strerror})") from None
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise BadInput(
            "AVISA_NO_CARD", f"{path}: larger than any card ({MAX_ENVELOPE_BYTES} bytes)"
        )
    return raw


def _verified_card(raw: bytes) -> VerifiedDocument:
    try:
        return verify_key_document(raw)
    except KeyDocumentError as exc:
        raise CardRefused(
            f"not trusting this card: {exc.message}. Ask its operator for a fresh card"
            " ('avisa keys export-card') and check how it reached you."
        ) from None


@dataclass(frozen=True, slots=True)
class Added:
    plan: CardPlan
    policy: PeerPolicy
    held_again: list[str]


def _fingerprint_on_file(known: Sequence[KeyEntry], verified: VerifiedDocument) -> str:
    """The fingerprint of a card key we already trust, for a card given without one."""
    trusted = {e.keyid for e in known if e.network == verified.network and e.revoked_at is None}
    for key in verified.document.keys:
        if key.keyid in trusted:
            return fingerprint(public_key_bytes(key.public_key))
    raise CardRefused(
        f"{verified.network} is not trusted here yet, or its card holds a key we have not"
        " verified: give --fingerprint with the 30 digits its operator reads to you"
    )


def add(
    data_dir: Path, raw: bytes, typed_fingerprint: str | None, scope: Scope, clock: Clock
) -> Added:
    verified = _verified_card(raw)
    network = verified.network
    with open_store(data_dir) as (config, conn):
        own = own_keyring(conn, config, data_dir)

        def job(c: sqlite3.Connection) -> Added:
            now = clock()
            last = peerstore.last_document(c, network)
            known = peerstore.load_known(c)
            plan = check_card(
                [*known, *own],
                verified,
                typed_fingerprint or _fingerprint_on_file(known, verified),
                now,
                config.node.network,
                last[0] if last else None,
                last[1] if last else None,
                parse_duration(config.policy.max_future_skew),
            )
            current = {peer.network: peer.policy for peer in trust.load_peers(c)}.get(network)
            policy = scope.policy(network, current)
            moved = peerstore.store_card(c, config, own, plan, policy, verified, now)
            return Added(plan, policy, moved)

        added: Added = db.transaction(conn, job)
    return added


def set_scope(data_dir: Path, network: str, scope: Scope, clock: Clock) -> PeerPolicy:
    """New settings for a trusted peer; its keys and key documents are left as they are."""
    if scope == Scope():
        raise BadInput(
            "AVISA_USAGE",
            "give at least one setting to change: --speaks-for, --kinds, --certainties,"
            " --rate-limit, --forward/--no-forward or --endorse/--no-endorse",
        )
    with open_store(data_dir) as (_, conn):

        def job(c: sqlite3.Connection) -> PeerPolicy:
            peers = {peer.network: peer for peer in trust.load_peers(c)}
            peer = peers.get(network)
            if peer is None:
                raise BadInput(
                    "AVISA_UNKNOWN_PEER",
                    f"no trusted peer named {network} (see 'avisa trust list'); a new peer is"
                    " added with 'avisa trust add CARD_FILE --fingerprint …'",
                )
            policy = scope.policy(network, peer.policy)
            trust.save_peer(c, trust.PeerRecord(network, peer.url, (), policy), clock())
            return policy

        policy: PeerPolicy = db.transaction(conn, job)
    return policy


def update(data_dir: Path, raw: bytes, clock: Clock) -> peerstore.Stored:
    """Apply a peer's newer card or key document; only what chains to trusted keys counts."""
    with open_store(data_dir) as (config, conn):
        own = own_keyring(conn, config, data_dir)
        stored: peerstore.Stored = db.transaction(
            conn, lambda c: peerstore.store_document(c, config, own, raw, clock())
        )
    return stored


def remove(data_dir: Path, network: str) -> None:
    with open_store(data_dir) as (_, conn):
        if not db.transaction(conn, lambda c: trust.remove_peer(c, network)):
            raise BadInput(
                "AVISA_UNKNOWN_PEER",
                f"no trusted peer named {network} (one a trust list gives is refused with"
                " 'avisa trust deny')",
            )


def revoke(
    data_dir: Path, network: str, keyid: str, at: str | None, clock: Clock
) -> peerstore.Stored:
    """The operator's decision: a peer's key is void for anything received from ``at``."""
    with open_store(data_dir) as (config, conn):
        if network == config.node.network:
            raise BadInput("AVISA_OWN_KEY", "for this node's own keys use 'avisa keys revoke'")
        own = own_keyring(conn, config, data_dir)

        def job(c: sqlite3.Connection) -> peerstore.Stored:
            now = clock()
            known = peerstore.load_known(c)
            mine = [entry for entry in known if entry.network == network]
            if not mine:
                return _revoke_list_key(c, config, own, network, keyid, parse_at(at, now), now)
            full = resolve_keyid(mine, keyid, network, "avisa trust list")
            result = revoke_key(known, network, full, parse_at(at, now), now)
            return peerstore.store_keys(c, config, own, result, now)

        stored: peerstore.Stored = db.transaction(conn, job)
    return stored


def _revoke_list_key(
    conn: sqlite3.Connection,
    config: Config,
    own: Sequence[KeyEntry],
    network: str,
    keyid: str,
    at: datetime,
    now: datetime,
) -> peerstore.Stored:
    """Revoke a key that only a trust list gives: kept apart (the list's entry is not
    ours to edit), it stays revoked whatever a later version says (DESIGN §15)."""
    local = trust.load_peers(conn)
    listed = {p.network: p for p in trust.list_peers(conn, config.node.network, local, own)}
    keys = list(listed[network].keys) if network in listed else []
    full = resolve_keyid(keys, keyid, network, "avisa trust list")
    result = revoke_key(keys, network, full, at, now)
    for revoked, moment in result.revoked.items():
        trust.revoke_list_key(conn, network, revoked, moment)
    snapshot = trust.load_snapshot(conn, config, own)
    return peerstore.Stored(result, requeue_revoked(conn, snapshot, result.revoked, now))


# --- listing -----------------------------------------------------------------


def _peer_key(entry: KeyEntry, now: datetime, grace: timedelta) -> dict[str, Any]:
    via = f"rotation from {entry.introduced_by}" if entry.introduced_by else "card"
    return key_view(entry, now, grace) | {"learned_from": via}


def listing(data_dir: Path, clock: Clock) -> list[dict[str, Any]]:
    """Each peer: url, scope, its keys with fingerprint and validity, its newest document;
    local (``avisa trust add``) or through which subscribed lists (version, expiry)."""
    with open_store(data_dir) as (config, conn):
        now = clock()
        grace = parse_duration(config.policy.rotation_grace)
        keys: dict[str, list[KeyEntry]] = {}
        for entry in peerstore.load_known(conn):
            keys.setdefault(entry.network, []).append(entry)
        result = []
        local = trust.load_peers(conn)
        own = own_keyring(conn, config, data_dir)
        for peer in [*local, *trust.list_peers(conn, config.node.network, local, own)]:
            policy = peer.policy
            last = peerstore.last_document(conn, peer.network)
            learned = keys.get(peer.network, [])
            shown = [_peer_key(e, now, grace) for e in learned] or [
                key_view(e, now, grace) | {"learned_from": "list"} for e in peer.keys
            ]
            result.append(
                {
                    "network": peer.network,
                    "url": peer.url,
                    "speaks_for": list(policy.speaks_for),
                    "kinds": sorted(policy.kinds),
                    "certainties": sorted(policy.certainties),
                    "rate_limit_per_min": policy.rate_limit_per_min,
                    "forward": policy.forward,
                    "endorse": policy.endorse,
                    "relay": policy.relay,
                    "document_issued_at": rfc3339(last[0]) if last else None,
                    "keys": shown,
                }
                | source_view(policy, now)
            )
    return result
