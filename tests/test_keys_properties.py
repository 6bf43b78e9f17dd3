"""Properties of ``apply_document`` over random statements (hypothesis).

Whatever a peer's documents contain, in whatever order they arrive:
trust only narrows (``revoked_at`` and ``valid_until`` never move later), a
key is only ever added by a rotation both its keys signed or as a revoked
key, and keys of other networks are never touched.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from keys.cards.apply import apply_document
from keys.core.keyring import KeyEntry
from keys.core.signing import NodeKey
from relay.core.model import Envelope
from tests.helpers import T0, key
from tests.key_helpers import document, revocation, rotation

POOL = [key(n) for n in range(1, 6)]
OTHER = KeyEntry("sf", key(20).public_key)
FAR = datetime.max.replace(tzinfo=T0.tzinfo)

minutes = st.integers(min_value=-600, max_value=30).map(lambda m: T0 + timedelta(minutes=m))
signer_sets = st.lists(st.sampled_from(POOL), min_size=1, max_size=3, unique_by=lambda k: k.keyid)


@st.composite
def statements(draw: st.DrawFn) -> tuple[Envelope, tuple[str, str, frozenset[str]] | None]:
    """A statement, and for rotations (old, new, signers) to check additions against."""
    signers = draw(signer_sets)
    at = draw(minutes)
    if draw(st.booleans()):
        old, new = draw(st.sampled_from(POOL)), draw(st.sampled_from(POOL))
        if old.keyid == new.keyid:
            return revocation(old, *signers, at=at), None
        signed = frozenset(k.keyid for k in signers)
        return rotation(old, new, *signers, at=at), (old.keyid, new.keyid, signed)
    return revocation(draw(st.sampled_from(POOL)), *signers, at=at), None


def _later(after: datetime | None, before: datetime | None) -> bool:
    return (after or FAR) > (before or FAR)


@settings(max_examples=150, deadline=None)
@given(
    batches=st.lists(st.lists(statements(), max_size=6), min_size=1, max_size=3),
    currents=st.lists(st.sampled_from(POOL), min_size=3, max_size=3),
)
def test_trust_only_narrows(
    batches: list[list[tuple[Envelope, tuple[str, str, frozenset[str]] | None]]],
    currents: list[NodeKey],
) -> None:
    known = [KeyEntry("la", POOL[0].public_key, learned_at=T0 - timedelta(days=1)), OTHER]
    now = T0
    for batch, current in zip(batches, currents, strict=False):
        rotations: dict[tuple[str, str], set[frozenset[str]]] = {}
        for _, item in batch:
            if item is not None:
                rotations.setdefault(item[:2], set()).add(item[2])
        result = apply_document(known, document(current, [env for env, _ in batch], now=now), now)
        before = {entry.keyid: entry for entry in known if entry.network == "la"}
        for entry in result.entries:
            assert entry.network == "la"
            previous = before.get(entry.keyid)
            if previous is not None:
                assert not _later(entry.revoked_at, previous.revoked_at)
                assert not _later(entry.valid_until, previous.valid_until)
                continue
            if entry.introduced_by is None:
                assert entry.revoked_at is not None and entry.revoked_at <= now
            else:
                signer_sets = rotations[(entry.introduced_by, entry.keyid)]
                assert frozenset({entry.introduced_by, entry.keyid}) in signer_sets
        known = [*result.entries, OTHER]
        now += timedelta(minutes=7)
