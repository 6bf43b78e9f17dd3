"""The Kannel backend: ``cgi-bin/sendsms`` out, ``post-url`` and ``dlr-url`` in.

Out: one GET to smsbox's ``sendsms`` per text, UTF-8, ``coding=0`` (GSM-7)
or ``coding=2`` (UCS-2) as ``bridges.sms.gsm`` chose, ``dlr-mask=31`` and a
``dlr-url`` that names the queue row, so every delivery report (and, after a
crash, the carrier's acceptance of a message we were not sure was sent) is
matched to its row. Kannel answers 202 (or 200) when it queued the message;
503 and timeouts are retried; other 4xx are refused for good.

In: Kannel's ``sms-service`` posts each text to
``POST /sms/v1/kannel/{secret}?from=%p&to=%P&id=%I`` with the text as the
body and its charset in ``Content-Type`` (``mo-recode = true`` turns UCS-2
into UTF-8 where it can). A body Kannel marks binary (``X-Kannel-Coding: 1``,
``application/octet-stream``) or with a UDH (``X-Kannel-UDH``) is not text:
it is acknowledged and otherwise ignored. Delivery reports come to
``/sms/v1/kannel/{secret}/report?ref=ROW&status=%d&reply=%A``.
"""

from __future__ import annotations

from urllib.parse import quote

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
    decode_text,
    opted_out,
    query_one,
    report_ref,
)
from relay.core.errors import TransportError
from relay.runtime.httpio import ascii_count

CODING = {"gsm7": "0", "ucs2": "2"}
DLR_MASK = "31"  # delivered, failed, buffered, submitted to the SMSC, rejected by it
_DLR_STATES: dict[str, ReportState] = {"1": "delivered", "2": "failed", "16": "failed"}
TIMEOUT_S = 15.0
MAX_SEGMENTS_ASKED = 10


class KannelGateway:
    name = "kannel"

    def __init__(
        self,
        sendsms_url: str,
        username: str,
        password: str,
        sender: str,
        secret: str,
        callback_base: str,
    ) -> None:
        self.sendsms_url = sendsms_url
        self.username = username
        self.password = password
        self.sender = sender
        self.secret = secret
        self.callback_base = callback_base.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
                connector=aiohttp.TCPConnector(limit=32),
            )
        return self._session

    def dlr_url(self, queue_id: int) -> str:
        return (
            f"{self.callback_base}/sms/v1/kannel/{quote(self.secret, safe='')}/report"
            f"?ref={queue_id}&status=%d&reply=%A"
        )

    async def send(self, message: Outgoing) -> str:
        params = {
            "username": self.username,
            "password": self.password,
            "from": self.sender,
            "to": message.to,
            "text": message.text,
            "charset": "UTF-8",
            "coding": CODING[message.coding],
            "dlr-mask": DLR_MASK,
            "dlr-url": self.dlr_url(message.queue_id),
            "max-messages": str(MAX_SEGMENTS_ASKED),
        }
        try:
            async with self._client().get(self.sendsms_url, params=params) as response:
                answer = (await response.content.read(2000)).decode("utf-8", "replace").strip()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TransportError(f"kannel unreachable: {type(exc).__name__}") from None
        if status in (200, 202):
            return f"kannel:{message.queue_id}"
        if status == 503 or status >= 500:
            raise (
                RateLimited(f"kannel answered {status}", 1.0)
                if status == 503
                else (TransportError(f"kannel answered {status}"))
            )
        raise Refused(f"kannel refused ({status}): {answer[:100]}", opted_out=opted_out(answer))

    async def on_message(self, request: web.Request, sink: InboundSink) -> web.StreamResponse:
        return await _mo(request, sink)

    async def on_report(self, request: web.Request, sink: InboundSink) -> web.StreamResponse:
        return await _dlr(request, sink)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _mo(request: web.Request, sink: InboundSink) -> web.StreamResponse:
    sender = query_one(request, "from", "AVISA_BAD_SMS")
    mo_id = query_one(request, "id", "AVISA_BAD_SMS")
    if not sender or not mo_id or len(mo_id) > 100:
        return bad_request("AVISA_BAD_SMS", "from and id (1-100 characters) are required")
    if (request.content_length or 0) > MAX_INBOUND_BYTES:
        return web.json_response(
            {"errcode": "AVISA_TOO_LARGE", "error": "message body over 8 KiB"}, status=413
        )
    body = await request.content.read(MAX_INBOUND_BYTES + 1)
    if len(body) > MAX_INBOUND_BYTES:
        return web.json_response(
            {"errcode": "AVISA_TOO_LARGE", "error": "message body over 8 KiB"}, status=413
        )
    binary = (
        request.headers.get("X-Kannel-Coding") == "1"
        or "X-Kannel-UDH" in request.headers
        or request.content_type == "application/octet-stream"
    )
    text = None if binary else decode_text(body, request.charset)
    outcome = await sink.received(Inbound(mo_id, sender, text))
    # An empty 200 body: with max-messages = 0 Kannel sends no reply of its own.
    return web.Response(status=200, text="", headers={"X-Avisa-Outcome": outcome})


async def _dlr(request: web.Request, sink: InboundSink) -> web.StreamResponse:
    ref = report_ref(request)
    status = ascii_count(query_one(request, "status", "AVISA_BAD_DLR"))
    if status is None:
        return bad_request("AVISA_BAD_DLR", "ref and status must be numbers")
    detail = query_one(request, "reply", "AVISA_BAD_DLR")[:200]
    state: ReportState = _DLR_STATES.get(str(status), "sent")
    report = Report(ref, state, f"dlr {status}", opted_out=state == "failed" and opted_out(detail))
    known = await sink.reported(report)
    # 200 either way: Kannel retries any other answer, and a report for a message
    # the node no longer knows (purged, or never sent by it) has nothing to retry for.
    return web.Response(status=200, text="" if known else "unknown")
