"""The web desk's security and behaviour over plain HTTP, on real nodes (issue 20).

Sessions, cookies, CSRF, the security headers, what each role is shown and
refused, escaping, and that forms change exactly what the API would.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from keys.core.keyring import KeyEntry
from relay.core.policy import PeerPolicy
from relay.core.tips import TipIn, Where
from relay.runtime.clock import FakeClock
from relay.storage import trust
from tests.conftest import RunningNode, start_node
from tests.fedkit import members, pulled, trusts
from tests.helpers import key, make_alert, raw_envelope, wait_for
from tests.test_api import DRAFT
from tests.webdesk.deskclient import DeskClient

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
async def node(tmp_path: Path, clock: FakeClock) -> AsyncIterator[RunningNode]:
    extra = '\n[desk_web]\nsession_ttl = "2h"\n'
    started, runner, url, token = await start_node(
        tmp_path, clock, config_extra=extra, node_extra='trusted_proxies = ["127.0.0.2"]\n'
    )
    async with aiohttp.ClientSession() as http:
        yield RunningNode(started, url, token, http, started.data_dir)
    await runner.cleanup()
    await started.stop()


@pytest.fixture
async def desk(node: RunningNode) -> AsyncIterator[DeskClient]:
    client = DeskClient.open(node.url)
    yield client
    await client.close()


async def token_for(node: RunningNode, role: str) -> str:
    made = await node.node.db.write(
        lambda conn: trust.add_token(conn, role, role, node.node.clock())  # type: ignore[arg-type]
    )
    await node.node.reload_trust()
    return made


async def publish(node: RunningNode, **changes: object) -> str:
    status, body = await node.call("POST", "/api/v1/alerts", json={**DRAFT, **changes})
    assert status == 201, body
    return str(body["id"])


async def test_pages_need_a_session_and_carry_strict_headers(
    node: RunningNode, desk: DeskClient
) -> None:
    for path in ("/desk/", "/desk/alerts", "/desk/held", "/desk/peers", "/desk/decisions"):
        status, _, headers = await desk.page(path)
        assert status == 303 and headers["Location"] == "/desk/login", path
    status, _, headers = await desk.page("/desk/alerts", **{"HX-Request": "true"})
    assert status == 401 and headers["HX-Redirect"].startswith("/desk/login")
    status, text, headers = await desk.page("/desk/login")
    assert status == 200 and 'name="token"' in text
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "<script>" not in text.replace("<script src=", "")  # no inline script
    assert "style=" not in text and "<style" not in text


async def test_login_sets_a_strict_cookie_and_a_wrong_token_is_refused(
    node: RunningNode, desk: DeskClient
) -> None:
    response = await desk.login("avisa_not-a-token")
    assert response.status == 401
    assert "avisa_desk" not in response.cookies
    response = await desk.login(node.token)
    assert response.status == 303
    cookie = response.cookies["avisa_desk"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/desk"
    assert not cookie["secure"]  # plain http, no trusted proxy
    assert node.token not in cookie.value
    status, text, _ = await desk.page("/desk/alerts")
    assert status == 200 and "ventura" in text


async def test_failed_sign_ins_are_limited_per_client_and_never_refuse_the_right_token(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The test client stands in for a trusted proxy (127.0.0.1) naming two clients."""
    started, runner, url, token = await start_node(
        tmp_path,
        clock,
        config_extra="\n[desk_web]\nlogin_failures_per_hour = 3\n",
        node_extra='trusted_proxies = ["127.0.0.1"]\n',
    )
    desk = DeskClient.open(url)
    try:
        guesser = {"X-Forwarded-For": "198.51.100.7"}
        for _ in range(3):
            assert (await desk.login("avisa_guess", **guesser)).status == 401
        for language, words in (("es", "Demasiados intentos fallidos"), ("en", "Too many failed")):
            async with desk.http.post(
                url + "/desk/login",
                data={"token": "avisa_guess"},
                headers={**guesser, "Accept-Language": language},
                allow_redirects=False,
            ) as reply:
                page = await reply.text()
                assert reply.status == 429 and "avisa_desk" not in reply.cookies
                assert words in page and f'<html lang="{language}">' in page
                assert reply.headers["Content-Security-Policy"].startswith("default-src 'none'")
        # a forged hop to the left of the one the proxy appended changes nothing
        forged = {"X-Forwarded-For": "203.0.113.50, 198.51.100.7"}
        assert (await desk.login("avisa_guess", **forged)).status == 429
        # the right token is never refused: not from the guesser's address either
        assert (await desk.login(token, **guesser)).status == 303
        # another client has its own tries; a success spends none of them
        other = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
        for _ in range(5):
            response = await desk.login(token, **other)
            assert response.status == 303
            assert response.cookies["avisa_desk"]["secure"]  # the trusted proxy said https
        assert (await desk.login("avisa_guess", **other)).status == 401
        status, metrics = await RunningNode(started, url, token, desk.http, tmp_path).call(
            "GET", "/metrics"
        )
        assert status == 200 and "198.51.100.7" not in str(metrics)
        assert "203.0.113.9" not in str(metrics)
    finally:
        await desk.close()
        await runner.cleanup()
        await started.stop()


