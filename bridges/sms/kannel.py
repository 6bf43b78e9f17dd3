"""The Kannel backend: ``cgi-bin/sendsms`` out, ``post-url`` and ``dlr-url`` in.

Out: one GET to smsbox's ``sendsms`` per text, UTF-8, ``coding=0`` (GSM-7)
or ``coding=2`` (UCS-2) as ``bridges.sms.gsm`` chose, ``dlr-mask=31`` and a
``dlr-url`` that names the queue row, so every delivery report (and, after a
crash, the carrier's acceptance of a message we were not sure was sent) is
matched to its row. Kannel answers 202 (or 200) when it queued the message;
what any other answer means is ``bridges.sms.gateway.failure``'s (5xx and
timeouts are retried, other 4xx are refused for good).

In: Kannel's ``sms-service`` posts each text to
``POST /sms/v1/kannel/{secret}?from=%p&to=%P&id=%I`` with the text as the
body and its charset in ``Content-Type`` (``mo-recode = true`` turns UCS-2
into UTF-8 where it can). A body Kannel marks binary (``X-Kannel-Coding: 1``,
``application/octet-stream``) or with a UDH (``X-Kannel-UDH``) is not text:
it is acknowledged and otherwise ignored. Delivery reports come to
``/sms/v1/kannel/{secret}/report?ref=ROW&status=%d&reply=%A``.
"""

from __future__ import annotations

from aiohttp import web

from bridges.sms.gateway import (
    HttpGateway,
    Inbound,
    Outgoing,
    Report,
    ReportState,
    decode_text,
    opted_out,
    query_one,
    read_webhook,
    report_ref,
    required,
)
from relay.core.errors import BadInput
from relay.runtime.httpio import ascii_count

CODING = {"gsm7": "0", "ucs2": "2"}
DLR_MASK = "31"  # delivered, failed, buffered, submitted to the SMSC, rejected by it
_DLR_STATES: dict[int, ReportState] = {1: "delivered", 2: "failed", 16: "failed"}
MAX_SEGMENTS_ASKED = 10


class KannelGateway(HttpGateway):
    name = "kannel"

    def report_url(self, queue_id: int) -> str:
        return super().report_url(queue_id) + "&status=%d&reply=%A"

    async def send(self, message: Outgoing) -> str:
        settings = self.settings
        params = {
            "username": settings.account,
            "password": settings.password,
            "from": settings.sender,
            "to": message.to,
            "text": message.text,
            "charset": "UTF-8",
            "coding": CODING[message.coding],
            "dlr-mask": DLR_MASK,
            "dlr-url": self.report_url(message.queue_id),
            "max-messages": str(MAX_SEGMENTS_ASKED),
        }
        answer = await self.call("GET", settings.url, params=params)
        self.check(answer, answer.text, opted_out=opted_out(answer.text))
        return f"kannel:{message.queue_id}"

    async def read_message(self, request: web.Request) -> Inbound:
        sender = required(query_one(request, "from", "AVISA_BAD_SMS"), "from")
        mo_id = required(query_one(request, "id", "AVISA_BAD_SMS"), "id")
        body = await read_webhook(request)
        binary = (
            request.headers.get("X-Kannel-Coding") == "1"
            or "X-Kannel-UDH" in request.headers
            or request.content_type == "application/octet-stream"
        )
        return Inbound(mo_id, sender, None if binary else decode_text(body, request.charset))

    async def read_report(self, request: web.Request) -> Report:
        ref = report_ref(request)
        status = ascii_count(query_one(request, "status", "AVISA_BAD_DLR"))
        if status is None:
            raise BadInput("AVISA_BAD_DLR", "ref and status must be numbers")
        detail = query_one(request, "reply", "AVISA_BAD_DLR")[:200]
        state = _DLR_STATES.get(status, "sent")
        return Report(ref, state, f"dlr {status}", state == "failed" and opted_out(detail))

    # An empty 200 body to a text: with max-messages = 0 Kannel sends no reply of its
    # own. 200 to any report: Kannel retries any other answer, and a report for a message
    # the node no longer knows (purged, or never sent by it) has nothing to retry for.
