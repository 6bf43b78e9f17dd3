"""The publish form's place (issue 26 item 3) over plain HTTP, on a real node: the
suggestion the form starts with, ``GET /desk/place`` for the map, and the form
posted without JavaScript (a ZIP typed in), with bad places refused and
nothing signed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from relay.core.tips import TipIn, Where
from relay.storage import store
from tests.conftest import RunningNode
from tests.webdesk.deskclient import DeskClient

OXNARD_ZIP = "93030"
VENTURA = "fips:06111"


@pytest.fixture
async def desk(running: RunningNode) -> AsyncIterator[DeskClient]:
    client = DeskClient.open(running.url)
    assert (await client.login(running.token)).status == 303
    yield client
    await client.close()


async def confirmed_tip(node: RunningNode, codes: list[str], label: str = "Escuela Lincoln") -> str:
    desk = node.node.desk
    tip = TipIn(
        channel="web",
        text="Dos camionetas frente a la escuela",
        where=Where(label=label, codes=codes),
    )
    made = await desk.submit(tip)
    await desk.claim(made, "verifier-1")
    await desk.outcome(made, "verifier-1", "confirmed")
    return made


async def place(desk: DeskClient, query: str) -> tuple[int, dict[str, object]]:
    async with desk.http.get(desk.base + "/desk/place?" + query, allow_redirects=False) as r:
        assert r.content_type == "application/json", await r.text()
        return r.status, await r.json()


async def test_the_map_asks_the_gazetteer(running: RunningNode, desk: DeskClient) -> None:
    status, found = await place(desk, f"zip={OXNARD_ZIP}")
    assert status == 200 and VENTURA in found["codes"] and f"zip:{OXNARD_ZIP}" in found["codes"]
    status, point = await place(desk, "lat=34.1975&lon=-119.1771")
    assert status == 200 and VENTURA in point["codes"]
    status, cell = await place(desk, f"geohash={found['geohash']}")
    assert status == 200 and cell["codes"] == found["codes"]
    for bad, field in (
        ("zip=00000", "zip"),
        ("zip=9303", "zip"),
        ("lat=0&lon=-150", "lat/lon"),  # the Pacific
        ("geohash=9q", "geohash"),
        ("zip=93030&zip=93033", "e.g."),
        ("nothing=1", "e.g."),
    ):
        status, error = await place(desk, bad)
        assert status == 400 and error["errcode"] == "AVISA_BAD_PLACE", bad
        assert field in str(error["error"]), (bad, error)
    url = running.url + "/desk/place?zip=93030"
    async with aiohttp.ClientSession() as stranger, stranger.get(url, allow_redirects=False) as r:
        assert r.status == 303


async def test_the_form_starts_from_the_tips_zip(running: RunningNode, desk: DeskClient) -> None:
    await confirmed_tip(running, [f"zip:{OXNARD_ZIP}"])
    _, page, _ = await desk.page("/desk/tips?lang=es")
    assert 'class="pick-map map"' in page and "Dónde" in page
    assert f'name="zip" class="pick-zip" value="{OXNARD_ZIP}"' in page
    assert f'name="codes" class="pick-codes-value" value="{VENTURA}"' in page
    assert 'value="Escuela Lincoln" data-auto=""' in page  # the tip's words, kept
    assert "vendor/leaflet.js?v=" in page
    _, page, _ = await desk.page("/desk/tips?lang=en")
    assert "Click the map or drag the marker" in page and "Geohash (for experts)" in page


async def test_a_tip_without_a_place_starts_on_the_whole_country(
    running: RunningNode, desk: DeskClient
) -> None:
    await confirmed_tip(running, [], label="la tienda")
    _, page, _ = await desk.page("/desk/tips?lang=en")
    assert 'data-lat="39.5" data-lon="-98.35" data-zoom="4" data-marker=""' in page
    assert "pick one on the map or type its ZIP code" in page


async def posted(running: RunningNode, desk: DeskClient, tip_id: str, **form: str) -> str:
    csrf = await desk.csrf("/desk/tips")
    status, _, headers = await desk.post(
        f"/desk/tips/{tip_id}/publish", {"csrf": csrf, "expires_in": "4h", **form}
    )
    assert status == 303
    return str(headers["Location"])


async def test_without_javascript_a_typed_zip_places_the_alert(
    running: RunningNode, desk: DeskClient
) -> None:
    tip_id = await confirmed_tip(running, [], label="la tienda")
    form = {"zip": "93033", "zip_shown": "", "geohash": "", "codes": "", "area_label": ""}
    assert "error=" not in await posted(running, desk, tip_id, **form)
    (row,) = await running.node.db.read(
        lambda c: store.listing(c, running.node.clock(), active_only=False)
    )
    area = row.alert.area
    assert area.codes == [VENTURA] and area.label == "la tienda" and len(area.geohash) == 6


async def test_a_picked_point_is_signed_with_its_county(
    running: RunningNode, desk: DeskClient
) -> None:
    tip_id = await confirmed_tip(running, [f"zip:{OXNARD_ZIP}"])
    _, found = await place(desk, "lat=34.1600&lon=-119.1900")
    form = {
        "zip": OXNARD_ZIP,
        "zip_shown": OXNARD_ZIP,
        "geohash": str(found["geohash"]),
        "codes": " ".join(found["codes"]),  # type: ignore[arg-type]
        "area_label": "Cooper St y 5th, Oxnard",
    }
    assert "error=" not in await posted(running, desk, tip_id, **form)
    (row,) = await running.node.db.read(
        lambda c: store.listing(c, running.node.clock(), active_only=False)
    )
    area = row.alert.area
    assert area.geohash == found["geohash"] and area.codes == [VENTURA]
    assert area.label == "Cooper St y 5th, Oxnard"


@pytest.mark.parametrize(
    ("form", "errcode"),
    [
        ({"geohash": "9q"}, "AVISA_BAD_PLACE"),
        ({"geohash": "zzzzzz"}, "AVISA_BAD_PLACE"),  # not in the US
        ({"codes": "fips:99999"}, "AVISA_BAD_PLACE"),
        ({"zip": "123", "zip_shown": "93030"}, "AVISA_BAD_PLACE"),
        ({"zip": "00000", "zip_shown": "93030"}, "AVISA_BAD_PLACE"),
        ({"codes": " ".join(["fips:06111"] * 17)}, "AVISA_BAD_PLACE"),
    ],
)
async def test_a_bad_place_signs_nothing(
    running: RunningNode, desk: DeskClient, form: dict[str, str], errcode: str
) -> None:
    tip_id = await confirmed_tip(running, [f"zip:{OXNARD_ZIP}"])
    location = await posted(running, desk, tip_id, **form)
    assert location.endswith(f"error={errcode}"), location
    _, page, _ = await desk.page(location + "&lang=es")
    assert "No se firmó nada; elija el lugar en el mapa otra vez." in page
    assert (
        await running.node.db.read(
            lambda c: store.listing(c, running.node.clock(), active_only=False)
        )
        == []
    )
    (tip,) = await running.node.desk.listing(open_only=False)
    assert tip.state == "confirmed"
