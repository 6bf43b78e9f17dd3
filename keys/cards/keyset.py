"""A receiver's keys for one network, and the one way they change: narrowing.

``Work`` holds one network's ``KeyEntry`` values (and which keys belong to
other networks) while evidence is applied to them, and records each
``Change`` for the operator. ``keys.cards.apply`` feeds it statements and key
documents, ``keys.cards.cardcheck`` cards, ``revoke_key`` an operator's decision.
Pure: ``now`` is always the receiver's clock, passed in.

Rules that hold for every kind of evidence:

- Revocation only ever moves ``revoked_at`` earlier, never later, and never
  later than the receiver's ``now``: a revocation dated in the future takes
  effect when it arrives.
- Whatever a key vouched for at or after its revocation time, as the receiver
  saw it, is void. In particular a key introduced by a rotation statement the
  receiver learned at or after the old key's ``revoked_at`` is revoked with
  it (same ``revoked_at``): whoever stole the old key could have made that
  rotation.
- ``valid_until`` likewise only moves earlier.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from keys.cards.card import OldKey, RevokedKey
from keys.cards.statements import public_key_bytes
from keys.core.keyring import KeyEntry
from relay.core.errors import BadInput

#: Default tolerance for times a peer dates in the future (``policy.max_future_skew``).
DEFAULT_SKEW = timedelta(minutes=5)

Action = Literal[
    "added", "rotated", "revoked", "revoked_with_parent", "narrowed", "refused", "ignored"
]


@dataclass(frozen=True, slots=True)
class Change:
    """One thing a document, card or decision did (or refused to do) to one key."""

    action: Action
    keyid: str
    detail: str


@dataclass(frozen=True, slots=True)
class ApplyResult:
    network: str
    entries: tuple[KeyEntry, ...]
    changes: tuple[Change, ...]
    #: True when, after its statements, the document's own signer is trusted.
    trusted: bool
    #: keyid → effective ``revoked_at`` for every key revoked, or revoked earlier, now.
    revoked: dict[str, datetime] = field(default_factory=dict)


def newly_revoked(before: Iterable[KeyEntry], after: Iterable[KeyEntry]) -> dict[str, datetime]:
    """keyid → ``revoked_at`` for keys revoked in ``after`` but not (as early) in ``before``."""
    old = {entry.keyid: entry.revoked_at for entry in before}
    result: dict[str, datetime] = {}
    for entry in after:
        previous = old.get(entry.keyid)
        if entry.revoked_at is not None and (previous is None or entry.revoked_at < previous):
            result[entry.keyid] = entry.revoked_at
    return result


@dataclass
class Work:
    """The receiver's keys for one network while evidence is applied to them."""

    network: str
    now: datetime
    mine: dict[str, KeyEntry]
    others: dict[str, str]
    changes: list[Change] = field(default_factory=list)
    verified: dict[tuple[str, bytes, str, bytes], bool] = field(default_factory=dict)

    @classmethod
    def start(cls, known: Iterable[KeyEntry], network: str, now: datetime) -> Work:
        mine: dict[str, KeyEntry] = {}
        others: dict[str, str] = {}
        for entry in known:
            if entry.network == network:
                mine[entry.keyid] = entry
            else:
                others[entry.keyid] = entry.network
        return cls(network, now, mine, others)

    def note(self, action: Action, keyid: str, detail: str) -> None:
        self.changes.append(Change(action, keyid, detail))

    def replace(self, entry: KeyEntry, **changes: Any) -> KeyEntry:
        updated = dataclasses.replace(entry, **changes)
        self.mine[entry.keyid] = updated
        return updated

    def add(self, entry: KeyEntry) -> None:
        self.mine[entry.keyid] = entry

    def narrow_until(self, keyid: str, until: datetime) -> bool:
        entry = self.mine[keyid]
        if entry.valid_until is not None and entry.valid_until <= until:
            return False
        self.replace(entry, valid_until=until)
        return True

    def revoke(self, keyid: str, at: datetime, why: str, action: Action = "revoked") -> None:
        """Revoke at ``min(at, now)`` (earlier only), then every key that rests on it."""
        at = min(at, self.now)
        entry = self.mine[keyid]
        if entry.revoked_at is not None and entry.revoked_at <= at:
            return
        self.replace(entry, revoked_at=at)
        self.note(action, keyid, why)
        for child in list(self.mine.values()):
            if (
                child.introduced_by == keyid
                and child.learned_at is not None
                and child.learned_at >= at
            ):
                why = f"introduced by a rotation from {keyid} received after its revocation time"
                self.revoke(child.keyid, at, why, "revoked_with_parent")

    def result(self, trusted: bool, before: Iterable[KeyEntry]) -> ApplyResult:
        entries = tuple(self.mine.values())
        return ApplyResult(
            self.network, entries, tuple(self.changes), trusted, newly_revoked(before, entries)
        )


def revoke_key(
    known: Sequence[KeyEntry], network: str, keyid: str, at: datetime, now: datetime
) -> ApplyResult:
    """The operator's decision: ``keyid`` of ``network`` is void from ``at`` (≤ now)."""
    work = Work.start(known, network, now)
    if keyid not in work.mine:
        raise BadInput("AVISA_UNKNOWN_KEY", f"{network} has no key {keyid} here")
    work.revoke(keyid, at, "revoked by operator decision")
    return work.result(True, [e for e in known if e.network == network])


def when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%SZ}"


def narrow_old_keys(work: Work, old_keys: Sequence[OldKey]) -> None:
    for old in old_keys:
        if old.keyid in work.mine and work.narrow_until(old.keyid, old.expired_at):
            work.note("narrowed", old.keyid, f"rotated out at {when(old.expired_at)}")


def revoke_listed(work: Work, revoked: Sequence[RevokedKey]) -> None:
    for item in revoked:
        if item.keyid in work.others:
            work.note("refused", item.keyid, "listed as revoked but belongs to another network")
        elif item.keyid in work.mine:
            work.revoke(item.keyid, item.revoked_at, "listed as revoked by its network")
        else:
            at = min(item.revoked_at, work.now)
            public = public_key_bytes(item.public_key)
            work.add(KeyEntry(work.network, public, revoked_at=at, learned_at=work.now))
            work.note("revoked", item.keyid, "a key we never trusted, recorded as revoked")
