"""Issue 27: the desk's words, as a Spanish-first volunteer reads them, and its tab bar
on a narrow phone (real headless Chromium).

Over HTTP against a real node (two-person rule on): the alert's kind in Spanish,
role names translated, real plurals, agencies named as the texts name them, no
expiry on a cancelled alert, no confirmation meter on a false alarm.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.core.tips import TipIn, Where
from relay.runtime.clock import FakeClock
from tests.conftest import RunningNode
from tests.fedkit import members
from tests.webdesk.browser import SCREENSHOTS, Browser
from tests.webdesk.deskclient import DeskClient
from tests.webdesk.test_desk_tips import desk_as, two_person


@pytest.fixture
async def node(tmp_path: Path, clock: FakeClock) -> AsyncIterator[RunningNode]:
    async with members(tmp_path, clock, ["ventura"], two_person) as started:
        yield started["ventura"]


async def _page(desk: DeskClient, path: str) -> str:
    status, page, _ = await desk.page(path)
    assert status == 200
    return html.unescape(page)


async def _tip(node: RunningNode, reporter: bytes) -> str:
    where = Where(label="Colonia, Oxnard", geohash="9q5686", codes=["fips:06111"])
    tip = TipIn(text="ICE en el parque", where=where, channel="sms", agencies=["ice", "police"])
    return await node.node.desk.submit(tip, reporter=reporter)


async def test_alert_cards_in_spanish(node: RunningNode) -> None:
    kept = (await node.publish())["id"]
    cancelled = (await node.publish())["id"]
    await node.cancel(cancelled)
    desk = await desk_as(node, "verifier", "publisher")
    try:
        page = await _page(desk, "/desk/alerts?lang=es&all=1")
        assert "Funciones: publicación, verificación" in page
        kept_card = page[page.index(f'id="alert-{kept.partition("/")[2]}"') :]
        kept_card = kept_card[: kept_card.index("</li>")]
        assert '<span class="kind">Avistamiento</span>' in kept_card
        assert "Vence</dt>" in kept_card
        gone = page[page.index(f'id="alert-{cancelled.partition("/")[2]}"') :]
        gone = gone[: gone.index("</li>")]
        assert "cancelada" in gone and "Vence" not in gone
        english = await _page(desk, "/desk/alerts?lang=en")
        assert '<span class="kind">Sighting</span>' in english
        assert "Roles: publisher, verifier" in english
    finally:
        await desk.close()


async def test_tip_cards_count_in_real_plurals(node: RunningNode) -> None:
    await _tip(node, b"reporter-1")
    await _tip(node, b"reporter-1")  # the same person twice: one reporter
    false_alarm = await _tip(node, b"reporter-2")
    await node.node.desk.claim(false_alarm, "ana")
    await node.node.desk.outcome(false_alarm, "ana", "false_alarm")
    desk = await desk_as(node, "verifier")
    try:
        page = await _page(desk, "/desk/tips?lang=es")
        assert "Publicar requiere que 2 verificadores confirmen" in page
        assert "0 de 2 confirmaciones" in page  # the open tips
        assert "ICE, Policía" in page and "ice, police" not in page
        assert "(es)" not in page and "verificador(es)" not in page
        card = page[page.index("t-false_alarm") :]
        card = card[: card.index("</li>")]
        assert "confirmaciones" not in card and "Regla de dos personas" not in card
        english = await _page(desk, "/desk/tips?lang=en")
        assert "Publishing needs 2 verifiers to confirm" in english
        assert "(s)" not in english
    finally:
        await desk.close()


async def test_one_verifier_is_said_in_the_singular(tmp_path: Path, clock: FakeClock) -> None:
    async with members(tmp_path, clock, ["ventura"]) as started:  # confirmations = 1
        node = started["ventura"]
        await _tip(node, b"reporter-1")
        desk = await desk_as(node, "verifier")
        try:
            page = await _page(desk, "/desk/tips?lang=es")
            assert "Publicar requiere que 1 verificador confirme" in page
            assert "0 de 1 confirmación<" in page
            english = await _page(desk, "/desk/tips?lang=en")
            assert "Publishing needs 1 verifier to confirm" in english
            assert "0 of 1 confirmation<" in english
        finally:
            await desk.close()


@pytest.mark.parametrize("width", [320, 360])
async def test_every_tab_fits_a_narrow_phone(
    tmp_path: Path, clock: FakeClock, browser: Browser, width: int
) -> None:
    async with members(tmp_path, clock, ["ventura"]) as started:
        node = started["ventura"]
        await browser.login(node.url, node.token)  # admin: every tab
        await browser.get(node.url + "/desk/tips?lang=es")
        await browser.emulate(width, 640, mobile=True)
        await browser.wait("document.readyState === 'complete'", what="the tips page")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await browser.do(browser.driver.save_screenshot, str(SCREENSHOTS / f"tabs-{width}.png"))
        outside = await browser.js(
            "const nav = document.querySelector('nav.tabs');"
            "const box = nav.getBoundingClientRect();"
            "return [...nav.querySelectorAll('a')]"
            ".map(a => [a.textContent.trim(), a.getBoundingClientRect()])"
            ".filter(([_, r]) => r.left < box.left - 0.5 || r.right > box.right + 0.5"
            " || r.right > window.innerWidth + 0.5)"
            ".map(([name]) => name);"
        )
        tabs = await browser.js("return document.querySelectorAll('nav.tabs a').length;")
        assert tabs == 6 and outside == [], outside
