"""From a report's words to an alert a neighbour accepts (DESIGN §14), over the API.

Two real nodes (in-process, real SQLite, real aiohttp on 127.0.0.1:0): Ventura
(``[node] home_codes = ["fips:06111"]``) and LA, which trusts Ventura for
``fips:06111`` only, as the operator guide sets it up. A form tip with only a
ZIP, a text with only words (or a ZIP in its words), and a false alarm each
get a publishable draft whose codes hold the county, and LA **accepts** the
alert. Warnings come before signing (``POST …/draft``) and are true: what
they warn about is held at LA. Bad places are 400s naming the field, and
nothing is signed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridges.sms.inbound import make_tip
from relay.core import geohash
from relay.runtime.clock import FakeClock
from tests.fedkit import Member, decision_for, members, pulled, trusts
from tests.helpers import report_token, wait_for

HOME = {"ventura": '["fips:06111"]', "la": '["fips:06037"]'}


def _home(text: str) -> str:
    network = next(name for name in HOME if f'network = "{name}"' in text)
    return text.replace("[node]\n", f"[node]\nhome_codes = {HOME[network]}\n", 1)


@pytest.fixture
async def pair(tmp_path: Path, clock: FakeClock) -> AsyncIterator[tuple[Member, Member]]:
    async with members(tmp_path, clock, ["ventura", "la"], edit_config=_home) as net:
        ventura, la = net["ventura"], net["la"]
        await trusts(la, ventura, speaks_for=("fips:06111",))
        await trusts(ventura, la, speaks_for=("fips:06037",))
        await wait_for(lambda: pulled(ventura, "la"), what="ventura linked to la")
        yield ventura, la


async def ok(member: Member, method: str, path: str, body: Any = None) -> Any:
    status, reply = await member.call(method, path, json=body)
    assert status in (200, 201), reply
    return reply


async def checked(member: Member, tip: dict[str, Any], outcome: str = "confirmed") -> str:
    tip_id = (await ok(member, "POST", "/api/v1/tips", tip))["id"]
    await ok(member, "POST", f"/api/v1/tips/{tip_id}/claim", {})
    await ok(member, "POST", f"/api/v1/tips/{tip_id}/outcome", {"outcome": outcome})
    return str(tip_id)


async def accepted_at(la: Member, alert_id: str) -> dict[str, Any]:
    decision = await decision_for(la, alert_id)
    return decision


async def test_form_tip_with_only_a_zip_is_accepted_by_the_county_peer(
    pair: tuple[Member, Member],
) -> None:
    ventura, la = pair
    form = {"text": "Dos camionetas blancas", "place": "Calle Cooper y 5th", "zip": "93030"}
    form["t"] = await report_token(ventura.http, ventura.url)
    async with ventura.http.post(f"{ventura.url}/report?lang=es", data=form) as reply:
        assert reply.status == 200
    (tip,) = (await ok(ventura, "GET", "/api/v1/tips"))["tips"]
    assert (tip["where"]["codes"], tip["where"]["geohash"]) == (["zip:93030"], None)
    await ok(ventura, "POST", f"/api/v1/tips/{tip['id']}/claim", {})
    await ok(ventura, "POST", f"/api/v1/tips/{tip['id']}/outcome", {"outcome": "confirmed"})
    draft = await ok(ventura, "GET", f"/api/v1/tips/{tip['id']}/draft")
    area = draft["area"]
    assert area["codes"] == ["fips:06111"] and area["label"] == "Calle Cooper y 5th"
    assert area["geohash"] == geohash.encode(34.2141, -119.175, 6) and area["radius_m"] == 500
    preview = await ok(ventura, "POST", f"/api/v1/tips/{tip['id']}/draft", {})
    assert (preview["draft"], preview["warnings"]) == (draft, [])
    published = await ok(ventura, "POST", f"/api/v1/tips/{tip['id']}/publish", {})
    assert published["warnings"] == []
    decision = await accepted_at(la, published["id"])
    assert (decision["peer"], decision["decision"]) == ("ventura", "accept"), decision


@pytest.mark.parametrize(
    ("words", "place", "codes", "precision"),
    [
        ("La migra en Cooper y 5th, Oxnard", "Ventura County, CA", ["fips:06111"], 5),
        ("La migra en Cooper y 5th, Oxnard 93033", "Oxnard, CA 93033", ["fips:06111"], 6),
    ],
)
async def test_text_tip_with_words_gets_the_home_area_or_its_zip(
    pair: tuple[Member, Member], words: str, place: str, codes: list[str], precision: int
) -> None:
    ventura, la = pair
    # As the text line files it (bridges.sms.inbound): the API refuses the sms channel.
    tip_id = await ventura.node.desk.submit(make_tip(words, "es"), contact="+18055550142")
    await ok(ventura, "POST", f"/api/v1/tips/{tip_id}/claim", {})
    await ok(ventura, "POST", f"/api/v1/tips/{tip_id}/outcome", {"outcome": "confirmed"})
    draft = await ok(ventura, "GET", f"/api/v1/tips/{tip_id}/draft")
    assert (draft["area"]["label"], draft["area"]["codes"]) == (place, codes)
    assert len(draft["area"]["geohash"]) == precision
    assert place in draft["text"]["es"]["headline"]
    published = await ok(ventura, "POST", f"/api/v1/tips/{tip_id}/publish", {})
    decision = await accepted_at(la, published["id"])
    assert decision["decision"] == "accept", decision


async def test_false_alarm_with_a_zip_is_a_debunk_the_peer_accepts(
    pair: tuple[Member, Member],
) -> None:
    ventura, la = pair
    tip = {"text": "Dicen que hay un retén", "where": {"label": "Oxnard", "codes": ["zip:93030"]}}
    tip_id = await checked(ventura, tip, "false_alarm")
    published = await ok(ventura, "POST", f"/api/v1/tips/{tip_id}/publish", {})
    alert = await ok(ventura, "GET", f"/api/v1/alerts/{published['id']}")
    payload = alert["alert"]
    assert (payload["kind"], payload["certainty"], payload["area"]["codes"]) == (
        "rumor",
        "false",
        ["fips:06111"],
    )
    assert (await accepted_at(la, published["id"]))["decision"] == "accept"


async def test_publisher_pieces_and_a_warning_that_is_true(pair: tuple[Member, Member]) -> None:
    ventura, la = pair
    tip_id = await checked(ventura, {"text": "Agentes", "where": {"label": "Boyle Heights"}})
    body = {"codes": ["zip:90033"], "area_label": "Whittier Blvd", "radius_m": 300}
    preview = await ok(ventura, "POST", f"/api/v1/tips/{tip_id}/draft", body)
    area = preview["draft"]["area"]
    assert (area["codes"], area["label"], area["radius_m"]) == (
        ["fips:06037"],
        "Whittier Blvd",
        300,
    )
    (warning,) = preview["warnings"]
    assert warning.startswith("peers that trust this network for fips:06111 will hold it")
    assert "fips:06037 lies outside" in warning
    published = await ok(ventura, "POST", f"/api/v1/tips/{tip_id}/publish", body)
    assert published["warnings"] == [warning]
    decision = await accepted_at(la, published["id"])
    assert (decision["decision"], decision["reason"]) == ("hold", "outside_speaks_for")


async def test_a_geohash_brings_its_county(pair: tuple[Member, Member]) -> None:
    ventura, _ = pair
    tip_id = await checked(ventura, {"text": "Agentes", "where": {"label": "Colonia"}})
    preview = await ok(ventura, "POST", f"/api/v1/tips/{tip_id}/draft", {"geohash": "9Q5681"})
    assert preview["draft"]["area"]["geohash"] == "9q5681"
    assert preview["draft"]["area"]["codes"] == ["fips:06111"] and preview["warnings"] == []


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"geohash": "9q5"}, "geohash: '9q5' is not a geohash of 4 to 9 characters"),
        ({"geohash": geohash.encode(33.5, -120.5, 6)}, "at sea or outside the US"),
        ({"codes": ["zip:99999"]}, "codes: zip:99999 is not an area code this node knows"),
        ({"codes": ["06111"]}, "codes: '06111' is not an area code; e.g. fips:06111"),
        (
            {"geohash": "9q5681", "area": {"label": "x", "geohash": "9q5681", "radius_m": 1,
                                            "codes": []}},
            "give either area or geohash/codes/area_label",
        ),
    ],
)  # fmt: skip
async def test_bad_places_sign_nothing(
    pair: tuple[Member, Member], body: dict[str, Any], said: str
) -> None:
    ventura, _ = pair
    tip_id = await checked(ventura, {"text": "Agentes", "where": {"label": "Colonia"}})
    for action in ("draft", "publish"):
        status, reply = await ventura.call("POST", f"/api/v1/tips/{tip_id}/{action}", json=body)
        assert status == 400 and said in reply["error"], reply
    assert await ventura.stored_ids() == set()
    tip = await ok(ventura, "GET", f"/api/v1/tips/{tip_id}")
    assert tip["state"] == "confirmed"


async def test_a_tip_with_no_place_and_no_home_area_says_what_to_give(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with members(tmp_path, clock, ["lone"]) as net:
        lone = net["lone"]
        tip_id = await checked(lone, {"text": "Agentes", "where": {"label": "SMS"}})
        status, reply = await lone.call("GET", f"/api/v1/tips/{tip_id}/draft")
        assert status == 400 and "--code zip:93030" in reply["error"], reply
        preview = await ok(lone, "POST", f"/api/v1/tips/{tip_id}/draft", {"codes": ["zip:93030"]})
        assert preview["draft"]["area"]["codes"] == ["fips:06111"]
        assert preview["draft"]["area"]["label"] == "Oxnard, CA 93030"
