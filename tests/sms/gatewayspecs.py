"""The SMS backends as ``tests/sms/test_gateways.py``'s shared table sees them.

A ``Spec`` says, for one backend, what its gateway answers to a good send and to
a carrier opt-out, how its webhooks are called (an inbound text, a delivery
report) and its word for each report state. ``SPECS`` lists the backends the
table runs: Kannel and Twilio, and ``JsonGateway``, a third backend written
whole here (a gateway that takes JSON and calls back with forms, the shape of
courier's "external" channel) to show that a new gateway is one small module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from bridges.sms import gateway as gw
from bridges.sms.gateway import HttpGateway, Inbound, Outgoing, Report, ReportState
from bridges.sms.twilio import signature

SECRET = "gateway-table-secret"
SENDER = "24587"
PHONE = "+18055550134"
SID = "AC" + "0123456789abcdef" * 2
TOKEN = "gateway-table-token"
TEXT = "Redada en la calle Ñandú: ¡quédense adentro! 🚨"
ODD_REFS = ["", "²", "١٢", "-1", "1x", "9" * 19, "1.0"]


@dataclass(frozen=True)
class Call:
    """One request as a gateway would make it to the node's webhook."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Spec:
    """One backend, as the table sees it."""

    name: str
    account: str
    password: str
    api_path: str  # where the stand-in takes a send
    accepted: tuple[int, Any]  # status and body of a good send's answer
    opted_out: tuple[int, Any]  # a refusal the carrier gives for a number that said STOP
    states: dict[ReportState, str]  # the gateway's word for each report state
    sent_text: Callable[[dict[str, str]], str]  # the text in a recorded send
    mo: Callable[[str, str, str, str], Call]  # (webhook base, sender, id, text)
    report: Callable[[str, str, str], Call]  # (webhook base, ref, the gateway's state word)
    url_path: str = ""  # appended to the stand-in's URL in the settings
    cls: type[HttpGateway] | None = None  # None: the one the config names


def _kannel_mo(base: str, sender: str, mo_id: str, text: str) -> Call:
    query = urlencode({"from": sender, "to": SENDER, "id": mo_id})
    headers = {"Content-Type": 'text/plain; charset="UTF-8"'}
    return Call("POST", f"{base}?{query}", headers, text.encode())


def _kannel_report(base: str, ref: str, word: str) -> Call:
    query = f"ref={quote(ref)}&status={word}&reply=" + quote("ACK/")
    return Call("GET", f"{base}/report?{query}", {}, b"")


def twilio_call(url: str, form: dict[str, str], token: str = TOKEN) -> Call:
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature(token, url, form),
    }
    return Call("POST", url, headers, urlencode(form).encode())


def _twilio_mo(base: str, sender: str, mo_id: str, text: str) -> Call:
    form = {"MessageSid": mo_id, "From": sender, "To": SENDER, "Body": text, "NumMedia": "0"}
    return twilio_call(base, form)


def _twilio_report(base: str, ref: str, word: str) -> Call:
    return twilio_call(
        f"{base}/report?ref={quote(ref)}", {"MessageSid": "SM1", "MessageStatus": word}
    )


KANNEL = Spec(
    name="kannel",
    account="avisa",
    password="kannel-table-pw",
    api_path="/cgi-bin/sendsms",
    accepted=(202, "0: Accepted for delivery"),
    opted_out=(403, "Number is blocked (opt-out)"),
    states={"delivered": "1", "failed": "16", "sent": "8"},
    sent_text=lambda sent: sent["text"],
    mo=_kannel_mo,
    report=_kannel_report,
    url_path="/cgi-bin/sendsms",
)
TWILIO = Spec(
    name="twilio",
    account=SID,
    password=TOKEN,
    api_path=f"/2010-04-01/Accounts/{SID}/Messages.json",
    accepted=(201, {"sid": "SM" + "0" * 32, "status": "queued"}),
    opted_out=(400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient"}),
    states={"delivered": "delivered", "failed": "undelivered", "sent": "sent"},
    sent_text=lambda sent: sent["Body"],
    mo=_twilio_mo,
    report=_twilio_report,
)


class JsonGateway(HttpGateway):
    """A third backend, whole: a gateway that takes JSON and calls back with forms
    (the shape of courier's "external" channel). The base carries the rest."""

    name = "json"

    async def send(self, message: Outgoing) -> str:
        body = {"to": message.to, "from": self.settings.sender, "text": message.text}
        body["report_url"] = self.report_url(message.queue_id)
        answer = await self.call("POST", self.settings.url, json=body)
        self.check(answer, answer.text, opted_out=gw.opted_out(answer.text))
        return f"json:{message.queue_id}"

    async def read_message(self, request: web.Request) -> Inbound:
        form = await gw.read_webhook_form(request)
        mo_id, sender = (
            gw.required(form.get("id", ""), "id"),
            gw.required(form.get("from", ""), "from"),
        )
        return Inbound(mo_id, sender, form.get("text", "")[: gw.MAX_TEXT_CHARS])

    async def read_report(self, request: web.Request) -> Report | None:
        ref = gw.report_ref(request)
        word = gw.query_one(request, "status", "AVISA_BAD_DLR")
        state = JSON_STATES.get(word)
        return None if state is None else Report(ref, state, f"json {word}")


JSON_STATES: dict[str, ReportState] = {"ok": "delivered", "gone": "failed", "out": "sent"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _json_mo(base: str, sender: str, mo_id: str, text: str) -> Call:
    return Call("POST", base, FORM, urlencode({"id": mo_id, "from": sender, "text": text}).encode())


def _json_report(base: str, ref: str, word: str) -> Call:
    return Call("POST", f"{base}/report?ref={quote(ref)}&status={word}", FORM, b"")


JSON = Spec(
    name="json",
    account="",
    password="",
    api_path="/send",
    accepted=(200, {"id": "j1"}),
    opted_out=(400, "the recipient opted out"),
    states={state: word for word, state in JSON_STATES.items()},
    sent_text=lambda sent: sent["text"],
    mo=_json_mo,
    report=_json_report,
    url_path="/send",
    cls=JsonGateway,
)
SPECS = [KANNEL, TWILIO, JSON]
