"""The offline gazetteer: pure rules on handed-in data, then the bundled data.

The pure tests build a ``Gazetteer`` from a few records (no event loop, no
files); ``test_bundled_*`` read the real ``zipcodes``/``addfips`` data once
(``relay.runtime.places``) and check places a coordinator would type.
"""

from __future__ import annotations

import time

import pytest

from relay.core import geohash
from relay.core.errors import BadInput
from relay.core.gazetteer import Gazetteer, ZipRecord, distance_km, lookup
from relay.runtime import places

ZIPS = [
    ZipRecord("93030", 34.2141, -119.175, "06111", "CA", "Oxnard"),
    ZipRecord("93031", 34.2141, -119.175, "06111", "CA", "Oxnard", standard=False),
    ZipRecord("93001", 34.3, -119.3, "06111", "CA", "Ventura"),
    ZipRecord("90033", 34.0487, -118.2107, "06037", "CA", "Los Angeles"),
    ZipRecord("99501", 61.2167, -149.8767, "", "AK", "Anchorage"),
]
COUNTIES = {"06111": "Ventura County", "06037": "Los Angeles County", "06059": "Orange County"}
STATES = {"06": ("CA", "California"), "02": ("AK", "Alaska")}


@pytest.fixture(scope="module")
def small() -> Gazetteer:
    return Gazetteer(ZIPS, COUNTIES, STATES)


def test_zip_gives_centroid_county_and_geohash(small: Gazetteer) -> None:
    place = small.of_zip("93030")
    assert place.codes == ["fips:06111", "zip:93030"]
    assert place.label == "Oxnard, CA 93030" and len(place.geohash) == 6
    lat, lon, _, _ = geohash.decode(place.geohash)
    assert distance_km(lat, lon, 34.2141, -119.175) < 1.0


def test_point_takes_the_nearest_street_zip(small: Gazetteer) -> None:
    # 93031 (a PO box) shares 93030's point: the street ZIP wins.
    place = small.of_point(34.2, -119.18)
    assert place.codes == ["fips:06111", "zip:93030"]
    assert place.geohash == geohash.encode(34.2, -119.18, 6)
    assert small.of_point(34.05, -118.21).codes == ["fips:06037", "zip:90033"]


def test_point_in_the_sea_or_far_away_is_refused(small: Gazetteer) -> None:
    for lat, lon in ((33.9, -119.9), (20.0, -150.0), (48.85, 2.35)):
        with pytest.raises(BadInput) as refused:
            small.of_point(lat, lon)
        assert refused.value.errcode == "AVISA_BAD_PLACE"
        assert "lat/lon" in refused.value.message and "25 km" in refused.value.message


def test_zip_without_a_known_county_has_only_its_zip(small: Gazetteer) -> None:
    assert small.of_zip("99501").codes == ["zip:99501"]


def test_codes_known_named_and_centred(small: Gazetteer) -> None:
    assert small.knows("fips:06111") and small.knows("fips:06") and small.knows("zip:93001")
    assert small.knows("iso:us-ca") and not small.knows("iso:us-zz")
    assert not small.knows("fips:06999") and not small.knows("zip:12345")
    assert small.code_name("fips:06111") == "Ventura County, CA"
    assert small.code_name("fips:06") == "California"
    county = small.of_code("FIPS:06111")
    assert county.codes == ["fips:06111"] and len(county.geohash) == 5
    assert abs(county.lat - (34.2141 * 2 + 34.3) / 3) < 1e-6
    # Orange County is known by name but has no ZIP here: it cannot be placed.
    assert small.knows("fips:06059")
    with pytest.raises(BadInput, match="code: fips:06059"):
        small.of_code("fips:06059")


def test_check_codes_lowers_dedupes_and_refuses_unknown(small: Gazetteer) -> None:
    assert small.check_codes(["FIPS:06111", "zip:93030", "fips:06111"]) == [
        "fips:06111",
        "zip:93030",
    ]
    for bad, said in (
        ("06111", "not an area code"),
        ("zip:99999", "not an area code this node knows"),
    ):
        with pytest.raises(BadInput, match=said):
            small.check_codes([bad])


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"zip": "9303"}, "zip: '9303' is not 5 digits; e.g. zip=93030"),
        ({"zip": "99999"}, "zip: 99999 is not a ZIP code"),
        ({"lat": "34.2"}, "give one of zip"),
        ({"lat": "north", "lon": "-119"}, "lat: 'north' is not decimal degrees"),
        ({"lat": "95", "lon": "-119"}, "lat/lon: latitude -90 to 90"),
        ({"lat": "33.9", "lon": "-119.9"}, "lat/lon: 33.9000,-119.9000 is more than 25 km"),
        ({"geohash": "9q5"}, "geohash: '9q5' is not a geohash of 4 to 9 characters"),
        ({"geohash": "9q5681aaaa"}, "geohash: '9q5681aaaa'"),
        ({"geohash": "9qmm"}, "geohash: 9qmm: "),
        ({"code": "fips:9"}, "code: 'fips:9' is not an area code"),
        ({"zip": "93030", "geohash": "9q5681"}, "give one of zip"),
        ({}, "e.g. ?zip=93030"),
    ],
)
def test_lookup_refusals_name_the_field_and_an_example(
    small: Gazetteer, query: dict[str, str], field: str
) -> None:
    with pytest.raises(BadInput) as refused:
        lookup(small, query)
    assert refused.value.errcode == "AVISA_BAD_PLACE"
    assert field in refused.value.message


def test_lookup_answers(small: Gazetteer) -> None:
    assert lookup(small, {"zip": " 93030 "}).codes == ["fips:06111", "zip:93030"]
    assert lookup(small, {"lat": "34.1975", "lon": "-119.1771"}).geohash == "9q5681"
    assert lookup(small, {"geohash": "9Q5681"}).geohash == "9q5681"
    assert lookup(small, {"code": "zip:93001"}).label == "Ventura, CA 93001"


def test_bundled_data_places_real_zips_and_counties() -> None:
    gazetteer = places.load()
    assert len(gazetteer) > 40_000
    stats = places.load_stats()
    assert stats is not None and stats.without_county < 400
    assert gazetteer.of_zip("93030").codes == ["fips:06111", "zip:93030"]
    assert gazetteer.of_zip("90033").codes == ["fips:06037", "zip:90033"]
    assert gazetteer.of_zip("92701").codes == ["fips:06059", "zip:92701"]
    # "St Louis County" in zipcodes is "St. Louis County" to the Census.
    assert gazetteer.of_zip("63122").codes[0] == "fips:29189"
    assert gazetteer.code_name("fips:06111") == "Ventura County, CA"
    assert gazetteer.of_code("fips:06111").geohash.startswith("9q5")
    with pytest.raises(BadInput, match="more than 25 km"):
        gazetteer.of_point(33.5, -120.5)  # the Pacific, west of the Channel Islands


def test_bundled_point_lookups_are_fast() -> None:
    gazetteer = places.load()
    started = time.perf_counter()
    for step in range(2000):
        gazetteer.nearest(34.0 + step * 0.0005, -119.0)
    per_lookup = (time.perf_counter() - started) / 2000
    assert per_lookup < 0.005, per_lookup  # a grid, not a scan of 40,000 ZIPs (~0.15 ms)