async def test_secure_cookie_only_behind_a_trusted_tls_proxy(node: RunningNode) -> None:
    untrusted = DeskClient.open(node.url)
    try:
        response = await untrusted.login(node.token, **{"X-Forwarded-Proto": "https"})
        assert not response.cookies["avisa_desk"]["secure"]  # 127.0.0.1 is not the proxy
    finally:
        await untrusted.close()


async def test_sessions_expire_and_end_with_their_token(
    node: RunningNode, desk: DeskClient, clock: FakeClock
) -> None:
    reviewer = await token_for(node, "reviewer")
    await desk.login(reviewer)
    assert (await desk.page("/desk/held"))[0] == 200
    clock.advance(timedelta(hours=2, seconds=1))
    assert (await desk.page("/desk/held"))[0] == 303
    await desk.login(reviewer)
    assert (await desk.page("/desk/held"))[0] == 200
    token_id = (await node.node.db.read(trust.list_tokens))[-1].token_id
    await node.node.db.write(lambda conn: trust.revoke_token(conn, token_id))
    await node.node.reload_trust()
    assert (await desk.page("/desk/held"))[0] == 303


async def test_every_change_needs_the_csrf_token(node: RunningNode, desk: DeskClient) -> None:
    alert_id = await publish(node)
    await desk.login(node.token)
    path = f"/desk/alerts/{alert_id}/cancel"
    assert (await desk.post(path, {"note": "x"}))[0] == 403
    assert (await desk.post(path, {"note": "x", "csrf": "forged"}))[0] == 403
    token = await desk.csrf()
    cross = {"Sec-Fetch-Site": "cross-site"}
    assert (await desk.post(path, {"note": "x", "csrf": token}, **cross))[0] == 403
    status, body = await node.call("GET", f"/api/v1/alerts/{alert_id}")
    assert body["state"] == "active"  # nothing changed
    status, _, headers = await desk.post(path, {"note": "gone", "csrf": token})
    assert status == 303 and headers["Location"] == "/desk/alerts?done=1"
    status, body = await node.call("GET", f"/api/v1/alerts/{alert_id}")
    assert body["state"] == "cancelled"
    # logging out needs the token too, and ends the session
    assert (await desk.post("/desk/logout", {}))[0] == 403
    assert (await desk.post("/desk/logout", {"csrf": token}))[0] == 303
    assert (await desk.page("/desk/alerts"))[0] == 303


async def test_alert_text_is_always_escaped(node: RunningNode, desk: DeskClient) -> None:
    text = {"es": {"headline": HOSTILE, "body": f'"><img src=x onerror=alert(2)>{HOSTILE}'}}
    await publish(node, text=text)
    await desk.login(node.token)
    _, page, _ = await desk.page("/desk/alerts")
    assert HOSTILE not in page and "<img src=x" not in page
    assert html.escape(HOSTILE, quote=False) in page


async def test_what_a_role_may_not_do_is_not_shown_and_refused(
    node: RunningNode, desk: DeskClient
) -> None:
    alert_id = await publish(node)
    reviewer = await token_for(node, "reviewer")
    await desk.login(reviewer)
    _, page, _ = await desk.page("/desk/alerts")
    assert alert_id.partition("/")[2] in page
    assert "/update" not in page and "/cancel" not in page
    csrf = await desk.csrf("/desk/held")
    form = {"csrf": csrf, "expires_in": "4h", "headline_es": "x"}
    status, _, _ = await desk.post(f"/desk/alerts/{alert_id}/update", form)
    assert status == 403
    status, body = await node.call("GET", f"/api/v1/alerts/{alert_id}")
    assert body["state"] == "active"

    publisher = await token_for(node, "publisher")
    other = DeskClient.open(node.url)
    try:
        await other.login(publisher)
        _, page, _ = await other.page("/desk/alerts")
        assert f"/desk/alerts/{alert_id}/update" in page
        csrf = await other.csrf()
        status, _, _ = await other.post(f"/desk/held/{alert_id}/accept", {"csrf": csrf})
        assert status == 403
    finally:
        await other.close()


