"""The /federation/v1 endpoints of one real node, called by hand-signed requests."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import nacl.signing
import pytest

from keys.cards.card import verify_key_document
from keys.core.keyring import KeyEntry
from keys.core.signing import NodeKey
from relay.core.policy import PeerPolicy
from relay.federation.auth import authorization
from relay.federation.inbound import TXN_BODY_MAX
from relay.runtime.clock import FakeClock
from relay.storage import trust
from tests.fedkit import Member, members
from tests.helpers import key, make_alert, raw_envelope, wait_for

A_KEY, C_KEY, REVOKED_KEY, STRANGER = key(1), key(3), key(4), key(9)
NOWHERE = "http://127.0.0.1:9"  # nothing listens: these peers are only keys here


async def add_peer(
    b: Member, network: str, peer_key: NodeKey, revoked: bool = False, **policy: Any
) -> None:
    revoked_at = b.node.clock() - timedelta(hours=1) if revoked else None
    record = trust.PeerRecord(
        network,
        NOWHERE,
        (KeyEntry(network, peer_key.public_key, revoked_at=revoked_at),),
        PeerPolicy(network=network, speaks_for=("fips:06",), **policy),
    )
    await b.node.db.write(lambda conn: trust.save_peer(conn, record, b.node.clock()))
    await b.node.reload_trust()


@pytest.fixture
async def node_b(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Member]:
    async with members(tmp_path, clock, ["net-b"]) as net:
        b = net["net-b"]
        await add_peer(b, "net-a", A_KEY, endorse=True, rate_limit_per_min=60)
        await add_peer(b, "net-c", C_KEY)
        await add_peer(b, "net-r", REVOKED_KEY, revoked=True)
        yield b


async def signed(
    b: Member,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    signer: NodeKey = A_KEY,
    origin: str = "net-a",
    destination: str = "net-b",
    skew: timedelta = timedelta(0),
    sent_body: bytes | None = None,
    sent_path: str | None = None,
) -> tuple[int, bytes]:
    header = authorization(signer, method, path, origin, destination, b.node.clock() + skew, body)
    headers = {"Authorization": header, "Content-Type": "application/json"}
    data = body if sent_body is None else sent_body
    async with b.http.request(
        method, b.url + (sent_path or path), data=data or None, headers=headers
    ) as reply:
        return reply.status, await reply.read()


def txn(*raws: bytes) -> bytes:
    return b'{"envelopes":[' + b",".join(raws) + b"]}"


def dump(b: Member) -> list[str]:
    conn = sqlite3.connect(b.node.db.path)
    try:
        return [
            line
            for line in conn.iterdump()
            if not line.startswith(
                ('INSERT INTO "peer', 'INSERT INTO "meta', 'INSERT INTO "sqlite')
            )
        ]
    finally:
        conn.close()


async def test_unauthenticated_requests_get_401_and_change_nothing(node_b: Member) -> None:
    b = node_b
    body = txn(raw_envelope(make_alert("net-a"), A_KEY))
    # Another alert, validly signed by A, swapped in after the request was signed.
    swapped = txn(raw_envelope(make_alert("net-a", headline="Swapped in"), A_KEY))
    path = "/federation/v1/send/t1"
    before = dump(b)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("other destination", {"destination": "net-x"}, "AVISA_WRONG_DESTINATION"),
        ("stale ts", {"skew": timedelta(seconds=-301)}, "AVISA_STALE_REQUEST"),
        ("ts from the future", {"skew": timedelta(seconds=301)}, "AVISA_STALE_REQUEST"),
        ("unknown key", {"signer": STRANGER}, "AVISA_UNKNOWN_KEY"),
        ("key of another network", {"origin": "net-c"}, "AVISA_UNKNOWN_KEY"),
        ("revoked key", {"signer": REVOKED_KEY, "origin": "net-r"}, "AVISA_KEY_REVOKED"),
        ("body altered", {"sent_body": swapped}, "AVISA_BAD_SIGNATURE"),
        ("other path", {"sent_path": "/federation/v1/send/t2"}, "AVISA_BAD_SIGNATURE"),
    ]
    for name, changes, errcode in cases:
        status, reply = await signed(b, "PUT", path, body, **changes)
        problem = json.loads(reply)
        assert (status, problem.get("errcode")) == (401, errcode), name
        assert problem["error"], name
    for header in ("", "Bearer x", 'Avisa origin="net-a"', "Avisa " + "x" * 300):
        async with b.http.put(
            b.url + path, data=body, headers={"Authorization": header} if header else {}
        ) as reply:
            assert reply.status == 401
            assert (await reply.json())["errcode"] == "AVISA_UNAUTHORIZED"
    status, _ = await signed(b, "GET", "/federation/v1/alerts", skew=timedelta(seconds=-301))
    assert status == 401
    assert dump(b) == before
    # The edge of the window is still inside it.
    status, _ = await signed(b, "PUT", path, body, skew=timedelta(seconds=-300))
    assert status == 200


async def test_retried_txn_id_gets_the_identical_reply(node_b: Member, clock: FakeClock) -> None:
    b = node_b
    good = raw_envelope(make_alert("net-a"), A_KEY)
    unknown = raw_envelope(make_alert("net-x"), STRANGER)
    path = "/federation/v1/send/txn-1"
    status, first = await signed(b, "PUT", path, txn(good, unknown))
    assert status == 200
    results = json.loads(first)["results"]
    assert [(r["status"], r["reason"]) for r in results] == [
        ("accepted", "authoritative"),
        ("rejected", "unknown_key"),
    ]
    clock.advance("10s")  # a new ts, a new signature: the same transaction
    status, again = await signed(b, "PUT", path, txn(good, unknown))
    assert (status, again) == (200, first)
    # Two attempts at once: one is processed, both get its reply.
    replies = await asyncio.gather(
        *(signed(b, "PUT", "/federation/v1/send/txn-2", txn(good)) for _ in range(2))
    )
    assert replies[0] == replies[1]
    assert json.loads(replies[0][1])["results"][0]["status"] == "duplicate"
    decisions = [d for d in (await b.decisions()) if d["peer"] == "net-a"]
    assert len(decisions) == 3  # txn-1 once, txn-2 once: retries decided nothing
    clock.advance("25h")  # stored replies live 24 h
    status, late = await signed(b, "PUT", path, txn(good, unknown))
    assert status == 200 and late != first


async def test_transaction_bodies_are_bounded_and_strict(node_b: Member) -> None:
    b = node_b
    one = raw_envelope(make_alert("net-a"), A_KEY)
    before = dump(b)
    cases = [
        (txn(*[one] * 51), 400, "AVISA_TOO_MANY_ENVELOPES"),
        (b"not json", 400, "AVISA_BAD_JSON"),
        (b'{"envelopes": 1}', 400, "AVISA_BAD_REQUEST"),
        (b'{"envelopes": [], "extra": 1}', 400, "AVISA_BAD_REQUEST"),
        (b'{"envelopes": [], "envelopes": []}', 400, "AVISA_BAD_JSON"),
        (b'{"envelopes": [' + b" " * TXN_BODY_MAX + b"]}", 413, "AVISA_TOO_LARGE"),
    ]
    for n, (body, status, errcode) in enumerate(cases):
        got, reply = await signed(b, "PUT", f"/federation/v1/send/bad-{n}", body)
        assert (got, json.loads(reply)["errcode"]) == (status, errcode), errcode
    for bad_id in ("x" * 65, "abc%0A", "a%2Fb"):
        status, reply = await signed(b, "PUT", "/federation/v1/send/" + bad_id, txn(one))
        assert (status, json.loads(reply)["errcode"]) == (400, "AVISA_BAD_TXN_ID"), bad_id
    assert dump(b) == before
    # Bad envelopes are answers inside a good transaction, not failed transactions.
    huge = b'{"payloadType":"x","payload":"' + b"A" * 70_000 + b'","signatures":[]}'
    status, reply = await signed(b, "PUT", "/federation/v1/send/ok", txn(huge, b"[]", one))
    assert status == 200
    assert [(r["status"], r["reason"]) for r in json.loads(reply)["results"]] == [
        ("rejected", "too_large"),
        ("rejected", "malformed"),
        ("accepted", "authoritative"),
    ]


async def test_per_peer_rate_and_concurrency_limits(node_b: Member) -> None:
    b = node_b
    for _ in range(60):  # net-a may make 60 requests a minute
        status, _ = await signed(b, "GET", "/federation/v1/alerts")
        assert status == 200
    status, reply = await signed(b, "GET", "/federation/v1/alerts")
    assert (status, json.loads(reply)["errcode"]) == (429, "AVISA_RATE_LIMITED")
    status, _ = await signed(b, "GET", "/federation/v1/alerts", signer=C_KEY, origin="net-c")
    assert status == 200  # limits are per peer

    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b'{"envelopes":'
        await release.wait()
        yield b"[]}"

    async def slow_request() -> int:
        header = authorization(
            C_KEY, "PUT", "/federation/v1/send/slow", "net-c", "net-b", b.node.clock(), b""
        )
        headers = {"Authorization": header, "Content-Type": "application/json"}
        async with b.http.put(
            b.url + "/federation/v1/send/slow", data=slow_body(), headers=headers
        ) as reply:
            return reply.status

    slow = [asyncio.create_task(slow_request()) for _ in range(4)]
    gate = b.node.federation.gate
    try:
        await wait_for(lambda: gate.in_flight("net-c") == 4, what="four requests in flight")
        status, reply = await signed(
            b, "GET", "/federation/v1/alerts", signer=C_KEY, origin="net-c"
        )
        assert (status, json.loads(reply)["errcode"]) == (429, "AVISA_TOO_MANY_REQUESTS")
    finally:
        release.set()
        statuses = await asyncio.gather(*slow)
    assert statuses == [401] * 4  # the bodies did not match what was signed


def _alerts_of(reply: bytes) -> tuple[list[dict[str, Any]], str]:
    page = json.loads(reply)
    return page["envelopes"], page["next"]


async def test_catch_up_returns_what_would_be_forwarded_to_the_caller(
    node_b: Member, clock: FakeClock
) -> None:
    b = node_b
    own = (await b.publish())["id"]
    short = (await b.publish(expires_in="10m"))["id"]
    withdrawn = (await b.publish())["id"]
    cancel = (await b.cancel(withdrawn))["id"]
    from_c = make_alert("net-c", seq=1)
    from_a = make_alert("net-a", seq=1)
    via_a = make_alert("net-c", seq=2)
    outcomes = await b.node.pipeline.ingest(
        [raw_envelope(from_c, C_KEY), raw_envelope(via_a, C_KEY, A_KEY)], from_peer="net-c"
    )
    outcomes += await b.node.pipeline.ingest([raw_envelope(from_a, A_KEY)], from_peer="net-a")
    assert [o.status for o in outcomes] == ["accepted"] * 3
    clock.advance("11m")

    envelopes, since = [], "0"
    for _ in range(10):
        status, reply = await signed(b, "GET", f"/federation/v1/alerts?since={since}&limit=2")
        assert status == 200
        page, next_cursor = _alerts_of(reply)
        assert len(page) <= 2
        envelopes += page
        if next_cursor == since:
            break
        since = next_cursor
    ids = [json.loads(base64.b64decode(e["payload"]))["id"] for e in envelopes]
    # Not the expired, not the cancelled, nothing A signed; in feed order.
    assert ids == [own, cancel, from_c.id]
    assert short not in ids and withdrawn not in ids
    b_keyid = b.node.key.keyid
    assert [s["keyid"] for s in envelopes[0]["signatures"]] == [b_keyid]
    assert [s["keyid"] for s in envelopes[2]["signatures"]] == [C_KEY.keyid, b_keyid]
    # C's entry does not say endorse: C's catch-up is unendorsed and skips C's own alerts.
    status, reply = await signed(
        b, "GET", "/federation/v1/alerts?since=0&limit=100", signer=C_KEY, origin="net-c"
    )
    page, _ = _alerts_of(reply)
    assert len(page) == 3  # own, cancel, and A's alert (C did not sign it, A did)
    assert all(len(e["signatures"]) == 1 for e in page)
    for query in ("since=x", "limit=0", "limit=101", "since=" + "9" * 19):
        status, reply = await signed(b, "GET", f"/federation/v1/alerts?{query}")
        assert (status, json.loads(reply)["errcode"]) == (400, "AVISA_BAD_QUERY"), query


async def test_key_document_is_a_signed_dsse_envelope(node_b: Member, clock: FakeClock) -> None:
    b = node_b
    async with aiohttp.ClientSession() as http, http.get(b.url + "/federation/v1/keys") as reply:
        assert reply.status == 200
        envelope = await reply.json()
    assert envelope["payloadType"] == "application/vnd.avisa.keys.v1+json"
    payload = base64.b64decode(envelope["payload"])
    ptype = envelope["payloadType"].encode()
    message = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)
    (signature,) = envelope["signatures"]
    assert signature["keyid"] == b.node.key.keyid
    nacl.signing.VerifyKey(b.node.key.public_key).verify(
        message, base64.b64decode(signature["sig"])
    )
    document = json.loads(payload)
    assert document["network"] == "net-b" and document["issued_at"] == "2026-11-23T12:00:00Z"
    assert document["url"] == b.node.config.public_url
    assert [k["keyid"] for k in document["keys"]] == [b.node.key.keyid]
    assert base64.b64decode(document["keys"][0]["public_key"]) == b.node.key.public_key
    verified = verify_key_document(json.dumps(envelope).encode())
    assert verified.network == "net-b"
