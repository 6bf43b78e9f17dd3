"""What a receiver makes of key documents, cards and statements (pure).

Three entry points, all pure functions of what the receiver already trusts
(its ``KeyEntry`` list, every network), the new evidence and ``now`` (the
receiver's clock):

- ``apply_document``: a peer we already trust publishes a new key document
  (fetched by federation, or handed over with ``avisa trust update``). Keys
  enter only through rotation statements signed by a trusted old key *and*
  the new key; revocations narrow trust; nothing ever widens it otherwise.
- ``check_card``: ``avisa trust add``. The operator read the fingerprint over
  a separate channel, so the card itself is the evidence; it is refused when
  the fingerprint differs, when it is older than what we trust (replay), or
  when it claims another network's key.
- ``revoke_key``: an operator's own decision (``avisa trust revoke``,
  ``avisa keys revoke``), and the core of every revocation.

Rules that hold throughout:

- Revocation only ever moves ``revoked_at`` earlier, never later, and never
  later than the receiver's ``now``: a revocation dated in the future takes
  effect when it arrives.
- Whatever a key vouched for at or after its revocation time, as the receiver
  saw it, is void. In particular a key introduced by a rotation statement the
  receiver learned at or after the old key's ``revoked_at`` is revoked with
  it (same ``revoked_at``): whoever stole the old key could have made that
  rotation.
- A rotated-out key cannot rotate again to a different key (a fork): the
  first rotation a receiver saw stands, and the operator must revoke.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from keys.card import CurrentKey, KeyDocument, OldKey, RevokedKey, VerifiedDocument
from keys.fingerprint import matches, normalize
from keys.keyring import KeyEntry
from keys.statements import (
    REVOCATION_PAYLOAD_TYPE,
    RevocationStatement,
    RotationStatement,
    StatementError,
    decode,
    public_key_bytes,
)
from relay.envelope import pae, payload_bytes, verify_signature
from relay.errors import BadInput
from relay.model import Envelope

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


class CardRefused(BadInput):
    """``avisa trust add`` refuses a card; the message tells the operator what to do."""

    def __init__(self, message: str) -> None:
        super().__init__("AVISA_CARD_REFUSED", message)


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
class _Work:
    """The receiver's keys for one network while evidence is applied to them."""

    network: str
    now: datetime
    mine: dict[str, KeyEntry]
    others: dict[str, str]
    changes: list[Change] = field(default_factory=list)
    verified: dict[tuple[str, bytes, str, bytes], bool] = field(default_factory=dict)

    @classmethod
    def start(cls, known: Iterable[KeyEntry], network: str, now: datetime) -> _Work:
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
    work = _Work.start(known, network, now)
    if keyid not in work.mine:
        raise BadInput("AVISA_UNKNOWN_KEY", f"{network} has no key {keyid} here")
    work.revoke(keyid, at, "revoked by operator decision")
    return work.result(True, [e for e in known if e.network == network])


# --- statements -------------------------------------------------------------


def _verifies(work: _Work, envelope: Envelope, payload: bytes, keyid: str, public: bytes) -> bool:
    """Whether ``keyid``'s signature on the statement verifies with ``public``.

    Memoized, since statements are retried over several passes.
    """
    for signature in envelope.signatures:
        if signature.keyid != keyid:
            continue
        memo = (envelope.payloadType, payload, signature.sig, public)
        if memo not in work.verified:
            message = pae(envelope.payloadType, payload)
            work.verified[memo] = verify_signature(public, message, base64.b64decode(signature.sig))
        return work.verified[memo]
    return False