async def test_update_from_the_desk_signs_a_new_version(
    node: RunningNode, desk: DeskClient
) -> None:
    alert_id = await publish(node)
    await desk.login(node.token)
    csrf = await desk.csrf()
    form = {
        "csrf": csrf,
        "headline_es": "ICE se fue del parque",
        "body_es": "Ya no están.",
        "headline_en": "ICE left the park",
        "body_en": "Gone.",
        "certainty": "confirmed",
        "kind": "operation",
        "expires_in": "1h",
    }
    status, _, headers = await desk.post(f"/desk/alerts/{alert_id}/update", form)
    assert status == 303 and headers["Location"].endswith("done=1")
    _, body = await node.call("GET", "/api/v1/alerts?active=true")
    (current,) = body["alerts"]
    assert current["alert"]["references"] == [alert_id]
    assert current["alert"]["text"]["es"]["headline"] == "ICE se fue del parque"
    assert current["alert"]["kind"] == "operation"
    # a form that makes no valid draft goes back with its error code
    form["expires_in"] = "99y"
    status, _, headers = await desk.post(f"/desk/alerts/{current['alert']['id']}/update", form)
    assert status == 303 and headers["Location"].endswith("error=AVISA_BAD_DRAFT")


async def test_language_follows_the_browser_and_the_switch(
    node: RunningNode, desk: DeskClient
) -> None:
    _, page, _ = await desk.page("/desk/login", **{"Accept-Language": "en-US,en;q=0.9"})
    assert "Sign in to the desk" in page and 'lang="en"' in page
    _, page, _ = await desk.page("/desk/login", **{"Accept-Language": "fr, es;q=0.5"})
    assert "Entrar a la mesa" in page
    _, page, headers = await desk.page("/desk/login?lang=en", **{"Accept-Language": "es"})
    assert "Sign in to the desk" in page and "avisa_lang=en" in headers["Set-Cookie"]
    _, page, _ = await desk.page("/desk/login", **{"Accept-Language": "es"})
    assert "Sign in to the desk" in page  # the cookie wins over the browser


