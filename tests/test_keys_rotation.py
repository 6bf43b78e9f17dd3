"""Rotation and revocation, table-driven (in the style of python-tuf's key-rotation tests).

Each case gives what the receiver trusts, the statements a peer's key
document carries, and what the receiver must trust afterwards. All pure:
``apply_document`` on ``KeyEntry`` lists, no store, no clock.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from keys.cards.apply import apply_document
from keys.cards.keyset import revoke_key
from keys.core.keyring import KeyEntry, Keyring
from keys.core.signing import NodeKey
from relay.core.envelope import pae, verify
from relay.core.model import Envelope, Signature
from relay.core.policy import PeerPolicy, Policy, PolicyState, decide
from tests.helpers import T0, envelope_for, key, make_alert
from tests.key_helpers import document, revocation, rotation

K1, K2, K3, K4, K9 = key(1), key(2), key(3), key(4), key(9)
OTHER = key(20)  # belongs to network "sf"
H = timedelta(hours=1)


def trusted(k: NodeKey, **validity: object) -> KeyEntry:
    return KeyEntry("la", k.public_key, learned_at=T0 - 24 * H, **validity)  # type: ignore[arg-type]


def forged_rotation(old: NodeKey, new: NodeKey, forger: NodeKey) -> Envelope:
    """Claims the old key's keyid, but the old-key signature was made by ``forger``."""
    honest = rotation(old, new)
    payload = base64.b64decode(honest.payload)
    fake = base64.b64encode(forger.sign(pae(honest.payloadType, payload))).decode()
    return Envelope(
        honest.payloadType, honest.payload, [Signature(old.keyid, fake), honest.signatures[1]]
    )


@dataclass
class RotationCase:
    name: str
    statements: list[Envelope]
    current: NodeKey
    trusted_after: set[str]
    action: str
    known: list[KeyEntry] = field(default_factory=lambda: [trusted(K1)])


ROTATIONS = [
    RotationCase("signed by both", [rotation(K1, K2, at=T0 - H)], K2, {K2.keyid}, "rotated"),
    RotationCase("signed by old only", [rotation(K1, K2, K1)], K2, {K1.keyid}, "refused"),
    RotationCase("signed by new only", [rotation(K1, K2, K2)], K2, {K1.keyid}, "refused"),
    RotationCase(
        "signed by both, new first",
        [rotation(K1, K2, K2, K1, at=T0 - H)],
        K2,
        {K2.keyid},
        "rotated",
    ),
    RotationCase(
        "signed by old and a third key", [rotation(K1, K2, K1, K3)], K2, {K1.keyid}, "refused"
    ),
    RotationCase("old signature forged", [forged_rotation(K1, K2, K3)], K2, {K1.keyid}, "refused"),
    RotationCase("old key unknown here", [rotation(K9, K2)], K2, {K1.keyid}, "ignored"),
    RotationCase(
        "old key revoked",
        [rotation(K1, K2)],
        K2,
        set(),
        "refused",
        known=[trusted(K1, revoked_at=T0 - H)],
    ),
    RotationCase(
        "fork: old key already rotated to another",
        [rotation(K1, K3, at=T0 - H)],
        K3,
        {K2.keyid},
        "refused",
        known=[
            trusted(K1, valid_until=T0 - 2 * H),
            KeyEntry(
                "la", K2.public_key, T0 - 2 * H, learned_at=T0 - 2 * H, introduced_by=K1.keyid
            ),
        ],
    ),
    RotationCase(
        "chain given newest first",
        [rotation(K2, K3, at=T0 - H), rotation(K1, K2, at=T0 - 2 * H)],
        K3,
        {K3.keyid},
        "rotated",
    ),
    RotationCase(
        "new key belongs to another network",
        [rotation(K1, OTHER)],
        OTHER,
        {K1.keyid},
        "refused",
        known=[trusted(K1), KeyEntry("sf", OTHER.public_key)],
    ),
    RotationCase(
        "rotation dated in the future", [rotation(K1, K2, at=T0 + H)], K2, {K1.keyid}, "refused"
    ),
    RotationCase(
        "new key already revoked here (replay)",
        [rotation(K1, K2, at=T0 - H)],
        K2,
        {K1.keyid},
        "refused",
        known=[trusted(K1), trusted(K2, revoked_at=T0 - 2 * H)],
    ),
    RotationCase(
        "statement for another network",
        [rotation(K1, K2, network="sf")],
        K2,
        {K1.keyid},
        "refused",
    ),
]


