"""From a tip's place to an alert's area (DESIGN §14; pure, the gazetteer handed in).

A tip from the form or a text has a place in words and maybe a ZIP, rarely a
geohash; an alert needs a geohash and county codes, or the neighbours that
trust this network for its counties hold it (``outside_speaks_for``).
``TipPlaces.area`` completes the area of a draft, first from what the
publisher gave (``geohash``, ``codes``, ``area_label``), then from the tip,
in this order:

1. the tip's geohash (its county from the nearest ZIP);
2. a ZIP among the tip's codes (its centroid, precision 6, and its county);
3. a ``fips:`` code of the tip (the county's centre, precision 5);
4. a ZIP written in the tip's place or words ("… Oxnard 93030") that the
   gazetteer knows, inside the home area when the node has one;
5. the node's home area (``[node] home_codes``: its first code the gazetteer
   can place), the starting view a publisher moves from.

The alert's codes are **county** codes: a ZIP given or found is replaced by
its county (``zip:93030`` → ``fips:06111``), since a peer that trusts this
network for ``fips:06111`` does not count a ``zip:`` code as inside it. Codes
the publisher gives are checked (a code the gazetteer does not know is a 400
naming the field, with an example); ``iso:`` codes pass as given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, NamedTuple

from relay.core import geohash
from relay.core.errors import BadInput
from relay.core.gazetteer import ERRCODE, Gazetteer, Place
from relay.core.model import Area
from relay.core.policy import covers_code
from relay.core.tipdrafts import DEFAULT_RADIUS_M, NO_PLACE, TipDraft
from relay.core.tips import Tip

#: Around a county's centre the place is only roughly known.
COUNTY_RADIUS_M: Final = 5000
_WORDS_ZIP: Final = re.compile(r"(?<![0-9])([0-9]{5})(?:-[0-9]{4})?(?![0-9])")


class Suggestion(NamedTuple):
    """The place the desk suggests and where it came from (for the map and the CLI)."""

    place: Place
    source: str  # "geohash", "zip", "code", "words", "home"


class TipPlaces:
    """The gazetteer and this node's home area, applied to tips and drafts."""

    def __init__(self, gazetteer: Gazetteer, home_codes: Sequence[str] = ()) -> None:
        self.gazetteer = gazetteer
        self.home_codes = tuple(home_codes)

    # --- what the tip suggests ----------------------------------------------

    def suggest(self, tip: Tip) -> Suggestion | None:
        """The tip's own place, or the home area; None when there is neither."""
        gazetteer, where = self.gazetteer, tip.where
        if where.geohash is not None:
            return Suggestion(self._of_geohash(where.geohash, where.codes), "geohash")
        for code in where.codes:
            if code.startswith("zip:") and gazetteer.zip(code[4:]) is not None:
                return Suggestion(gazetteer.of_zip(code[4:]), "zip")
        for code in where.codes:
            if code.startswith("fips:") and (found := self._placed(code)) is not None:
                return Suggestion(found, "code")
        if (found := self._zip_in_words(f"{where.label} {tip.text}")) is not None:
            return Suggestion(found, "words")
        for code in self.home_codes:
            if (found := self._placed(code)) is not None:
                return Suggestion(found, "home")
        return None

    def _of_geohash(self, cell: str, codes: Sequence[str]) -> Place:
        try:
            return self.gazetteer.of_geohash(cell)
        except BadInput:  # at sea or abroad: the tip's own codes, nothing added
            lat, lon, _, _ = geohash.decode(cell)
            return Place(geohash=cell, codes=list(codes), label="", lat=lat, lon=lon)

    def _placed(self, code: str) -> Place | None:
        try:
            return self.gazetteer.of_code(code)
        except BadInput:
            return None

    def _zip_in_words(self, words: str) -> Place | None:
        for match in _WORDS_ZIP.finditer(words[:3000]):
            record = self.gazetteer.zip(match.group(1))
            if record is None or not record.county:
                continue
            if self.home_codes and not self.at_home([f"fips:{record.county}"]):
                continue
            return self.gazetteer.of_zip(record.zip)
        return None

    def at_home(self, codes: Sequence[str]) -> bool:
        """Every code lies inside the home area (as a peer's ``speaks_for`` counts it)."""
        home = [code for code in self.home_codes if ":" in code]
        return all(any(covers_code(h, code) for h in home) for code in codes)

    # --- a draft's area -----------------------------------------------------

    def area(self, tip: Tip, draft: TipDraft) -> Area:
        """The alert's area: the publisher's pieces, completed from the tip."""
        codes = self.gazetteer.check_codes(draft.codes or [], "codes")
        place: Place | None = None
        if draft.geohash is not None:
            place = self.gazetteer.of_geohash(draft.geohash.strip())
        elif codes:
            place = next(
                (found for code in _zips_first(codes) if (found := self._placed(code))), None
            )
        if place is None:
            suggestion = self.suggest(tip)
            if suggestion is None:
                raise BadInput("AVISA_BAD_DRAFT", NO_PLACE)
            place = suggestion.place
        if draft.codes is None:
            codes = place.codes if draft.geohash is not None else [*place.codes, *tip.where.codes]
        radius = draft.radius_m
        if radius is None:
            radius = COUNTY_RADIUS_M if len(place.geohash) <= 5 else DEFAULT_RADIUS_M
        label = draft.area_label or _label(tip, place)
        try:
            return Area(
                label=label, geohash=place.geohash, radius_m=radius, codes=self.counties(codes)
            )
        except ValueError as exc:
            raise BadInput(ERRCODE, str(exc)) from None

    def counties(self, codes: Sequence[str]) -> list[str]:
        """``codes`` with each ZIP replaced by its county, each code once, counties first."""
        found: list[str] = []
        for given in codes:
            code = given.lower()
            if code.startswith("zip:"):
                record = self.gazetteer.zip(code[4:])
                if record is None or not record.county:
                    continue
                code = f"fips:{record.county}"
            if code not in found:
                found.append(code)
        return sorted(found, key=lambda code: not code.startswith("fips:"))[:16]


def _zips_first(codes: Sequence[str]) -> list[str]:
    return sorted(codes, key=lambda code: not code.startswith("zip:"))


def _label(tip: Tip, place: Place) -> str:
    """The tip's words for the place, unless they only name its channel ("SMS")."""
    own = tip.where.label.strip()
    if own and own.lower() != tip.channel and own.lower() != "sms":
        return own
    return place.label or own or "-"
