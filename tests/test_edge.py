"""The HTTP edge on a real node (issue 25, holes 3, 7, 8 and the sessions).

Reports come from people, not pages: cross-site posts are refused, the form's
token is the node's and spent once, reporters are counted by client, tokens
cannot claim the node's own channels. ``/metrics`` needs a token, and its
public form shows no desk activity. One token's sign-ins never sign out
another's. The reported 500s answer 4xx (the whole class is in
``tests/adversarial/test_hostile_http.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from relay.runtime.clock import FakeClock
from tests.conftest import RunningNode, start_node
from tests.helpers import report_token
from tests.test_desk_api import TIP, as_, tip_rows, tokens

FORM = {"text": "Dos camionetas sin placas", "place": "Calle 5 y Cooper", "zip": "93030"}


async def post_report(
    running: RunningNode, fields: dict[str, str], lang: str = "es", **headers: str
) -> tuple[int, str]:
    async with running.http.post(
        f"{running.url}/report?lang={lang}", data=fields, headers=headers
    ) as reply:
        return reply.status, await reply.text()


async def test_cross_site_reports_are_refused_in_both_languages(running: RunningNode) -> None:
    hostile = [
        {"Origin": "https://evil.example"},
        {"Origin": "http://127.0.0.1:1"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://[::1"},
        {"Origin": "https://évil.example"},
    ]
    for headers in hostile:
        for lang, words in (("es", "vino de otra página"), ("en", "came from another page")):
            token = await report_token(running.http, running.url)
            status, page = await post_report(running, {**FORM, "t": token}, lang, **headers)
            assert status == 403 and words in page, headers
            assert f'<html lang="{lang}">' in page
    assert await tip_rows(running) == 0
    # the node's own origin, a browser's "null" under no-referrer, and same-origin pass
    for headers in (
        {"Origin": running.url, "Sec-Fetch-Site": "same-origin"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "none"},
    ):
        token = await report_token(running.http, running.url)
        status, _ = await post_report(running, {**FORM, "t": token}, **headers)
        assert status == 200, headers
    assert await tip_rows(running) == 3


async def test_the_form_token_is_the_nodes_and_is_spent_once(running: RunningNode) -> None:
    for bad in ({}, {"t": "ab" * 16}, {"t": "A" * 48}):
        status, page = await post_report(running, {**FORM, **bad}, "en")
        assert status == 400 and "The form expired or was already sent" in page
        assert "Dos camionetas sin placas" in page  # what was typed is kept for another tap
    assert await tip_rows(running) == 0
    token = await report_token(running.http, running.url)
    assert (await post_report(running, {**FORM, "t": token}))[0] == 200
    assert (await post_report(running, {**FORM, "t": token}))[0] == 400
    assert await tip_rows(running) == 1


async def test_many_forms_from_one_client_count_as_one_reporter(running: RunningNode) -> None:
    allowed = running.node.config.desk.tips_per_sender_hour  # one client is one sender
    for _ in range(allowed):
        token = await report_token(running.http, running.url)
        assert (await post_report(running, {**FORM, "t": token}))[0] == 200
    found = await running.node.desk.listing(cluster=True)
    assert len(found) == allowed > 1
    assert {tip.cluster.reporters for tip in found if tip.cluster} == {1}


async def test_a_token_cannot_claim_the_nodes_own_channels(running: RunningNode) -> None:
    (intake,) = await tokens(running, "intake")
    for channel in ("sms", "cap", "matrix"):
        for who in (intake, running.token):  # not even an admin
            status, body = await as_(
                running, who, "POST", "/api/v1/tips", {**TIP, "channel": channel}
            )
            assert (status, body["errcode"]) == (403, "AVISA_CHANNEL_RESERVED"), channel
    assert await tip_rows(running) == 0
    for channel in ("hotline", "web"):
        status, _ = await as_(running, intake, "POST", "/api/v1/tips", {**TIP, "channel": channel})
        assert status == 201
    assert await tip_rows(running) == 2


async def test_metrics_need_a_metrics_or_admin_token(running: RunningNode) -> None:
    (metrics, intake) = await tokens(running, "metrics", "intake")
    await as_(running, intake, "POST", "/api/v1/tips", TIP)
    async with running.http.get(running.url + "/metrics") as reply:
        assert reply.status == 401
    assert (await as_(running, intake, "GET", "/metrics"))[0] == 403
    for who in (metrics, running.token):
        async with running.http.get(running.url + "/metrics", headers=running.headers(who)) as r:
            text = await r.text()
        assert r.status == 200 and 'avisa_tips{state="new"} 1' in text
        assert "avisa_desk_events_total" in text
    # a metrics token reads figures, nothing else
    assert (await as_(running, metrics, "GET", "/api/v1/alerts"))[0] == 403
    assert (await as_(running, metrics, "GET", "/api/v1/tips"))[0] == 403


@pytest.fixture
async def public(tmp_path: Path, clock: FakeClock) -> AsyncIterator[RunningNode]:
    node, runner, url, token = await start_node(
        tmp_path, clock, node_extra="metrics_public = true\n"
    )
    async with aiohttp.ClientSession() as http:
        yield RunningNode(node, url, token, http, node.data_dir)
    await runner.cleanup()
    await node.stop()


async def test_public_metrics_never_show_desk_activity(public: RunningNode) -> None:
    await as_(public, public.token, "POST", "/api/v1/tips", TIP)
    token = await report_token(public.http, public.url)
    assert (await post_report(public, {**FORM, "t": token}))[0] == 200
    async with public.http.get(public.url + "/metrics") as reply:
        text = await reply.text()
    assert reply.status == 200 and "avisa_feed_position" in text
    for private in ("avisa_tips", "avisa_desk", "avisa_cap_source", "submitted", "web", "hotline"):
        assert private not in text, private
    async with public.http.get(public.url + "/metrics", headers=public.headers()) as reply:
        assert "avisa_tips" in await reply.text()  # with a token: everything
    async with public.http.get(public.url + "/metrics", headers=public.headers("nope")) as reply:
        assert reply.status == 401


async def test_one_tokens_sign_ins_never_sign_out_another(running: RunningNode) -> None:
    (verifier,) = await tokens(running, "verifier")

    async def sign_in(token: str) -> str:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                running.url + "/desk/login", data={"token": token}, allow_redirects=False
            ) as reply,
        ):
            assert reply.status == 303
            return reply.cookies["avisa_desk"].value

    async def signed_in(session: str) -> bool:
        cookies = {"avisa_desk": session}
        async with (
            aiohttp.ClientSession(cookies=cookies) as http,
            http.get(running.url + "/desk/alerts", allow_redirects=False) as reply,
        ):
            return reply.status == 200

    colleague = await sign_in(verifier)
    flood = [await sign_in(running.token) for _ in range(40)]
    assert await signed_in(colleague)
    assert await signed_in(flood[-1]) and not await signed_in(flood[0])


async def test_the_reported_500s_answer_4xx(running: RunningNode) -> None:
    fields = "a=1&b=1&c=1&d=1&e=1&f=1&g=1&h=1&token=x"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with running.http.post(running.url + "/desk/login", data=fields, headers=form) as r:
        assert r.status == 400 and "AVISA_BAD_FORM" in await r.text()
    for origin in ("http://[::1", "https://évil.example".encode().decode("latin-1")):
        async with running.http.post(
            running.url + "/desk/login", data={"token": running.token}, headers={"Origin": origin}
        ) as r:
            assert r.status == 403, origin
    assert running.node.metrics.http_errors[("AVISA_INTERNAL", 500)] == 0
