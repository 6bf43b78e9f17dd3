"""Vector streets in a real headless Chromium (issue 26 item 5): a node whose
``[desk_web] tiles`` holds Mapbox Vector Tiles (as the Protomaps basemap builds
do) draws them under the alerts map with the vendored ``protomaps-leaflet``,
on canvases in the page, asking no host but the node."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.core import geohash
from relay.runtime.clock import FakeClock
from tests.fedkit import members
from tests.webdesk.browser import Browser
from tests.webdesk.tilekit import OXNARD, write_vector_archive

pytestmark = pytest.mark.slow

ARCHIVE = "maps/oxnard-vector.pmtiles"
OXNARD_CELL = geohash.encode(*OXNARD, 6)


async def test_vector_streets_are_drawn_from_the_node(
    tmp_path: Path, clock: FakeClock, browser: Browser
) -> None:
    made = write_vector_archive(tmp_path / "vector.pmtiles")

    def edit(text: str) -> str:
        target = tmp_path / "ventura" / ARCHIVE
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(made.read_bytes())
        return text + f'\n[desk_web]\ntiles = "{ARCHIVE}"\ntile_attribution = "test streets"\n'

    async with members(tmp_path, clock, ["ventura"], edit) as nodes:
        a = nodes["ventura"]
        area = {"label": "Oxnard", "geohash": OXNARD_CELL, "radius_m": 500, "codes": ["fips:06111"]}
        await a.publish(area=area)
        await browser.login(a.url, a.token)
        await browser.get(a.url + "/desk/alerts?lang=en")
        await browser.wait("document.getElementById('map').dataset.drawn === '1'")
        tiles = "document.querySelectorAll('#map canvas.leaflet-tile-loaded')"
        await browser.wait(f"{tiles}.length > 0", what="vector tiles drawn")
        # the canvases hold the land colour and streets, not a blank
        painted = await browser.js(
            f"const c = {tiles}[0]; const d = c.getContext('2d')"
            ".getImageData(0, 0, c.width, c.height).data;"
            "const seen = new Set(); for (let i = 0; i < d.length; i += 4 * 97)"
            " seen.add(d[i] + ',' + d[i + 1] + ',' + d[i + 2]); return seen.size;"
        )
        assert painted >= 2, painted
        assert await browser.js("return document.getElementById('map-note') === null")
        seen = await browser.check_page("alerts-vector")
        assert any("/desk/tiles/oxnard-vector.pmtiles" in url for url in browser.seen.requests)
        assert seen.console_errors == []
