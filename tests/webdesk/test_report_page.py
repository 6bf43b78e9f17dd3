"""The public form ``/report`` under the desk's strict CSP, in a real headless Chromium.

No inline style and no script may run on it, so its look comes from the
desk's static ``report.css`` alone: if the stylesheet were blocked or
missing, the computed styles below would be the browser's defaults. Every
page (form, error, receipt, refusal) in both languages also passes the
desk's ``check_page`` (no console error: a CSP violation is one; no request
to another host; axe-core; screenshots).
"""

from __future__ import annotations

import re

from tests.conftest import RunningNode
from tests.helpers import report_token
from tests.webdesk.browser import Browser

STRICT = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


async def test_every_report_page_has_the_strict_policy(running: RunningNode) -> None:
    pages = [
        ("GET", "/report", {}),
        ("GET", "/report?lang=en", {}),
        ("POST", "/report?lang=en", {"text": "", "place": "x"}),
        ("POST", "/report", {"text": "Dos camionetas", "place": "Calle 5"}),
    ]
    for method, path, fields in pages:
        form = {**fields, "t": await report_token(running.http, running.url)} if fields else None
        async with running.http.request(method, running.url + path, data=form) as reply:
            page = await reply.text()
            policy = reply.headers["Content-Security-Policy"]
            assert policy == STRICT and "unsafe-inline" not in policy
            assert reply.headers["X-Frame-Options"] == "DENY"
            assert reply.headers["Referrer-Policy"] == "no-referrer"
        assert "<style" not in page and " style=" not in page and "<script" not in page
        sheet = re.search(r'rel="stylesheet" href="(/desk/static/report\.css\?v=[^"]+)"', page)
        assert sheet is not None, page[:400]
        url = sheet.group(1)
    async with running.http.get(running.url + url) as reply:
        assert reply.status == 200 and reply.content_type == "text/css"
        assert reply.headers["Cache-Control"] == "max-age=31536000, immutable"


async def _styles(browser: Browser, selector: str) -> dict[str, str]:
    found = await browser.js(
        "const s = getComputedStyle(document.querySelector(arguments[0]));"
        "return {weight: s.fontWeight, width: s.maxWidth, display: s.display, color: s.color};",
        selector,
    )
    return dict(found)


async def test_the_form_renders_styled_in_both_languages(
    running: RunningNode, browser: Browser
) -> None:
    for lang, title in (("es", "Reportar actividad"), ("en", "Report immigration")):
        await browser.get(f"{running.url}/report?lang={lang}")
        await browser.check_page(f"report-{lang}")
        assert (await browser.js("return document.querySelector('h1').textContent")).startswith(
            title
        )
        assert (await _styles(browser, "body"))["width"] == "576px"  # 36rem: report.css
        label = await _styles(browser, "label[for=text]")
        assert (label["weight"], label["display"]) == ("700", "block")
        assert (await _styles(browser, "label.check"))["weight"] == "400"

    await browser.js("document.querySelector('form').noValidate = true;")
    await browser.js("document.querySelector('button[type=submit]').click();")
    await browser.wait("document.querySelector('p.error') !== null", what="the error page")
    seen = await browser.do(browser.drain)  # Chromium logs the 400 itself, and nothing else
    assert [" 400 (Bad Request)" in error for error in seen.console_errors] == [True]
    await browser.check_page("report-error")
    assert (await _styles(browser, "p.error"))["color"] == "rgb(170, 0, 0)"

    await browser.js("document.getElementById('text').value = 'Dos camionetas <b>ICE</b>';")
    await browser.js("document.getElementById('place').value = 'Calle Cooper y 5th';")
    await browser.js("document.querySelector('button[type=submit]').click();")
    await browser.wait("document.querySelector('form') === null", what="the receipt")
    await browser.check_page("report-receipt")
    receipt = await browser.js("return document.body.innerText")
    (tip,) = await running.node.desk.listing()
    assert "Thank you" in receipt and tip.id not in receipt
    assert re.search(r"[0-9A-HJKMNP-TV-Z]{26}", receipt) is None
