"""Applying a trusted peer's key document to what the receiver trusts (pure).

``apply_document`` is what federation calls with a peer's fetched
``GET /federation/v1/keys`` document (through ``keys.store.peerstore``), and what
``avisa trust update`` calls with a card. The peer must already be trusted:
keys enter only through rotation statements signed by a trusted old key
*and* the new key; revocations narrow trust; nothing else ever widens it.

Statements are judged on their own merits, even when the document's signer
is not (yet) trusted, so a revocation always gets through. A rotated-out key
cannot rotate again to a different key (a fork): the first rotation a
receiver saw stands, and the operator must revoke. The narrowing rules every
change obeys are in ``keys.cards.keyset``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime, timedelta

from keys.cards.card import VerifiedDocument
from keys.cards.keyset import (
    DEFAULT_SKEW,
    Action,
    ApplyResult,
    Change,
    Work,
    narrow_old_keys,
    revoke_listed,
    when,
)
from keys.cards.statements import (
    REVOCATION_PAYLOAD_TYPE,
    RevocationStatement,
    RotationStatement,
    StatementError,
    decode,
    public_key_bytes,
)
from keys.core.keyring import KeyEntry
from relay.core.envelope import pae, payload_bytes, verify_signature
from relay.core.errors import BadInput, BadPeerData
from relay.core.model import Envelope


def _verifies(work: Work, envelope: Envelope, payload: bytes, keyid: str, public: bytes) -> bool:
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
    work: Work, envelope: Envelope, payload: bytes, st: RotationStatement, skew: timedelta
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
    work.note("rotated", st.new_keyid, f"replaces {old.keyid} from {when(st.rotated_at)}")
    return True


def _rotation_refusal(
    work: Work, old: KeyEntry, new: KeyEntry | None, st: RotationStatement, skew: timedelta
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
    work: Work, envelope: Envelope, payload: bytes, st: RevocationStatement
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


def _statement(work: Work, envelope: Envelope, skew: timedelta) -> bool:
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


def _apply_statements(work: Work, statements: Sequence[Envelope], skew: timedelta) -> None:
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
    work = Work.start(known, document.network, now)
    before = list(work.mine.values())
    if not work.mine:
        raise BadPeerData(
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
        narrow_old_keys(work, document.old_keys)
        revoke_listed(work, document.revoked)
    for key in document.keys:
        if key.keyid not in work.mine:
            work.note(
                "ignored",
                key.keyid,
                "presented as current without a rotation statement from a key we trust;"
                " if genuine, repeat the key ceremony (avisa trust add)",
            )
    return work.result(trusted, before)
