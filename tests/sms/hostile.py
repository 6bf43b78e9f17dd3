"""A hostile catalogue for the text line's webhooks (issue 25, hole 7's SMS inputs).

Each ``Case`` is one raw HTTP request (bytes on a socket, so header bytes
that are not UTF-8 and malformed percent-escapes reach the node as an
attacker would send them) to the Kannel or the Twilio webhooks of an
``avisa run`` node that knows the line's secret. The bar, checked by
``tests/sms/test_hostile.py``: every input is answered 4xx with an errcode,
or accepted harmlessly (200/204: an odd text that is still a text, a report
for a message the node does not know); **0 5xx, 0 tracebacks** in the node's
log; and the refused ones change nothing in the database. Twilio cases are
signed as Twilio signs (``sign=True``), so they reach the code past the
signature check; the unsigned and badly signed ones test the check itself.

``python -m tests.sms.hostile`` prints the catalogue's size by surface.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from bridges.sms.twilio import signature

PHONE = "+18055550134"
# Digits that ``str.isdigit`` accepts and ``int`` refuses or reads differently.
ODD_REFS = [
    "²",
    "١٢",
    "１",
    "",
    " 1",
    "1 ",
    "-1",
    "+1",
    "1.0",
    "1e3",
    "0x1",
    "9" * 19,
    "%ff",
    "%00",
]
ODD_REFS += ["1%0a2", "1;2", "é", "\U0001f6a8", "1" * 300]


@dataclass(frozen=True)
class Case:
    surface: str  # kannel-mo, kannel-dlr, twilio-mo, twilio-dlr
    name: str
    method: str
    target: str  # path and query after the secret, already encoded
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    sign: dict[str, str] | None = None  # Twilio: sign this form for ``target``
    accept: bool = False  # harmlessly accepted (may add a row), rather than refused
    raw_path: bytes | None = None  # the whole request target, instead of the secret's path
    extra: dict[str, object] = field(default_factory=dict)


def _q(**params: str) -> str:
    return "?" + urlencode(params, quote_via=quote) if params else ""


def kannel_cases() -> list[Case]:
    text = ((b"Content-Type", b"text/plain; charset=utf-8"),)
    cases: list[Case] = []
    for n, sender in enumerate(["", "abc", "²", "+" * 64, "9" * 80, "24587", "+1 (805) 555"]):
        target = _q(**{"from": sender, "to": "24587", "id": f"bad-from-{n}"})
        cases.append(Case("kannel-mo", f"from={sender!r}", "POST", target, text, b"HELP"))
    # Full-width digits are the same number to libphonenumber (and so one keyed hash).
    target = _q(**{"from": "+1805555013４", "to": "24587", "id": "wide-from"})
    cases.append(Case("kannel-mo", "full-width digit", "POST", target, text, b"HELP", accept=True))
    for n, dup in enumerate(["from=%2B18055550134&from=%2B18055550135&id=d1", "id=a&id=b&from=x"]):
        cases.append(Case("kannel-mo", f"repeated field {n}", "POST", "?" + dup, text, b"HELP"))
    for n, raw in enumerate(["%ff%fe", "%00", "%0d%0a", "1%2Fx"]):
        target = f"?from={raw}&to=24587&id=raw-from-{n}"
        cases.append(Case("kannel-mo", f"raw from {raw}", "POST", target, text, b"HELP"))
    for mo_id in ["", "x" * 101]:
        target = _q(**{"from": PHONE, "to": "24587", "id": mo_id})
        cases.append(Case("kannel-mo", f"id of {len(mo_id)}", "POST", target, text, b"HELP"))
    for n, mo_id in enumerate(["²", "%ff", "\U0001f6a8", "a\tb"]):
        target = f"?from=%2B18055550134&to=24587&id={quote(mo_id, safe='%')}"
        cases.append(Case("kannel-mo", f"odd id {n}", "POST", target, text, b"HELP", accept=True))
    bodies: list[tuple[str, bytes, tuple[tuple[bytes, bytes], ...]]] = [
        ("invalid utf-8", b"\xc3\x28\xa0\xa1 ICE", text),
        ("NUL and controls", b"ICE\x00\x01\x1b[31m aqui", text),
        ("empty", b"", text),
        ("1601 chars", "ñ".encode() * 1601, text),
        ("utf-16 odd length", b"\x00A\x00", ((b"Content-Type", b"text/plain; charset=utf-16be"),)),
        ("unknown charset", b"HELP", ((b"Content-Type", b"text/plain; charset=x-klingon"),)),
        ("non-ascii charset", b"HELP", ((b"Content-Type", b"text/plain; charset=\xff\xfe"),)),
        ("no content type", b"AYUDA", ()),
        ("json body", b'{"text": "HELP"}', ((b"Content-Type", b"application/json"),)),
        ("odd coding header", b"HELP", (*text, (b"X-Kannel-Coding", "²".encode()))),
        ("odd udh header", b"HELP", (*text, (b"X-Kannel-UDH", b"\xff\xfe"))),
        ("form body", b"text=HELP&from=x", ((b"Content-Type", b"multipart/form-data"),)),
    ]
    for n, (name, body, headers) in enumerate(bodies):
        target = _q(**{"from": PHONE, "to": "24587", "id": f"body-{n}"})
        cases.append(Case("kannel-mo", name, "POST", target, headers, body, accept=True))
    target = _q(**{"from": PHONE, "to": "24587", "id": "huge"})
    cases.append(Case("kannel-mo", "9000-byte body", "POST", target, text, b"x" * 9000))
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        cases.append(Case("kannel-mo", f"{method} on the MO path", method, "", text, b"HELP"))
    for ref in ODD_REFS:
        target = f"/report?ref={quote(ref, safe='%')}&status=1"
        cases.append(Case("kannel-dlr", f"ref={ref[:20]!r}", "GET", target))
    for status in ["²", "", "-1", "1,2", "9" * 40, "%ff", "１"]:
        target = f"/report?ref=1&status={quote(status, safe='%')}"
        cases.append(Case("kannel-dlr", f"status={status[:20]!r}", "GET", target))
    for n, reply in enumerate(["%ff%fe", "x" * 5000, quote("NACK/blocked/²")]):
        target = f"/report?ref=1&status=16&reply={reply}"
        cases.append(Case("kannel-dlr", f"reply {n}", "GET", target, accept=True))
    cases.append(Case("kannel-dlr", "POST report", "POST", "/report?ref=1&status=1", accept=True))
    cases.append(Case("kannel-dlr", "duplicate ref", "GET", "/report?ref=1&ref=2&status=1"))
    return cases


def twilio_cases() -> list[Case]:
    form_type = (b"Content-Type", b"application/x-www-form-urlencoded")
    good = {"MessageSid": "SMh1", "From": PHONE, "To": "+18055550100", "Body": "HELP"}
    cases: list[Case] = []
    for name, value in [
        ("non-ascii", "é".encode()),
        ("raw bytes", b"\xff\xfe\xfd"),
        ("empty", b""),
        ("huge", b"A" * 8000),
        ("control", b"abc\x01def"),
    ]:
        headers = (form_type, (b"X-Twilio-Signature", value))
        cases.append(Case("twilio-mo", f"signature {name}", "POST", "", headers, b"Body=HELP"))
        cases.append(Case("twilio-dlr", f"signature {name}", "POST", "/report?ref=1", headers))
    for name, body in [
        ("invalid utf-8 form", b"Body=\xff\xfe&From=%2B18055550134&MessageSid=SMx"),
        ("bad escape", b"Body=%ff%fe&From=%2B18055550134&MessageSid=SMx2"),
        ("65 fields", "&".join(f"f{n}=1" for n in range(65)).encode()),
        ("9000 bytes", b"Body=" + b"x" * 9000),
        ("not a form", b"\x00\x01\x02"),
    ]:
        cases.append(Case("twilio-mo", name, "POST", "", (form_type,), body, sign={}))
    for name, changes in [
        ("From ²", {"From": "²", "MessageSid": "SMf1"}),
        ("From short code", {"From": "24587", "MessageSid": "SMf2"}),
        ("From empty", {"From": "", "MessageSid": "SMf3"}),
        ("MessageSid 101", {"MessageSid": "S" * 101}),
    ]:
        form = {k: v for k, v in {**good, **changes}.items() if v is not None}
        cases.append(Case("twilio-mo", name, "POST", "", (form_type,), b"", sign=form))
    for name, changes in [
        ("NumMedia ²", {"NumMedia": "²", "MessageSid": "SMa1"}),
        ("Body NUL", {"Body": "ICE\x00aqui", "MessageSid": "SMa2"}),
        ("Body emoji", {"Body": "\U0001f6a8" * 400, "MessageSid": "SMa3"}),
        ("MessageSid ²", {"MessageSid": "²"}),
        ("no Body", {"Body": None, "MessageSid": "SMa4"}),  # as an MMS with no text
    ]:
        form = {k: v for k, v in {**good, **changes}.items() if v is not None}
        cases.append(Case("twilio-mo", name, "POST", "", (form_type,), b"", sign=form, accept=True))
    for ref in ODD_REFS:
        target = f"/report?ref={quote(ref, safe='%')}"
        form = {"MessageSid": "SMr", "MessageStatus": "delivered"}
        cases.append(
            Case("twilio-dlr", f"ref={ref[:20]!r}", "POST", target, (form_type,), sign=form)
        )
    for status in ["²", "", "x" * 300, "delivered\x00"]:
        form = {"MessageSid": "SMs", "MessageStatus": status, "ErrorCode": "²"}
        target = "/report?ref=1"
        cases.append(
            Case(
                "twilio-dlr",
                f"status {status[:10]!r}",
                "POST",
                target,
                (form_type,),
                sign=form,
                accept=True,
            )
        )
    cases.append(Case("twilio-dlr", "GET report unsigned", "GET", "/report?ref=1"))
    return cases


def path_cases(secret: str) -> list[Case]:
    """Odd secrets, backends and path bytes: 404, 405 or 400, never the line's code."""
    cases = []
    for n, path in enumerate(
        [
            b"/sms/v1/%ff/%ff",
            b"/sms/v1/kannel/%ED%A0%80",  # an encoded lone surrogate
            b"/sms/v1/kannel/\xff\xfe",  # raw bytes, not UTF-8
            b"/sms/v1/kannel/%00/report?ref=1&status=1",
            "/sms/v1/kannel/é/report".encode(),
            b"/sms/v1/twilio/%ff%fe/report?ref=1",
            f"/sms/v1/kannel/{secret}%ff".encode(),
            f"/sms/v1/kannel/{secret}/report%ff".encode(),
            f"/sms/v1/kannel/{secret}/report?ref=1&status=1&reply=\xff".encode("latin-1"),
            f"/sms/v1/kannel/{secret.upper()}".encode(),
        ]
    ):
        for method in ("GET", "POST"):
            cases.append(Case("paths", f"path {n} {method}", method, "", raw_path=path))
    return cases


