"""The local API on a real aiohttp server and a real SQLite file."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import nacl.signing
import pytest

from relay.storage import db, trust
from tests.conftest import RunningNode
from tests.helpers import wait_for

DRAFT: dict[str, Any] = {
    "kind": "sighting",
    "certainty": "confirmed",
    "area": {
        "label": "Colonia, Oxnard",
        "geohash": "9q4gch",
        "radius_m": 500,
        "codes": ["fips:06111"],
    },
    "agencies": ["ice"],
    "text": {
        "es": {"headline": "ICE en el parque Colonia", "body": "Verificado."},
        "en": {"headline": "ICE at Colonia park", "body": "Verified."},
    },
    "expires_in": "4h",
}


def independent_verify(envelope: dict[str, Any], public_key: bytes) -> dict[str, Any]:
    """DSSE check from scratch: PyNaCl and hashlib only, not the project's code."""
    payload = base64.b64decode(envelope["payload"], validate=True)
    ptype = envelope["payloadType"].encode()
    message = b"DSSEv1 " + str(len(ptype)).encode() + b" " + ptype + b" "
    message += str(len(payload)).encode() + b" " + payload
    first = envelope["signatures"][0]
    assert first["keyid"] == "ed25519:" + hashlib.sha256(public_key).digest()[:16].hex()
    nacl.signing.VerifyKey(public_key).verify(message, base64.b64decode(first["sig"]))
    return json.loads(payload)


async def publish(node: RunningNode, **changes: Any) -> dict[str, Any]:
    status, body = await node.call("POST", "/api/v1/alerts", json={**DRAFT, **changes})
    assert status == 201, body
    return body  # type: ignore[no-any-return]


def path(alert_id: str) -> str:
    return "/api/v1/alerts/" + alert_id


async def test_publish_signs_and_lists_as_active(running: RunningNode) -> None:
    body = await publish(running)
    payload = independent_verify(body["envelope"], running.node.key.public_key)
    assert payload["id"] == body["id"] and payload["network"] == "ventura"
    assert payload["seq"] == 1 and payload["sent_at"] == "2026-11-23T12:00:00Z"
    assert payload["expires_at"] == "2026-11-23T16:00:00Z"
    status, listing = await running.call("GET", "/api/v1/alerts?active=true")
    assert status == 200
    (item,) = listing["alerts"]
    assert item["alert"] == payload
    assert (item["origin"], item["state"], item["endorsed_by"]) == ("ventura", "active", [])
    status, one = await running.call("GET", path(body["id"]))
    assert status == 200 and one["envelope"] == body["envelope"]


async def test_update_supersedes_and_cancel_leaves_a_tombstone(running: RunningNode) -> None:
    first = await publish(running)
    status, updated = await running.call(
        "POST",
        path(first["id"]) + "/update",
        json={**DRAFT, "text": {"en": {"headline": "Moved to 5th St", "body": ""}}},
    )
    assert status == 201
    assert independent_verify(updated["envelope"], running.node.key.public_key)["references"] == [
        first["id"]
    ]
    _, old = await running.call("GET", path(first["id"]))
    assert old["state"] == "superseded"
    # An update of the superseded id follows to the newest version and says so.
    status, again = await running.call("POST", path(first["id"]) + "/update", json={})
    assert (status, again["replaces"]) == (201, updated["id"])
    payload = independent_verify(again["envelope"], running.node.key.public_key)
    assert payload["references"] == [updated["id"], first["id"]]
    assert payload["text"]["en"]["headline"] == "Moved to 5th St"  # carried over

    status, cancelled = await running.call(
        "POST",
        path(updated["id"]) + "/cancel",
        json={"text": {"en": {"headline": "Withdrawn: false alarm", "body": ""}}},
    )
    assert status == 201
    payload = independent_verify(cancelled["envelope"], running.node.key.public_key)
    assert payload["msg_type"] == "cancel"
    assert cancelled["cancels"] == again["id"]
    assert payload["references"] == [again["id"], updated["id"], first["id"]]
    assert [p["seq"] for p in [payload]] == [4]
    # A cancel is never in force: nothing is active, and the withdrawal shows as cancelled.
    _, active = await running.call("GET", "/api/v1/alerts?active=true")
    assert active["alerts"] == []
    _, withdrawal = await running.call("GET", path(cancelled["id"]))
    assert withdrawal["state"] == "cancelled"
    _, upd = await running.call("GET", path(updated["id"]))
    assert upd["state"] == "cancelled"

    # The cancelled alert offered again (say, replayed by a peer) is refused.
    outcomes = await running.node.pipeline.ingest(
        [json.dumps(upd["envelope"]).encode()], from_peer=None
    )
    assert [(o.status, o.reason) for o in outcomes] == [("rejected", "cancelled")]
    _, decisions = await running.call("GET", "/api/v1/decisions?limit=1")
    assert decisions["decisions"][0]["reason"] == "cancelled"


