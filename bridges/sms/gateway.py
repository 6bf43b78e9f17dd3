"""The one interface every SMS backend implements, and the base they share.

A backend does two things: ``send`` one text, and read the requests its
gateway calls back with (an inbound text, a delivery report), handing what
they carry to an ``InboundSink`` (the bridge). The routes themselves are the
composition root's (``relay.http.app``); the bridge checks the secret before
a backend sees a request.

``HttpGateway`` is what every backend shares, so that a backend holds only
what its gateway says differently:

- **settings**: one typed ``GatewaySettings`` (URL, account, password,
  sender, webhook secret), built from ``[bridges.sms]`` by ``make_gateway``;
- **the HTTP client**: one lazily opened session with a total deadline of
  ``TIMEOUT_S`` and a bounded pool, closed by ``close``; ``call`` reads at
  most ``ANSWER_BYTES`` of an answer; a timeout or connection error is a
  ``TransportError``;
- **one error mapping** (``failure``, the shape of courier's
  ``handlers.ErrorFromResponse``): 2xx is success; 429, or 503 with a
  ``Retry-After``, is ``RateLimited`` (the wait capped at ``MAX_WAIT_S``);
  any other 5xx is a ``TransportError`` (retried with backoff); any other
  status is ``Refused`` (never retried), an opt-out when the backend read one
  in the answer;
- **webhooks**: ``on_message`` and ``on_report`` read the body under
  ``MAX_INBOUND_BYTES`` and ``relay.runtime.httpio``'s deadline (413, 408),
  ask the backend to parse it (``read_message``, ``read_report``: raise
  ``BadInput`` for a 400), hand the result to the sink, and let the backend
  word the answer its gateway expects (``message_reply``, ``report_reply``);
- **URLs**: every route a backend adds lives under
  ``/sms/v1/<backend>/{secret}``; ``report_url`` names the queue row with
  ``?ref=ROW``, which ``report_ref`` reads back.

A third backend is one module with a subclass, a word in ``[bridges.sms]
gateway`` and a branch in ``bridges.sms.bridge.gateway_class`` (docs/sms.md,
"Adding a gateway"); ``tests/sms/test_gateways.py`` runs the same cases on
every backend.

A wrong secret answers 404 exactly as an unknown path would, compared in
constant time. Opt-outs a carrier reports (a blocked number, a number that
texted STOP to the carrier) are ``Refused(opted_out=True)`` or a report with
``opted_out``: the bridge unsubscribes the number.

What a webhook reads must mean one thing to everyone (issue 25): a query
value given twice, a report's ``ref`` that is not ASCII digits (``²`` and
``١٢`` pass ``str.isdigit``; ``int`` refuses the first and reads the second
as 12) are refused with a 400 and an errcode (``query_one``, ``report_ref``).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import quote

import aiohttp
from aiohttp import web

from bridges.base import RateLimited
from relay.core.errors import AvisaError, BadInput, TransportError
from relay.runtime.httpio import ascii_count, read_bounded, read_form

Coding = Literal["gsm7", "ucs2"]
ReportState = Literal["sent", "delivered", "failed"]

# Largest inbound body read: 1,600 characters of UCS-2 with room to spare.
MAX_INBOUND_BYTES = 8 * 1024
MAX_TEXT_CHARS = 1600
MAX_FORM_FIELDS = 64
TIMEOUT_S = 15.0  # one call to the gateway, connection to last byte
ANSWER_BYTES = 64 * 1024  # of a gateway's answer, read at most (a resource echoes the text)
MAX_WAIT_S = 300.0  # the longest Retry-After honoured
POOL = 32
# Words carriers use when a number refuses messages (SMPP/Kannel replies, Twilio 21610).
_OPTED_OUT = re.compile(
    r"opt(?:ed)?.?out|blocked|unsubscribed|blacklist|21610|21614", re.IGNORECASE
)


class Refused(AvisaError):
    """The gateway will never take this message (bad number, blocked, opted out)."""

    def __init__(self, message: str, *, opted_out: bool = False) -> None:
        super().__init__(message)
        self.opted_out = opted_out


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """What a backend is configured with; the secrets come from their files."""

    url: str  # Kannel's sendsms URL, the API's base URL
    account: str  # Kannel's username, Twilio's account SID
    password: str  # Kannel's password, Twilio's auth token
    sender: str  # the short code or number texts come from
    secret: str  # the webhook path's secret


@dataclass(frozen=True, slots=True)
class Outgoing:
    queue_id: int
    to: str  # E.164
    text: str
    coding: Coding


@dataclass(frozen=True, slots=True)
class Inbound:
    """One text from a phone. ``text`` is None when it was binary or had a UDH."""

    mo_id: str
    sender: str
    text: str | None


@dataclass(frozen=True, slots=True)
class Report:
    queue_id: int
    state: ReportState
    detail: str
    opted_out: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """A gateway's answer to ``send``: its status, the first bytes, ``Retry-After``."""

    status: int
    body: bytes
    retry_after: str | None = None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace").strip()


