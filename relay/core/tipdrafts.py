"""Publishing from a tip: the publisher's partial draft, completed from the tip (pure).

``POST /api/v1/tips/{id}/publish`` (and ``!publish`` in the desk room) takes
a ``TipDraft``: every field of an alert draft (DESIGN §6) is optional, and
what is missing comes from the tip: the area from ``where``, the observed
time, the agencies, a kind from the tip's activity. The certainty is the
desk's, never the publisher's wish: ``confirmed`` once enough verifiers
confirmed, ``false`` (and ``kind=rumor``) for a false alarm. Missing text
becomes a short headline naming the place and a one-line body, in each of the
node's languages: the caller passes their ``Words`` (``relay.core.language``;
ids ``tipdraft.*``), so this module reads no catalogue and stays pure.

The reporter's own words are never copied into the alert: a tip's text may
name people, plates or the reporter, and an alert describes activity only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Final, Protocol

import msgspec
from msgspec import Meta, Struct

from relay.core.drafts import Draft
from relay.core.errors import BadInput
from relay.core.language import N_, Words
from relay.core.model import (
    KINDS,
    Agencies,
    Area,
    Certainty,
    Kind,
    Label,
    Radius,
    Text,
    Texts,
    UtcTime,
)
from relay.core.tips import Tip

DEFAULT_RADIUS_M: Final = 500
DEFAULT_EXPIRES_IN: Final = "4h"


class TipDraft(Struct, forbid_unknown_fields=True, frozen=True):
    kind: Kind | None = None
    certainty: Certainty | None = None
    area: Area | None = None
    radius_m: Radius | None = None
    text: Texts | None = None
    agencies: Agencies | None = None
    expires_at: UtcTime | None = None
    expires_in: Annotated[str, Meta(pattern=r"^[0-9]{1,6}[smhd]$")] | None = None
    observed_at: UtcTime | None = None
    # The place, piece by piece (``avisa tip publish --geohash --code --area-label``): what
    # is missing comes from the tip and the gazetteer. Checked there, with examples.
    geohash: Annotated[str, Meta(max_length=16)] | None = None
    codes: Annotated[list[Annotated[str, Meta(max_length=40)]], Meta(max_length=16)] | None = None
    area_label: Label | None = None


class PlaceFinder(Protocol):
    """Completes an alert's area from a tip and the publisher's pieces of a place."""

    def area(self, tip: Tip, draft: TipDraft) -> Area: ...


NO_PLACE: Final = (
    "the tip has no place the desk can map (no geohash, ZIP or area code, and no [node]"
    " home_codes): give one, e.g. --code zip:93030 or --geohash 9q5681 (API: codes, geohash)"
)

#: The headline (``%(place)s``: the area's label) and body of a prefilled text.
_TEXTS: Final = {
    "confirmed": (N_("tipdraft.confirmed.headline"), N_("tipdraft.confirmed.body")),
    "false": (N_("tipdraft.false.headline"), N_("tipdraft.false.body")),
}
#: An alert carries at most this many languages (``relay.core.model.Texts``).
MAX_TEXTS: Final = 8


def default_text(certainty: Certainty, place: str, words: Sequence[Words]) -> dict[str, Text]:
    """The prefilled text in each language of ``words`` (the node's, first the default)."""
    headline, body = _TEXTS["false" if certainty == "false" else "confirmed"]
    place = place[:100]
    return {
        one.language: Text(headline=one.gettext(headline, place=place), body=one.gettext(body))
        for one in words[:MAX_TEXTS]
    }


def _kind(tip: Tip, certainty: Certainty, draft: TipDraft) -> Kind:
    if certainty == "false":
        if draft.kind not in (None, "rumor"):
            raise BadInput("AVISA_BAD_DRAFT", "a false alarm is published as kind rumor")
        return "rumor"
    if draft.kind is not None:
        if draft.kind == "rumor":
            raise BadInput("AVISA_BAD_DRAFT", "a confirmed tip is not published as a rumor")
        return draft.kind
    activity = (tip.activity or "").strip().lower()
    return activity if activity in KINDS and activity != "rumor" else "sighting"  # type: ignore[return-value]


def _area(tip: Tip, draft: TipDraft, place: PlaceFinder | None) -> Area:
    picked = (draft.geohash, draft.codes, draft.area_label)
    if draft.area is not None:
        if picked != (None, None, None):
            raise BadInput(
                "AVISA_BAD_DRAFT", "give either area or geohash/codes/area_label, not both"
            )
        return draft.area
    if place is not None:
        return place.area(tip, draft)
    if draft.geohash is None and tip.where.geohash is None:
        raise BadInput("AVISA_BAD_DRAFT", NO_PLACE)
    return Area(
        label=draft.area_label or tip.where.label,
        geohash=(draft.geohash or tip.where.geohash or "").lower(),
        radius_m=DEFAULT_RADIUS_M if draft.radius_m is None else draft.radius_m,
        codes=list(draft.codes if draft.codes is not None else tip.where.codes),
    )


def prefill(
    tip: Tip,
    draft: TipDraft,
    certainty: Certainty,
    place: PlaceFinder | None = None,
    *,
    words: Sequence[Words],
) -> Draft:
    """The full alert draft: the publisher's fields, the rest from the tip; ``place``
    (``relay.core.tipplace``) completes the area from the gazetteer, ``words`` (the
    node's languages) write a text the publisher did not give."""
    if draft.certainty is not None and draft.certainty != certainty:
        raise BadInput(
            "AVISA_BAD_DRAFT", f"the desk's outcome makes this alert's certainty {certainty}"
        )
    area = _area(tip, draft, place)
    expires_in = draft.expires_in
    if draft.expires_at is None and expires_in is None:
        expires_in = DEFAULT_EXPIRES_IN
    fields = {
        "kind": _kind(tip, certainty, draft),
        "certainty": certainty,
        "area": area,
        "text": draft.text or default_text(certainty, area.label, words),
        "agencies": list(draft.agencies if draft.agencies is not None else tip.agencies),
        "expires_at": draft.expires_at,
        "expires_in": expires_in,
        "observed_at": draft.observed_at or tip.observed_at,
    }
    try:
        return msgspec.convert(fields, Draft, from_attributes=True)
    except msgspec.ValidationError as exc:
        raise BadInput("AVISA_BAD_DRAFT", str(exc)) from None
