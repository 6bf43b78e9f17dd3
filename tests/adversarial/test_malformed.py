"""The malformed-input catalogue, against every endpoint that takes a body or a query.

Every entry is sent to a real node over HTTP. The bar is the same for all of
them: a 4xx with ``{"errcode": "AVISA_…", "error": …}``, never a 5xx, the
SQLite database byte-for-byte the same in a full dump before and after, and
``/healthz`` still answering. Federation bodies are signed by a trusted peer
(the signature covers the bad body), so what is tested is the body's
parsing, not the request signature.

Bodies that a server answers before reading them all (10 MB, slow-loris)
go over a raw socket (``kit.raw_exchange``), so the test sees what a real
client sees. The slow-loris deadline is shortened for the test
(``relay.runtime.httpio.BODY_DEADLINE_S``); what is shown is that a trickling body
is cut off with a 408 while the node keeps serving others.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.http import app
from relay.runtime import httpio
from relay.runtime.clock import FakeClock
from tests.adversarial.kit import (
    PEER_KEY,
    Target,
    chunked,
    figure,
    raw_exchange,
    request_head,
    table_rows,
    target_node,
)
from tests.helpers import make_alert, raw_envelope
from tests.test_api import DRAFT

_txn_ids = itertools.count(1)


@pytest.fixture
async def target(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Target]:
    async with target_node(tmp_path, clock) as node:
        yield node


# --- the catalogue ------------------------------------------------------------------


def _add_field(valid: bytes, member: bytes) -> bytes:
    """``valid`` (a JSON object) with one more member appended."""
    if valid.strip() == b"{}":
        return b"{" + member + b"}"
    return valid.rstrip()[:-1] + b", " + member + b"}"


def _duplicate_first_key(valid: bytes) -> bytes:
    first = next(iter(json.loads(valid)), "z")
    return (
        _add_field(_add_field(valid, b'"zz": 1'), b'"zz": 2')
        if first == "z"
        else (_add_field(valid, json.dumps(first).encode() + b": null"))
    )


def _pad_to(valid: bytes, size: int) -> bytes:
    """Still the same JSON, padded with whitespace to exactly ``size`` bytes."""
    return valid.rstrip()[:-1] + b" " * (size - len(valid.rstrip())) + b"}"


Mutation = Callable[[bytes], bytes]
BODY_CASES: list[tuple[str, Mutation]] = [
    ("empty", lambda v: b""),
    ("whitespace only", lambda v: b" \r\n\t "),
    ("not json", lambda v: b"kind=sighting&certainty=confirmed"),
    ("truncated", lambda v: v[:-1]),
    ("trailing garbage", lambda v: v + b"x"),
    ("two documents", lambda v: v + b" " + v),
    ("invalid utf-8", lambda v: _add_field(v, b'"z\xff": 1')),
    ("overlong utf-8", lambda v: _add_field(v, b'"\xc0\xaf": 1')),
    ("utf-8 bom", lambda v: b"\xef\xbb\xbf" + v),
    ("utf-16", lambda v: v.decode().encode("utf-16")),
    ("lone surrogate in value", lambda v: _add_field(v, b'"z": "\\ud800"')),
    ("lone surrogate in key", lambda v: _add_field(v, b'"\\udc00": 1')),
    ("raw control character", lambda v: _add_field(v, b'"z": "\x00"')),
    ("duplicate keys", _duplicate_first_key),
    ("nested 1000 deep (arrays)", lambda v: b"[" * 1000 + b"]" * 1000),
    ("nested 1000 deep (objects)", lambda v: b'{"a":' * 1000 + b"1" + b"}" * 1000),
    ("nested 1000 deep inside", lambda v: _add_field(v, b'"z": ' + b"[" * 1000 + b"]" * 1000)),
    ("NaN", lambda v: _add_field(v, b'"z": NaN')),
    ("Infinity", lambda v: _add_field(v, b'"z": Infinity')),
    ("-Infinity", lambda v: _add_field(v, b'"z": -Infinity')),
    ("2^53", lambda v: _add_field(v, b'"z": 9007199254740992')),
    ("-2^53", lambda v: _add_field(v, b'"z": -9007199254740992')),
    ("5000-digit integer", lambda v: _add_field(v, b'"z": ' + b"7" * 5000)),
    ("-0", lambda v: _add_field(v, b'"z": -0')),
    ("float", lambda v: _add_field(v, b'"z": 1.0')),
    ("exponent", lambda v: _add_field(v, b'"z": 1e3')),
    ("huge exponent", lambda v: _add_field(v, b'"z": 1E400')),
    ("unknown field", lambda v: _add_field(v, b'"reporter_phone": "+1 805 555 0100"')),
    ("null", lambda v: b"null"),
    ("true", lambda v: b"true"),
    ("string", lambda v: b'"hello"'),
    ("number", lambda v: b"1"),
    ("array of the body", lambda v: b"[" + v + b"]"),
]
CONTENT_TYPES = ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", None]


@dataclass
class Endpoint:
    name: str
    method: str
    path: str
    valid: bytes
    federation: bool = False
    takes_no_body: bool = False  # then no body at all is the valid form


async def _endpoints(target: Target) -> list[Endpoint]:
    """Every endpoint that takes a body, each with a valid body to mutate."""
    status, body = await target.api("POST", "/api/v1/alerts", json.dumps(DRAFT).encode())
    assert status == 201, body
    own = json.loads(body)["id"]
    # An alert from the peer outside its speaks_for waits in the review queue.
    outside = make_alert("net-a", codes=("fips:36061",), geohash="dr5ru7")
    txn = b'{"envelopes":[' + raw_envelope(outside, PEER_KEY) + b"]}"
    status, reply = await target.fed("PUT", "/federation/v1/send/setup", txn)
    assert status == 200 and json.loads(reply)["results"][0]["status"] == "held", reply
    cancel = json.dumps({"text": {"en": {"headline": "Withdrawn", "body": ""}}}).encode()
    inside = make_alert("net-a", codes=("fips:06037",))
    tip = {"text": "two vans", "where": {"label": "Colonia", "geohash": "9q4gch"}}
    status, body = await target.api("POST", "/api/v1/tips", json.dumps(tip).encode())
    assert status == 201, body
    tip_path = "/api/v1/tips/" + json.loads(body)["id"]
    status, body = await target.api("POST", tip_path + "/claim", b"{}")
    assert status == 200, body
    status, body = await target.api("POST", tip_path + "/outcome", b'{"outcome": "confirmed"}')
    assert status == 200, body
    return [
        Endpoint("tip", "POST", "/api/v1/tips", json.dumps(tip).encode()),
        # An empty body reads as {} where a note is optional: skipped like "no body".
        Endpoint("tip claim", "POST", tip_path + "/claim", b'{"note": "x"}', False, True),
        Endpoint("tip outcome", "POST", tip_path + "/outcome", b'{"outcome": "confirmed"}'),
        Endpoint(
            "tip publish", "POST", tip_path + "/publish", b'{"expires_in": "2h"}', False, True
        ),
        Endpoint("tip close", "POST", tip_path + "/close", b'{"note": "x"}', False, True),
        Endpoint("publish", "POST", "/api/v1/alerts", json.dumps(DRAFT).encode()),
        Endpoint("update", "POST", f"/api/v1/alerts/{own}/update", json.dumps(DRAFT).encode()),
        Endpoint("cancel", "POST", f"/api/v1/alerts/{own}/cancel", cancel),
        Endpoint("held accept", "POST", f"/api/v1/held/{outside.id}/accept", b"{}", False, True),
        Endpoint("held reject", "POST", f"/api/v1/held/{outside.id}/reject", b"{}", False, True),
        Endpoint(
            "federation send",
            "PUT",
            "/federation/v1/send/",
            b'{"envelopes":[' + raw_envelope(inside, PEER_KEY) + b"]}",
            federation=True,
        ),
    ]


def _federation_only(valid: bytes) -> list[tuple[str, bytes]]:
    envelope = json.loads(valid)["envelopes"][0]
    one = json.dumps(envelope).encode()
    return [
        ("51 envelopes", b'{"envelopes":[' + b",".join([one] * 51) + b"]}"),
        ("envelopes not a list", b'{"envelopes": {"0": ' + one + b"}}"),
        ("envelopes a string", b'{"envelopes": "' + base64.b64encode(one) + b'"}'),
        ("no envelopes member", b"{}"),
        ("65,537-byte body that is no transaction", _pad_to(b'{"envelope": []}', 65_537)),
    ]


def _api_only(valid: bytes) -> list[tuple[str, bytes]]:
    return [("body of 65,537 bytes", _pad_to(valid, 65_537))]


async def _send(
    target: Target, endpoint: Endpoint, body: bytes, content_type: str | None
) -> tuple[int, bytes]:
    path = endpoint.path + (f"t{next(_txn_ids)}" if endpoint.federation else "")
    headers = (
        target.fed_headers(endpoint.method, path, body)
        if endpoint.federation
        else {**target.member.headers(), "Content-Type": "application/json"}
    )
    if content_type is None:
        headers.pop("Content-Type")
    else:
        headers["Content-Type"] = content_type
    async with target.member.http.request(
        endpoint.method, target.member.url + path, data=body, headers=headers
    ) as reply:
        return reply.status, await reply.read()


def _refusal(status: int, body: bytes) -> str | None:
    """The errcode of a proper refusal, or None."""
    if not 400 <= status < 500:
        return None
    try:
        problem = json.loads(body)
    except ValueError:
        return None
    errcode, error = problem.get("errcode"), problem.get("error")
    if isinstance(errcode, str) and errcode.startswith("AVISA_") and isinstance(error, str):
        return errcode
    return None


async def test_malformed_bodies_get_4xx_with_errcode_and_change_nothing(target: Target) -> None:
    endpoints = await _endpoints(target)
    bad: list[str] = []
    tally: Counter[str] = Counter()
    for endpoint in endpoints:
        cases = [
            (name, mutate(endpoint.valid))
            for name, mutate in BODY_CASES
            if not (endpoint.takes_no_body and name == "empty")
        ]
        cases += (
            _federation_only(endpoint.valid) if endpoint.federation else _api_only(endpoint.valid)
        )
        sends = [(name, body, "application/json") for name, body in cases]
        sends += [(f"content type {ct}", endpoint.valid, ct) for ct in CONTENT_TYPES]
        for name, body, content_type in sends:
            before = target.dump()
            status, reply = await _send(target, endpoint, body, content_type)
            tally["sent"] += 1
            tally[f"status {status}"] += 1
            errcode = _refusal(status, reply)
            if errcode is None:
                bad.append(f"{endpoint.name} / {name}: HTTP {status} {reply[:120]!r}")
            if status >= 500:
                tally["5xx"] += 1
            if target.dump() != before:
                tally["store changed"] += 1
                bad.append(f"{endpoint.name} / {name}: the store changed")
            assert await target.healthy(), f"node down after {endpoint.name} / {name}"
    figure(
        "malformed_bodies",
        endpoints=len(endpoints),
        sent=tally["sent"],
        refused_4xx_with_errcode=tally["sent"] - len([b for b in bad if "HTTP" in b]),
        server_errors=tally["5xx"],
        store_changed=tally["store changed"],
        statuses={k: v for k, v in tally.items() if k.startswith("status")},
    )
    assert not bad, "\n".join(bad)


QUERIES = [
    "/api/v1/alerts?active=yes",
    "/api/v1/alerts?active=TRUE",
    "/api/v1/alerts?active=%00",
    "/api/v1/alerts?limit=0",
    "/api/v1/alerts?limit=-1",
    "/api/v1/alerts?limit=1.5",
    "/api/v1/alerts?limit=1e3",
    "/api/v1/alerts?limit=",
    "/api/v1/alerts?limit=%C2%B2",  # superscript two: str.isdigit() says yes, int() says no
    "/api/v1/alerts?limit=%D9%A3",  # Arabic-Indic three: not an ASCII number
    "/api/v1/alerts?limit=" + "9" * 5000,
    "/api/v1/alerts?limit=%FF",
    "/api/v1/alerts?area=" + "9" * 41,
    "/api/v1/tips?state=closed",
    "/api/v1/tips?cluster=yes",
    "/api/v1/tips?limit=%C2%B2",
    "/api/v1/tips?limit=" + "9" * 5000,
    "/api/v1/tips/" + "9" * 30,
    "/api/v1/tips/%00",
    "/api/v1/decisions?limit=0",
    "/api/v1/decisions?limit=%C2%B2",
    "/api/v1/decisions?limit=%D9%A3",
    "/api/v1/decisions?limit=" + "9" * 5000,
    "/api/v1/stream?since=abc",
    "/api/v1/stream?since=-1",
    "/api/v1/stream?since=%C2%B2",
    "/api/v1/stream?since=%D9%A3",
]
FED_QUERIES = [
    "/federation/v1/alerts?since=abc",
    "/federation/v1/alerts?since=-1",
    "/federation/v1/alerts?since=1234567890123456789",
    "/federation/v1/alerts?since=%C2%B2",
    "/federation/v1/alerts?limit=0",
    "/federation/v1/alerts?limit=101",
    "/federation/v1/alerts?limit=%C2%B2",
    "/federation/v1/alerts?limit=%D9%A3",
    "/federation/v1/alerts?limit=" + "9" * 5000,
]


async def _get(target: Target, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """One GET; a reply that does not end (a stream that started) counts as accepted."""
    try:
        async with target.member.http.get(
            target.member.url + path, headers=headers, timeout=aiohttp.ClientTimeout(total=5)
        ) as reply:
            return reply.status, await reply.read()
    except TimeoutError:
        return 200, b"(a stream started)"


async def test_malformed_queries_get_4xx_with_errcode(target: Target) -> None:
    bad: list[str] = []
    before = target.dump()
    sent = 0
    for path in QUERIES:
        status, body = await _get(target, path, target.member.headers())
        sent += 1
        if _refusal(status, body) is None:
            bad.append(f"{path[:80]}: HTTP {status} {body[:100]!r}")
    for resume in ["²", "abc", "-1", "٣"]:
        headers = {**target.member.headers(), "Last-Event-ID": resume}
        status, body = await _get(target, "/api/v1/stream", headers)
        sent += 1
        if _refusal(status, body) is None:
            bad.append(f"Last-Event-ID {resume}: HTTP {status} {body[:100]!r}")
    for path in FED_QUERIES:
        status, body = await target.fed("GET", path)
        sent += 1
        if _refusal(status, body) is None:
            bad.append(f"{path[:80]}: HTTP {status} {body[:100]!r}")
    assert await target.healthy()
    changed = target.dump() != before
    figure("malformed_queries", sent=sent, not_refused=len(bad), store_changed=int(changed))
    assert not bad, "\n".join(bad)
    assert not changed


# --- bodies the server must answer before they end -------------------------------


TEN_MB = 10 * 1024 * 1024


async def test_ten_megabyte_bodies_get_413_before_they_are_read(target: Target) -> None:
    before = target.dump()
    blob = b"[" + b"0," * (TEN_MB // 2 - 1) + b"0]"
    parts = [blob[i : i + 65536] for i in range(0, len(blob), 65536)]
    results = []
    for path, federation in [("/api/v1/alerts", False), ("/federation/v1/send/big1", True)]:
        headers = (
            target.fed_headers("PUT", path, blob)
            if federation
            else {**target.member.headers(), "Content-Type": "application/json"}
        )
        method = "PUT" if federation else "POST"
        for length in (len(blob), None):  # declared up front, and chunked
            body = parts if length is not None else list(chunked(parts))
            reply = await raw_exchange(
                target.port, request_head(method, path, headers, length), body
            )
            results.append((path, length is None, reply.status, reply.json()["errcode"]))
            assert reply.status == 413 and reply.json()["errcode"] == "AVISA_TOO_LARGE", results
        assert await target.healthy()
    assert target.dump() == before
    figure("ten_megabyte_bodies", sent=len(results), refused_413=len(results))


async def test_slow_loris_body_is_cut_off_while_others_are_served(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(httpio, "BODY_DEADLINE_S", 1.0)
    before = target.dump()
    valid = json.dumps(DRAFT).encode()

    async def trickle(method: str, path: str, headers: dict[str, str]) -> tuple[int, str, float]:
        head = request_head(method, path, headers, len(valid))
        reply = await raw_exchange(
            target.port, head, [bytes([b]) for b in valid], pause=0.05, timeout=20
        )
        return reply.status, reply.json()["errcode"], reply.seconds

    txn = b'{"envelopes":[]}'
    slow = [
        asyncio.create_task(
            trickle(
                "POST",
                "/api/v1/alerts",
                {**target.member.headers(), "Content-Type": "application/json"},
            )
        ),
        asyncio.create_task(
            trickle(
                "PUT",
                "/federation/v1/send/slow1",
                target.fed_headers("PUT", "/federation/v1/send/slow1", txn),
            )
        ),
    ]
    served = 0
    while not all(task.done() for task in slow):
        assert await target.healthy()
        status, _ = await target.api("GET", "/api/v1/alerts?limit=1")
        assert status == 200
        served += 1
        await asyncio.sleep(0.05)
    outcomes = [task.result() for task in slow]
    for status, errcode, seconds in outcomes:
        assert (status, errcode) == (408, "AVISA_TIMEOUT")
        assert seconds < 10, "the trickling body was not cut off at the deadline"
    assert served >= 2, "the node served nobody else while bodies trickled"
    assert target.dump() == before
    figure(
        "slow_loris",
        trickling_requests=len(outcomes),
        cut_off_408=sum(o[0] == 408 for o in outcomes),
        other_requests_served_meanwhile=served,
        seconds_to_cut_off=[round(o[2], 2) for o in outcomes],
    )


async def test_trickling_or_silent_connections_are_closed(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before any handler runs (no token checked yet), a connection that never finishes
    its request line and headers is closed after the idle limit, shortened here."""
    monkeypatch.setattr(app, "IDLE_TIMEOUT_S", 1.0)
    async with target_node(tmp_path, clock) as target:
        head = request_head("GET", "/api/v1/alerts", target.member.headers(), None)

        async def held_open(parts: list[bytes], pause: float) -> float:
            reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
            started = asyncio.get_running_loop().time()

            async def trickle() -> None:
                with contextlib.suppress(ConnectionError, OSError):
                    for part in parts:
                        writer.write(part)
                        await writer.drain()
                        await asyncio.sleep(pause)

            sender = asyncio.create_task(trickle())
            try:
                async with asyncio.timeout(15):
                    assert await reader.read() == b"", "the server answered a request never sent"
            finally:
                sender.cancel()
                writer.close()
            return asyncio.get_running_loop().time() - started

        silent = await held_open([], 0)
        trickled = await held_open([bytes([b]) for b in head], 0.1)
        assert silent < 10 and trickled < 10
        assert await target.healthy()
    figure(
        "idle_connections",
        silent_closed_after_s=round(silent, 1),
        trickling_closed_after_s=round(trickled, 1),
    )


