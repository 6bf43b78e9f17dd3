"""The trust policy: one pure function from an alert and its evidence to a decision.

``decide`` sees the verified envelope, the decoded alert, what the store knows
about the alert's id (``PolicyState``), this node's ``Policy`` and ``now``,
and returns accept, hold or reject with a machine-readable reason. It reads no
clock and touches no store, so the same inputs always give the same decision,
which is what ``avisa policy explain`` relies on.

The order of checks is the order of cost to an attacker: structure and
signatures first, then replay (duplicate, tombstones), then time, then who may
say what where (origin, speaks_for, endorsements), then review rules.

A peer is trusted locally or through subscribed trust lists (``PeerPolicy.sources``,
built by ``keys.cards.trustmerge``). Once every list a peer comes from is past its
expiry the peer is **frozen**: its new alerts are held (``trustlist_expired``); its
cancels, debunks (certainty ``false``) and updates that narrow what they update still
pass (DESIGN §15).

Authority: an alert is authoritative when its origin is a trusted peer (or
this node) and it lies inside that peer's ``speaks_for``. Anything else needs
``min_endorsements`` distinct trusted networks other than the origin to have
signed it. What fails these soft checks goes to ``on_fail`` (hold or reject);
hard failures (forgery, replay, expiry) are always rejected.

Endorsements only ever stand in for an origin this node cannot check. A
message that names this node's own network or a trusted peer's must carry a
valid signature by a current key of that network: otherwise any one trusted
peer could put words (alerts, updates, cancels) in the mouth of any other
network we know, or revive a revoked key by endorsing what it signed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import msgspec

from relay.core.envelope import Verification
from relay.core.model import CERTAINTIES, KINDS, Alert, Area, Envelope

Action = Literal["accept", "hold", "reject"]
Relay = Literal["all", "peers", "own"]
RELAYS: tuple[Relay, ...] = ("all", "peers", "own")


def relay_of(value: str) -> Relay:
    """A stored ``relay`` setting (the table's CHECK keeps it one of ``RELAYS``)."""
    return "own" if value == "own" else "peers" if value == "peers" else "all"


# What the federation protocol answers per envelope (``accepted``, ``duplicate``, ``held``,
# ``rejected``: DESIGN §5) in the one decision vocabulary of the API, logs, metrics and docs.
DECISION_OF_STATUS: dict[str, Action] = {
    "accepted": "accept",
    "duplicate": "reject",
    "held": "hold",
    "rejected": "reject",
}


class Decision(msgspec.Struct, frozen=True):
    action: Action
    reason: str

    @property
    def accepted(self) -> bool:
        return self.action == "accept"


@dataclass(frozen=True, slots=True)
class ListSource:
    """A trust list a peer is trusted through: its name, the version held, its expiry."""

    list: str
    version: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PeerPolicy:
    """What this node accepts from one peer network, and how it treats it."""

    network: str
    speaks_for: tuple[str, ...] = ()
    kinds: frozenset[str] = frozenset(KINDS)
    certainties: frozenset[str] = frozenset(CERTAINTIES)
    rate_limit_per_min: int = 600
    forward: bool = True
    endorse: bool = False
    # What goes to this peer: "all" we accepted; only our "own" messages (its neighbours
    # reach it directly, so relaying theirs would only send it copies); or our own and our
    # trusted "peers'" (not what we accepted on endorsements: a hub to the other hubs).
    relay: Relay = "all"
    # Empty: trusted locally (``avisa trust add``). Otherwise the subscribed trust lists
    # this peer comes from (``keys.cards.trustmerge``), all of which freeze once expired.
    sources: tuple[ListSource, ...] = ()

    def frozen(self, now: datetime) -> bool:
        """Trusted only through lists, every one of them past its expiry (DESIGN §15)."""
        return bool(self.sources) and all(s.expires_at <= now for s in self.sources)

    @property
    def linked(self) -> bool:
        """This node talks to the peer (pulls, pushes checkpoints): always for a local
        peer; for a list peer only when the list names this node too (``forward``), since
        otherwise the peer does not know our key and answers 401."""
        return self.forward or not self.sources


@dataclass(frozen=True, slots=True)
class Policy:
    own_network: str
    peers: Mapping[str, PeerPolicy] = field(default_factory=dict)
    max_age: timedelta = timedelta(days=7)
    rotation_grace: timedelta = timedelta(days=1)
    max_future_skew: timedelta = timedelta(minutes=5)
    max_lifetime: timedelta = timedelta(days=7)
    min_endorsements: int = 1
    max_signatures: int = 8
    on_fail: Literal["hold", "reject"] = "hold"
    hold_certainties: frozenset[str] = frozenset()
    bridge_certainties: frozenset[str] = frozenset({"confirmed", "false"})
    #: Origins caught equivocating (DESIGN §16), not yet cleared by an operator.
    equivocating: frozenset[str] = frozenset()


class PolicyState(msgspec.Struct, frozen=True):
    """What the store knows about this alert's id at decision time."""

    stored: Literal["no", "held", "accepted"] = "no"
    tombstone: Literal["cancelled", "superseded", "rejected"] | None = None
    references_cancelled: bool = False
    from_peer: str | None = None
    recent_from_peer: int = 0
    # For an update: the areas of the messages it references that this node holds.
    referenced_areas: tuple[Area, ...] = ()


def covers_code(scope_code: str, code: str) -> bool:
    """``fips:06`` covers ``fips:06037``; ``iso:us`` covers ``iso:us-ca``."""
    if code == scope_code or code.startswith(scope_code + "-"):
        return True
    return scope_code.startswith("fips:") and code.startswith(scope_code)


def area_matches(alert: Alert, query: str) -> bool:
    """For listing and routing: the alert's area and ``query`` overlap at all."""
    area = alert.area
    if ":" in query:
        return any(covers_code(query, code) or covers_code(code, query) for code in area.codes)
    return area.geohash.startswith(query) or query.startswith(area.geohash)


def inside_scope(alert: Alert, scope: Iterable[str]) -> bool:
    """Every location claim of the alert lies inside the scope.

    Scope entries with a ``:`` are area codes, the rest geohash prefixes.
    Each of the alert's codes must be covered by a code entry; its geohash
    must be covered by a geohash entry when the scope lists any; and the
    alert must make at least one claim the scope actually checked.
    """
    entries = tuple(scope)
    codes = [entry for entry in entries if ":" in entry]
    prefixes = [entry for entry in entries if ":" not in entry]
    area = alert.area
    if not all(any(covers_code(c, code) for c in codes) for code in area.codes):
        return False
    if prefixes:
        return any(area.geohash.startswith(prefix) for prefix in prefixes)
    return bool(area.codes)


def _signature_failure(
    verification: Verification, now: datetime, alert: Alert, grace: timedelta
) -> str | None:
    if verification.forged:
        return "bad_signature"
    if not verification.any_valid:
        return "unknown_key"
    statuses = {
        check.entry.status(now, alert.sent_at, grace)
        for check in verification.checks
        if check.valid and check.entry is not None
    }
    if "valid" in statuses:
        return None
    return "revoked_key" if "revoked" in statuses else "key_expired"


def _time_failure(alert: Alert, policy: Policy, now: datetime) -> str | None:
    if alert.expires_at <= now:
        return "expired"
    if alert.sent_at > now + policy.max_future_skew:
        return "from_future"
    if now - alert.sent_at > policy.max_age:
        return "too_old"
    if alert.observed_at > alert.sent_at or alert.expires_at <= alert.sent_at:
        return "bad_times"
    if alert.expires_at - alert.sent_at > policy.max_lifetime:
        return "lifetime_too_long"
    return None


def _replay_failure(alert: Alert, state: PolicyState) -> str | None:
    if state.tombstone is not None:
        return "rejected_by_reviewer" if state.tombstone == "rejected" else state.tombstone
    if state.stored == "accepted":
        return "duplicate"
    if state.references_cancelled:
        return "cancelled"
    if any(ref.partition("/")[0] != alert.network for ref in alert.references):
        return "foreign_reference"
    return None


def _origin_entry_valid(
    verification: Verification, alert: Alert, now: datetime, grace: timedelta
) -> bool | None:
    """True: the origin signed with a usable key; False: it did not; None: forged origin."""
    origin = verification.origin
    if not origin.valid or origin.entry is None:
        return False
    if origin.entry.network != alert.network:
        return None
    return origin.entry.status(now, alert.sent_at, grace) == "valid"


def _known_network(network: str, policy: Policy) -> bool:
    return network == policy.own_network or network in policy.peers


def _unusable_origin(
    verification: Verification, now: datetime, alert: Alert, grace: timedelta
) -> str:
    """Why a known network's message has no usable origin signature."""
    origin = verification.origin
    if origin.valid and origin.entry is not None:
        status = origin.entry.status(now, alert.sent_at, grace)
        return "revoked_key" if status == "revoked" else "key_expired"
    return "unknown_origin_key"


def _endorsements(verification: Verification, alert: Alert, policy: Policy, now: datetime) -> int:
    networks = {
        check.entry.network
        for check in verification.checks[1:]
        if check.valid
        and check.entry is not None
        and check.entry.status(now, alert.sent_at, policy.rotation_grace) == "valid"
    }
    networks.discard(alert.network)
    return len(networks)


def decide(
    envelope: Envelope,
    alert: Alert,
    verification: Verification,
    policy: Policy,
    state: PolicyState,
    now: datetime,
) -> Decision:
    """Accept, hold or reject ``alert`` under ``policy``; always with a reason."""
    if len(envelope.signatures) > policy.max_signatures:
        return Decision("reject", "too_many_signatures")
    failure = (
        _signature_failure(verification, now, alert, policy.rotation_grace)
        or _replay_failure(alert, state)
        or _time_failure(alert, policy, now)
    )
    if failure:
        return Decision("reject", failure)
    origin_ok = _origin_entry_valid(verification, alert, now, policy.rotation_grace)
    if origin_ok is None:
        return Decision("reject", "origin_mismatch")
    if not origin_ok and _known_network(alert.network, policy):
        return Decision("reject", _unusable_origin(verification, now, alert, policy.rotation_grace))
    if origin_ok and alert.network == policy.own_network:
        return Decision("accept", "local")
    sender = policy.peers.get(state.from_peer) if state.from_peer else None
    if sender is not None and state.recent_from_peer >= sender.rate_limit_per_min:
        return Decision("reject", "rate_limited")
    if origin_ok and alert.msg_type == "cancel":
        return Decision("accept", "origin_cancel")
    if alert.network in policy.equivocating:
        return Decision("hold", "equivocation")  # until an operator decides
    return _authority(alert, verification, policy, now, origin_ok, state)


def narrows(new: Area, old: Area) -> bool:
    """``new`` lies within ``old``: a finer or equal cell, no wider radius, codes covered."""
    return (
        new.geohash.startswith(old.geohash)
        and new.radius_m <= old.radius_m
        and all(any(covers_code(c, code) for c in old.codes) for code in new.codes)
    )


def passes_freeze(alert: Alert, state: PolicyState) -> bool:
    """What a frozen list member may still say (DESIGN §15): a debunk, or an update that
    narrows every message it references (all held here). Cancels pass before this."""
    if alert.certainty == "false":
        return True
    return (
        alert.msg_type == "update"
        and len(state.referenced_areas) == len(alert.references)
        and all(narrows(alert.area, old) for old in state.referenced_areas)
    )


def _authority(
    alert: Alert,
    verification: Verification,
    policy: Policy,
    now: datetime,
    origin_ok: bool,
    state: PolicyState,
) -> Decision:
    origin = policy.peers.get(alert.network) if origin_ok else None
    kinds = origin.kinds if origin else frozenset(KINDS)
    certainties = origin.certainties if origin else frozenset(CERTAINTIES)
    if alert.kind not in kinds:
        return Decision("reject", "kind_not_accepted")
    if alert.certainty not in certainties:
        return Decision("reject", "certainty_not_accepted")
    if origin is not None and origin.frozen(now) and not passes_freeze(alert, state):
        return Decision("hold", "trustlist_expired")
    # An unknown origin always needs at least one trusted voice.
    needed = policy.min_endorsements if origin is not None else max(1, policy.min_endorsements)
    if origin is not None and inside_scope(alert, origin.speaks_for):
        reason = "authoritative"
    elif _endorsements(verification, alert, policy, now) >= needed:
        reason = "endorsed"
    else:
        failed = "outside_speaks_for" if origin is not None else "not_enough_endorsements"
        return Decision(policy.on_fail, failed)
    if alert.certainty in policy.hold_certainties:
        return Decision("hold", "review_certainty")
    return Decision("accept", reason)
