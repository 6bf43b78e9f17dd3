"""The public form in a real headless Chromium with JavaScript switched off, phone-sized.

A resident on a cheap phone: 360×640 screen, no JavaScript. The form must be
usable as plain HTML: switch to Spanish/English by a link, type, tick a box,
choose from a list, submit, and land on the receipt, which names no tip id.
Skipped only when Chromium or its driver is not installed. The browser is the web
desk tests' (``tests/webdesk/browser.py``), with JavaScript switched off.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.conftest import RunningNode
from tests.helpers import report_token
from tests.webdesk.browser import Browser, fresh_profile, missing

pytestmark = pytest.mark.skipif(missing() is not None, reason=str(missing()))


def _fill_and_send(url: str, profile: Path) -> tuple[str, str, bool]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser = Browser(profile, javascript=False, window=(360, 640))
    driver = browser.driver
    try:
        # The control: a page's own script cannot even change its title here.
        driver.get("data:text/html,<title>plain</title><script>document.title='ran'</script>")
        scripting = driver.title == "ran"
        driver.get(url + "/report?lang=es")  # the browser's Accept-Language may say English
        driver.find_element(By.LINK_TEXT, "English").click()
        english = driver.find_element(By.TAG_NAME, "h1").text
        driver.find_element(By.LINK_TEXT, "Español").click()
        driver.find_element(By.NAME, "text").send_keys("Dos camionetas <b>blancas</b>")
        driver.find_element(By.NAME, "place").send_keys("Calle Cooper y 5th")
        driver.find_element(By.NAME, "zip").send_keys("93030")
        Select(driver.find_element(By.NAME, "when")).select_by_value("15")
        driver.find_element(By.CSS_SELECTOR, "input[value=ice]").click()
        driver.find_element(By.NAME, "contact").send_keys("805 555 0143")
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        return english, driver.find_element(By.TAG_NAME, "body").text, scripting
    finally:
        browser.quit()


async def test_a_phone_without_javascript_sends_a_tip(running: RunningNode, tmp_path: Path) -> None:
    profile = fresh_profile(tmp_path)
    english, receipt, scripting = await asyncio.to_thread(_fill_and_send, running.url, profile)
    assert not scripting
    assert english == "Report immigration enforcement activity"
    assert "Gracias. Recibimos su reporte." in receipt
    (tip,) = await running.node.desk.listing()
    assert (tip.channel, tip.language, tip.where.label) == ("web", "es", "Calle Cooper y 5th")
    assert tip.text == "Dos camionetas <b>blancas</b>" and tip.agencies == ["ice"]
    assert tip.where.codes == ["zip:93030"] and tip.observed_at is not None
    assert tip.id not in receipt and re.search(r"[0-9A-HJKMNP-TV-Z]{26}", receipt) is None
    assert "555" not in receipt


HOSTILE_PAGE = """<!doctype html><html><head><title>Gana un premio</title>{meta}</head>
<body><form method="post" action="{node}/report?lang=en">
<input type="hidden" name="text" value="Redada falsa en el parque">
<input type="hidden" name="place" value="Colonia park">
<input type="hidden" name="zip" value="93030">
<input type="hidden" name="t" value="{token}"></form>
<script>document.forms[0].submit()</script></body></html>"""


async def test_a_hostile_page_elsewhere_cannot_file_a_tip_through_a_visitor(
    running: RunningNode, tmp_path: Path
) -> None:
    """A page on another origin (another loopback server) makes a real Chromium visitor's
    browser post the form, with a fresh token its server fetched from the node itself, and
    even with ``no-referrer`` so the browser sends ``Origin: null``: no tip is filed."""
    from aiohttp import web

    async def page(request: web.Request) -> web.Response:
        meta = '<meta name="referrer" content="no-referrer">' if "quiet" in request.query else ""
        token = await report_token(running.http, running.url)  # the attacker's own fetch
        html = HOSTILE_PAGE.format(meta=meta, node=running.url, token=token)
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.2", 0)
    await site.start()
    port = runner.addresses[0][1]
    browser = Browser(fresh_profile(tmp_path), javascript=True, window=(360, 640))
    try:
        for query in ("", "?quiet=1"):
            await browser.get(f"http://127.0.0.2:{port}/{query}")
            await browser.wait(
                "location.pathname === '/report' && document.readyState === 'complete'",
                timeout=30,
                what="the hostile page's post to land",
            )
            body = await browser.js("return document.body.innerText;")
            assert "came from another page" in body and "not saved" in body, body
    finally:
        await browser.do(browser.quit)
        await runner.cleanup()
    assert await running.node.desk.listing(open_only=False) == []
    assert running.node.desk.counters[("refused", "AVISA_CROSS_SITE")] == 2