def _valid_now(entries: tuple[KeyEntry, ...] | list[KeyEntry], at: datetime) -> set[str]:
    """Keys that would vouch for a message signed just before ``at`` and received at ``at``."""
    return {e.keyid for e in entries if e.status(at, at - timedelta(seconds=1), 6 * H) == "valid"}


@pytest.mark.parametrize("case", ROTATIONS, ids=[case.name for case in ROTATIONS])
def test_rotation(case: RotationCase) -> None:
    result = apply_document(case.known, document(case.current, case.statements), T0)
    assert _valid_now(result.entries, T0) == case.trusted_after
    assert case.action in {change.action for change in result.changes}, result.changes
    assert result.trusted == (case.current.keyid in case.trusted_after)
    by_id = {entry.keyid: entry for entry in result.entries}
    if case.action == "rotated":
        assert by_id[K1.keyid].valid_until is not None  # the old key is rotated out
        assert by_id[case.current.keyid].learned_at == T0
        assert by_id[case.current.keyid].introduced_by is not None


def test_rotated_out_key_verifies_only_what_it_signed_before() -> None:
    result = apply_document([trusted(K1)], document(K2, [rotation(K1, K2, at=T0 - H)]), T0)
    old = {e.keyid: e for e in result.entries}[K1.keyid]
    assert old.valid_until == T0 - H
    grace = 6 * H
    assert old.status(T0, T0 - 2 * H, grace) == "valid"  # signed while current
    assert old.status(T0, T0 - H, grace) == "expired"  # signed at/after the rotation
    assert old.status(T0 + 6 * H, T0 - 2 * H, grace) == "expired"  # grace is over


def test_a_rotation_applied_twice_changes_nothing() -> None:
    once = apply_document([trusted(K1)], document(K2, [rotation(K1, K2, at=T0 - H)]), T0)
    twice = apply_document(list(once.entries), document(K2, [rotation(K1, K2, at=T0 - H)]), T0 + H)
    assert twice.entries == once.entries and twice.changes == () and twice.trusted


# --- revocation ---------------------------------------------------------------

ROTATED_AT = T0 - 2 * H


def rotated_receiver() -> list[KeyEntry]:
    """The receiver trusted K1 by card, then learned K1 → K2 at ROTATED_AT."""
    return [
        trusted(K1, valid_until=ROTATED_AT),
        KeyEntry("la", K2.public_key, ROTATED_AT, learned_at=ROTATED_AT, introduced_by=K1.keyid),
    ]


@dataclass
class RevocationCase:
    name: str
    statement: Envelope
    revoked: dict[str, datetime]
    action: str | None  # None: nothing to note
    known: list[KeyEntry] = field(default_factory=rotated_receiver)


