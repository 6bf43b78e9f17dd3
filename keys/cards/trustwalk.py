"""Whether a trust list version may follow the one held, and the walk forward.

The rules are TUF's root chaining applied to a coalition's membership
(DESIGN §15, docs/protocol.md §8.3):

- a version counts the signatures of its own maintainers (with the keys it
  lists for them) and, for N > 1, of version N−1's maintainers (with the keys
  *that* version lists): both sets must reach their threshold, so a new
  maintainer set is taken only when the old one agreed;
- every signature must be by a key of one of those maintainers and must
  verify; a key counts only when the version that lists it says it was valid
  at ``issued_at``; a network counts once however many keys it signs with;
- ``previous`` is the hex SHA-256 of version N−1's payload;
- the walk starts from the version held (or from nothing: then version 1,
  whose maintainer set must match the fingerprint the subscriber typed) and
  accepts versions one by one; a lower version is a rollback, a gap is a
  skipped version, the held version with another payload is equivocation
  when the held version's maintainers signed it (kept as evidence), a
  version past ``expires_at`` is refused unless a newer accepted version in
  the same walk supersedes it.

``walk`` never raises for a refusal: it returns what was accepted (oldest
first) and the first refusal, so a caller can store the one and log the
other in a single transaction. Pure: ``now`` is passed in.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from keys.cards.statements import public_key_bytes
from keys.cards.trustlist import MemberKey, OpenedList, TrustList, TrustListRefused, set_fingerprint
from keys.core.fingerprint import normalize
from relay.core.envelope import pae, verify_signature
from relay.core.times import rfc3339

DEFAULT_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Signers:
    """Who signed one version: maintainers of this version and of the one before."""

    signed: frozenset[str]
    missing: tuple[str, ...]
    threshold: int
    old_signed: frozenset[str] = frozenset()
    old_missing: tuple[str, ...] = ()
    old_threshold: int = 0
    unknown: tuple[str, ...] = ()
    bad: tuple[str, ...] = ()

    @property
    def enough(self) -> bool:
        return len(self.signed) >= self.threshold

    @property
    def old_enough(self) -> bool:
        return len(self.old_signed) >= self.old_threshold


def _valid_keyids(opened: OpenedList, keys: dict[str, tuple[str, MemberKey]]) -> set[str]:
    message = pae(opened.envelope.payloadType, opened.payload)
    valid = set()
    for signature in opened.envelope.signatures:
        known = keys.get(signature.keyid)
        if known is not None and verify_signature(
            public_key_bytes(known[1].public_key), message, base64.b64decode(signature.sig)
        ):
            valid.add(signature.keyid)
    return valid


def _networks(
    valid: set[str], keys: dict[str, tuple[str, MemberKey]], at: datetime
) -> frozenset[str]:
    return frozenset(
        keys[keyid][0] for keyid in valid if keyid in keys and keys[keyid][1].valid_at(at)
    )


def signers(candidate: OpenedList, previous: TrustList | None) -> Signers:
    """Which maintainers of ``candidate`` (and of ``previous``) signed it, and who is missing."""
    document = candidate.document
    new_keys = document.maintainer_keys()
    old_keys = previous.maintainer_keys() if previous is not None else {}
    known = {**old_keys, **new_keys}
    valid = _valid_keyids(candidate, known)
    keyids = [signature.keyid for signature in candidate.envelope.signatures]
    signed = _networks(valid, new_keys, document.issued_at)
    result = Signers(
        signed=signed,
        missing=tuple(n for n in document.maintainers.networks if n not in signed),
        threshold=document.maintainers.threshold,
        unknown=tuple(keyid for keyid in keyids if keyid not in known),
        bad=tuple(keyid for keyid in keyids if keyid in known and keyid not in valid),
    )
    if previous is None:
        return result
    old_signed = _networks(valid, old_keys, document.issued_at)
    return Signers(
        signed=result.signed,
        missing=result.missing,
        threshold=result.threshold,
        old_signed=old_signed,
        old_missing=tuple(n for n in previous.maintainers.networks if n not in old_signed),
        old_threshold=previous.maintainers.threshold,
        unknown=result.unknown,
        bad=result.bad,
    )


def _check_signatures(candidate: OpenedList, previous: TrustList | None) -> None:
    who = signers(candidate, previous)
    version = candidate.version
    if who.bad:
        raise TrustListRefused(
            "bad_signature", f"the signature by {who.bad[0]} on version {version} does not verify"
        )
    if who.unknown:
        raise TrustListRefused(
            "unknown_signer",
            f"version {version} is signed by {who.unknown[0]}, no maintainer's key",
        )
    if not who.enough:
        raise TrustListRefused(
            "below_threshold",
            f"version {version} has {len(who.signed)} of the {who.threshold} maintainer"
            f" signatures it needs; missing: {', '.join(who.missing)}",
        )
    if not who.old_enough:
        raise TrustListRefused(
            "old_threshold_missing",
            f"version {version} has {len(who.old_signed)} of the {who.old_threshold} signatures"
            f" version {version - 1}'s maintainers must give;"
            f" missing: {', '.join(who.old_missing)}",
        )


def check_first(candidate: OpenedList, typed_fingerprint: str | None) -> None:
    """Version 1 as a subscriber first takes it: its maintainer set is the one read aloud
    (``None``: no fingerprint to compare, for a host or a maintainer, who vouch for nothing)."""
    document = candidate.document
    if document.version != 1:
        raise TrustListRefused(
            "skipped_version", f"a walk from nothing starts at version 1, not {document.version}"
        )
    if typed_fingerprint is not None and normalize(set_fingerprint(document)) != normalize(
        typed_fingerprint
    ):
        raise TrustListRefused(
            "fingerprint_mismatch",
            f"the maintainers of {document.list} version 1 do not have the fingerprint you"
            " typed; ask a maintainer to read it again from 'avisa trustlist show'",
        )


def check_step(
    held: OpenedList | None, candidate: OpenedList, now: datetime, skew: timedelta = DEFAULT_SKEW
) -> None:
    """Refuse ``candidate`` as the next version after ``held`` (expiry aside), with a reason."""
    document = candidate.document
    if held is not None:
        _check_order(held, candidate)
    elif document.version != 1:
        raise TrustListRefused(
            "skipped_version",
            f"version {document.version} without versions 1 to {document.version - 1}",
        )
    if document.issued_at > now + skew:
        raise TrustListRefused(
            "from_future", f"version {document.version} is issued at {rfc3339(document.issued_at)}"
        )
    _check_signatures(candidate, None if held is None else held.document)


def _check_order(held: OpenedList, candidate: OpenedList) -> None:
    old, new = held.document, candidate.document
    if new.list != old.list:
        raise TrustListRefused("wrong_list", f"this is list {new.list}, not {old.list}")
    if new.version < old.version:
        raise TrustListRefused(
            "rollback", f"version {new.version} is older than version {old.version}, held here"
        )
    if new.version == old.version:
        keys = old.maintainer_keys()
        signed = _networks(_valid_keyids(candidate, keys), keys, new.issued_at)
        if len(signed) >= old.maintainers.threshold:
            raise TrustListRefused(
                "equivocation",
                f"the maintainers signed two different versions {new.version}",
            )
        raise TrustListRefused(
            "below_threshold", f"another version {new.version}, not signed by its maintainers"
        )
    if new.version > old.version + 1:
        raise TrustListRefused(
            "skipped_version",
            f"version {new.version} without version {old.version + 1} (held: {old.version})",
        )
    if new.previous != held.digest:
        raise TrustListRefused(
            "broken_chain",
            f"version {new.version}'s previous is not the hash of version {old.version}",
        )


@dataclass(frozen=True, slots=True)
class Walk:
    """Versions accepted (oldest first), the first refusal, an equivocating copy if any."""

    accepted: tuple[OpenedList, ...] = ()
    refusal: TrustListRefused | None = None
    evidence: tuple[OpenedList, ...] = field(default=())

    def head(self, held: OpenedList | None) -> OpenedList | None:
        return self.accepted[-1] if self.accepted else held


def walk(
    held: OpenedList | None,
    candidates: Sequence[OpenedList],
    now: datetime,
    typed_fingerprint: str | None = None,
    skew: timedelta = DEFAULT_SKEW,
) -> Walk:
    """Walk forward from ``held`` through ``candidates`` (any order), as far as the rules allow.

    With nothing held, ``typed_fingerprint`` must match version 1's maintainer
    set (a subscriber always gives one; ``None`` is for hosts and maintainers).
    A copy of the held version with the same payload is no news. The newest
    accepted versions that are past ``expires_at`` are given back (refused
    ``expired``): a version expires unless a newer one replaces it.
    """
    head, accepted = held, []
    refusal: TrustListRefused | None = None
    evidence: list[OpenedList] = []
    for candidate in sorted(candidates, key=lambda opened: opened.version):
        if head is not None and candidate.payload == head.payload:
            continue
        try:
            if head is None:
                check_first(candidate, typed_fingerprint)
            check_step(head, candidate, now, skew)
        except TrustListRefused as exc:
            refusal = exc
            if exc.reason == "equivocation":
                evidence.append(candidate)
            break
        accepted.append(candidate)
        head = candidate
    while accepted and accepted[-1].document.expires_at <= now:
        stale = accepted.pop().document
        refusal = refusal or TrustListRefused(
            "expired", f"version {stale.version} expired at {rfc3339(stale.expires_at)}"
        )
    return Walk(tuple(accepted), refusal, tuple(evidence))
