"""The whole story in a real headless Chromium, on two real nodes (issue 20).

A resident types a tip into ventura's ``/report``; it appears on the open
desk page of a verifier without a reload; the verifier claims and confirms
it; a publisher publishes it with the desk's prefilled draft; the alert
appears on the map of oxnard's desk, open in another window all along.
Each person has their own window; oxnard's desk is reached as ``localhost``
because cookies do not tell ports apart.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.runtime.clock import FakeClock
from relay.storage import trust
from tests.fedkit import Member, members, pulled, trusts
from tests.helpers import wait_for
from tests.webdesk.browser import Browser

pytestmark = pytest.mark.slow

WORDS = "Dos camionetas de ICE frente a la escuela <b>Lincoln</b> <script>window.__x=1</script>"


def localhost(url: str) -> str:
    return url.replace("127.0.0.1", "localhost")


async def token(member: Member, *roles: str) -> str:
    made = await member.node.db.write(
        lambda conn: trust.add_token(conn, roles, "-".join(roles), member.node.clock())  # type: ignore[arg-type]
    )
    await member.node.reload_trust()
    return made


async def test_a_reported_tip_becomes_an_alert_on_both_desks(
    tmp_path: Path, clock: FakeClock, browser: Browser
) -> None:
    async with members(tmp_path, clock, ["ventura", "oxnard"]) as nodes:
        a, b = nodes["ventura"], nodes["oxnard"]
        await trusts(a, b)
        await trusts(b, a, speaks_for=("fips:06", "zip:93030"))  # the web form gives a ZIP
        await wait_for(lambda: pulled(b, "ventura"), what="oxnard pulled from ventura")
        verifier, publisher = await token(a, "verifier"), await token(a, "publisher")

        # oxnard's coordinator watches the map
        oxnard = str(browser.driver.current_window_handle)
        await browser.login(localhost(b.url), b.token)
        await browser.get(localhost(b.url) + "/desk/alerts")
        await browser.wait("document.getElementById('live').classList.contains('on')")
        await browser.js("document.body.dataset.notReloaded = 'yes';")

        # ventura's verifier has the tips page open
        desk = await browser.new_window()
        await browser.login(a.url, verifier)
        await browser.get(a.url + "/desk/tips")
        await browser.wait("document.getElementById('live').classList.contains('on')")
        await browser.check_page("tips-empty")
        await browser.js("document.body.dataset.notReloaded = 'yes';")

        # a resident reports
        await browser.new_window()
        await browser.get(a.url + "/report?lang=es")
        await browser.js(
            "document.getElementById('text').value = arguments[0];"
            "document.getElementById('place').value = 'Escuela Lincoln, Oxnard';"
            "document.getElementById('zip').value = '93030';"
            "document.querySelector('form[action^=\"/report\"]').submit();",
            WORDS,
        )
        await browser.wait("document.getElementById('text') === null", what="the receipt")
        await browser.do(browser.driver.close)

        await browser.switch(desk)
        card = "document.querySelector('#tips [data-tip]')"
        await browser.wait(card, what="the tip on the desk without a reload")
        assert await browser.js("return document.body.dataset.notReloaded") == "yes"
        assert await browser.js(f"return {card}.querySelector('.words').textContent") == WORDS
        assert await browser.js("return window.__x === undefined")
        await browser.check_page("tips-new")

        await browser.js(f"{card}.querySelector('button.claim').click();")
        await browser.wait(f"{card} && {card}.querySelector('.badge.t-claimed')", what="claimed")
        await browser.js(
            f"const tip = {card};"
            "tip.querySelector('input[name=outcome][value=confirmed]').checked = true;"
            "tip.querySelector('textarea[name=note]').value = 'Visto en el lugar';"
            "tip.querySelector('form.outcome button').click();"
        )
        await browser.wait(
            f"{card} && {card}.querySelector('.badge.t-confirmed')", what="confirmed"
        )
        assert await browser.js(
            f"return {card}.querySelector('.publish') === null"
        )  # not a publisher
        await browser.check_page("tips-confirmed")

        # the publisher signs in at the same desk
        await browser.login(a.url, publisher)
        await browser.get(a.url + "/desk/tips")
        form = f"{card}.querySelector('.publish form')"
        await browser.wait(form, what="the publish form")
        assert "Escuela Lincoln" in await browser.js(f"return {form}.headline_es.value")
        await browser.js(f"{form}.geohash.value = '9q4gch';")  # a web tip names no geohash
        await browser.check_page("tips-publish")
        await browser.js(f"{form}.querySelector('button.publish-button').click();")
        await browser.wait("document.querySelector('.flash.good') !== null", what="published")
        (tip,) = await a.node.desk.listing(open_only=False)
        assert tip.state == "published" and tip.alert_id
        ulid = tip.alert_id.partition("/")[2]

        # ...and it is on oxnard's map, without a reload there either
        await browser.switch(oxnard)
        await browser.wait(f"document.getElementById('alert-{ulid}')", what="the alert at oxnard")
        await browser.wait("document.getElementById('map').dataset.drawn === '1'")
        assert await browser.js("return document.body.dataset.notReloaded") == "yes"
        assert await browser.js(
            f"return document.getElementById('alert-{ulid}').querySelector('.headline')"
            ".textContent.includes('Escuela Lincoln')"
        )
        await browser.check_page("alerts-from-tip")
