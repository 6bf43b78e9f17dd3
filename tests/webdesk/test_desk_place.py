"""The web desk's publish result says where peers would hold the alert (DESIGN §14).

A real node (``home_codes = ["fips:06111"]``) and its desk over HTTP: a tip
with a ZIP published with a geohash from the form carries its county and no
warning; a tip whose ZIP lies in another county is signed and the page then
says, in Spanish and in English, that peers trusting this network for
fips:06111 will hold it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.core.tips import TipIn, Where
from relay.runtime.clock import FakeClock
from tests.conftest import RunningNode
from tests.fedkit import members
from tests.webdesk.test_desk_tips import desk_as


def home(text: str) -> str:
    return text.replace("[node]\n", '[node]\nhome_codes = ["fips:06111"]\n', 1)


@pytest.fixture
async def node(tmp_path: Path, clock: FakeClock) -> AsyncIterator[RunningNode]:
    async with members(tmp_path, clock, ["ventura"], home) as started:
        yield started["ventura"]


async def confirmed_tip(node: RunningNode, zip_code: str) -> str:
    desk = node.node.desk
    tip = TipIn(text="Agentes", where=Where(label="Calle 5", codes=[f"zip:{zip_code}"]))
    tip_id = await desk.submit(tip)
    await desk.claim(tip_id, "token:v")
    await desk.outcome(tip_id, "token:v", "confirmed")
    return tip_id


async def test_a_geohash_from_the_form_brings_its_county_and_no_warning(
    node: RunningNode,
) -> None:
    tip_id = await confirmed_tip(node, "93030")
    publisher = await desk_as(node, "publisher")
    try:
        csrf = await publisher.csrf("/desk/tips")
        form = {"csrf": csrf, "geohash": "9Q5681", "expires_in": "2h"}
        status, _, headers = await publisher.post(f"/desk/tips/{tip_id}/publish", form)
        assert status == 303 and headers["Location"] == "/desk/tips?done=1", headers
        _, page, _ = await publisher.page("/desk/tips?done=1&lang=es")
        assert 'id="place-warning"' not in page
    finally:
        await publisher.close()
    tip = await node.node.desk.get(tip_id)
    _, body = await node.call("GET", f"/api/v1/alerts/{tip.alert_id}")
    assert (body["alert"]["area"]["geohash"], body["alert"]["area"]["codes"]) == (
        "9q5681",
        ["fips:06111"],
    )


async def test_publishing_outside_the_home_area_says_so_in_both_languages(
    node: RunningNode,
) -> None:
    tip_id = await confirmed_tip(node, "90033")
    publisher = await desk_as(node, "publisher")
    try:
        csrf = await publisher.csrf("/desk/tips")
        form = {"csrf": csrf, "expires_in": "2h"}
        status, _, headers = await publisher.post(f"/desk/tips/{tip_id}/publish", form)
        assert status == 303, headers
        assert headers["Location"] == "/desk/tips?done=1&warn=outside"
        _, page, _ = await publisher.page("/desk/tips?done=1&warn=outside&lang=es")
        assert "los nodos vecinos que confían en esta red para fips:06111 la retendrán" in page
        _, page, _ = await publisher.page("/desk/tips?done=1&warn=outside&lang=en")
        assert "peers that trust this network for fips:06111 will hold it" in page
        _, page, _ = await publisher.page("/desk/tips?done=1&warn=%3Cb%3E&lang=en")
        assert 'id="place-warning"' not in page and "<b>" not in page
    finally:
        await publisher.close()
    tip = await node.node.desk.get(tip_id)
    assert tip.state == "published"
