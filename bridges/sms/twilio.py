"""A Twilio-compatible backend: the Messages API out, signed webhooks in.

Out: ``POST {api}/2010-04-01/Accounts/{sid}/Messages.json`` with ``To``,
``From``, ``Body`` and a ``StatusCallback`` naming the queue row, HTTP Basic
auth (account SID, auth token). 201 with the message's ``sid`` is success;
429 waits ``Retry-After``; 5xx and timeouts are retried; a 4xx whose error
``code`` is 21610 (the number texted STOP to the carrier) or 21614 (not a
mobile number) is refused, the first as an opt-out.

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
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote

import aiohttp
from aiohttp import web

from bridges.base import RateLimited
from bridges.sms.gateway import (
    MAX_INBOUND_BYTES,
    Inbound,
    InboundSink,
    Outgoing,
    Refused,
    Report,
    ReportState,
    bad_request,
    opted_out,
    report_ref,
)
from relay.core.errors import BadInput, Forbidden, TransportError

TIMEOUT_S = 15.0
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


class TwilioGateway:
    name = "twilio"

    def __init__(
        self,
        api_url: str,
        account_sid: str,
        auth_token: str,
        sender: str,
        secret: str,
        callback_base: str,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.sender = sender
        self.secret = secret
        self.callback_base = callback_base.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            basic = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
                headers={"Authorization": f"Basic {basic}"},
            )
        return self._session

    def _base(self) -> str:
        return f"{self.callback_base}/sms/v1/twilio/{quote(self.secret, safe='')}"

    async def send(self, message: Outgoing) -> str:
        url = f"{self.api_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        form = {
            "To": message.to,
            "From": self.sender,
            "Body": message.text,
            "StatusCallback": f"{self._base()}/report?ref={message.queue_id}",
        }
        try:
            async with self._client().post(url, data=form) as response:
                status = response.status
                answer = await response.json(content_type=None) if status != 204 else {}
                retry_after = response.headers.get("Retry-After", "1")
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise TransportError(f"twilio unreachable: {type(exc).__name__}") from None
        if not isinstance(answer, dict):
            answer = {}
        if status in (200, 201) and isinstance(answer.get("sid"), str):
            return str(answer["sid"])[:64]
        if status == 429:
            wait = float(retry_after) if retry_after.isdigit() else 1.0
            raise RateLimited("twilio asked us to slow down", min(wait, 300.0))
        if status >= 500 or status in (200, 201):
            raise TransportError(f"twilio answered {status}")
        code = str(answer.get("code", ""))
        raise Refused(
            f"twilio refused ({status}, code {code})",
            opted_out=code in OPT_OUT_CODES or opted_out(str(answer.get("message", ""))),
        )

    async def on_message(self, request: web.Request, sink: InboundSink) -> web.StreamResponse:
        form = await self._verified(request, "")
        sender, sid = form.get("From", ""), form.get("MessageSid", "")
        if not sender or not sid or len(sid) > 100:
            return bad_request("AVISA_BAD_SMS", "From and MessageSid are required")
        media = form.get("NumMedia", "0")
        text = form.get("Body", "")[:1600] if media in ("", "0") or form.get("Body") else None
        await sink.received(Inbound(sid, sender, text))
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    async def on_report(self, request: web.Request, sink: InboundSink) -> web.StreamResponse:
        ref = report_ref(request)  # before the signature: a URL we never gave out is refused
        form = await self._verified(request, f"/report?ref={ref}")
        state = _STATES.get(form.get("MessageStatus", ""))
        if state is None:
            return web.Response(status=204)
        code = form.get("ErrorCode", "")
        detail = f"twilio {form.get('MessageStatus')} {code}".strip()
        report = Report(ref, state, detail, opted_out=code in OPT_OUT_CODES)
        if report.opted_out:
            report = Report(report.queue_id, "failed", detail, opted_out=True)
        known = await sink.reported(report)
        # 200 either way: a callback for a message the node forgot is not worth a retry.
        return web.Response(status=204 if known else 200, text=None if known else "unknown")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _verified(self, request: web.Request, suffix: str) -> dict[str, str]:
        """The form fields, once the signature checks out (the secret path already did)."""
        if (request.content_length or 0) > MAX_INBOUND_BYTES:
            raise web.HTTPRequestEntityTooLarge(MAX_INBOUND_BYTES, request.content_length or 0)
        raw = await request.content.read(MAX_INBOUND_BYTES + 1)
        if len(raw) > MAX_INBOUND_BYTES:
            raise web.HTTPRequestEntityTooLarge(MAX_INBOUND_BYTES, len(raw))
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
        except (UnicodeDecodeError, ValueError):
            raise BadInput("AVISA_BAD_SMS", "form body is not UTF-8 form data") from None
        form = {name: value for name, value in pairs}
        expected = signature(self.auth_token, self._base() + suffix, form)
        given = request.headers.get("X-Twilio-Signature", "")
        # Not ASCII (a header's bytes arrive as text that may not even encode back): no match.
        if not given.isascii() or not hmac.compare_digest(expected.encode(), given.encode()):
            raise Forbidden("X-Twilio-Signature does not match", errcode="AVISA_BAD_SIGNATURE")
        return form
