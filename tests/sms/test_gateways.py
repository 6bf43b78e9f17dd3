"""One table of cases that every SMS backend runs (courier's ``handlertest``; issue 31).

Each backend is described once, as a ``Spec``: what its gateway answers to a
good send and to an opt-out, how a phone's text and a delivery report reach
its webhooks, and its words for each report state. Every case below then runs
for every backend in ``tests.sms.gatewayspecs.SPECS`` (a third backend adds one
``Spec``; ``JsonGateway`` there is one, whole, to show that a new gateway is one small
module):

- **sending** through the backend to a stand-in of its gateway (a real
  aiohttp server on 127.0.0.1:0 speaking the gateway's shapes, because
  Twilio's API cannot run here and Kannel's sendsms cannot be made to answer
  429 or hang): the text arrives intact (accents, ñ, an emoji); 5xx,
  timeouts and an unreachable gateway are retried (``TransportError``), 429
  and a 503 with ``Retry-After`` wait (``RateLimited``, capped), any other
  4xx is refused for good (``Refused``), as an opt-out when the gateway says
  so; and, for Kannel, through the real Kannel to ``fakesmsc``;
- **webhooks**, served by a real aiohttp server with the node's error
  middleware: an inbound text (non-ASCII intact), a report of each state, a
  bad ``ref``, a missing sender, an oversized body (413) and a trickling one
  (408, at httpio's deadline) each get the answer the contract says, and a
  refused request hands nothing to the sink; Twilio's badly signed requests
  are refused with 403.

The sink records what the backend handed over: the gateway contract ends
there (the bridge behind it has its own tests, with a real node).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bridges.base import RateLimited
from bridges.sms import gateway as gw
from bridges.sms.bridge import gateway_class
from bridges.sms.gateway import (
    GatewaySettings,
    HttpGateway,
    Inbound,
    Outgoing,
    Refused,
    Report,
    ReportState,
)
from bridges.sms.localkannel import FakeSmsc, Kannel
from relay.core.errors import TransportError
from relay.runtime import httpio
from tests.adversarial.kit import raw_exchange, request_head
from tests.sms.gatewayspecs import (
    ODD_REFS,
    PHONE,
    SECRET,
    SENDER,
    SID,
    SPECS,
    TEXT,
    TOKEN,
    TWILIO,
    Call,
    Spec,
    twilio_call,
)
from tests.sms.kit import need_kannel

KNOWN_ROWS = {1, 2, 3}  # the rows the sink says it knows


@dataclass
class StandIn:
    """The gateway's send API: answers from ``script`` (then ``accepted``), records sends."""

    spec: Spec
    script: list[tuple[int, Any, dict[str, str]] | None] = field(default_factory=list)
    sent: list[dict[str, str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path != self.spec.api_path:
            return web.Response(status=404)
        form: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            form = await request.json()
        elif request.method == "POST":
            form = dict(await request.post())
        self.sent.append({name: str(value) for name, value in form.items()})
        entry = self.script.pop(0) if self.script else (*self.spec.accepted, {})
        if entry is None:  # hang until the test is over
            await self.release.wait()
            return web.Response(status=503)
        status, body, headers = entry
        if isinstance(body, dict):
            return web.json_response(body, status=status, headers=headers)
        return web.Response(status=status, text=body, headers=headers)


@dataclass
class Sink:
    messages: list[Inbound] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)

    async def received(self, message: Inbound) -> str:
        self.messages.append(message)
        return "recorded"

    async def reported(self, report: Report) -> bool:
        self.reports.append(report)
        return report.queue_id in KNOWN_ROWS


@dataclass
class World:
    spec: Spec
    gateway: HttpGateway
    stand_in: StandIn
    sink: Sink
    base: str  # the webhook's URL, secret included
    port: int
    http: aiohttp.ClientSession

    async def send(self, text: str = TEXT, queue_id: int = 1) -> str:
        return await self.gateway.send(Outgoing(queue_id, PHONE, text, "ucs2"))

    async def call(self, call: Call) -> tuple[int, bytes]:
        async with self.http.request(
            call.method, call.url, headers=call.headers, data=call.body
        ) as response:
            return response.status, await response.read()


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


def _webhooks(world: Callable[[], World]) -> web.Application:
    app = web.Application(middlewares=[httpio.error_middleware(lambda errcode, status: None)])

    async def message(request: web.Request) -> web.StreamResponse:
        return await world().gateway.on_message(request, world().sink)

    async def report(request: web.Request) -> web.StreamResponse:
        return await world().gateway.on_report(request, world().sink)

    app.router.add_post("/sms/v1/{backend}/{secret}", message)
    app.router.add_route("*", "/sms/v1/{backend}/{secret}/report", report)
    return app


@pytest.fixture(params=SPECS, ids=lambda spec: spec.name)
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    spec: Spec = request.param
    stand_in = StandIn(spec)
    api = web.Application()
    api.router.add_route("*", "/{tail:.*}", stand_in.handle)
    api_runner, api_port = await _serve(api)
    holder: list[World] = []
    hooks_runner, hooks_port = await _serve(_webhooks(lambda: holder[0]))
    callback_base = f"http://127.0.0.1:{hooks_port}"
    url = f"http://127.0.0.1:{api_port}{spec.url_path}"
    settings = GatewaySettings(url, spec.account, spec.password, SENDER, SECRET)
    gateway = (spec.cls or gateway_class(spec.name))(settings, callback_base)
    base = f"{callback_base}/sms/v1/{spec.name}/{SECRET}"
    http = aiohttp.ClientSession()
    holder.append(World(spec, gateway, stand_in, Sink(), base, hooks_port, http))
    try:
        yield holder[0]
    finally:
        stand_in.release.set()
        await gateway.close()
        await http.close()
        await hooks_runner.cleanup()
        await api_runner.cleanup()


# --- sending ---------------------------------------------------------------------------


async def test_send_hands_the_text_over_intact(world: World) -> None:
    ref = await world.send()
    (sent,) = world.stand_in.sent
    assert world.spec.sent_text(sent) == TEXT
    assert ref and PHONE not in ref
    # The report URL the gateway is given names the row, under the secret path.
    assert f"/sms/v1/{world.spec.name}/{SECRET}/report?ref=1" in str(sent)


@pytest.mark.parametrize(
    ("status", "headers", "error", "wait"),
    [
        (500, {}, TransportError, None),
        (502, {}, TransportError, None),
        (503, {}, TransportError, None),
        (503, {"Retry-After": "7"}, RateLimited, 7.0),
        (429, {"Retry-After": "3"}, RateLimited, 3.0),
        (429, {"Retry-After": "²"}, RateLimited, 1.0),
        (429, {"Retry-After": "99999"}, RateLimited, gw.MAX_WAIT_S),
        (429, {}, RateLimited, 1.0),
        (400, {}, Refused, None),
        (404, {}, Refused, None),
    ],
)
async def test_gateway_statuses_map_to_retry_wait_or_refuse(
    world: World, status: int, headers: dict[str, str], error: type[Exception], wait: float | None
) -> None:
    world.stand_in.script.append((status, "no", headers))
    with pytest.raises(error) as raised:
        await world.send()
    if error is TransportError:  # retried with backoff, not waited for
        assert not isinstance(raised.value, RateLimited)
    if isinstance(raised.value, RateLimited):
        assert raised.value.retry_after == wait
    if isinstance(raised.value, Refused):
        assert not raised.value.opted_out
    assert await world.send() != ""  # the next send goes through as usual


async def test_a_carrier_opt_out_is_refused_as_one(world: World) -> None:
    status, body = world.spec.opted_out
    world.stand_in.script.append((status, body, {}))
    with pytest.raises(Refused) as raised:
        await world.send()
    assert raised.value.opted_out


async def test_a_gateway_that_hangs_or_is_gone_is_retried(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gw, "TIMEOUT_S", 0.5)
    world.stand_in.script.append(None)
    with pytest.raises(TransportError, match="unreachable: "):
        await world.send()
    await world.gateway.close()
    settings = world.gateway.settings
    gone = GatewaySettings(
        "http://127.0.0.1:9/x", settings.account, settings.password, SENDER, SECRET
    )
    other = type(world.gateway)(gone, world.gateway.callback_base)
    try:
        with pytest.raises(TransportError, match="unreachable: "):
            await other.send(Outgoing(1, PHONE, TEXT, "ucs2"))
    finally:
        await other.close()


async def test_through_the_real_kannel_to_the_phone_network(tmp_path: Path) -> None:
    need_kannel()
    kannel = Kannel(tmp_path / "kannel", post_url="")
    await asyncio.to_thread(kannel.start)
    phones = FakeSmsc(kannel)
    settings = GatewaySettings(kannel.sendsms_url, kannel.username, kannel.password, SENDER, SECRET)
    gateway = gateway_class("kannel")(settings, "http://127.0.0.1:9")
    try:
        assert await gateway.send(Outgoing(1, PHONE, TEXT, "ucs2")) == "kannel:1"
        (mt,) = await phones.wait_for(1, to=PHONE)
        assert mt.text == TEXT
        bad = GatewaySettings(kannel.sendsms_url, kannel.username, "wrong", SENDER, SECRET)
        refusing = gateway_class("kannel")(bad, "http://127.0.0.1:9")
        with pytest.raises(Refused):  # Kannel's 403 to a wrong password: never retried
            await refusing.send(Outgoing(2, PHONE, TEXT, "ucs2"))
        await refusing.close()
    finally:
        await gateway.close()
        phones.stop()
        kannel.stop()


# --- webhooks --------------------------------------------------------------------------


async def test_an_inbound_text_arrives_intact(world: World) -> None:
    status, _ = await world.call(world.spec.mo(world.base, PHONE, "mo-1", TEXT))
    assert status == 200
    assert world.sink.messages == [Inbound("mo-1", PHONE, TEXT)]


@pytest.mark.parametrize("state", ["delivered", "failed", "sent"])
async def test_each_report_state_is_read(world: World, state: ReportState) -> None:
    status, _ = await world.call(world.spec.report(world.base, "2", world.spec.states[state]))
    assert 200 <= status < 300
    (report,) = world.sink.reports
    assert (report.queue_id, report.state, report.opted_out) == (2, state, False)


async def test_a_report_for_a_forgotten_row_is_not_retried(world: World) -> None:
    word = world.spec.states["delivered"]
    status, body = await world.call(world.spec.report(world.base, "999", word))
    assert (status, body) == (200, b"unknown")


@pytest.mark.parametrize("ref", ODD_REFS, ids=range(len(ODD_REFS)))
async def test_a_report_with_a_bad_ref_is_refused(world: World, ref: str) -> None:
    word = world.spec.states["delivered"]
    status, body = await world.call(world.spec.report(world.base, ref, word))
    assert status == 400 and b"AVISA_BAD_DLR" in body
    assert world.sink.reports == []


@pytest.mark.parametrize(("sender", "mo_id"), [("", "mo-2"), (PHONE, ""), (PHONE, "x" * 101)])
async def test_a_text_without_sender_or_id_is_refused(
    world: World, sender: str, mo_id: str
) -> None:
    status, body = await world.call(world.spec.mo(world.base, sender, mo_id, "ALERTA"))
    assert status == 400 and b"AVISA_BAD_SMS" in body
    assert world.sink.messages == []


async def test_an_oversized_body_is_refused(world: World) -> None:
    call = world.spec.mo(world.base, PHONE, "mo-3", "A" * (gw.MAX_INBOUND_BYTES + 1))
    status, body = await world.call(call)
    assert status == 413 and b"AVISA_TOO_LARGE" in body
    assert world.sink.messages == []


async def test_a_trickling_body_is_cut_off_at_the_deadline(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(httpio, "BODY_DEADLINE_S", 0.5)
    call = world.spec.mo(world.base, PHONE, "mo-4", "ALERTA " * 40)
    path = call.url.removeprefix(f"http://127.0.0.1:{world.port}")
    head = request_head(call.method, path, call.headers, len(call.body))
    parts = [call.body[n : n + 4] for n in range(0, len(call.body), 4)]
    reply = await raw_exchange(world.port, head, parts, pause=0.1, timeout=20)
    assert (reply.status, reply.json()["errcode"]) == (408, "AVISA_TIMEOUT")
    assert reply.seconds < 5
    assert world.sink.messages == []


async def test_signatures_that_do_not_match_are_refused(world: World) -> None:
    if world.spec is not TWILIO:
        pytest.skip("this backend's webhooks carry no signature (the secret path is the check)")
    good = world.spec.mo(world.base, PHONE, "mo-5", TEXT)
    forged = twilio_call(world.base, {"MessageSid": "mo-5", "From": PHONE, "Body": TEXT}, "x")
    unsigned = Call(
        good.method, good.url, {"Content-Type": good.headers["Content-Type"]}, good.body
    )
    elsewhere = twilio_call(world.base + "/report?ref=1", {"MessageStatus": "delivered"})
    moved = Call(elsewhere.method, world.base + "/report?ref=2", elsewhere.headers, elsewhere.body)
    for call in (forged, unsigned, moved):
        status, body = await world.call(call)
        assert status == 403 and b"AVISA_BAD_SIGNATURE" in body
    assert world.sink.messages == [] and world.sink.reports == []
    assert (await world.call(good))[0] == 200


def test_basic_auth_is_the_account_and_token() -> None:
    settings = GatewaySettings("http://x", SID, TOKEN, SENDER, SECRET)
    headers = gateway_class("twilio")(settings, "http://node").client_headers()
    assert (
        headers["Authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    )


@pytest.mark.parametrize(
    ("detail", "out"),
    [
        ("NACK/0x0000000b/blocked", True),
        ("Number is opted out", True),
        ("opt-out", True),
        ("OPTOUT", True),
        ("error 21610", True),
        ("the recipient unsubscribed", True),
        ("Authorization failed for sendsms", False),
        ("Invalid 'To' Phone Number", False),
        ("options outside range", False),
    ],
)
def test_carrier_words_for_an_opt_out(detail: str, out: bool) -> None:
    assert gw.opted_out(detail) is out
