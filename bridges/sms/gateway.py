"""The one interface every SMS backend implements (Kannel, Twilio, the next one).

A backend does two things: ``send`` one text (raising ``RateLimited`` or
``TransportError`` to be retried, ``Refused`` when the gateway will never
take it), and read the requests its gateway calls back with (an inbound text,
a delivery report), handing what they carry to an ``InboundSink`` (the
bridge). The routes themselves are the composition root's
(``relay.http.app``); the bridge checks the secret before a backend sees a
request. Adding a backend is one module with one class
satisfying ``Gateway`` plus a line in ``bridges.sms.bridge.make_gateway``.

Every route a backend adds lives under ``/sms/v1/<backend>/{secret}``: a
wrong secret answers 404 exactly as an unknown path would, compared in
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
from typing import Literal, Protocol

from aiohttp import web

from relay.core.errors import AvisaError, BadInput
from relay.runtime.httpio import ascii_count

Coding = Literal["gsm7", "ucs2"]
ReportState = Literal["sent", "delivered", "failed"]

# Largest inbound body read: 1,600 characters of UCS-2 with room to spare.
MAX_INBOUND_BYTES = 8 * 1024
MAX_TEXT_CHARS = 1600
# Words carriers use when a number refuses messages (SMPP/Kannel replies, Twilio 21610).
_OPTED_OUT = re.compile(r"opt.?out|blocked|unsubscribed|blacklist|21610|21614", re.IGNORECASE)


class Refused(AvisaError):
    """The gateway will never take this message (bad number, blocked, opted out)."""

    def __init__(self, message: str, *, opted_out: bool = False) -> None:
        super().__init__(message)
        self.opted_out = opted_out


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


def opted_out(detail: str) -> bool:
    return bool(_OPTED_OUT.search(detail))


def secret_matches(given: str, secret: str) -> bool:
    return hmac.compare_digest(given.encode(), secret.encode())


def not_found() -> web.HTTPNotFound:
    """What a wrong secret gets: the same answer as a path that does not exist."""
    return web.HTTPNotFound()


def bad_request(errcode: str, message: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=400)


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