def _apply_rotation(
    work: _Work, envelope: Envelope, payload: bytes, st: RotationStatement, skew: timedelta
) -> bool:
    """Apply one rotation; True when it changed something."""
    old = work.mine.get(st.old_keyid)
    if old is None:
        work.note("ignored", st.new_keyid, f"rotation from {st.old_keyid}, a key unknown here")
        return False
    new_public = public_key_bytes(st.new_public_key)
    signers = [signature.keyid for signature in envelope.signatures]
    if sorted(signers) != sorted([st.old_keyid, st.new_keyid]):
        work.note("refused", st.new_keyid, "a rotation must be signed by both the old and new key")
        return False
    for keyid, public in ((st.old_keyid, old.public_key), (st.new_keyid, new_public)):
        if not _verifies(work, envelope, payload, keyid, public):
            work.note("refused", st.new_keyid, f"rotation: signature by {keyid} does not verify")
            return False
    new = work.mine.get(st.new_keyid)
    vouched_by = None if new is None else new.introduced_by
    if new is not None and old.valid_until == st.rotated_at and vouched_by in (None, old.keyid):
        return False  # already applied
    refusal = _rotation_refusal(work, old, new, st, skew)
    if refusal:
        work.note("refused", st.new_keyid, refusal)
        return False
    work.narrow_until(old.keyid, st.rotated_at)
    if new is None:
        entry = KeyEntry(
            work.network,
            new_public,
            valid_from=min(st.rotated_at, work.now),
            learned_at=work.now,
            introduced_by=old.keyid,
        )
        work.add(entry)
    work.note("rotated", st.new_keyid, f"replaces {old.keyid} from {_when(st.rotated_at)}")
    return True


def _rotation_refusal(
    work: _Work, old: KeyEntry, new: KeyEntry | None, st: RotationStatement, skew: timedelta
) -> str | None:
    now = work.now
    if old.revoked_at is not None and old.revoked_at <= now:
        return f"rotation signed by {old.keyid}, which is revoked"
    if st.rotated_at > now + skew:
        return "rotation dated in the future"
    if old.valid_from is not None and st.rotated_at < old.valid_from:
        return "rotation dated before the old key was valid"
    successors = [
        k for k in work.mine.values() if k.introduced_by == old.keyid and k.keyid != st.new_keyid
    ]
    if (old.valid_until is not None and old.valid_until != st.rotated_at) or successors:
        return f"{old.keyid} was already rotated out; a second rotation is a fork (revoke it)"
    if st.new_keyid in work.others:
        return f"the new key belongs to network {work.others[st.new_keyid]}"
    if new is not None and (new.revoked_at is not None or new.valid_until is not None):
        return "the new key is already rotated out or revoked here (replayed statement?)"
    return None


def _apply_revocation(
    work: _Work, envelope: Envelope, payload: bytes, st: RevocationStatement
) -> bool:
    target = work.mine.get(st.keyid)
    public = public_key_bytes(st.public_key)
    if st.keyid in work.others:
        work.note("refused", st.keyid, f"revocation of a key of network {work.others[st.keyid]}")
        return False
    if target is not None and target.public_key != public:
        work.note("refused", st.keyid, "revocation names a different public key")
        return False
    qualified = False
    for signature in envelope.signatures:
        signer = work.mine.get(signature.keyid)
        if signature.keyid == st.keyid:
            signer_public, counts = public, target is not None
        elif signer is not None:
            signer_public, counts = signer.public_key, signer.status(work.now) == "valid"
        else:
            continue  # a signer we do not know adds nothing
        if not _verifies(work, envelope, payload, signature.keyid, signer_public):
            work.note("refused", st.keyid, f"revocation: signature by {signature.keyid} fails")
            return False
        qualified = qualified or counts
    if not qualified:
        action: Action = "ignored" if target is None else "refused"
        work.note(action, st.keyid, "revocation not signed by the key or a current key we trust")
        return False
    if target is None:
        at = min(st.revoked_at, work.now)
        work.add(KeyEntry(work.network, public, revoked_at=at, learned_at=work.now))
        work.note("revoked", st.keyid, "a key we never trusted, recorded as revoked")
        return True
    before = target.revoked_at
    work.revoke(st.keyid, st.revoked_at, "revocation statement")
    return work.mine[st.keyid].revoked_at != before


