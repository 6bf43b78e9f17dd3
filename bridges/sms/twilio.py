"""A Twilio-compatible backend: the Messages API out, signed webhooks in.

Out: ``POST {api}/2010-04-01/Accounts/{sid}/Messages.json`` with ``To``,
``From``, ``Body`` and a ``StatusCallback`` naming the queue row, HTTP Basic
auth (account SID, auth token). 201 with the message's ``sid`` is success;
other statuses mean what ``bridges.sms.gateway.failure`` says (429 waits
``Retry-After``, 5xx and timeouts are retried, a 4xx is refused); a 4xx
whose error ``code`` is 21610 (the number texted STOP to the carrier) is
refused as an opt-out.

In: ``POST /sms/v1/twilio/{secret}`` (an incoming text: ``MessageSid``,
``From``, ``Body``) and ``POST /sms/v1/twilio/{secret}/report?ref=ROW`` (a
status callback: ``MessageStatus``, ``ErrorCode``). Both must carry a valid
``X-Twilio-Signature``: base64 of HMAC-SHA1, keyed with the auth token, over
the full URL the service called followed by every form field's name and
value in name order. The URL is rebuilt from the node's public URL (what was
configured at the provider), not from the request's Host header. The reply
is an empty TwiML ``<Response/>``: answers go out through the queue.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from bridges.sms.gateway import (
    MAX_TEXT_CHARS,
    Answer,
    HttpGateway,
    Inbound,
    Outgoing,
    Report,
    ReportState,
    opted_out,
    read_webhook_form,
    report_ref,
    required,
)
from relay.core.errors import Forbidden, TransportError

OPT_OUT_CODES = {"21610"}
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
_STATES: dict[str, ReportState] = {
    "delivered": "delivered",
    "undelivered": "failed",
    "failed": "failed",
    "sent": "sent",
}


def signature(auth_token: str, url: str, form: Mapping[str, str]) -> str:
    """Twilio's request signature for ``url`` and the POSTed ``form``."""
    data = url + "".join(name + form[name] for name in sorted(form))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class TwilioGateway(HttpGateway):
    name = "twilio"

    def client_headers(self) -> dict[str, str]:
        login = f"{self.settings.account}:{self.settings.password}"
        return {"Authorization": "Basic " + base64.b64encode(login.encode()).decode()}

    async def send(self, message: Outgoing) -> str:
        settings = self.settings
        url = f"{settings.url.rstrip('/')}/2010-04-01/Accounts/{settings.account}/Messages.json"
        form = {
            "To": message.to,
            "From": settings.sender,
            "Body": message.text,
            "StatusCallback": self.report_url(message.queue_id),
        }
        answer = await self.call("POST", url, data=form)
        resource = _resource(answer)
        code, words = str(resource.get("code", "")), str(resource.get("message", ""))
        refused = code in OPT_OUT_CODES or opted_out(words)
        self.check(answer, f"code {code}", opted_out=refused)
        sid = resource.get("sid")
        if not isinstance(sid, str):  # a 2xx that names no message: not known to be sent
            raise TransportError(f"twilio answered {answer.status} without a sid")
        return sid[:64]

    async def read_message(self, request: web.Request) -> Inbound:
        form = await self._verified(request, "")
        sender = required(form.get("From", ""), "From")
        sid = required(form.get("MessageSid", ""), "MessageSid")
        media = form.get("NumMedia", "0")
        text = form.get("Body", "")[:MAX_TEXT_CHARS]
        return Inbound(sid, sender, text if media in ("", "0") or form.get("Body") else None)

    async def read_report(self, request: web.Request) -> Report | None:
        ref = report_ref(request)  # before the signature: a URL we never gave out is refused
        form = await self._verified(request, f"/report?ref={ref}")
        state = _STATES.get(form.get("MessageStatus", ""))
        if state is None:
            return None
        code = form.get("ErrorCode", "")
        detail = f"twilio {form.get('MessageStatus')} {code}".strip()
        if code in OPT_OUT_CODES:
            return Report(ref, "failed", detail, opted_out=True)
        return Report(ref, state, detail)

    def message_reply(self, outcome: str) -> web.StreamResponse:
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    def report_reply(self, known: bool | None) -> web.StreamResponse:
        if known is False:
            return web.Response(status=200, text="unknown")
        return web.Response(status=204)

    async def _verified(self, request: web.Request, suffix: str) -> dict[str, str]:
        """The form fields, once the signature checks out (the secret path already did)."""
        form = await read_webhook_form(request)
        expected = signature(self.settings.password, self.webhook_url(suffix), form)
        given = request.headers.get("X-Twilio-Signature", "")
        # Not ASCII (a header's bytes arrive as text that may not even encode back): no match.
        if not given.isascii() or not hmac.compare_digest(expected.encode(), given.encode()):
            raise Forbidden("X-Twilio-Signature does not match", errcode="AVISA_BAD_SIGNATURE")
        return form


def _resource(answer: Answer) -> dict[str, Any]:
    """The JSON object Twilio answered with; anything else reads as an empty one."""
    try:
        value = json.loads(answer.body) if answer.body else {}
    except ValueError:  # not JSON (or not UTF-8): judged by its status alone
        return {}
    return value if isinstance(value, dict) else {}
