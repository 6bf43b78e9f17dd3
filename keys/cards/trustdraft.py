"""Drafting the next version of a trust list, and saying what changed (pure).

A maintainer drafts version N+1 from version N (or version 1 from nothing):
the list id, maintainers and members carry over unless the draft changes
them; an unsigned draft may be changed again the same way, keeping its
version. Members come from a members file (the payload's own member format),
from cards (``avisa keys export-card`` of the member: its network, url and
current keys, verified as any card is) or are removed by network. The draft
is a canonical payload with no signature yet; ``changes`` is what ``avisa
trustlist verify`` prints for a version against the one before it, so every
maintainer sees what they sign.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import msgspec

from keys.cards.card import KeyDocument
from keys.cards.trustlist import (
    MAX_VALIDITY,
    Maintainers,
    Member,
    MemberKey,
    Members,
    OpenedList,
    TrustList,
    TrustListRefused,
    make_list,
)
from relay.core.model import KINDS
from relay.core.times import whole_seconds

DEFAULT_DAYS: Final = 30
_members_decoder: Final = msgspec.json.Decoder(Members)


@dataclass(frozen=True, slots=True)
class DraftRequest:
    """What a maintainer asks of the draft; None keeps what the previous version says."""

    list_id: str | None = None
    maintainers: Sequence[str] | None = None
    threshold: int | None = None
    members: Sequence[Member] | None = None
    add: Sequence[Member] = field(default=())
    remove: Sequence[str] = field(default=())
    days: int = DEFAULT_DAYS


def read_members(data: bytes) -> list[Member]:
    """A members file: a JSON array of members in the payload's format."""
    try:
        return _members_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise TrustListRefused("malformed", f"the members file: {exc}") from None


def member_from_card(card: KeyDocument, speaks_for: Sequence[str], kinds: Sequence[str]) -> Member:
    """A member from its verified card: network, url, current keys with their validity."""
    return Member(
        network=card.network,
        url=card.url,
        keys=[MemberKey(k.keyid, k.public_key, k.valid_from, k.valid_until) for k in card.keys],
        speaks_for=sorted(speaks_for),
        kinds=sorted(kinds or KINDS),  # type: ignore[arg-type]
    )


def draft(
    previous: OpenedList | None,
    request: DraftRequest,
    now: datetime,
    editing: TrustList | None = None,
) -> TrustList:
    """Version N+1 after ``previous`` (or version 1), as ``request`` changes it; or, when
    ``editing`` (an unsigned draft), the same version again with the changes."""
    if not 1 <= request.days <= MAX_VALIDITY.days:
        raise TrustListRefused("malformed", f"--days must be 1 to {MAX_VALIDITY.days}")
    old = editing or (None if previous is None else previous.document)
    list_id = request.list_id or (old.list if old else None)
    if list_id is None:
        raise TrustListRefused("malformed", "name the list (--list) for its version 1")
    if old is not None and list_id != old.list:
        raise TrustListRefused("wrong_list", f"the previous version is of list {old.list}")
    base = list(request.members) if request.members is not None else (old.members if old else [])
    members = {m.network: m for m in base if m.network not in request.remove}
    members.update({m.network: m for m in request.add})
    networks = request.maintainers or (old.maintainers.networks if old else [])
    threshold = request.threshold or (old.maintainers.threshold if old else len(networks))
    if editing is not None:
        version, digest = editing.version, editing.previous
    else:
        version = old.version + 1 if old else 1
        digest = previous.digest if previous else None
    issued = whole_seconds(now)
    return make_list(
        list_id,
        version,
        issued,
        issued + timedelta(days=request.days),
        Maintainers(sorted(set(networks)), threshold),
        list(members.values()),
        digest,
    )


def _member_changes(old: Member, new: Member) -> list[str]:
    said = []
    if old.url != new.url:
        said.append(f"url {new.url}")
    if {k.keyid for k in old.keys} != {k.keyid for k in new.keys}:
        said.append("keys " + ", ".join(k.keyid for k in new.keys))
    elif old.keys != new.keys:
        said.append("key validity")
    if sorted(old.speaks_for) != sorted(new.speaks_for):
        said.append("speaks for " + (", ".join(new.speaks_for) or "nothing"))
    if sorted(old.kinds) != sorted(new.kinds):
        said.append("kinds " + ", ".join(new.kinds))
    return said


def changes(old: TrustList, new: TrustList) -> list[str]:
    """One line per change from ``old`` to ``new``: maintainers, threshold, members."""
    lines = []
    before, after = set(old.maintainers.networks), set(new.maintainers.networks)
    lines += [f"maintainer added: {n}" for n in sorted(after - before)]
    lines += [f"maintainer removed: {n}" for n in sorted(before - after)]
    if old.maintainers.threshold != new.maintainers.threshold:
        lines.append(f"threshold: {old.maintainers.threshold} -> {new.maintainers.threshold}")
    was = {m.network: m for m in old.members}
    now = {m.network: m for m in new.members}
    for network in sorted(was.keys() | now.keys()):
        if network not in was:
            scope = ", ".join(now[network].speaks_for) or "nothing"
            lines.append(f"member added: {network} (speaks for {scope})")
        elif network not in now:
            lines.append(f"member removed: {network}")
        elif said := _member_changes(was[network], now[network]):
            lines.append(f"member changed: {network}: {'; '.join(said)}")
    return lines
