"""The Twilio-compatible backend against a local stand-in of the Messages API.

The stand-in follows Twilio's documented shapes: ``POST
/2010-04-01/Accounts/{sid}/Messages.json`` with Basic auth and a form body,
answering 201 with a JSON message resource (``sid``, ``status``), 429 with
``Retry-After`` when told to, 400 with ``{"code": 21610}`` for a number that
texted STOP to the carrier. It plays the webhooks too: incoming texts and
status callbacks, signed with ``X-Twilio-Signature`` the way Twilio signs.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from bridges.sms.twilio import signature
from relay.runtime.clock import FakeClock
from tests.sms.kit import PHONE, SECRET, Line, start_line

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token-for-tests"


@dataclass
class StandIn:
    messages: list[dict[str, str]] = field(default_factory=list)
    busy: int = 0  # answer 429 this many times
    opted_out: set[str] = field(default_factory=set)
    url: str = ""

    async def create(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != expected or request.match_info["sid"] != SID:
            return web.json_response(
                {"code": 20003, "message": "Authenticate", "status": 401}, status=401
            )
        if self.busy:
            self.busy -= 1
            return web.json_response(
                {"code": 20429, "message": "Too Many Requests", "status": 429},
                status=429,
                headers={"Retry-After": "1"},
            )
        form = dict(await request.post())
        if form["To"] in self.opted_out:
            return web.json_response(
                {
                    "code": 21610,
                    "message": "Attempt to send to unsubscribed recipient",
                    "status": 400,
                },
                status=400,
            )
        sid = f"SM{len(self.messages):032x}"
        self.messages.append({**{k: str(v) for k, v in form.items()}, "sid": sid})
        return web.json_response(
            {"sid": sid, "status": "queued", "to": form["To"], "body": form["Body"]}, status=201
        )


@pytest.fixture
async def world(tmp_path: Path, clock: FakeClock) -> AsyncIterator[tuple[Line, StandIn]]:
    stand_in = StandIn()
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", stand_in.create)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    extra = f'account_sid = "{SID}"\nretry_max = "1s"'
    line = await start_line(
        tmp_path,
        clock,
        with_kannel=False,
        gateway="twilio",
        extra=extra,
        sendsms_url=f"http://127.0.0.1:{port}",
        password=TOKEN,
    )
    try:
        yield line, stand_in
    finally:
        await line.stop()
        await runner.cleanup()


async def webhook(
    line: Line, path: str, form: dict[str, str], *, sign_with: str = TOKEN
) -> tuple[int, bytes]:
    url = f"{line.url}/sms/v1/twilio/{SECRET}{path}"
    headers = {"X-Twilio-Signature": signature(sign_with, url, form)}
    async with line.http.post(url, data=form, headers=headers) as r:
        return r.status, await r.read()


async def wait_messages(line: Line, stand_in: StandIn, count: int) -> list[dict[str, str]]:
    from tests.helpers import wait_for

    await wait_for(lambda: len(stand_in.messages) >= count, timeout=20, what=f"{count} messages")
    return stand_in.messages


async def test_incoming_signed_texts_and_outgoing_messages(world: tuple[Line, StandIn]) -> None:
    line, stand_in = world
    form = {
        "MessageSid": "SM1",
        "From": PHONE,
        "To": "+18055550100",
        "Body": "ALERT",
        "NumMedia": "0",
    }
    status, body = await webhook(line, "", form)
    assert status == 200 and body.startswith(b"<?xml") and b"<Response>" in body
    (welcome,) = await wait_messages(line, stand_in, 1)
    assert welcome["To"] == PHONE and welcome["From"] == "24587"
    assert welcome["Body"].startswith("Avisa: subscribed to verified alerts for your area")
    assert welcome["StatusCallback"].endswith("/report?ref=1")

    await line.publish()
    _, alert = await wait_messages(line, stand_in, 2)
    assert alert["Body"].startswith("CONFIRMED ALERT: Sighting.")
    callback = alert["StatusCallback"].removeprefix(f"{line.url}/sms/v1/twilio/{SECRET}")
    status, _ = await webhook(
        line, callback, {"MessageSid": alert["sid"], "MessageStatus": "delivered"}
    )
    assert status == 204
    counts = await line.wait_counts(lambda c: c["delivered"] == 1)
    assert counts["subscribers"] == 1


async def test_bad_signatures_and_replays_change_nothing(world: tuple[Line, StandIn]) -> None:
    line, stand_in = world
    form = {"MessageSid": "SM9", "From": PHONE, "To": "+18055550100", "Body": "ALERT"}
    status, body = await webhook(line, "", form, sign_with="not-the-token")
    assert status == 403 and b"AVISA_BAD_SIGNATURE" in body
    url = f"{line.url}/sms/v1/twilio/{SECRET}"
    async with line.http.post(url, data=form) as r:  # unsigned
        assert r.status == 403
    async with line.http.post(f"{line.url}/sms/v1/twilio/wrong", data=form) as r:
        assert r.status == 404
    assert (await line.counts())["subscribers"] == 0
    assert (await webhook(line, "", form))[0] == 200
    assert (await webhook(line, "", form))[0] == 200  # the same MessageSid again
    await wait_messages(line, stand_in, 1)
    assert (await line.counts())["subscribers"] == 1
    status, body = await webhook(line, "/report?ref=999", {"MessageStatus": "delivered"})
    assert status == 200 and body == b"unknown"
    assert len(stand_in.messages) == 1


async def test_rate_limits_wait_and_carrier_opt_out_unsubscribes(
    world: tuple[Line, StandIn],
) -> None:
    line, stand_in = world
    stand_in.busy = 2
    form = {"MessageSid": "SM2", "From": PHONE, "To": "+18055550100", "Body": "ALERT"}
    assert (await webhook(line, "", form))[0] == 200
    await wait_messages(line, stand_in, 1)
    assert line.sms.stats.retried >= 2
    stand_in.opted_out.add(PHONE)
    await line.publish()
    await line.wait_counts(lambda c: c["subscribers"] == 0)
    assert line.sms.stats.opted_out == 1 and len(stand_in.messages) == 1