def _envelope_cases() -> list[tuple[str, bytes]]:
    alert = make_alert("net-a", codes=("fips:06111",))
    good = json.loads(raw_envelope(alert, PEER_KEY))
    sig = good["signatures"][0]

    def env(**changes: Any) -> bytes:
        return json.dumps({**good, **changes}, separators=(",", ":")).encode()

    payload = base64.b64decode(good["payload"])
    return [
        ("not an object", b"[]"),
        ("empty object", b"{}"),
        ("string", b'"envelope"'),
        ("65,537 bytes", env(payload=base64.b64encode(b" " * 49_000).decode()).ljust(65_537)),
        ("unknown payload type", env(payloadType="application/json")),
        ("payload not base64", env(payload="***")),
        ("payload non-canonical base64", env(payload=good["payload"][:-1] + "B")),
        ("payload with whitespace", env(payload=base64.b64encode(b" " + payload).decode())),
        ("no signatures", env(signatures=[])),
        ("17 signatures", env(signatures=[sig] * 17)),
        ("signature not base64", env(signatures=[{**sig, "sig": "!" * 86 + "=="}])),
        (
            "signature 63 bytes",
            env(signatures=[{**sig, "sig": base64.b64encode(b"x" * 63).decode()}]),
        ),
        ("keyid in capitals", env(signatures=[{**sig, "keyid": sig["keyid"].upper()}])),
        ("unknown field", env(extra=1)),
        ("signature unknown field", env(signatures=[{**sig, "by": "net-a"}])),
    ]


async def test_malformed_envelopes_in_a_transaction_are_each_rejected(target: Target) -> None:
    """Per the contract a bad envelope is one ``rejected`` result, not a failed transaction."""
    path = target.node.db.path
    watched = ("alerts", "feed", "outbox", "tombstones", "origins", "seq_gaps")
    before = {table: table_rows(path, table) for table in watched}
    cases = _envelope_cases()
    body = b'{"envelopes":[' + b",".join(raw for _, raw in cases) + b"]}"
    status, reply = await target.fed("PUT", "/federation/v1/send/bad-envelopes", body)
    assert status == 200, reply
    results = json.loads(reply)["results"]
    outcomes = {
        name: (r["status"], r["reason"]) for (name, _), r in zip(cases, results, strict=True)
    }
    assert all(result[0] == "rejected" for result in outcomes.values()), outcomes
    assert outcomes["65,537 bytes"] == ("rejected", "too_large")
    assert outcomes["unknown payload type"] == ("rejected", "unsupported_payload_type")
    assert {table: table_rows(path, table) for table in watched} == before
    figure(
        "malformed_envelopes",
        sent=len(cases),
        rejected=len(cases),
        reasons=dict(Counter(r for _, r in outcomes.values())),
    )
