"""The web desk in a real headless Chromium, on two real nodes (issue 20).

Every page is checked for console errors, requests to other hosts and
serious accessibility violations, and photographed at desktop and phone
width (``tests/webdesk/browser.py``). The second node's desk is opened at
``localhost`` rather than ``127.0.0.1``: cookies do not tell ports apart, and
one browser holds both desks' sessions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.runtime.clock import FakeClock
from tests.fedkit import Member, members, pulled, trusts
from tests.helpers import wait_for
from tests.test_api import DRAFT
from tests.webdesk.browser import Browser

pytestmark = pytest.mark.slow

HOSTILE = "<script>window.__pwned = 1</script><img src=x onerror=window.__pwned=2>"


def localhost(url: str) -> str:
    return url.replace("127.0.0.1", "localhost")


async def test_an_alert_reaches_both_desks_live(
    tmp_path: Path, clock: FakeClock, browser: Browser
) -> None:
    async with members(tmp_path, clock, ["ventura", "oxnard"]) as nodes:
        a, b = nodes["ventura"], nodes["oxnard"]
        await trusts(a, b)
        await trusts(b, a)
        await wait_for(lambda: pulled(b, "ventura"), what="oxnard pulled from ventura")
        desk_b = localhost(b.url)

        await browser.login(desk_b, b.token)
        await browser.get(desk_b + "/desk/alerts")
        await browser.wait("document.getElementById('live').classList.contains('on')")
        await browser.js("document.body.dataset.notReloaded = 'yes';")

        await browser.login(a.url, a.token)
        await browser.get(a.url + "/desk/alerts")
        await browser.check_page("alerts-empty")
        await browser.wait("document.getElementById('live').classList.contains('on')")
        await browser.js("document.body.dataset.notReloaded = 'yes';")

        text = {"es": {"headline": HOSTILE, "body": "Verificado."}}
        published = await a.publish(text=text)
        ulid = published["id"].partition("/")[2]

        card = f"document.getElementById('alert-{ulid}')"
        await browser.wait(card, what="the alert on ventura's desk without a reload")
        assert await browser.js("return document.body.dataset.notReloaded") == "yes"
        assert await browser.js(f"return {card}.querySelector('.headline').textContent") == HOSTILE
        assert await browser.js("return window.__pwned === undefined")
        await browser.wait("document.getElementById('map').dataset.drawn === '1'")
        # the map's tooltip shows the headline as text too
        await browser.js(
            "document.querySelector('path.leaflet-interactive')"
            ".dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));"
        )
        tooltip = "document.querySelector('.leaflet-tooltip')"
        await browser.wait(tooltip, what="the tooltip")
        assert await browser.js(f"return {tooltip}.textContent") == HOSTILE
        assert await browser.js(f"return {tooltip}.querySelector('img, script') === null")
        assert await browser.js("return window.__pwned === undefined")
        await browser.check_page("alerts")

        await browser.get(desk_b + "/desk/alerts")
        await browser.wait(card, what="the alert on oxnard's desk")
        await browser.wait("document.getElementById('map').dataset.drawn === '1'")
        assert (
            await browser.js("return document.querySelectorAll('path.leaflet-interactive').length")
            >= 2
        )
        await browser.check_page("alerts-peer")

        # Outside ventura's fips:06 at oxnard: held there for review, with the reason.
        outside = {**DRAFT["area"], "label": "Phoenix", "geohash": "9tbq", "codes": ["fips:04013"]}
        held_id = (await a.publish(area=outside))["id"]
        await wait_for(lambda: _held(b, held_id), what="the alert held at oxnard")
        await browser.get(desk_b + "/desk/held")
        await browser.wait("document.querySelector('#held-list .card') !== null")
        await browser.check_page("held")
        await browser.js("document.querySelector('form[action$=\"/accept\"] button').click();")
        await browser.wait("document.querySelector('.flash.good') !== null", what="accepted")
        assert (await b.alert(held_id) or {}).get("state") == "active"

        for page in ("peers", "bridges", "decisions"):
            await browser.get(desk_b + f"/desk/{page}")
            await browser.check_page(page)
        await browser.js(
            "document.getElementById('f-action').value = 'accept';"
            "document.getElementById('f-action').dispatchEvent("
            "new Event('change', {bubbles: true}));"
        )
        await browser.wait(
            "[...document.querySelectorAll('#decisions-list .badge')]"
            ".every(b => b.classList.contains('a-accept'))",
            what="filtered list",
        )
        await browser.wait("location.search.includes('action=accept')", what="filter in URL")

        await browser.get(a.url + "/desk/alerts?lang=en")
        assert await browser.js("return document.documentElement.lang") == "en"
        await browser.js("document.querySelector('form.logout button').click();")
        await browser.wait("document.getElementById('token') !== null", what="signed out")
        await browser.check_page("login")


async def _held(member: Member, alert_id: str) -> bool:
    return (await member.alert(alert_id) or {}).get("state") == "held"