class InboundSink(Protocol):
    async def received(self, message: Inbound) -> str:
        """Handle one inbound text; returns what happened (for the gateway's log)."""

    async def reported(self, report: Report) -> bool:
        """Record a delivery report; False when the message is unknown."""


class Gateway(Protocol):
    name: str
    callback_base: str

    async def send(self, message: Outgoing) -> str:
        """Hand one text to the gateway; returns the gateway's id for it."""

    async def on_message(self, request: web.Request, sink: InboundSink) -> web.StreamResponse:
        """``POST /sms/v1/<name>/{secret}``: one inbound text."""

    async def on_report(self, request: web.Request, sink: InboundSink) -> web.StreamResponse:
        """``GET|POST /sms/v1/<name>/{secret}/report``: one delivery report."""

    async def close(self) -> None: ...


def failure(name: str, answer: Answer, refusal: str, *, opted_out: bool) -> AvisaError | None:
    """The one map from a gateway's HTTP status to what the sender does; None: sent."""
    status = answer.status
    if 200 <= status < 300:
        return None
    if status == 429 or (status == 503 and answer.retry_after is not None):
        wait = ascii_count(answer.retry_after)
        return RateLimited(f"{name} asked us to slow down ({status})", _wait(wait))
    if status >= 500:
        return TransportError(f"{name} answered {status}")
    return Refused(f"{name} refused ({status}): {refusal[:100]}", opted_out=opted_out)


def _wait(seconds: int | None) -> float:
    return 1.0 if seconds is None else float(min(max(seconds, 1), MAX_WAIT_S))