def catalogue(secret: str = "") -> list[Case]:
    return kannel_cases() + twilio_cases() + (path_cases(secret) if secret else [])


def request_bytes(case: Case, host: str, base_path: str, public_base: str, token: str) -> bytes:
    """The raw request; a Twilio case with ``sign`` gets a valid ``X-Twilio-Signature``."""
    body = case.body
    headers = list(case.headers)
    if case.sign is not None:
        if case.sign:
            body = urlencode(case.sign).encode()
        form = dict(case.sign)
        headers.append(
            (b"X-Twilio-Signature", signature(token, public_base + case.target, form).encode())
        )
    target = case.raw_path or f"{base_path}{case.target}".encode()
    lines = [case.method.encode() + b" " + target + b" HTTP/1.1", b"Host: " + host.encode()]
    lines += [name + b": " + value for name, value in headers]
    lines += [b"Content-Length: " + str(len(body)).encode(), b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def send(host: str, port: int, raw: bytes) -> tuple[int, bytes]:
    """Send one raw request; the status and the body of the answer."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 15)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


if __name__ == "__main__":
    counts = Counter(case.surface for case in catalogue("a-secret-for-counting"))
    for surface, count in sorted(counts.items()):
        print(f"{surface:12} {count}")
    print(f"{'total':12} {sum(counts.values())}")
