"""A hostile catalogue against every HTTP route of a real ``avisa run`` (issue 25, hole 7).

The routes are not listed by hand: they are read from the node's own router
(the app ``relay.http.app.build_app`` builds, and the desk's sub-application),
so a route added tomorrow is attacked tomorrow. Each route, with its own
method, gets every input of ``HOSTILE``: bytes that are not UTF-8 in
``Authorization``, the desk cookie, ``Origin``, ``Host``, ``X-Forwarded-For``
and other headers; forms with too many fields or bad bytes; broken JSON;
queries with superscript digits and bad escapes. Requests go out over a raw
socket, byte for byte as written here (an HTTP client library would refuse to
send most of them).

What must hold: every answer is a 4xx or a harmless 2xx/3xx, never a 5xx; no
answer quotes a traceback; the node's log holds no traceback and no
"internal error"; nothing was stored (no tip, no alert, no session). The
figures are printed (``pytest -s``) for the issue's closing note.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
from collections import Counter
from pathlib import Path

from aiohttp import web

from relay.cli import datadir
from relay.federation.service import Federation
from relay.http.app import build_app
from relay.runtime.clock import FakeClock
from relay.runtime.node import Node
from tests.adversarial.kit import figure
from tests.helpers import T0
from tests.test_federation_process import Proc, free_port

# A value for each path parameter the node's routes use (anything else gets "x").
PARAMS = {
    "network": "ventura",
    "ulid": "01JEXAMPLE0000000000000000",
    "tip": "1",
    "verdict": "accept",
    "filename": "desk.css",
    "txn_id": "txn1",
    "backend": "kannel",
    "secret": "not-the-secret",
    "what": "report",
}
MANY_FIELDS = "&".join(f"f{n}=1" for n in range(200)) + "&token=x&csrf=x&t=x"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


Case = tuple[str, list[tuple[bytes, bytes]], bytes, bytes]


def hostile() -> list[Case]:
    """(name, extra headers, query suffix, body) for each hostile input."""
    bad = b"\xff\xfe\x80"
    form, json = FORM.encode(), JSON.encode()
    return [
        ("bearer-bytes", [(b"Authorization", b"Bearer " + bad)], b"", b""),
        ("bearer-utf8", [(b"Authorization", "Bearer tōken²".encode())], b"", b""),
        (
            "bearer-two",
            [(b"Authorization", b"Bearer a"), (b"Authorization", b"Bearer b")],
            b"",
            b"",
        ),
        ("bearer-huge", [(b"Authorization", b"Bearer " + b"a" * 8000)], b"", b""),
        ("cookie-bytes", [(b"Cookie", b"avisa_desk=" + bad + b"; avisa_lang=" + bad)], b"", b""),
        ("cookie-utf8", [(b"Cookie", "avisa_desk=sesión; avisa_lang=ñ".encode())], b"", b""),
        ("cookie-broken", [(b"Cookie", b'avisa_desk="unterminated; =; ;;; a')], b"", b""),
        ("origin-bytes", [(b"Origin", b"http://" + bad)], b"", b""),
        ("origin-utf8", [(b"Origin", "https://évil.example".encode())], b"", b""),
        ("origin-broken", [(b"Origin", b"http://[::1")], b"", b""),
        ("origin-port", [(b"Origin", b"http://127.0.0.1:99999")], b"", b""),
        ("host-bytes", [(b"Host", bad)], b"", b""),
        ("host-utf8", [(b"Host", "nodo.ñ".encode())], b"", b""),
        ("host-broken", [(b"Host", b"[::1")], b"", b""),
        ("host-port", [(b"Host", b"127.0.0.1:notaport")], b"", b""),
        ("xff-bytes", [(b"X-Forwarded-For", bad + b", 10.0.0.1")], b"", b""),
        (
            "xff-junk",
            [(b"X-Forwarded-For", b", , ::ffff:1.2.3.4, [::1]:80, %, 999.1.1.1")],
            b"",
            b"",
        ),
        ("fetch-site-bytes", [(b"Sec-Fetch-Site", bad)], b"", b""),
        ("accept-language", [(b"Accept-Language", bad + b";q=x, es;q=2")], b"", b""),
        ("hx-bytes", [(b"HX-Request", bad)], b"", b""),
        ("twilio-signature", [(b"X-Twilio-Signature", "firmä".encode())], b"", b""),
        ("proto-bytes", [(b"X-Forwarded-Proto", bad)], b"", b""),
        ("content-type-bytes", [(b"Content-Type", bad)], b"", b"a=1"),
        ("form-many-fields", [(b"Content-Type", form)], b"", MANY_FIELDS.encode()),
        ("form-bytes", [(b"Content-Type", form)], b"", b"text=" + bad + b"&place=%ff&t=%C2"),
        ("form-utf8-escapes", [(b"Content-Type", form)], b"", b"token=%ff%fe&csrf=%C2%B2"),
        ("json-broken", [(b"Content-Type", json)], b"", b'{"text": "a", '),
        ("json-bytes", [(b"Content-Type", json)], b"", b'{"text": "' + bad + b'"}'),
        ("json-deep", [(b"Content-Type", json)], b"", b"[" * 5000 + b"]" * 5000),
        ("json-channel", [(b"Content-Type", json)], b"", b'{"channel": "sms", "text": 1}'),
        (
            "form-valid-csrf",
            [(b"Content-Type", form)],
            b"",
            b"csrf=CSRF&outcome=%C2%B2&note=" + b"n" * 5000 + b"&kind=x&expires=-1&languages=zz"
            b"&lang_es=1&headline_es=" + bad + b"&duplicate_of=%00&token=" + bad,
        ),
        ("query-superscript", [], b"limit=%C2%B2&ref=%C2%B2&after=%D9%A3&lang=%ff", b""),
        ("query-bytes", [], b"state=%ff%fe&cluster=\xff&active=\xc2", b""),
        ("query-huge", [], b"area=" + b"9" * 4000, b""),
        ("query-repeated", [], b"&".join([b"limit=1"] * 500), b""),
    ]


def routes_of(app: web.Application) -> list[tuple[str, str]]:
    """(method, path template) of every route, sub-applications included."""
    found: list[tuple[str, str]] = []
    for resource in app.router.resources():
        if isinstance(resource, web.PrefixedSubAppResource):
            found += routes_of(resource._app)
            continue
        path = resource.canonical
        if isinstance(resource, web.StaticResource):
            path += "/{filename}"
        for route in resource:
            methods = ("GET", "POST") if route.method == "*" else (route.method,)
            found += [(method, path) for method in methods]
    return sorted(set(found))


def concrete(template: str) -> str:
    def value(match: re.Match[str]) -> str:
        return PARAMS.get(match.group(1), "x")

    return re.sub(r"\{([a-z_]+)(?::[^}]*)?\}", value, template)


async def send(port: int, method: str, path: bytes, headers: list[tuple[bytes, bytes]],
               body: bytes) -> tuple[int, bytes]:  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    names = {name.lower() for name, _ in headers}
    lines = [method.encode() + b" " + path + b" HTTP/1.1"]
    if b"host" not in names:
        lines.append(f"Host: 127.0.0.1:{port}".encode())
    lines += [name + b": " + value for name, value in headers]
    lines += [b"Connection: close", f"Content-Length: {len(body)}".encode(), b"", b""]
    writer.write(b"\r\n".join(lines) + body)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=20)
    streaming = b"text/event-stream" in head  # an open stream: its head is the answer
    answer = head + (b"" if streaming else await asyncio.wait_for(reader.read(), timeout=20))
    writer.close()
    status = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    assert status is not None, (method, path, answer[:200])
    return int(status.group(1)), answer


async def sign_in(port: int, token: str) -> tuple[bytes, bytes]:
    """A desk session (cookie header value) and its CSRF token, for the signed-in pass."""
    _, answer = await send(port, "POST", b"/desk/login", [(b"Content-Type", FORM.encode())],
                           f"token={token}".encode())  # fmt: skip
    cookie = re.search(rb"Set-Cookie: (avisa_desk=[^;]+)", answer)
    assert cookie is not None, answer[:500]
    _, page = await send(port, "GET", b"/desk/alerts", [(b"Cookie", cookie.group(1))], b"")
    csrf = re.search(rb'name="csrf" value="([^"]+)"', page)
    assert csrf is not None, page[:500]
    return cookie.group(1), csrf.group(1)


def signed_in(case: Case, bearer: bytes, cookie: bytes, csrf: bytes) -> Case:
    """The case sent by a signed-in operator: the admin token and a desk session, unless the
    case itself attacks that header; a form's CSRF placeholder is the session's."""
    name, headers, query, body = case
    names = {header.lower() for header, _ in headers}
    extra = [(b"Authorization", b"Bearer " + bearer)] if b"authorization" not in names else []
    extra += [(b"Cookie", cookie)] if b"cookie" not in names else []
    return name, headers + extra, query, body.replace(b"CSRF", csrf)


async def test_no_input_gets_a_5xx_or_a_traceback_on_any_route(tmp_path: Path) -> None:
    made = datadir.initialize(tmp_path / "ventura", "ventura", "127.0.0.1:0", clock=FakeClock(T0))
    port = free_port()
    config = made.data_dir / "avisa.toml"
    config.write_text(config.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
    built = Node.load(made.data_dir, FakeClock(T0))
    routes = routes_of(build_app(built, Federation(built)))
    await built.close()
    assert len(routes) >= 40, routes
    proc = Proc(made.data_dir, port, dict(os.environ))
    await proc.start()
    statuses: Counter[int] = Counter()
    bad: list[str] = []
    limit = asyncio.Semaphore(8)

    async def attack(method: str, template: str, case: Case) -> None:
        name, headers, query, body = case
        path = concrete(template).encode() + (b"?" + query if query else b"")
        async with limit:
            status, answer = await send(port, method, path, headers, body)
        statuses[status] += 1
        if status >= 500 or b"Traceback" in answer or b'File "' in answer:
            bad.append(f"{method} {template} {name}: {status} {answer[:300]!r}")

    cases = hostile()
    try:
        anonymous = [(m, t, case) for m, t in routes for case in cases]
        await asyncio.gather(*(attack(*one) for one in anonymous))
        cookie, csrf = await sign_in(port, proc.token)
        bearer = proc.token.encode()
        operator = [
            (m, t, signed_in(case, bearer, cookie, csrf))
            for m, t in routes
            for case in cases
            if t != "/desk/logout"  # a valid CSRF token would sign the pass out
        ]
        await asyncio.gather(*(attack(*one) for one in operator))
    finally:
        proc.stop()
    log = proc.log.read_text()
    figure(
        "hostile_http",
        inputs=len(cases),
        routes=len(routes),
        paths=len({t for _, t in routes}),
        requests=sum(statuses.values()),
        statuses={str(code): n for code, n in sorted(statuses.items())},
        server_errors=sum(n for code, n in statuses.items() if code >= 500),
        tracebacks_in_log=log.count("Traceback"),
    )
    assert not bad, "\n".join(bad[:20])
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]
    conn = sqlite3.connect(f"file:{made.data_dir / 'avisa.db'}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT count(*) FROM tips").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (0,)
    finally:
        conn.close()