def _statement(work: _Work, envelope: Envelope, skew: timedelta) -> bool:
    try:
        payload = payload_bytes(envelope)
        statement = decode(envelope.payloadType, payload)
    except (BadInput, StatementError) as exc:
        work.note("refused", "-", f"statement: {exc}")
        return False
    if statement.network != work.network:
        work.note("refused", "-", f"statement about network {statement.network}")
        return False
    if isinstance(statement, RotationStatement):
        return _apply_rotation(work, envelope, payload, statement, skew)
    return _apply_revocation(work, envelope, payload, statement)


def _apply_statements(work: _Work, statements: Sequence[Envelope], skew: timedelta) -> None:
    """Revocations first, then rotations; passes repeat while any statement applies.

    A chain K1→K2→K3 applies in any order, and a revocation signed by a key
    that a rotation in the same document introduces is honoured. Notes about
    statements that never applied come from the last pass only.
    """
    pending = sorted(statements, key=lambda env: env.payloadType != REVOCATION_PAYLOAD_TYPE)
    notes: list[Change] = []
    while pending:
        left: list[Envelope] = []
        notes = []
        for envelope in pending:
            mark = len(work.changes)
            if _statement(work, envelope, skew):
                continue
            notes.extend(work.changes[mark:])
            del work.changes[mark:]
            left.append(envelope)
        if len(left) == len(pending):
            break
        pending = left
    work.changes.extend(notes)


def _narrow_old_keys(work: _Work, old_keys: Sequence[OldKey]) -> None:
    for old in old_keys:
        if old.keyid in work.mine and work.narrow_until(old.keyid, old.expired_at):
            work.note("narrowed", old.keyid, f"rotated out at {_when(old.expired_at)}")


def _revoke_listed(work: _Work, revoked: Sequence[RevokedKey]) -> None:
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


def apply_document(
    known: Sequence[KeyEntry],
    verified: VerifiedDocument,
    now: datetime,
    max_future_skew: timedelta = DEFAULT_SKEW,
) -> ApplyResult:
    """Apply a self-signed document from a peer we already trust to our keys for it.

    Statements are applied on their own merit even when the document's signer
    is not (yet) trusted, so a revocation always gets through. The document's
    lists narrow trust only when its signer is trusted after the statements.
    """
    document = verified.document
    work = _Work.start(known, document.network, now)
    before = list(work.mine.values())
    if not work.mine:
        raise BadInput(
            "AVISA_UNKNOWN_PEER",
            f"{document.network} is not a trusted peer here; add its card with 'avisa trust add'",
        )
    _apply_statements(work, document.statements, max_future_skew)
    trusted = any(
        key.keyid in work.mine and work.mine[key.keyid].status(now) == "valid"
        for key in document.keys
    )
    if trusted:
        # The trusted signer's own account may narrow trust, never widen it.
        _narrow_old_keys(work, document.old_keys)
        _revoke_listed(work, document.revoked)
    for key in document.keys:
        if key.keyid not in work.mine:
            work.note(
                "ignored",
                key.keyid,
                "presented as current without a rotation statement from a key we trust;"
                " if genuine, repeat the key ceremony (avisa trust add)",
            )
    return work.result(trusted, before)


# --- cards (avisa trust add) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class CardPlan:
    """What ``trust add`` will store: the network's complete new key set."""

    network: str
    url: str
    entries: tuple[KeyEntry, ...]
    changes: tuple[Change, ...]
    revoked: dict[str, datetime]
    already_trusted: bool


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%SZ}"


def check_fingerprint(document: KeyDocument, typed: str) -> None:
    digits = normalize(typed)
    if not (digits.isdigit() and len(digits) == 30):
        raise CardRefused(
            "--fingerprint must be the 30 digits (six groups of five) that the other"
            " operator reads to you from 'avisa keys show'"
        )
    if not any(matches(public_key_bytes(key.public_key), typed) for key in document.keys):
        raise CardRefused(
            f"the fingerprint you typed does not match the key in this card for"
            f" {document.network}. Do not trust this card. Call the operator of"
            f" {document.network} on a channel you know is theirs (not the one that carried"
            " the card), ask them to run 'avisa keys show' and read the six groups of five"
            " digits aloud, and compare them with the digits you typed after --fingerprint."
            f" Their key id should also match this card's: {document.keys[0].keyid}."
        )


