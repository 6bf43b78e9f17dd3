"""The offline gazetteer (DESIGN §14): ZIP codes, counties, states and points (pure).

Residents name a place in words and maybe a ZIP; an alert needs a geohash and
area codes (``fips:06111``), or a peer that trusts this network only for its
counties holds it. This module answers, with no I/O and no network:

- a ZIP → its centroid, county FIPS, state and place name (``zip``);
- a point (lat, lon) → the nearest ZIP centroid and its county (``nearest``),
  refusing a point farther than ``MAX_DISTANCE_KM`` from every ZIP centroid
  (the sea, Mexico, Canada: the data holds US ZIPs only, so "far from every
  ZIP" is the honest test it can make, and a coordinator who is refused gives
  the ZIP or the county instead);
- a ``fips:`` code → known or not, its name, and a centre (the mean of its
  ZIPs' centroids) for the map's starting view (``code``).

The data is handed in (``Gazetteer(zips, counties, states)``): the shell
(``relay.runtime.places``) reads the bundled package data once. Lookups of a
point use a grid of ``CELL_DEG`` cells, so one lookup reads the few cells
within ``MAX_DISTANCE_KM`` of the point, never all ~40,000 ZIPs.

``lookup`` is the one reading of a person's query (``zip=``, ``lat=``/``lon=``,
``geohash=``, ``code=``): each refusal is a ``BadInput`` that names the field
and gives an example, shared by ``GET /api/v1/place`` and the desk's drafts.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Final, NamedTuple

from msgspec import Struct

from relay.core import geohash
from relay.core.errors import BadInput

ERRCODE: Final = "AVISA_BAD_PLACE"
#: A point farther than this from every ZIP centroid is not placed (sea, abroad).
MAX_DISTANCE_KM: Final = 25.0
CELL_DEG: Final = 0.25
NON_STANDARD_PENALTY_KM: Final = 2.0
#: Geohash precision of a suggestion: a ZIP or a point (~1.2 km), a county (~5 km).
ZIP_PRECISION: Final = 6
COUNTY_PRECISION: Final = 5
EARTH_KM: Final = 6371.0
_ZIP: Final = re.compile(r"^[0-9]{5}$")
_GEOHASH: Final = re.compile(r"^[0-9b-hjkmnp-z]{4,9}$")
_CODE: Final = re.compile(
    r"^(fips:[0-9]{2}|fips:[0-9]{5}|zip:[0-9]{5}|iso:[a-z]{2}(-[a-z0-9]{1,3})?)$"
)


class ZipRecord(NamedTuple):
    """One ZIP code: its centroid, county FIPS (5 digits, "" if unknown), state postal
    code, place name, and whether it is a street-delivery ZIP (not a PO box or a firm's)."""

    zip: str
    lat: float
    lon: float
    county: str
    state: str
    place: str
    standard: bool = True


class Region(NamedTuple):
    """A county (5-digit FIPS) or a state (2 digits): name and, if known, a centre."""

    fips: str
    name: str
    lat: float | None
    lon: float | None


class Place(Struct, frozen=True):
    """What the desk suggests for a place: ``GET /api/v1/place`` answers this."""

    geohash: str
    codes: list[str]
    label: str
    lat: float
    lon: float


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return math.floor(lat / CELL_DEG), math.floor(lon / CELL_DEG)


def _bad(field: str, message: str) -> BadInput:
    return BadInput(ERRCODE, f"{field}: {message}")


class Gazetteer:
    """ZIPs, counties and states, with a grid index for nearest-ZIP lookups."""

    def __init__(
        self,
        zips: Iterable[ZipRecord],
        counties: Mapping[str, str],
        states: Mapping[str, tuple[str, str]],
    ) -> None:
        """``counties``: 5-digit FIPS → name; ``states``: 2-digit FIPS → (postal, name)."""
        self._zips: dict[str, ZipRecord] = {}
        self._grid: dict[tuple[int, int], list[ZipRecord]] = defaultdict(list)
        sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for record in zips:
            self._zips[record.zip] = record
            self._grid[_cell(record.lat, record.lon)].append(record)
            for key in (record.county, record.county[:2]) if record.county else ():
                total = sums[key]
                total[0] += record.lat
                total[1] += record.lon
                total[2] += 1
        self._postal = {fips: postal for fips, (postal, _) in states.items()}
        self._regions: dict[str, Region] = {}
        named = {**counties, **{fips: name for fips, (_, name) in states.items()}}
        for fips, name in named.items():
            total = sums.get(fips) or []
            if total:
                self._regions[fips] = Region(fips, name, total[0] / total[2], total[1] / total[2])
            else:
                self._regions[fips] = Region(fips, name, None, None)

    def __len__(self) -> int:
        return len(self._zips)

    # --- single lookups ------------------------------------------------------

    def zip(self, zip_code: str) -> ZipRecord | None:
        return self._zips.get(zip_code)

    def region(self, fips: str) -> Region | None:
        return self._regions.get(fips)

    def nearest(self, lat: float, lon: float) -> tuple[ZipRecord, float] | None:
        """The nearest ZIP within ``MAX_DISTANCE_KM`` and its distance, or None."""
        dlat = MAX_DISTANCE_KM / 111.0
        dlon = MAX_DISTANCE_KM / (111.0 * max(0.05, math.cos(math.radians(lat))))
        low, high = _cell(lat - dlat, lon - dlon), _cell(lat + dlat, lon + dlon)
        best: tuple[ZipRecord, float] | None = None
        best_rank = math.inf
        for row in range(low[0], high[0] + 1):
            for col in range(low[1], high[1] + 1):
                for record in self._grid.get((row, col), ()):
                    far = distance_km(lat, lon, record.lat, record.lon)
                    # A PO box ZIP shares its post office's point: the street ZIP wins.
                    rank = far + (0.0 if record.standard else NON_STANDARD_PENALTY_KM)
                    if far <= MAX_DISTANCE_KM and rank < best_rank:
                        best, best_rank = (record, far), rank
        return best

    def knows(self, code: str) -> bool:
        """An area code this gazetteer can vouch for (``iso:`` outside the US: not checked)."""
        scheme, _, value = code.partition(":")
        if scheme == "zip":
            return value in self._zips
        if scheme == "fips":
            return value in self._regions
        if scheme == "iso" and value.startswith("us"):
            return value == "us" or value[3:].upper() in self._postal.values()
        return scheme == "iso"

    def code_name(self, code: str) -> str | None:
        """A person's name for a known code: "Ventura County, CA", "Oxnard, CA 93030"."""
        scheme, _, value = code.partition(":")
        if scheme == "zip" and (record := self._zips.get(value)) is not None:
            return f"{record.place}, {record.state} {record.zip}"
        if scheme == "fips" and (region := self._regions.get(value)) is not None:
            postal = self._postal.get(value[:2], "")
            return region.name if len(value) == 2 else f"{region.name}, {postal}"
        return None

    # --- places --------------------------------------------------------------

    def of_zip(self, zip_code: str) -> Place:
        record = self._zips.get(zip_code)
        if record is None:
            raise _bad("zip", f"{zip_code} is not a ZIP code this node knows; e.g. 93030")
        return self._place(record.lat, record.lon, record, ZIP_PRECISION)

    def of_point(self, lat: float, lon: float, precision: int = ZIP_PRECISION) -> Place:
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            raise _bad(
                "lat/lon", "latitude -90 to 90 and longitude -180 to 180; e.g. 34.19,-119.18"
            )
        found = self.nearest(lat, lon)
        if found is None:
            raise _bad(
                "lat/lon",
                f"{lat:.4f},{lon:.4f} is more than {MAX_DISTANCE_KM:.0f} km from every US ZIP"
                " code (at sea or outside the US?); pick a point on land, or give the ZIP",
            )
        return self._place(lat, lon, found[0], precision)

    def of_geohash(self, cell: str) -> Place:
        cell = cell.lower()
        if not _GEOHASH.match(cell):
            raise _bad(
                "geohash",
                f"{cell[:12]!r} is not a geohash of 4 to 9 characters (0-9 and b-z but"
                " a, i, l, o); e.g. 9q4gch",
            )
        lat, lon, _, _ = geohash.decode(cell)
        try:
            place = self.of_point(lat, lon, len(cell))
        except BadInput as exc:
            raise _bad("geohash", f"{cell}: {exc.message.partition(': ')[2]}") from None
        return Place(geohash=cell, codes=place.codes, label=place.label, lat=lat, lon=lon)

    def of_code(self, code: str) -> Place:
        code = code.strip().lower()
        if not _CODE.match(code):
            raise _bad("code", f"{code[:20]!r} is not an area code; e.g. fips:06111 or zip:93030")
        scheme, _, value = code.partition(":")
        if scheme == "zip":
            try:
                return self.of_zip(value)
            except BadInput:
                raise _bad("code", f"{code} is not a ZIP code this node knows") from None
        region = self._regions.get(value) if scheme == "fips" else None
        if region is None or region.lat is None or region.lon is None:
            raise _bad(
                "code", f"{code} is not a county or state this node can place; e.g. fips:06111"
            )
        cell = geohash.encode(region.lat, region.lon, COUNTY_PRECISION)
        return Place(
            geohash=cell,
            codes=[code],
            label=self.code_name(code) or code,
            lat=round(region.lat, 6),
            lon=round(region.lon, 6),
        )

    def _place(self, lat: float, lon: float, record: ZipRecord, precision: int) -> Place:
        county = [f"fips:{record.county}"] if record.county else []
        return Place(
            geohash=geohash.encode(lat, lon, precision),
            codes=[*county, f"zip:{record.zip}"],
            label=f"{record.place}, {record.state} {record.zip}",
            lat=round(lat, 6),
            lon=round(lon, 6),
        )

    def check_codes(self, codes: Iterable[str], field: str = "code") -> list[str]:
        """``codes`` lower-cased, each a code this gazetteer knows (else ``BadInput``)."""
        checked: list[str] = []
        for raw in codes:
            code = raw.strip().lower()
            if not _CODE.match(code):
                raise _bad(field, f"{raw[:20]!r} is not an area code; e.g. fips:06111 or zip:93030")
            if not self.knows(code):
                raise _bad(field, f"{code} is not an area code this node knows; e.g. fips:06111")
            if code not in checked:
                checked.append(code)
        return checked


def lookup(gazetteer: Gazetteer, query: Mapping[str, str]) -> Place:
    """A person's query: exactly one of ``zip``, ``lat`` and ``lon``, ``geohash``, ``code``."""
    given = sorted(name for name in ("zip", "lat", "lon", "geohash", "code") if name in query)
    if given == ["zip"]:
        value = query["zip"].strip()
        if not _ZIP.match(value):
            raise _bad("zip", f"{value[:12]!r} is not 5 digits; e.g. zip=93030")
        return gazetteer.of_zip(value)
    if given == ["lat", "lon"]:
        return gazetteer.of_point(_degrees(query["lat"], "lat"), _degrees(query["lon"], "lon"))
    if given == ["geohash"]:
        return gazetteer.of_geohash(query["geohash"].strip())
    if given == ["code"]:
        return gazetteer.of_code(query["code"])
    raise BadInput(
        ERRCODE,
        "give one of zip, lat and lon, geohash or code;"
        " e.g. ?zip=93030, ?lat=34.1975&lon=-119.1771, ?geohash=9q4gch or ?code=fips:06111",
    )


def _degrees(raw: str, field: str) -> float:
    text = raw.strip()
    if not 1 <= len(text) <= 20 or not re.match(r"^-?[0-9]{1,3}(\.[0-9]{1,12})?$", text):
        raise _bad(field, f"{text[:20]!r} is not decimal degrees; e.g. lat=34.1975&lon=-119.1771")
    return float(text)
