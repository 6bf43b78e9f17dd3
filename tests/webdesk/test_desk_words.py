"""Every word of the web desk and ``/report`` comes from the catalogue (issue 31).

Over plain HTTP against real nodes, no browser:

* a pseudo-locale node (``[node] languages = ["qps"]``, every catalogued
  message shown as ``⟦English⟧``): every page, every state a page can be in
  that these tests can reach cheaply (a held alert from a peer, tips with a
  publish form, flashes, errors, the form's receipt and refusals), and the
  words a person reads there outside brackets are only the values the test
  itself made (networks, alert texts, ids, fingerprints, codes) or names;
* a French catalogue of a handful of ids, dropped in ``locale_dir``, is what
  the desk and the form say, with no change to Python;
* the one rule: ``?lang=`` beats the cookie beats ``Accept-Language`` beats
  ``[node] languages[0]``, and a language the node does not serve is never chosen.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from relay.core.tips import TipIn, Where
from relay.http.webdesk import i18n, views
from relay.runtime.clock import FakeClock
from tests.fedkit import Member, members, pulled, trusts
from tests.helpers import report_token, wait_for
from tests.locale_kit import unmarked, write_catalogue, write_pseudo
from tests.test_api import DRAFT
from tests.webdesk.deskclient import DeskClient
from tests.webdesk.test_desk_tips import desk_as

EVERY_ROLE = ("intake", "verifier", "publisher", "reviewer", "admin")
#: Names, not words: the project, and agencies as everyone writes them.
NAMES = ("Avisa", "ICE", "CBP")

_HIDDEN = re.compile(r"<(script|style)\b.*?</\1>", re.S | re.I)
_TAG = re.compile(r"<[^>]*>")
_SHOWN_ATTRIBUTES = re.compile(
    r"\s(?:title|placeholder|aria-label|alt|data-looking|data-placed|data-bad"
    r'|data-marker-label)="([^"]*)"'
)
_BUTTON_VALUE = re.compile(r'<input\b[^>]*\btype="(?:submit|button|reset)"[^>]*\bvalue="([^"]*)"')
_LANG = re.compile(r'<html lang="([^"]+)"')


def shown(page: str) -> str:
    """What a person reads: the text outside tags (no script or style), and the
    attributes a browser shows or reads aloud."""
    said = _SHOWN_ATTRIBUTES.findall(page) + _BUTTON_VALUE.findall(page)
    return html.unescape(" ".join([_TAG.sub(" ", _HIDDEN.sub(" ", page)), *said]))


def _languages(languages: list[str]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        extra = f'languages = {json.dumps(languages)}\nlocale_dir = "locale"\n'
        return text.replace("[node]\n", "[node]\n" + extra, 1)

    return edit


@asynccontextmanager
async def speaking(
    tmp_path: Path,
    clock: FakeClock,
    languages: list[str],
    write: Callable[[Path], object],
    networks: Iterable[str] = ("ventura",),
) -> AsyncIterator[dict[str, Member]]:
    """Nodes that serve ``languages``, with ``write``'s catalogues in their locale_dir."""
    networks = tuple(networks)
    for network in networks:
        write(tmp_path / network / "locale")
    async with members(tmp_path, clock, networks, _languages(languages)) as started:
        yield started


async def _get(client: DeskClient, path: str, status: int = 200, **headers: str) -> str:
    code, page, _ = await client.page(path, **headers)
    assert code == status, (path, code, page[:300])
    return page


def _key_words(*nodes: Member) -> list[str]:
    """The fingerprints (words read aloud) and key ids the peers page shows."""
    found = []
    for member in nodes:
        for key in member.node.own_keys():
            found += [views.cached_fingerprint(key.public_key), key.keyid]
    return found


class FakeBridge:
    """A bridge as the bridges page sees it: its ``status()``, every fact a real one reports."""

    def __init__(self, status: dict[str, object]) -> None:
        self._status = status

    def status(self) -> dict[str, object]:
        return self._status

    async def stop(self) -> None:
        return None


_FEED = {"cursor": 3, "backlog": 0, "delivered": 3, "edited": 0, "skipped": {},
         "last_success": None, "last_error": None, "last_error_at": None,
         "backoff_until": None, "failures": 0, "rate_limited": 0}  # fmt: skip
BRIDGE_STATUSES = [
    {"type": "matrix", "homeserver": "https://matrix.example", "user_id": "@desk:example",
     "device_id": "DEVICE", "logged_in": True, "last_sync": None, "last_error": None,
     "routes": [{"room": "#alertas:example", "room_id": None, "encrypted": False, **_FEED}]},
    {"type": "sms", "gateway": "kannel", "ready": True, "sent": 2, "refused": {},
     "retried": 0, "opted_out_by_carrier": 0, "requeued_in_doubt": 0,
     "replies_over_budget": 0, "inbound": {}, "last_error": None, "feed": {"cursor": 3}},
    {"type": "cap", "last_error": None,
     "sources": [{"name": "county", "every": "5m", "polls": 1, "not_modified": 0,
                  "documents": 1, "messages": 1, "filed": 1, "updated": 0, "closed": 0,
                  "skipped": {}, "refused": {}, "last_poll": None, "last_success": None,
                  "last_error": None, "last_error_at": None, "backoff_until": None,
                  "failures": 0}]},
]  # fmt: skip
BRIDGE_VALUES = ["https://matrix.example", "@desk:example", "DEVICE", "#alertas:example",
                 "kannel", "cursor", "county", "5m"]  # fmt: skip