async def test_held_alert_explained_and_accepted_from_the_desk(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with members(tmp_path, clock, ["ventura", "oxnard"]) as nodes:
        a, b = nodes["ventura"], nodes["oxnard"]
        await trusts(a, b)
        await trusts(b, a, speaks_for=("fips:01",))  # oxnard holds ventura's fips:06 alerts
        await wait_for(lambda: pulled(b, "ventura"), what="oxnard pulled from ventura")
        alert_id = str((await a.publish())["id"])
        await wait_for(lambda: _state(b, alert_id, "held"), what="the alert held at oxnard")
        desk = DeskClient.open(b.url)
        try:
            await desk.login(b.token)
            _, page, _ = await desk.page("/desk/held")
            assert "outside_speaks_for" in page and "ventura" in page
            assert f"/desk/held/{alert_id}/accept" in page
            _, decisions, _ = await desk.page("/desk/decisions?action=hold")
            assert "outside_speaks_for" in decisions and "authoritative" not in decisions
            csrf = await desk.csrf("/desk/held")
            status, _, headers = await desk.post(f"/desk/held/{alert_id}/accept", {"csrf": csrf})
            assert status == 303 and headers["Location"] == "/desk/held?done=1"
            assert await _state(b, alert_id, "active")
            _, page, _ = await desk.page("/desk/peers")
            assert "ventura" in page and 'class="fp"' in page
        finally:
            await desk.close()


async def _state(member: RunningNode, alert_id: str, state: str) -> bool:
    status, body = await member.call("GET", f"/api/v1/alerts/{alert_id}")
    return status == 200 and body["state"] == state


async def test_the_stream_says_which_part_changed(node: RunningNode, desk: DeskClient) -> None:
    await desk.login(node.token)
    async with desk.http.get(desk.base + "/desk/stream") as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        assert await stream.content.readline() == b"retry: 2000\n"
        await stream.content.readline()
        await publish(node)
        assert await stream.content.readline() == b"event: alerts\n"
        await stream.content.readline()
        await stream.content.readline()
        where = Where(label="Colonia", geohash="9q4gch")
        await node.node.desk.submit(TipIn(text="ICE aquí", where=where), reporter=b"reporter-1")
        assert await stream.content.readline() == b"event: tips\n"


async def test_the_stream_wakes_on_any_tip_change_and_ends_with_its_session(
    node: RunningNode, desk: DeskClient
) -> None:
    """A tip changed by its source moves no counter: the desk's signal still wakes the
    stream. Signing out ends the stream within ``SESSION_CHECK_S``."""
    where = Where(label="Colonia", geohash="9q4gch")
    ref = "sender@example,ID-9"
    await node.node.desk.submit(TipIn(text="ICE aquí", where=where, channel="cap"), source_ref=ref)
    await desk.login(node.token)
    async with desk.http.get(desk.base + "/desk/stream") as stream:
        assert await stream.content.readline() == b"retry: 2000\n"
        await stream.content.readline()
        counted = sum(node.node.desk.counters.values())
        assert await node.node.desk.update_from_source(ref, TipIn(text="ya se fueron", where=where))
        assert sum(node.node.desk.counters.values()) == counted
        assert await asyncio.wait_for(stream.content.readline(), 10) == b"event: tips\n"
        await stream.content.readline()
        await stream.content.readline()
        status, _, _ = await desk.post("/desk/logout", {"csrf": await desk.csrf()})
        assert status == 303
        assert await asyncio.wait_for(stream.content.read(), 10) == b""  # ended


class _CapLike:
    """A bridge as the node holds it: only ``status()`` matters to the page."""

    def __init__(self, extra: dict[str, object] | None = None) -> None:
        self.extra = extra or {}

    def status(self) -> dict[str, object]:
        return {
            "type": "cap",
            "sources": [{"name": "<b>county</b>", "polls": 3, "last_error": None}],
            "last_error": "timeout",
            **self.extra,
        }

    async def stop(self) -> None:
        return None


async def test_bridges_show_each_status_and_its_tables(node: RunningNode, desk: DeskClient) -> None:
    node.node.bridges.append(_CapLike())  # type: ignore[arg-type]
    try:
        await desk.login(node.token)
        _, page, _ = await desk.page("/desk/bridges?lang=en")
        assert '<h2 class="headline">CAP feeds</h2>' in page and "Sources" in page
        assert "<dt>Source</dt>" in page and "<dt>Polls</dt>" in page
        assert "&lt;b&gt;county&lt;/b&gt;" in page and "timeout" in page
        # Each fact in the reader's words; a key without words is shown as it is.
        node.node.bridges.append(_CapLike(extra={"new_fact": 1}))  # type: ignore[arg-type]
        _, page, _ = await desk.page("/desk/bridges?lang=es")
        assert '<h2 class="headline">Fuentes CAP</h2>' in page
        assert "<dt>Fuente</dt>" in page and "<dt>Último error</dt>" in page
        assert "<dt>new_fact</dt>" in page
    finally:
        node.node.bridges.clear()


async def test_peers_page_shows_the_seq_gaps_each_peer_left(
    node: RunningNode, desk: DeskClient
) -> None:
    running = node.node
    peer_key = key(81)
    record = trust.PeerRecord(
        "net-a",
        "http://127.0.0.1:9",
        (KeyEntry("net-a", peer_key.public_key),),
        PeerPolicy(network="net-a", speaks_for=("fips:06",)),
    )
    await running.db.write(lambda conn: trust.save_peer(conn, record, running.clock()))
    await running.reload_trust()
    await desk.login(node.token)
    _, page, _ = await desk.page("/desk/peers?lang=en")
    assert "Messages missing</dt><dd>none</dd>" in page
    envelopes = [raw_envelope(make_alert("net-a", seq=seq), peer_key) for seq in (1, 5)]
    outcomes = await running.pipeline.ingest(envelopes, from_peer="net-a")
    assert [outcome.status for outcome in outcomes] == ["accepted", "accepted"]
    _, page, _ = await desk.page("/desk/peers?lang=en")
    assert "3 in 1 gap, 1 not yet asked for" in page
    assert "net-a seq 2–4</span> <small>not yet asked for" in page
    _, page, _ = await desk.page("/desk/peers?lang=es")
    assert "Mensajes que faltan" in page and "3 en 1 hueco, 1 aún sin pedir" in page
    status, body = await node.call("GET", "/api/v1/peers")
    assert status == 200 and body["peers"][0]["seq_gaps"]["missing"] == 3  # the same numbers
