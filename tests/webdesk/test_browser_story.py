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
from tests.fedkit import members, pulled, trusts
from tests.helpers import wait_for
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
        await browser.check_page("alerts")

        await browser.get(desk_b + "/desk/alerts")
        await browser.wait(card, what="the alert on oxnard's desk")
        await browser.wait("document.getElementById('map').dataset.drawn === '1'")
        assert await browser.js("return document.querySelectorAll('path.leaflet-interactive').length") >= 2
        await browser.check_page("alerts-peer")