async def test_every_word_on_the_desk_and_the_form_is_from_the_catalogue(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with speaking(tmp_path, clock, ["qps"], write_pseudo, ["ventura", "oxnard"]) as nodes:
        origin, here = nodes["ventura"], nodes["oxnard"]
        await trusts(origin, here)
        await trusts(here, origin, speaks_for=("fips:01",))  # so its fips:06 alert is held
        await wait_for(lambda: pulled(here, "ventura"), what="oxnard pulled from ventura")
        held_id = str((await origin.publish())["id"])
        own_id = str((await here.publish())["id"])

        async def held() -> bool:
            status, body = await here.call("GET", f"/api/v1/alerts/{held_id}")
            return status == 200 and body["state"] == "held"

        await wait_for(held, what="the alert held at oxnard")
        desk = here.node.desk
        where = Where(label="Parque Colonia", geohash="9q4gch", codes=["fips:06111"])
        tip_text = "Dos camionetas blancas"
        plain = TipIn(text=tip_text, where=where, channel="sms", agencies=["ice", "cbp"])
        first = await desk.submit(plain, reporter=b"reporter-1")
        second = await desk.submit(plain, reporter=b"reporter-2")  # a cluster of two
        await desk.claim(second, "token:0a0b0c", "mirando")
        await desk.outcome(second, "token:0a0b0c", "confirmed", "visto")  # publishable

        here.node.bridges.extend(FakeBridge(status) for status in BRIDGE_STATUSES)  # type: ignore[arg-type]
        form_pages = await _report_pages(here)
        client = await desk_as(here, *EVERY_ROLE)
        intake = await desk_as(here, "reviewer")  # no tips for a reviewer alone
        outsider = DeskClient.open(here.url)
        try:
            pages = {
                "login": await _get(outsider, "/desk/login?expired=1"),
                "login-bad": (await _bad_login(outsider)),
                "tips": await _get(client, "/desk/tips?all=1&warn=outside"),
                "alerts": await _get(client, "/desk/alerts?all=1&done=1"),
                "alerts-error": await _get(client, "/desk/alerts?error=AVISA_BAD_PLACE"),
                "held": await _get(client, "/desk/held"),
                "peers": await _get(client, "/desk/peers"),
                "bridges": await _get(client, "/desk/bridges"),
                "decisions": await _get(client, "/desk/decisions?action=hold"),
                "not-found": await _get(client, "/desk/nothing-here", 404),
                "forbidden": await _get(intake, "/desk/tips", 403),
                **form_pages,
            }
            persons = [event.person or "" for tip in await desk.listing() for event in tip.history]
            drafted = await desk.draft_for(second)  # the alert publishing would sign
        finally:
            for one in (client, intake, outsider):
                await one.close()
    texts = [text for language in DRAFT["text"].values() for text in language.values()]
    values = [
        "ventura",
        "oxnard",
        origin.url,
        here.url,
        held_id,
        own_id,
        first,
        second,
        tip_text,
        "mirando",
        "visto",
        "token:0a0b0c",
        where.label,
        DRAFT["area"]["label"],
        *DRAFT["area"]["codes"],
        *texts,
        *(text for one in drafted.text.values() for text in (one.headline, one.body)),
        drafted.area.label,
        *drafted.area.codes,
        "fips:06",  # what the peers speak for
        "fips:01",
        "Dos camionetas",  # the tip sent with /report
        "Calle 5",
        *persons,
        *(reason.partition(".")[2] for reason in i18n.REASONS),  # codes, beside their words
        "AVISA_BAD_PLACE",
        *BRIDGE_VALUES,
        "AVISA_FORBIDDEN",
        "HTTP",
        "español",  # an alert text's language, named by Babel (not a served language)
        "English",
        *_key_words(origin, here),
        *NAMES,
    ]
    for name, page in pages.items():
        assert "⟦" in page, name  # the pseudo-locale is what the page speaks
        assert 'lang="qps"' in page, name
        left = unmarked(shown(page), allowed=values)
        assert not left, (name, sorted(set(left)))
    # the pages were in the states worth reading, not empty
    assert 'class="pick-map' in pages["tips"] and 'id="place-warning"' in pages["tips"]
    assert (
        "/cancel" in pages["alerts"] and f'id="held-{held_id.partition("/")[2]}"' in pages["held"]
    )
    assert 'id="peer-ventura"' in pages["peers"] and "<table" in pages["decisions"]
    assert 'name="contact"' in pages["report"] and 'class="error"' in pages["report-again"]


async def _bad_login(client: DeskClient) -> str:
    async with client.http.post(client.base + "/desk/login", data={"token": "avisa_x"}) as r:
        assert r.status == 401
        return await r.text()


async def _report_pages(node: Member) -> dict[str, str]:
    """The public form: empty, sent back with an error, the receipt, a refusal."""
    url = node.url + "/report"
    async with node.http.get(url) as reply:
        form = await reply.text()
    sent = {"text": "Dos camionetas", "place": "Calle 5", "agency": "ice"}
    async with node.http.post(url, data={"place": "x", "t": "stale"}) as reply:
        assert reply.status == 400
        again = await reply.text()
    token = await report_token(node.http, node.url)
    async with node.http.post(url, data={**sent, "t": token}) as reply:
        assert reply.status == 200
        receipt = await reply.text()
    other_site = {"Origin": "https://elsewhere.example", "Sec-Fetch-Site": "cross-site"}
    async with node.http.post(url, data=sent, headers=other_site) as reply:
        assert reply.status == 403
        refused = await reply.text()
    return {"report": form, "report-again": again, "report-receipt": receipt, "refused": refused}


FRENCH = {
    "language.name": "Français",
    "desk.brand": "Bureau d'Avisa",
    "login.title": "Se connecter au bureau",
    "nav.tips": "Signalements",
    "report.title": "Signaler une activité de l'immigration",
    "report.send": "Envoyer le signalement",
}


async def test_a_french_catalogue_needs_no_python(tmp_path: Path, clock: FakeClock) -> None:
    """French words where the catalogue has them, the node's first language (Spanish)
    for the rest: the fallback a half-done translation gets."""

    def french(folder: Path) -> None:
        write_catalogue(folder, "fr", FRENCH)

    fr = {"Accept-Language": "fr-FR,fr;q=0.9"}
    async with speaking(tmp_path, clock, ["es", "fr"], french) as nodes:
        node = nodes["ventura"]
        client = await desk_as(node, "intake", "verifier")
        try:
            login = html.unescape(await _get(client, "/desk/login", **fr))
            tips = html.unescape(await _get(client, "/desk/tips", **fr))
            missing = html.unescape(await _get(client, "/desk/nothing-here", 404, **fr))
            spanish = html.unescape(await _get(client, "/desk/tips"))
        finally:
            await client.close()
        async with node.http.get(node.url + "/report", headers=fr) as reply:
            form = html.unescape(await reply.text())
        async with node.http.get(node.url + "/report") as reply:
            form_es = html.unescape(await reply.text())
    assert _LANG.search(login)[1] == "fr"  # type: ignore[index]
    assert "<h1>Se connecter au bureau</h1>" in login and "Clave de operador" in login
    assert ">Signalements</a>" in tips and ">Alertas</a>" in tips
    assert 'hreflang="es" lang="es"><span class="wide-only">Español</span>' in tips
    assert "Bureau d'Avisa" in missing
    assert "Signaler une activité de l'immigration" in form and "Envoyer le signalement" in form
    assert "Código postal (opcional)" in form and 'lang="es">Español</a>' in form
    assert ">Reportes</a>" in spanish and 'lang="fr"><span class="wide-only">Français' in spanish
    assert "Reportar actividad de inmigración" in form_es and 'lang="fr">Français</a>' in form_es


async def test_the_one_rule_picks_the_language(tmp_path: Path, clock: FakeClock) -> None:
    async with members(tmp_path, clock, ["ventura"]) as nodes:  # es, en (the default)
        node = nodes["ventura"]
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:

            async def desk(query: str = "", **headers: str) -> tuple[str, Any]:
                async with http.get(f"{node.url}/desk/login{query}", headers=headers) as r:
                    return _LANG.search(await r.text())[1], r.cookies  # type: ignore[index]

            async def form(query: str = "", **headers: str) -> tuple[str, Any]:
                async with http.get(f"{node.url}/report{query}", headers=headers) as r:
                    return _LANG.search(await r.text())[1], r.cookies  # type: ignore[index]

            english = {"Accept-Language": "en-US,en;q=0.9"}
            kept_en = {"Cookie": f"{i18n.COOKIE}=en"}
            assert (await desk())[0] == "es"  # languages[0]
            assert (await desk(**english))[0] == "en"
            assert (await desk(**{"Accept-Language": "es", **kept_en}))[0] == "en"  # cookie
            chosen, cookies = await desk("?lang=es", **english, **kept_en)  # query beats all
            assert chosen == "es" and cookies[i18n.COOKIE].value == "es"
            chosen, cookies = await desk("?lang=fr", **english)  # not served: no choice
            assert chosen == "en" and i18n.COOKIE not in cookies
            assert (await desk(**{"Cookie": f"{i18n.COOKIE}=de", **english}))[0] == "en"
            assert (await desk(**{"Accept-Language": "fr, de;q=0.5"}))[0] == "es"

            assert (await form())[0] == "es"
            assert (await form(**english))[0] == "en"  # it used to ignore Accept-Language
            assert (await form("?lang=es", **english))[0] == "es"
            assert (await form("?lang=fr", **english))[0] == "en"
            chosen, cookies = await form("?lang=en", **kept_en)
            assert chosen == "en" and not cookies  # the public form keeps no cookie
            assert (await form(**{"Cookie": f"{i18n.COOKIE}=en"}))[0] == "es"
