"""``avisa trust add``: whether to trust a card, and what to store (pure).

The operator read the fingerprint over a separate channel, so the card is
the evidence: every key it vouches for becomes the operator's decision
(current keys trusted and no longer resting on a rotation statement, old
keys with their expiry, revoked keys revoked). It is refused, with a message
that says what to check, when the fingerprint differs, when it is older than
what we already trust for that network (replayed: issued before the newest
trusted document, or presenting as current a key we know as rotated out or
revoked), when it names another network's key or is this node's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from keys.cards.card import CurrentKey, KeyDocument, VerifiedDocument
from keys.cards.keyset import DEFAULT_SKEW, Change, Work, newly_revoked, revoke_listed, when
from keys.cards.statements import public_key_bytes
from keys.core.fingerprint import matches, normalize
from keys.core.keyring import KeyEntry
from relay.core.errors import BadInput


class CardRefused(BadInput):
    """``avisa trust add`` refuses a card; the message tells the operator what to do."""

    def __init__(self, message: str) -> None:
        super().__init__("AVISA_CARD_REFUSED", message)


@dataclass(frozen=True, slots=True)
class CardPlan:
    """What ``trust add`` will store: the network's complete new key set."""

    network: str
    url: str
    entries: tuple[KeyEntry, ...]
    changes: tuple[Change, ...]
    revoked: dict[str, datetime]
    already_trusted: bool


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
    work: Work,
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
            f"this card was issued {when(document.issued_at)}, before the key document"
            f" already trusted for {document.network} ({when(last_issued_at)}): it is"
            f" replayed or stale; {stale}. To change only its settings, use"
            f" 'avisa trust set {document.network} --speaks-for …' (no card needed)"
        )
    for key in document.keys:
        entry = work.mine.get(key.keyid)
        if entry is None:
            continue
        if entry.revoked_at is not None:
            return (
                f"the card presents {key.keyid} as current, but it was revoked here at"
                f" {when(entry.revoked_at)}: the card is replayed or stale; {stale}"
            )
        if entry.valid_until is not None and entry.valid_until <= work.now:
            return (
                f"the card presents {key.keyid} as current, but it was rotated out at"
                f" {when(entry.valid_until)}: the card is replayed or stale; {stale}"
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
    work = Work.start(known, document.network, now)
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
            work.note("added", old.keyid, f"old key, rotated out at {when(old.expired_at)}")
        work.narrow_until(old.keyid, old.expired_at)
    revoke_listed(work, document.revoked)
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


def _trust_current(work: Work, key: CurrentKey) -> None:
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