async def test_expiry_hides_and_purge_removes_every_byte(running: RunningNode) -> None:
    body = await publish(running, expires_in="1h")
    headline = DRAFT["text"]["es"]["headline"].encode()
    payload_b64 = body["envelope"]["payload"].encode()
    clock = running.node.clock
    clock.advance("61m")  # type: ignore[attr-defined]
    _, listing = await running.call("GET", "/api/v1/alerts?active=true")
    assert listing["alerts"] == []
    _, one = await running.call("GET", path(body["id"]))
    assert one["state"] == "expired"

    await running.node.purge_once()
    _, one_more = await running.call("GET", path(body["id"]))
    assert one_more is not None  # still within retention
    clock.advance("7d")  # type: ignore[attr-defined]
    counts = await running.node.purge_once()
    assert counts.alerts == 1
    status, _ = await running.call("GET", path(body["id"]))
    assert status == 404
    for suffix in ("", "-wal"):
        stored = running.node.db.path.with_name(running.node.db.path.name + suffix)
        if stored.exists():
            raw = stored.read_bytes()
            assert headline not in raw and payload_b64[:40] not in raw
            assert body["id"].encode() not in raw


async def test_restart_keeps_everything_and_seq_continues(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    import aiohttp

    from tests.conftest import start_node

    node, runner, url, token = await start_node(tmp_path, clock)
    async with aiohttp.ClientSession() as http:
        running = RunningNode(node, url, token, http, node.data_dir)
        ids = [(await publish(running))["id"] for _ in range(3)]
    await runner.cleanup()
    await node.stop()

    node, runner, url, token = await start_node_again(node.data_dir, clock)
    try:
        async with aiohttp.ClientSession() as http:
            running = RunningNode(node, url, token, http, node.data_dir)
            _, listing = await running.call("GET", "/api/v1/alerts?active=true")
            assert sorted(a["alert"]["id"] for a in listing["alerts"]) == sorted(ids)
            fourth = await publish(running)
            assert independent_verify(fourth["envelope"], node.key.public_key)["seq"] == 4
    finally:
        await runner.cleanup()
        await node.stop()


async def start_node_again(data_dir, clock):  # type: ignore[no-untyped-def]
    from relay.http.app import serve
    from relay.runtime.node import Node

    node = Node.load(data_dir, clock)
    await node.start()
    runner, port = await serve(node, "127.0.0.1", 0)
    token = (data_dir / "operator.token").read_text().strip()
    return node, runner, f"http://127.0.0.1:{port}", token


async def test_roles_and_tokens(running: RunningNode) -> None:
    conn = db.open_sync(running.node.db.path)
    now = running.node.clock()
    reviewer = db.transaction(conn, lambda c: trust.add_token(c, "reviewer", "r", now))
    conn.close()
    await running.node.reload_trust()
    status, problem = await running.call(
        "POST", "/api/v1/alerts", json=DRAFT, headers=running.headers(reviewer)
    )
    assert (status, problem["errcode"]) == (403, "AVISA_FORBIDDEN")
    status, _ = await running.call("GET", "/api/v1/alerts", headers=running.headers(reviewer))
    assert status == 200
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        status, problem = await running.call("GET", "/api/v1/alerts", headers=headers or {"X": "1"})
        assert (status, problem["errcode"]) == (401, "AVISA_UNAUTHORIZED")
    # Only the hash is stored.
    raw = (
        running.node.db.path.read_bytes()
        + running.node.db.path.with_name("avisa.db-wal").read_bytes()
    )
    assert running.token.encode() not in raw and reviewer.encode() not in raw


async def test_sse_stream_delivers_alert_update_cancel(running: RunningNode) -> None:
    events: list[tuple[str, dict[str, Any]]] = []

    async def listen() -> None:
        async with running.http.get(
            running.url + "/api/v1/stream", headers=running.headers()
        ) as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            event = ""
            async for line in response.content:
                text = line.decode().rstrip("\n")
                if text.startswith("event: "):
                    event = text[7:]
                elif text.startswith("data: "):
                    events.append((event, json.loads(text[6:])))
                    if len(events) == 3:
                        return

    import asyncio

    task = asyncio.create_task(listen())
    await wait_for(lambda: running.node.metrics.sse_clients == 1, what="stream open")
    first = await publish(running)
    status, second = await running.call("POST", path(first["id"]) + "/update", json=DRAFT)
    status, _ = await running.call(
        "POST",
        path(second["id"]) + "/cancel",
        json={"text": {"en": {"headline": "Over", "body": ""}}},
    )
    await asyncio.wait_for(task, 10)
    assert [name for name, _ in events] == ["alert", "update", "cancel"]
    assert events[0][1]["alert"]["id"] == first["id"]

    # Resuming from Last-Event-ID replays what came after it, nothing before.
    async with running.http.get(
        running.url + "/api/v1/stream", headers={**running.headers(), "Last-Event-ID": "2"}
    ) as response:
        line = b""
        while not line.startswith(b"event:"):
            line = await response.content.readline()
        assert line == b"event: cancel\n"


async def test_held_queue_accept_and_reject(running: RunningNode) -> None:
    from tests.helpers import key, make_alert, raw_envelope

    la = key(2)
    running.add_peer(
        trust.PeerRecord(
            "la",
            "http://la.invalid",
            (trust.KeyEntry("la", la.public_key),),
            trust.PeerPolicy("la", speaks_for=("fips:06037",)),
        )
    )
    await running.node.reload_trust()
    outside = [make_alert("la", codes=("fips:06111",)) for _ in range(2)]
    outcomes = await running.node.pipeline.ingest([raw_envelope(a, la) for a in outside], "la")
    assert [(o.status, o.reason) for o in outcomes] == [("held", "outside_speaks_for")] * 2
    _, held = await running.call("GET", "/api/v1/held")
    assert {h["alert"]["id"] for h in held["held"]} == {a.id for a in outside}
    assert held["held"][0]["reason"] == "outside_speaks_for"

    status, body = await running.call("POST", f"/api/v1/held/{outside[0].id}/accept")
    assert (status, body["state"]) == (200, "active")
    status, body = await running.call("POST", f"/api/v1/held/{outside[1].id}/reject")
    assert (status, body["state"]) == (200, "rejected")
    _, active = await running.call("GET", "/api/v1/alerts?active=true")
    assert [a["alert"]["id"] for a in active["alerts"]] == [outside[0].id]
    # A rejected alert offered again does not go back into the queue.
    again = await running.node.pipeline.ingest([raw_envelope(outside[1], la)], "la")
    assert (again[0].status, again[0].reason) == ("rejected", "rejected_by_reviewer")
    status, problem = await running.call("POST", f"/api/v1/held/{outside[1].id}/accept")
    assert status == 404


async def test_area_filter_and_health_and_metrics(running: RunningNode) -> None:
    await publish(running)
    await publish(running, area={**DRAFT["area"], "codes": ["fips:06037"], "geohash": "9q5ctr"})
    for query, count in (("fips:06111", 1), ("fips:06", 2), ("9q5", 1), ("zip:93101", 0)):
        _, listing = await running.call("GET", f"/api/v1/alerts?area={query}")
        assert len(listing["alerts"]) == count, query
    status, health = await running.call("GET", "/healthz", headers={})
    assert (status, health["status"]) == (200, "ok")
    async with running.http.get(running.url + "/metrics", headers=running.headers()) as response:
        text = await response.text()
    assert 'avisa_alerts{state="active"} 2' in text
    assert 'avisa_decisions_total{decision="accept",reason="local",peer="local"} 2' in text


async def test_expires_at_and_lifetime_bounds(running: RunningNode) -> None:
    draft = {k: v for k, v in DRAFT.items() if k != "expires_in"}
    status, body = await running.call(
        "POST", "/api/v1/alerts", json={**draft, "expires_at": "2026-11-23T13:30:00Z"}
    )
    assert status == 201
    for bad in (
        {**draft},
        {**DRAFT, "expires_at": "2026-11-23T13:30:00Z"},
        {**draft, "expires_at": "2026-12-23T13:30:00Z"},
        {**draft, "expires_at": "2026-11-23T11:00:00Z"},
        {**DRAFT, "observed_at": "2026-11-23T12:30:00Z"},
    ):
        status, problem = await running.call("POST", "/api/v1/alerts", json=bad)
        assert (status, problem["errcode"]) == (400, "AVISA_BAD_DRAFT"), bad


async def test_control_characters_in_draft_text_are_a_400_naming_the_field(
    running: RunningNode,
) -> None:
    for bad, where in (
        ({**DRAFT, "area": {**DRAFT["area"], "label": "a\u0007b"}}, "area.label"),
        ({**DRAFT, "text": {"en": {"headline": "two\nlines", "body": ""}}}, "en.headline"),
        ({**DRAFT, "text": {"en": {"headline": "ok", "body": "bell\u0007"}}}, "en.body"),
    ):
        status, problem = await running.call("POST", "/api/v1/alerts", json=bad)
        assert status == 400 and where in problem["error"], (bad, problem)
    status, _ = await running.call(
        "POST", "/api/v1/alerts", json={**DRAFT, "text": {"en": {"headline": "ok", "body": "a\nb"}}}
    )
    assert status == 201


@pytest.mark.parametrize(
    "alert_path", ["ventura/01M82V7M000000000000000000", "ventura%2F01M82V7M000000000000000000"]
)
async def test_unknown_alert_is_404(running: RunningNode, alert_path: str) -> None:
    status, problem = await running.call("GET", "/api/v1/alerts/" + alert_path)
    assert (status, problem["errcode"]) == (404, "AVISA_NOT_FOUND")
