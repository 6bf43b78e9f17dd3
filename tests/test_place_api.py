"""Place over HTTP: ``GET /api/v1/place`` on a real node (127.0.0.1:0, real SQLite).

The desk's roles may ask; a reviewer-only token and no token may not; bad
input is a 400 ``AVISA_BAD_PLACE`` naming the field and an example.
"""

from __future__ import annotations

import pytest

from tests.conftest import RunningNode
from tests.test_desk_api import as_, tokens


async def test_place_answers_zip_point_geohash_and_code(running: RunningNode) -> None:
    (verifier,) = await tokens(running, "verifier")
    status, body = await as_(running, verifier, "GET", "/api/v1/place?zip=93030")
    assert status == 200, body
    assert body["codes"] == ["fips:06111", "zip:93030"] and body["label"] == "Oxnard, CA 93030"
    assert len(body["geohash"]) == 6 and set(body) == {"geohash", "codes", "label", "lat", "lon"}
    status, body = await as_(running, verifier, "GET", "/api/v1/place?lat=34.1975&lon=-119.1771")
    assert (status, body["geohash"], body["codes"][0]) == (200, "9q5681", "fips:06111")
    status, body = await as_(running, verifier, "GET", "/api/v1/place?geohash=9q5681")
    assert (status, body["codes"]) == (200, ["fips:06111", "zip:93030"])
    status, body = await as_(running, verifier, "GET", "/api/v1/place?code=fips:06037")
    assert (status, body["label"]) == (200, "Los Angeles County, CA")


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("zip=99999", "zip: 99999"),
        ("zip=930", "zip: '930' is not 5 digits; e.g. zip=93030"),
        ("lat=33.5&lon=-120.5", "lat/lon: 33.5000,-120.5000 is more than 25 km"),
        ("lat=48.85&lon=2.35", "outside the US"),
        ("geohash=9q", "geohash: '9q' is not a geohash of 4 to 9 characters"),
        ("code=fips:99999", "code: fips:99999"),
        ("zip=93030&zip=93031", "one short query"),
        ("", "e.g. ?zip=93030"),
    ],
)
async def test_place_refuses_bad_input(running: RunningNode, query: str, said: str) -> None:
    (intake,) = await tokens(running, "intake")
    status, body = await as_(running, intake, "GET", f"/api/v1/place?{query}")
    assert status == 400 and body["errcode"] == "AVISA_BAD_PLACE", body
    assert said in body["error"]


async def test_place_needs_a_desk_role(running: RunningNode) -> None:
    (reviewer,) = await tokens(running, "reviewer")
    status, body = await as_(running, reviewer, "GET", "/api/v1/place?zip=93030")
    assert status == 403, body
    status, _ = await running.call("GET", "/api/v1/place?zip=93030", headers={"X": "y"})
    assert status == 401
