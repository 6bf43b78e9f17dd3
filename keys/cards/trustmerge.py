"""Members of subscribed trust lists as peers: the one merging rule (DESIGN §15).

``merge`` takes the version held of each subscription (``Held``), what this
node decided itself (networks trusted locally with ``avisa trust add``,
networks denied with ``avisa trust deny``, every key it already knows) and
returns the peers the lists give (``ListPeer``). Nothing is copied into the
``peers`` table: the store rebuilds these at every snapshot load, so a new
version or an unsubscribe needs no cleanup.

The rule, in order:

- **Local wins.** This node's own network, a network trusted locally and a
  network denied locally are never taken from a list.
- **Scope.** A member speaks for its list's ``speaks_for`` intersected with
  the subscription's ``max_speaks_for`` (an empty ``max_speaks_for`` gives
  nothing: its alerts need endorsements); kinds are the list's.
- **Across lists an allow adds, a deny narrows.** A member named by two lists
  speaks for the union of what each gives and accepts the union of kinds, at
  the URL of the first list by name; it carries every list it came through
  (``ListSource``, for freeze and for showing). The only negative statements
  a list makes are about keys, and there the narrower one wins: a key's
  validity is the latest ``valid_from`` and the earliest ``valid_until`` any
  list gives it; a key two lists give to different networks (or bytes), or
  that this node already knows (a local peer's, possibly revoked, or its
  own), is taken from none; a list key this node revoked (``avisa trust
  revoke``) stays revoked whatever the lists say.
- **Forwarding.** A list peer gets only this node's own alerts
  (``relay="own"``: the members hear each other directly), and only when the
  same list names this node as a member (then the member trusts it back
  through that list); otherwise this node only receives from it.

Pure: no I/O, no clock. It lives in ``keys.cards`` rather than ``relay.core``
because it reads the list's own ``Member`` (``keys.cards`` sits just above
``relay.core``, whose ``PeerPolicy`` it builds).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from keys.cards.statements import public_key_bytes
from keys.cards.trustlist import Member, MemberKey
from keys.core.keyring import KeyEntry
from relay.core.model import KINDS
from relay.core.policy import ListSource, PeerPolicy, covers_code
from relay.core.times import rfc3339


@dataclass(frozen=True, slots=True)
class Held:
    """One subscription as the merge sees it: the version held and the operator's bound."""

    list: str
    version: int
    expires_at: datetime
    members: Sequence[Member]
    max_speaks_for: tuple[str, ...]

    @property
    def source(self) -> ListSource:
        return ListSource(self.list, self.version, self.expires_at)


@dataclass(frozen=True, slots=True)
class Local:
    """What this node decided itself, which every list yields to."""

    own_network: str
    trusted: Collection[str] = ()
    denied: Collection[str] = ()
    known_keys: Collection[str] = ()
    #: keyid → when this node revoked a list key (``avisa trust revoke``): it stays revoked.
    revoked: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ListPeer:
    network: str
    url: str
    keys: tuple[KeyEntry, ...]
    policy: PeerPolicy


def _meet(entry: str, bound: str) -> str | None:
    """The narrower of two scope entries when one contains the other, else None."""
    if (":" in entry) != (":" in bound):
        return None
    if ":" in entry:
        return entry if covers_code(bound, entry) else bound if covers_code(entry, bound) else None
    return entry if entry.startswith(bound) else bound if bound.startswith(entry) else None


def intersect(speaks_for: Iterable[str], bound: Iterable[str]) -> tuple[str, ...]:
    """``speaks_for`` ∩ ``bound``, entry by entry, each result once, in order."""
    bounds = tuple(bound)
    found: dict[str, None] = {}
    for entry in speaks_for:
        for limit in bounds:
            meet = _meet(entry, limit)
            if meet is not None:
                found[meet] = None
    return tuple(found)


def _key_entry(network: str, key: MemberKey) -> KeyEntry:
    return KeyEntry(network, public_key_bytes(key.public_key), key.valid_from, key.valid_until)


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


class _Keys:
    """Keys claimed by the lists: the narrower validity wins, a disputed key is nobody's."""

    def __init__(self, known: Collection[str], revoked: Mapping[str, datetime]) -> None:
        self._known = frozenset(known)
        self._revoked = revoked
        self._entries: dict[str, KeyEntry] = {}
        self._disputed: set[str] = set()

    def claim(self, network: str, key: MemberKey) -> None:
        if key.keyid in self._known or key.keyid in self._disputed:
            return
        entry = _key_entry(network, key)
        before = self._entries.get(key.keyid)
        if before is None:
            self._entries[key.keyid] = entry
        elif before.network != network or before.public_key != entry.public_key:
            del self._entries[key.keyid]
            self._disputed.add(key.keyid)
        else:
            valid_from = _later(before.valid_from, entry.valid_from)
            valid_until = _earlier(before.valid_until, entry.valid_until)
            self._entries[key.keyid] = KeyEntry(network, entry.public_key, valid_from, valid_until)

    def by_network(self) -> dict[str, tuple[KeyEntry, ...]]:
        found: dict[str, list[KeyEntry]] = {}
        for entry in self._entries.values():
            revoked_at = self._revoked.get(entry.keyid)
            found.setdefault(entry.network, []).append(
                entry if revoked_at is None else replace(entry, revoked_at=revoked_at)
            )
        return {network: tuple(entries) for network, entries in found.items()}


@dataclass(slots=True)
class _Draft:
    url: str
    speaks_for: dict[str, None]
    kinds: set[str]
    sources: list[ListSource]
    forward: bool


def merge(held: Sequence[Held], local: Local) -> list[ListPeer]:
    """The peers the held lists give, by network; see the module docstring for the rule."""
    skip = {local.own_network, *local.trusted, *local.denied}
    keys = _Keys(local.known_keys, local.revoked)
    drafts: dict[str, _Draft] = {}
    for sub in sorted(held, key=lambda h: h.list):
        names_us = any(m.network == local.own_network for m in sub.members)
        for member in sub.members:
            if member.network in skip:
                continue
            for key in member.keys:
                keys.claim(member.network, key)
            draft = drafts.setdefault(member.network, _Draft(member.url, {}, set(), [], False))
            draft.speaks_for.update(dict.fromkeys(intersect(member.speaks_for, sub.max_speaks_for)))
            draft.kinds.update(member.kinds)
            draft.sources.append(sub.source)
            draft.forward = draft.forward or names_us
    owned = keys.by_network()
    return [_peer(network, d, owned.get(network, ())) for network, d in sorted(drafts.items())]


def _peer(network: str, draft: _Draft, keys: tuple[KeyEntry, ...]) -> ListPeer:
    policy = PeerPolicy(
        network=network,
        speaks_for=tuple(draft.speaks_for),
        kinds=frozenset(draft.kinds) & frozenset(KINDS),
        forward=draft.forward,
        relay="own",
        sources=tuple(draft.sources),
    )
    return ListPeer(network, draft.url, keys, policy)


def source_view(policy: PeerPolicy, now: datetime) -> dict[str, Any]:
    """How a peer is trusted, as ``/api/v1/peers``, ``avisa trust list`` and the desk say it:
    ``local``, or through which lists (version, expiry); ``frozen`` once all have expired."""
    return {
        "trusted_via": "list" if policy.sources else "local",
        "lists": [
            {
                "list": source.list,
                "version": source.version,
                "expires_at": rfc3339(source.expires_at),
                "expired": source.expires_at <= now,
            }
            for source in policy.sources
        ],
        "frozen": policy.frozen(now),
    }