def _card_refusal(
    work: _Work,
    verified: VerifiedDocument,
    own_network: str,
    last_issued_at: datetime | None,
    last_raw: bytes | None,
    skew: timedelta,
) -> str | None:
    document = verified.document
    if document.network == own_network:
        return "this is this node's own card"
    if document.issued_at > work.now + skew:
        return "the card is dated in the future; check the clocks on both machines"
    for keyid in sorted(document.all_keyids()):
        if keyid in work.others:
            return (
                f"key {keyid} in this card already belongs to {work.others[keyid]};"
                " two networks must never share a key"
            )
    stale = "ask its operator for a fresh card ('avisa keys export-card')"
    if last_issued_at is not None and (
        document.issued_at < last_issued_at
        or (document.issued_at == last_issued_at and verified.raw != last_raw)
    ):
        return (
            f"this card was issued {_when(document.issued_at)}, before the key document"
            f" already trusted for {document.network} ({_when(last_issued_at)}): it is"
            f" replayed or stale; {stale}"
        )
    for key in document.keys:
        entry = work.mine.get(key.keyid)
        if entry is None:
            continue
        if entry.revoked_at is not None:
            return (
                f"the card presents {key.keyid} as current, but it was revoked here at"
                f" {_when(entry.revoked_at)}: the card is replayed or stale; {stale}"
            )
        if entry.valid_until is not None and entry.valid_until <= work.now:
            return (
                f"the card presents {key.keyid} as current, but it was rotated out at"
                f" {_when(entry.valid_until)}: the card is replayed or stale; {stale}"
            )
    return None


def check_card(
    known: Sequence[KeyEntry],
    verified: VerifiedDocument,
    typed_fingerprint: str,
    now: datetime,
    own_network: str,
    last_issued_at: datetime | None = None,
    last_raw: bytes | None = None,
    max_future_skew: timedelta = DEFAULT_SKEW,
) -> CardPlan:
    """Refuse a card the operator must not trust; otherwise the keys to store.

    The fingerprint was read over a separate channel, so every key the card
    vouches for is taken as the operator's decision: current keys become
    trusted (and no longer rest on a rotation statement), old keys keep their
    expiry, revoked keys are revoked. Keys of the network the card no longer
    mentions stop being current now.
    """
    document = verified.document
    check_fingerprint(document, typed_fingerprint)
    work = _Work.start(known, document.network, now)
    refusal = _card_refusal(work, verified, own_network, last_issued_at, last_raw, max_future_skew)
    if refusal:
        raise CardRefused(refusal)
    before = list(work.mine.values())
    for key in document.keys:
        _trust_current(work, key)
    for old in document.old_keys:
        if old.keyid not in work.mine:
            public = public_key_bytes(old.public_key)
            work.add(KeyEntry(work.network, public, valid_from=old.valid_from, learned_at=now))
            work.note("added", old.keyid, f"old key, rotated out at {_when(old.expired_at)}")
        work.narrow_until(old.keyid, old.expired_at)
    _revoke_listed(work, document.revoked)
    mentioned = document.all_keyids()
    for keyid in list(work.mine):
        if keyid not in mentioned and work.narrow_until(keyid, now):
            work.note("narrowed", keyid, "no longer in the network's card")
    return CardPlan(
        document.network,
        document.url,
        tuple(work.mine.values()),
        tuple(work.changes),
        newly_revoked(before, work.mine.values()),
        bool(before),
    )


def _trust_current(work: _Work, key: CurrentKey) -> None:
    entry = work.mine.get(key.keyid)
    start = None if key.valid_from is None else min(key.valid_from, work.now)
    if entry is None:
        public = public_key_bytes(key.public_key)
        work.add(KeyEntry(work.network, public, valid_from=start, learned_at=work.now))
        work.note("added", key.keyid, "current key, verified by fingerprint")
    elif entry.introduced_by is not None:
        work.replace(entry, introduced_by=None)  # now vouched for by the ceremony itself
    if key.valid_until is not None:
        work.narrow_until(key.keyid, key.valid_until)
