"""A tip with only a ZIP becomes an alert a county's neighbour accepts, through the
desk in a real headless Chromium (issue 26, "Done means").

A resident reports on ventura's ``/report`` with words and a ZIP, nothing
else. A verifier confirms it. The publisher opens the tips page: the publish
form's map shows the tip's ZIP on streets from ventura's own PMTiles archive
(tiles cut from ``/desk/tiles/…`` by the vendored reader, nothing from another
host); they move the marker with the arrow keys, click another point, then
type a ZIP, and each time the geohash and the county code follow. The alert
they sign carries ``fips:06111``, and oxnard, which trusts ventura only for
that county, **accepts** it. The alerts page draws the same streets.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from relay.core.tips import TipIn, Where
from relay.runtime.clock import FakeClock
from relay.storage import store, trust
from tests.fedkit import Member, decision_for, members, pulled, trusts
from tests.helpers import wait_for
from tests.webdesk.browser import DESKTOP, PHONE, Browser
from tests.webdesk.tilekit import write_archive

pytestmark = pytest.mark.slow

ARCHIVE = "maps/oxnard.pmtiles"
COUNTY = "fips:06111"
FORM = "document.querySelector('#tips [data-tip] .publish form')"
FIELD = FORM + ".querySelector('.pick-{}')"


async def token(member: Member, *roles: str) -> str:
    made = await member.node.db.write(
        lambda conn: trust.add_token(conn, roles, "-".join(roles), member.node.clock())  # type: ignore[arg-type]
    )
    await member.node.reload_trust()
    return made


def with_streets(tmp_path: Path) -> object:
    """Each node's config names the archive; the archive is copied into each data dir."""
    made = write_archive(tmp_path / "oxnard.pmtiles")

    def edit(text: str) -> str:
        network = re.search(r'network = "([a-z0-9-]+)"', text)
        assert network
        target = tmp_path / network.group(1) / ARCHIVE
        target.parent.mkdir(exist_ok=True)
        shutil.copy(made, target)
        return text + f'\n[desk_web]\ntiles = "{ARCHIVE}"\ntile_attribution = "test streets"\n'

    return edit


async def field(browser: Browser, name: str) -> str:
    return str(await browser.js(f"return {FIELD.format(name)}.value"))