class HttpGateway:
    """What every backend shares; a backend sets ``name`` and fills in the rest."""

    name: str  # the backend's word in config and in its webhook paths

    def __init__(self, settings: GatewaySettings, callback_base: str) -> None:
        self.settings = settings
        self.callback_base = callback_base.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    # --- out ------------------------------------------------------------------------

    async def send(self, message: Outgoing) -> str:
        raise NotImplementedError

    def client_headers(self) -> dict[str, str]:
        """Headers on every call to the gateway (an ``Authorization``, say)."""
        return {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
                connector=aiohttp.TCPConnector(limit=POOL),
                headers=self.client_headers(),
            )
        return self._session

    async def call(self, method: str, url: str, **kwargs: Any) -> Answer:
        """One request to the gateway; unreachable or too slow is a ``TransportError``."""
        try:
            async with self._client().request(method, url, **kwargs) as response:
                body = await response.content.read(ANSWER_BYTES)
                return Answer(response.status, body, response.headers.get("Retry-After"))
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TransportError(f"{self.name} unreachable: {type(exc).__name__}") from None

    def check(self, answer: Answer, refusal: str, *, opted_out: bool = False) -> None:
        """Raise what ``failure`` maps a failed answer to."""
        error = failure(self.name, answer, refusal, opted_out=opted_out)
        if error is not None:
            raise error

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- URLs the gateway calls back -----------------------------------------------

    def webhook_url(self, path: str = "") -> str:
        secret = quote(self.settings.secret, safe="")
        return f"{self.callback_base}/sms/v1/{self.name}/{secret}{path}"

    def report_url(self, queue_id: int) -> str:
        return self.webhook_url(f"/report?ref={queue_id}")

    # --- in ---------------------------------------------------------------------------

    async def on_message(self, request: web.Request, sink: InboundSink) -> web.StreamResponse:
        message = await self.read_message(request)
        return self.message_reply(await sink.received(message))

    async def on_report(self, request: web.Request, sink: InboundSink) -> web.StreamResponse:
        report = await self.read_report(request)
        return self.report_reply(None if report is None else await sink.reported(report))

    async def read_message(self, request: web.Request) -> Inbound:
        """The text a webhook carries; ``BadInput`` (a 400) when it is not one."""
        raise NotImplementedError

    async def read_report(self, request: web.Request) -> Report | None:
        """The report a webhook carries; None for a state worth no record."""
        raise NotImplementedError

    def message_reply(self, outcome: str) -> web.StreamResponse:
        return web.Response(status=200, text="", headers={"X-Avisa-Outcome": outcome})

    def report_reply(self, known: bool | None) -> web.StreamResponse:
        """200 either way: a report for a message the node forgot is not worth a retry."""
        return web.Response(status=200, text="" if known in (True, None) else "unknown")


async def read_webhook(request: web.Request) -> bytes:
    """A webhook's body: at most ``MAX_INBOUND_BYTES`` (413), before the deadline (408)."""
    return await read_bounded(request, MAX_INBOUND_BYTES)


async def read_webhook_form(request: web.Request) -> dict[str, str]:
    """A form webhook's fields (bounded as ``read_webhook``); a field given twice: 400."""
    form = await read_form(request, MAX_INBOUND_BYTES, MAX_FORM_FIELDS)
    if len(set(form)) != len(form):
        raise BadInput("AVISA_BAD_SMS", "a form field is given more than once")
    return dict(form)


def required(value: str, what: str) -> str:
    """An id or number a webhook must carry: 1-100 characters, else a 400."""
    if not value or len(value) > 100:
        raise BadInput("AVISA_BAD_SMS", f"{what} (1-100 characters) is required")
    return value


def opted_out(detail: str) -> bool:
    return bool(_OPTED_OUT.search(detail))


def secret_matches(given: str, secret: str) -> bool:
    return hmac.compare_digest(given.encode(), secret.encode())


def not_found() -> web.HTTPNotFound:
    """What a wrong secret gets: the same answer as a path that does not exist."""
    return web.HTTPNotFound()


def decode_text(body: bytes, charset: str | None) -> str:
    """The text of a message body; undecodable bytes become U+FFFD, never an error."""
    name = (charset or "utf-8").strip('"').lower()
    if name in ("ucs-2", "ucs2", "utf-16be", "utf-16"):
        name = "utf-16-be"
    try:
        text = body.decode(name, errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    return text[:MAX_TEXT_CHARS]


def query_one(request: web.Request, name: str, errcode: str) -> str:
    """The one value of ``name`` in the query ("" when absent); twice is refused."""
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise BadInput(errcode, f"{name} is given more than once")
    return values[0] if values else ""


def report_ref(request: web.Request) -> int:
    """The queue row a delivery report names (``?ref=``): ASCII digits, at most 18."""
    ref = ascii_count(query_one(request, "ref", "AVISA_BAD_DLR"))
    if ref is None:
        raise BadInput("AVISA_BAD_DLR", "ref must be a number (1-18 ASCII digits)")
    return ref
