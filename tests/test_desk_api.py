"""The desk over HTTP: a real node on 127.0.0.1:0, real SQLite, tokens with roles.

Covers the tip endpoints and roles (403 for what a role may not do), the
two-person rule and the rumor debunk over the API, bad input that changes
nothing, the public form (bilingual, no script, escaped, receipt without the
tip's id, rate limit that keeps no address) and two nodes: a tip published on
one arrives on its peer as an alert, and the peer holds no trace of the tip.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.http.clientlimit import ClientLimiter
from relay.runtime.clock import FakeClock
from relay.storage import db, trust
from tests.conftest import RunningNode
from tests.fedkit import members, trusts
from tests.helpers import T0, report_token, wait_for

TIP: dict[str, Any] = {
    "text": "Dos camionetas blancas sin placas frente a la tienda",
    "where": {"label": "Colonia park, Oxnard", "geohash": "9q4gch", "codes": ["zip:93030"]},
    "channel": "hotline",
    "agencies": ["ice"],
    "language": "es",
}
PHONE = "805-555-0143"


async def tokens(running: RunningNode, *role_sets: str) -> list[str]:
    conn = db.open_sync(running.node.db.path)
    try:
        made = [  # each token its own person (the label), as the two-person rule counts
            db.transaction(
                conn, lambda c, r=r, i=i: trust.add_token(c, trust.parse_roles(r), f"{r} {i}", T0)
            )
            for i, r in enumerate(role_sets)
        ]
    finally:
        conn.close()
    await running.node.reload_trust()
    return made


async def as_(running: RunningNode, token: str, method: str, path: str, body: Any = None):  # type: ignore[no-untyped-def]
    kwargs: dict[str, Any] = {"headers": running.headers(token)}
    if body is not None:
        kwargs["json"] = body
    return await running.call(method, path, **kwargs)


async def tip_rows(running: RunningNode) -> int:
    (count,) = await running.node.db.read(
        lambda c: c.execute("SELECT count(*) FROM tips").fetchone()
    )
    return int(count)


async def test_roles_and_the_whole_workflow(running: RunningNode) -> None:
    intake, verifier, other, publisher = await tokens(
        running, "intake", "verifier", "verifier", "publisher"
    )
    status, body = await as_(running, intake, "POST", "/api/v1/tips", {**TIP, "contact": PHONE})
    assert status == 201, body
    tip_id = body["id"]
    refusals = [
        (intake, "POST", f"/api/v1/tips/{tip_id}/claim", {}),
        (publisher, "POST", f"/api/v1/tips/{tip_id}/claim", {}),
        (verifier, "POST", "/api/v1/tips", TIP),
        (verifier, "POST", f"/api/v1/tips/{tip_id}/publish", {}),
        (intake, "POST", f"/api/v1/tips/{tip_id}/publish", {}),
        (intake, "POST", "/api/v1/alerts", {}),
        (verifier, "POST", "/api/v1/held/x/y/accept", None),
    ]
    for token, method, path, payload in refusals:
        status, body = await as_(running, token, method, path, payload)
        assert (status, body["errcode"]) == (403, "AVISA_FORBIDDEN"), (path, body)
    status, body = await as_(running, verifier, "POST", f"/api/v1/tips/{tip_id}/outcome",
                             {"outcome": "confirmed"})  # fmt: skip
    assert (status, body["errcode"]) == (409, "AVISA_NOT_CLAIMED")
    status, shown = await as_(running, verifier, "POST", f"/api/v1/tips/{tip_id}/claim",
                              {"note": "voy en camino"})  # fmt: skip
    assert status == 200 and shown["state"] == "claimed"
    status, body = await as_(running, publisher, "POST", f"/api/v1/tips/{tip_id}/publish", {})
    assert (status, body["errcode"]) == (409, "AVISA_NEEDS_CONFIRMATION")
    status, body = await as_(running, publisher, "GET", f"/api/v1/tips/{tip_id}/draft")
    assert (status, body["errcode"]) == (409, "AVISA_NEEDS_CONFIRMATION")
    for token in (verifier, other):
        found = {"outcome": "confirmed", "note": "vi dos camionetas"}
        status, shown = await as_(running, token, "POST", f"/api/v1/tips/{tip_id}/outcome", found)
        assert status == 200, shown
    assert shown["confirmations"] == 2
    status, draft = await as_(running, publisher, "GET", f"/api/v1/tips/{tip_id}/draft")
    assert status == 200 and draft["certainty"] == "confirmed", draft
    assert draft["area"]["label"] == "Colonia park, Oxnard" and set(draft["text"]) == {"es", "en"}
    status, body = await as_(running, verifier, "GET", f"/api/v1/tips/{tip_id}/draft")
    assert status == 403
    status, published = await as_(running, publisher, "POST", f"/api/v1/tips/{tip_id}/publish",
                                  {"expires_in": "2h"})  # fmt: skip
    assert status == 201, published
    payload = json.loads(base64.b64decode(published["envelope"]["payload"]))
    assert (payload["kind"], payload["certainty"], payload["area"]["geohash"]) == (
        "sighting",
        "confirmed",
        "9q4gch",
    )
    assert "camionetas" not in json.dumps(payload)
    status, shown = await as_(running, intake, "GET", f"/api/v1/tips/{tip_id}")
    assert shown["state"] == "published" and shown["alert_id"] == published["id"]
    actions = [(e["action"], e["actor"]) for e in shown["history"]]
    assert actions[0] == ("claim", "token:" + trust.token_id(verifier))
    status, listed = await running.call("GET", "/api/v1/alerts")
    assert [a["alert"]["id"] for a in listed["alerts"]] == [published["id"]]
    status, body = await as_(running, verifier, "POST", f"/api/v1/tips/{tip_id}/close",
                             {"note": "done"})  # fmt: skip
    assert (status, body["errcode"]) == (409, "AVISA_TIP_PUBLISHED")  # it stays published
    assert (await running.node.desk.get(tip_id)).state == "published"


async def test_false_alarm_publishes_a_rumor_debunk_in_one_step(running: RunningNode) -> None:
    (token,) = await tokens(running, "intake,verifier,publisher")
    _, body = await as_(running, token, "POST", "/api/v1/tips", TIP)
    number = (await running.node.desk.get(body["id"])).number
    await as_(running, token, "POST", f"/api/v1/tips/{number}/claim")
    await as_(running, token, "POST", f"/api/v1/tips/{number}/outcome", {"outcome": "false_alarm"})
    status, published = await as_(running, token, "POST", f"/api/v1/tips/{number}/publish")
    assert status == 201, published
    payload = json.loads(base64.b64decode(published["envelope"]["payload"]))
    assert (payload["kind"], payload["certainty"]) == ("rumor", "false")
    assert set(payload["text"]) == {"es", "en"}


async def test_listing_shows_clusters_and_never_a_contact(running: RunningNode) -> None:
    (token,) = await tokens(running, "intake")
    for contact in (PHONE, "+18055550143", "8055550199"):
        status, _ = await as_(running, token, "POST", "/api/v1/tips", {**TIP, "contact": contact})
        assert status == 201
    await as_(running, token, "POST", "/api/v1/tips", {**TIP, "channel": "web"})
    async with running.http.get(
        running.url + "/api/v1/tips?state=all&cluster=true", headers=running.headers(token)
    ) as reply:
        raw = await reply.read()
    assert b"555" not in raw and b"contact" not in raw and b'"reporter"' not in raw
    tips = json.loads(raw)["tips"]
    assert {t["cluster"]["id"] for t in tips} == {tips[-1]["id"]}
    cluster = tips[0]["cluster"]
    assert (cluster["tips"], cluster["reporters"], cluster["channels"]) == (
        4,
        3,
        ["hotline", "web"],
    )
    async with running.http.get(running.url + "/metrics", headers=running.headers()) as reply:
        metrics = await reply.text()
    assert 'avisa_tips{state="new"} 4' in metrics
    assert 'avisa_desk_events_total{event="submitted",detail="hotline"} 3' in metrics
    assert "camionetas" not in metrics and "555" not in metrics and "Colonia" not in metrics


@pytest.mark.parametrize(
    ("body", "status", "errcode"),
    [
        ({**TIP, "contact": "not a phone"}, 400, "AVISA_BAD_PHONE"),
        ({**TIP, "text": "x" * 2001}, 400, "AVISA_BAD_REQUEST"),
        ({**TIP, "text": "a\u0000b"}, 400, "AVISA_BAD_REQUEST"),
        ({**TIP, "where": {"label": "a\u001b[2Jb"}}, 400, "AVISA_BAD_REQUEST"),
        ({**TIP, "reporter_ip": "10.0.0.1"}, 400, "AVISA_BAD_REQUEST"),
        ({**TIP, "channel": "carrier-pigeon"}, 400, "AVISA_BAD_REQUEST"),
        ({**TIP, "text": "\u200b\u202e"}, 400, "AVISA_BAD_TIP"),
        ({**TIP, "contact": "1" * 65}, 400, "AVISA_BAD_REQUEST"),
    ],
)
async def test_bad_tips_change_nothing(
    running: RunningNode, body: dict[str, Any], status: int, errcode: str
) -> None:
    (token,) = await tokens(running, "intake")
    got, reply = await as_(running, token, "POST", "/api/v1/tips", body)
    assert (got, reply["errcode"]) == (status, errcode), reply
    assert "555" not in reply["error"]
    assert await tip_rows(running) == 0


async def test_bad_desk_calls(running: RunningNode) -> None:
    (token,) = await tokens(running, "intake,verifier,publisher")
    _, body = await as_(running, token, "POST", "/api/v1/tips", TIP)
    tip_id = body["id"]
    cases = [
        ("GET", "/api/v1/tips/01JD0000000000000000000000", None, 404, "AVISA_NOT_FOUND"),
        ("GET", "/api/v1/tips/999", None, 404, "AVISA_NOT_FOUND"),
        ("GET", "/api/v1/tips?state=closed", None, 400, "AVISA_BAD_QUERY"),
        ("GET", "/api/v1/tips?limit=0", None, 400, "AVISA_BAD_QUERY"),
        ("POST", f"/api/v1/tips/{tip_id}/outcome", {"outcome": "maybe"}, 400, "AVISA_BAD_REQUEST"),
        ("POST", f"/api/v1/tips/{tip_id}/claim", {"note": "x" * 1001}, 400, "AVISA_BAD_REQUEST"),
        ("POST", f"/api/v1/tips/{tip_id}/claim", {"note": "a\u0007"}, 400, "AVISA_BAD_REQUEST"),
        ("POST", f"/api/v1/tips/{tip_id}/publish", {"certainty": "sure"}, 400, "AVISA_BAD_REQUEST"),
    ]  # fmt: skip
    for method, path, payload, status, errcode in cases:
        got, reply = await as_(running, token, method, path, payload)
        assert (got, reply["errcode"]) == (status, errcode), (path, reply)
    await as_(running, token, "POST", f"/api/v1/tips/{tip_id}/claim")
    got, reply = await as_(running, token, "POST", f"/api/v1/tips/{tip_id}/outcome",
                           {"outcome": "duplicate"})  # fmt: skip
    assert (got, reply["errcode"]) == (400, "AVISA_BAD_REQUEST")
    got, reply = await as_(running, token, "POST", f"/api/v1/tips/{tip_id}/outcome",
                           {"outcome": "duplicate", "duplicate_of": tip_id})  # fmt: skip
    assert (got, reply["errcode"]) == (400, "AVISA_BAD_REQUEST")
    shown = await running.node.desk.get(tip_id)
    assert shown.state == "claimed" and len(shown.history) == 1
    async with running.http.get(running.url + "/api/v1/tips") as reply:
        assert reply.status == 401


# --- the public form ----------------------------------------------------------


async def form_post(running: RunningNode, fields: dict[str, str], lang: str = "es"):  # type: ignore[no-untyped-def]
    fields = {"t": await report_token(running.http, running.url), **fields}
    async with running.http.post(f"{running.url}/report?lang={lang}", data=fields) as reply:
        return reply.status, await reply.text()


async def test_form_is_bilingual_plain_html(running: RunningNode) -> None:
    for lang, words in (("es", "¿Qué vio?"), ("en", "What did you see?")):
        async with running.http.get(f"{running.url}/report?lang={lang}") as reply:
            page = await reply.text()
            assert reply.status == 200 and reply.headers["Cache-Control"] == "no-store"
            assert "script-src" not in reply.headers["Content-Security-Policy"]
        assert words in page and f'<html lang="{lang}">' in page
        assert "<script" not in page and 'method="post"' in page
    async with running.http.get(f"{running.url}/report") as reply:
        assert '<html lang="es">' in await reply.text()


async def test_form_post_stores_a_web_tip_and_the_receipt_names_no_id(
    running: RunningNode,
) -> None:
    status, page = await form_post(
        running,
        {"text": "Tres agentes <b>ICE</b>", "place": "Calle 5 y Cooper",
         "zip": "93030", "when": "30", "agency": "ice", "contact": PHONE},
    )  # fmt: skip
    assert status == 200 and "Gracias" in page
    (shown,) = await running.node.desk.listing()
    assert (shown.channel, shown.language, shown.where.codes) == ("web", "es", ["zip:93030"])
    assert shown.text == "Tres agentes <b>ICE</b>" and shown.agencies == ["ice"]
    assert shown.observed_at is not None
    assert shown.id not in page and re.search(r"[0-9A-HJKMNP-TV-Z]{26}", page) is None
    assert str(shown.number) not in re.sub(r"<[^>]*>", "", page).split()


async def test_form_errors_escape_what_was_typed(running: RunningNode) -> None:
    status, page = await form_post(
        running, {"text": "<script>alert(1)</script>", "place": "x", "contact": "nope"}, "en"
    )
    assert status == 400 and "does not look valid" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    status, page = await form_post(running, {"text": "", "place": "x"})
    assert status == 400
    assert await tip_rows(running) == 0


async def test_a_flood_from_one_client_is_mostly_429_and_changes_nothing_else(
    running: RunningNode,
) -> None:
    fields = {"text": "flood", "place": "here"}
    # One token per post of a round: the 10 a client may send are all in the first round.
    tokens = [await report_token(running.http, running.url) for _ in range(100)]
    statuses: list[int] = []
    connector = aiohttp.TCPConnector(limit=50)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def post(token: str) -> None:
            async with http.post(running.url + "/report", data={**fields, "t": token}) as reply:
                await reply.read()
                statuses.append(reply.status)

        for _ in range(100):
            await asyncio.gather(*(post(token) for token in tokens))
    assert len(statuses) == 10_000
    # The form lets a client post report_per_hour (10) times; the desk files the first
    # tips_per_sender_hour (3) of them (one client is one sender) and refuses the rest.
    desk = running.node.config.desk
    per_hour, allowed = desk.report_per_hour, desk.tips_per_sender_hour
    assert statuses.count(200) == allowed and statuses.count(429) == 10_000 - allowed
    assert await tip_rows(running) == allowed
    alerts = await running.node.db.read(
        lambda c: c.execute("SELECT count(*) FROM alerts").fetchone()
    )
    assert alerts == (0,)
    metrics = "\n".join(running.node.desk.metrics_lines())
    assert f'detail="AVISA_RATE_LIMITED"}} {10_000 - per_hour}' in metrics
    assert "127.0.0.1" not in metrics


def test_limiter_refills_forgets_and_stays_bounded() -> None:
    now = [0.0]
    limiter = ClientLimiter(per_hour=2, max_clients=3, monotonic=lambda: now[0])
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    now[0] += 1800
    assert limiter.allow("a") and not limiter.allow("a")
    for client in ("b", "c", "d", "e"):
        limiter.allow(client)
    assert len(limiter) == 3  # "a" fell out: bounded, least recently used first
    # Only keyed hashes are held: never the client's text itself.
    assert "a" not in limiter._buckets and b"a" not in limiter._buckets
    assert all(isinstance(key, bytes) and len(key) >= 16 for key in limiter._buckets)


async def test_tip_published_on_one_node_arrives_as_an_alert_and_nothing_of_the_tip(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with members(tmp_path, clock, ["net-a", "net-b"]) as net:
        a, b = net["net-a"], net["net-b"]
        await trusts(a, b)
        await trusts(b, a)
        marker = "Quetzal7Marker camioneta blanca"
        status, body = await a.call(
            "POST", "/api/v1/tips", json={**TIP, "text": marker, "contact": PHONE}
        )
        assert status == 201
        tip_id = body["id"]
        await a.call("POST", f"/api/v1/tips/{tip_id}/claim")
        await a.call("POST", f"/api/v1/tips/{tip_id}/outcome", json={"outcome": "confirmed"})
        status, published = await a.call("POST", f"/api/v1/tips/{tip_id}/publish", json={})
        assert status == 201, published

        async def arrived() -> bool:
            return await b.alert(published["id"]) is not None

        await wait_for(arrived, what="the alert at net-b")
        assert await b.node.db.read(
            lambda c: c.execute("SELECT count(*) FROM tips").fetchone()
        ) == (0,)
        files = [p for p in b.data_dir.iterdir() if p.name.startswith("avisa.db")]
        for path in files:
            data = path.read_bytes()
            for needle in (b"Quetzal7Marker", tip_id.encode(), b"5550143", b"555-0143"):
                assert needle not in data, (path.name, needle)
            assert base64.b64encode(b"Quetzal7Marker")[:12] not in data