REVOCATIONS = [
    RevocationCase(
        "current key revokes itself", revocation(K2, at=T0 - H), {K2.keyid: T0 - H}, "revoked"
    ),
    RevocationCase(
        "current key revokes the old one, after the rotation",
        revocation(K1, K2, at=T0 - H),
        {K1.keyid: T0 - H},
        "revoked",
    ),
    RevocationCase(
        "old key revoked from before the rotation: its successor falls with it",
        revocation(K1, K2, at=T0 - 3 * H),
        {K1.keyid: T0 - 3 * H, K2.keyid: T0 - 3 * H},
        "revoked_with_parent",
    ),
    RevocationCase(
        "old key revokes itself", revocation(K1, at=T0 - H), {K1.keyid: T0 - H}, "revoked"
    ),
    RevocationCase("rotated-out key revokes the current one", revocation(K2, K1), {}, "refused"),
    RevocationCase("a stranger revokes the current key", revocation(K2, K9), {}, "refused"),
    RevocationCase(
        "dated in the future: effective on arrival",
        revocation(K2, at=T0 + 5 * H),
        {K2.keyid: T0},
        "revoked",
    ),
    RevocationCase(
        "unknown key, revoked by a current key", revocation(K4, K2), {K4.keyid: T0}, "revoked"
    ),
    RevocationCase("unknown key, revoking only itself", revocation(K4), {}, "ignored"),
    RevocationCase(
        "a key of another network",
        revocation(OTHER, K2),
        {},
        "refused",
        known=[*rotated_receiver(), KeyEntry("sf", OTHER.public_key)],
    ),
    RevocationCase(
        "never moves a revocation later",
        revocation(K2, at=T0 - H),
        {},
        None,
        known=[
            rotated_receiver()[0],
            KeyEntry(
                "la",
                K2.public_key,
                ROTATED_AT,
                revoked_at=T0 - 90 * timedelta(minutes=1),
                learned_at=ROTATED_AT,
            ),
        ],
    ),
]


@pytest.mark.parametrize("case", REVOCATIONS, ids=[case.name for case in REVOCATIONS])
def test_revocation(case: RevocationCase) -> None:
    result = apply_document(case.known, document(K2, [case.statement]), T0)
    assert result.revoked == case.revoked
    actions = {change.action for change in result.changes}
    if case.action is None:
        assert not actions & {"revoked", "refused"}, result.changes
    else:
        assert case.action in actions, result.changes


def test_revocation_applies_even_when_the_document_signer_is_not_trusted() -> None:
    # The peer lost faith in K2 and made K3 without a rotation: we take the
    # revocation (self-signed by K2) but not K3.
    result = apply_document(rotated_receiver(), document(K3, [revocation(K2, at=T0 - H)]), T0)
    assert result.revoked == {K2.keyid: T0 - H}
    assert not result.trusted
    assert K3.keyid not in {e.keyid for e in result.entries}


# --- a revoked key's messages, judged by the receiver's clock -----------------


def _policy() -> Policy:
    return Policy(own_network="ventura", peers={"la": PeerPolicy("la", speaks_for=("fips:06",))})


@pytest.mark.parametrize(
    ("received_at", "sent_at", "expected"),
    [
        (T0 - 2 * H, T0 - 2 * H - timedelta(minutes=1), ("accept", "authoritative")),
        (T0 - H - timedelta(seconds=1), T0 - H - timedelta(seconds=2), ("accept", "authoritative")),
        (T0 - H, T0 - H, ("reject", "revoked_key")),
        (T0, T0 - timedelta(minutes=1), ("reject", "revoked_key")),
        # Backdated: claims to be signed before the revocation, arrives after it.
        (T0, T0 - 2 * H, ("reject", "revoked_key")),
    ],
    ids=["well before", "just before", "at revocation", "after", "backdated"],
)
def test_revoked_key_signing_before_and_after_revocation(
    received_at: datetime, sent_at: datetime, expected: tuple[str, str]
) -> None:
    result = revoke_key([trusted(K2)], "la", K2.keyid, T0 - H, T0)
    keyring = Keyring(result.entries)
    alert = make_alert("la", sent_at=sent_at, codes=("fips:06037",))
    envelope = envelope_for(alert, K2)
    payload = base64.b64decode(envelope.payload)
    decision = decide(
        envelope, alert, verify(envelope, payload, keyring), _policy(), PolicyState(), received_at
    )
    assert (decision.action, decision.reason) == expected