async def test_a_zip_only_tip_is_placed_on_the_map_and_accepted_by_the_county(
    tmp_path: Path, clock: FakeClock, browser: Browser
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    edit = with_streets(tmp_path)
    async with members(tmp_path, clock, ["ventura", "oxnard"], edit) as nodes:  # type: ignore[arg-type]
        a, b = nodes["ventura"], nodes["oxnard"]
        await trusts(a, b)
        await trusts(b, a, speaks_for=(COUNTY,))  # the county only, as the guide sets it up
        await wait_for(lambda: pulled(b, "ventura"), what="oxnard pulled from ventura")
        publisher = await token(a, "publisher")

        await browser.get(a.url + "/report?lang=es")
        await browser.js(
            "document.getElementById('text').value = 'Dos camionetas frente a la tienda';"
            "document.getElementById('place').value = 'La tienda de la esquina';"
            "document.getElementById('zip').value = '93030';"
            "document.querySelector('form[action^=\"/report\"]').submit();"
        )
        await browser.wait("document.getElementById('text') === null", what="the receipt")
        (tip,) = await a.node.desk.listing(open_only=False)
        assert tip.where.geohash is None and tip.where.codes == ["zip:93030"]
        await a.node.desk.claim(tip.id, "verifier-1")
        await a.node.desk.outcome(tip.id, "verifier-1", "confirmed")

        await browser.login(a.url, publisher)
        await browser.get(a.url + "/desk/tips?lang=es")
        await browser.wait(FORM, what="the publish form")
        tiles = "document.querySelectorAll('.pick-map img.leaflet-tile-loaded')"
        await browser.wait(f"{tiles}.length > 0", what="streets under the form's map")
        assert await browser.js(f"return [...{tiles}].every(i => i.src.startsWith('blob:'))")
        start = await field(browser, "geohash")
        assert len(start) == 6 and await field(browser, "codes-value") == COUNTY
        assert await field(browser, "label") == "La tienda de la esquina"
        # Leaflet's own buttons speak the page's language too
        zoom = "[...document.querySelectorAll('.pick-map .leaflet-control-zoom a')]"
        assert await browser.js(f"return {zoom}.map(a => a.title)") == ["Acercar", "Alejar"]

        # the keyboard alone: Tab to the marker, arrows move it, the place follows
        marker = await browser.do(
            browser.driver.find_element, By.CSS_SELECTOR, ".pick-map .leaflet-marker-icon"
        )
        await browser.do(marker.send_keys, Keys.ARROW_RIGHT * 4 + Keys.ARROW_DOWN * 3)
        await browser.wait(
            f"{FIELD.format('geohash')}.value !== '{start}'", what="the geohash after the arrows"
        )
        keyed = await field(browser, "geohash")
        await browser.wait(f"{FIELD.format('status')}.classList.contains('good')")
        assert COUNTY in await field(browser, "codes-value")

        # a click elsewhere on the streets
        box = await browser.do(browser.driver.find_element, By.CSS_SELECTOR, ".pick-map")
        await browser.do(
            lambda: (
                ActionChains(browser.driver)
                .move_to_element_with_offset(box, -90, 60)
                .click()
                .perform()
            )
        )
        await browser.wait(
            f"{FIELD.format('geohash')}.value !== '{keyed}'", what="the geohash after a click"
        )
        assert COUNTY in await field(browser, "codes-value")
        assert await field(browser, "label") == "La tienda de la esquina"  # the tip's words stay

        # a ZIP typed in, as a coordinator on the phone would
        zip_box = await browser.do(browser.driver.find_element, By.CSS_SELECTOR, ".pick-zip")
        await browser.do(zip_box.clear)
        await browser.do(zip_box.send_keys, "93033" + Keys.ENTER)  # Enter finds, not submits
        await browser.wait(f"{FIELD.format('zip-shown')}.value === '93033'", what="ZIP 93033")
        await browser.wait(f"{FIELD.format('status')}.classList.contains('good')")
        typed = await field(browser, "geohash")
        assert typed not in (start, keyed) and COUNTY in await field(browser, "codes-value")

        # on a phone: the map fits the screen and a tap places the alert
        await browser.emulate(*PHONE, mobile=True)
        await browser.js(f"{FIELD.format('map')}.scrollIntoView({{block: 'center'}});")
        width = await browser.js(f"return {FIELD.format('map')}.getBoundingClientRect().width")
        assert 250 < width <= PHONE[0], width
        await browser.do(
            lambda: (
                ActionChains(browser.driver)
                .move_to_element_with_offset(box, 40, -30)
                .click()
                .perform()
            )
        )
        await browser.wait(
            f"{FIELD.format('geohash')}.value !== '{typed}'", what="the geohash after a tap"
        )
        await browser.emulate(*DESKTOP, mobile=False)
        picked = await field(browser, "geohash")
        assert COUNTY in await field(browser, "codes-value")
        # the list refreshes itself (live feed, every 30 s): the form being filled stays
        await browser.js(
            "document.getElementById('tips').dataset.old = 'yes';"
            "window.htmx.trigger(document.body, 'desk:tips');"
        )
        await browser.wait("!document.getElementById('tips').dataset.old", what="a refresh")
        await browser.wait(f"{FIELD.format('geohash')} !== null")
        assert await field(browser, "geohash") == picked
        assert await browser.js(f"return {tiles}.length > 0")
        await browser.js(  # the picker under the page's sticky header, for the pictures
            f"const top = {FORM}.querySelector('fieldset.pick').getBoundingClientRect().top;"
            "window.scrollBy(0, top - 110);"
        )
        await browser.check_page("tips-place")

        await browser.js(f"{FORM}.querySelector('button.publish-button').click();")
        await browser.wait("document.querySelector('.flash.good') !== null", what="published")
        (tip,) = await a.node.desk.listing(open_only=False)
        assert tip.state == "published" and tip.alert_id
        alert_id = tip.alert_id
        stored = await a.node.db.read(lambda conn: store.get(conn, alert_id))
        assert stored is not None
        assert stored.alert.area.geohash == picked and stored.alert.area.codes == [COUNTY]

        decision = await decision_for(b, tip.alert_id)
        assert (decision["decision"], decision["reason"]) != ("hold", "outside_speaks_for")
        assert decision["decision"] == "accept", decision

        await browser.get(a.url + "/desk/alerts?lang=es")
        await browser.wait("document.getElementById('map').dataset.drawn === '1'")
        zoom = "[...document.querySelectorAll('#map .leaflet-control-zoom a')]"
        assert await browser.js(f"return {zoom}.map(a => a.title)") == ["Acercar", "Alejar"]
        streets = "document.querySelectorAll('#map img.leaflet-tile-loaded')"
        await browser.wait(f"{streets}.length > 0", what="streets under the alerts map")
        assert await browser.js("return document.getElementById('map-note') === null")
        await browser.check_page("alerts-streets")

        # what streets cost: the alerts page with an empty cache, until its tiles are drawn
        cold = await browser.weigh(a.url + "/desk/alerts", cold=True)
        await browser.wait(
            f"{streets}.length > 0 && {streets}.length === "
            "document.querySelectorAll('#map img.leaflet-tile').length",
            what="every tile of the view drawn",
        )
        reads = [u for u in cold["urls"] if u.startswith("/desk/tiles/")]
        drawn = int(await browser.js(f"return {streets}.length"))
        print(
            f"\nalerts page with streets, cold: {cold['requests']} requests (blob: tiles"
            f" included), {cold['bytes']} bytes; archive reads {len(reads)}, tiles {drawn}"
        )
        # one read for the header and root directory, then one per tile drawn
        assert len(reads) <= drawn + 1 and cold["bytes"] < 300_000, cold


async def test_the_keyboard_alone_places_a_tip_that_names_no_place(
    tmp_path: Path, clock: FakeClock, browser: Browser
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    async with members(tmp_path, clock, ["ventura"]) as nodes:
        a = nodes["ventura"]
        tip_id = await a.node.desk.submit(
            TipIn(text="Agentes en la tienda", where=Where(label="la tienda"))
        )
        await a.node.desk.claim(tip_id, "verifier-1")
        await a.node.desk.outcome(tip_id, "verifier-1", "confirmed")
        await browser.login(a.url, a.token)
        await browser.get(a.url + "/desk/tips?lang=es")
        await browser.wait(FORM, what="the publish form")
        assert await field(browser, "geohash") == ""
        assert await browser.js(f"return {FORM}.querySelector('.leaflet-marker-icon') === null")

        box = await browser.do(browser.driver.find_element, By.CSS_SELECTOR, ".pick-map")
        await browser.do(box.send_keys, Keys.ARROW_LEFT + Keys.ENTER)  # pan, then place
        await browser.wait(f"{FIELD.format('status')}.classList.contains('good')", what="placed")
        cell = await field(browser, "geohash")
        codes = await field(browser, "codes-value")
        assert len(cell) == 6 and codes.startswith("fips:"), (cell, codes)
        marker = await browser.do(
            browser.driver.find_element, By.CSS_SELECTOR, ".pick-map .leaflet-marker-icon"
        )
        await browser.do(marker.send_keys, Keys.ARROW_UP * 2)
        await browser.wait(f"{FIELD.format('geohash')}.value !== '{cell}'", what="moved")
        await browser.wait(f"{FIELD.format('status')}.classList.contains('good')")
        moved = await field(browser, "geohash")
        await browser.check_page("tips-place-keyboard")

        await browser.js(f"{FORM}.querySelector('button.publish-button').click();")
        await browser.wait("document.querySelector('.flash.good') !== null", what="published")
        tip = await a.node.desk.get(tip_id)
        assert tip.state == "published" and tip.alert_id
        alert_id = tip.alert_id
        stored = await a.node.db.read(lambda conn: store.get(conn, alert_id))
        assert stored is not None and stored.alert.area.geohash == moved
        assert stored.alert.area.label == "la tienda"
