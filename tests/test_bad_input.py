"""Bad input gets a 4xx with an errcode, never a 5xx, and changes nothing."""

from __future__ import annotations

import base64
import json
import sqlite3
from typing import Any

import pytest

from relay.core.envelope import sign
from relay.core.model import Envelope, encode_alert, encode_envelope
from tests.conftest import RunningNode
from tests.helpers import envelope_for, key, make_alert
from tests.test_api import DRAFT


def store_dump(running: RunningNode) -> list[str]:
    conn = sqlite3.connect(running.node.db.path)
    try:
        return [line for line in conn.iterdump() if "sqlite_sequence" not in line]
    finally:
        conn.close()


def draft_with(**changes: Any) -> bytes:
    return json.dumps({**DRAFT, **changes}).encode()


def area_with(**changes: Any) -> bytes:
    return draft_with(area={**DRAFT["area"], **changes})


VALID = json.dumps(DRAFT).encode()
BODIES: list[tuple[str, bytes, int, str]] = [
    ("empty", b"", 400, "AVISA_BAD_JSON"),
    ("not json", b"kind=sighting", 400, "AVISA_BAD_JSON"),
    ("truncated", VALID[:-1], 400, "AVISA_BAD_JSON"),
    ("invalid utf-8", VALID.replace(b"Verificado", b"Verificad\xff"), 400, "AVISA_BAD_JSON"),
    ("lone surrogate", VALID.replace(b"Verificado", b"Verificado\\ud800"), 400, "AVISA_BAD_JSON"),
    ("duplicate keys", VALID[:-1] + b', "kind": "rumor"}', 400, "AVISA_BAD_JSON"),
    ("unknown field", draft_with(reporter_phone="+1 805 555 0100"), 400, "AVISA_BAD_REQUEST"),
    ("float for int", area_with(radius_m=500.0), 400, "AVISA_BAD_JSON"),
    ("NaN", VALID.replace(b'"radius_m": 500', b'"radius_m": NaN'), 400, "AVISA_BAD_JSON"),
    ("2^53", area_with(radius_m=2**53), 400, "AVISA_BAD_JSON"),
    ("-0", VALID.replace(b'"radius_m": 500', b'"radius_m": -0'), 400, "AVISA_BAD_JSON"),
    ("out of bound", area_with(radius_m=50_001), 400, "AVISA_BAD_REQUEST"),
    ("unknown kind", draft_with(kind="raid"), 400, "AVISA_BAD_REQUEST"),
    (
        "headline too long",
        draft_with(text={"en": {"headline": "x" * 141, "body": ""}}),
        400,
        "AVISA_BAD_REQUEST",
    ),
    ("no language", draft_with(text={}), 400, "AVISA_BAD_REQUEST"),
    ("bad geohash", area_with(geohash="9Q4A"), 400, "AVISA_BAD_REQUEST"),
    ("nested 1000 deep", b"[" * 1000 + b"]" * 1000, 400, "AVISA_BAD_JSON"),
    ("array", b"[]", 400, "AVISA_BAD_REQUEST"),
    ("oversized", b'{"kind": "' + b"x" * 70_000 + b'"}', 413, "AVISA_TOO_LARGE"),
    ("bad expiry", draft_with(expires_in="forever"), 400, "AVISA_BAD_REQUEST"),
]


@pytest.mark.parametrize(("name", "body", "status", "errcode"), BODIES, ids=[b[0] for b in BODIES])
async def test_publish_refuses_bad_bodies(
    running: RunningNode, name: str, body: bytes, status: int, errcode: str
) -> None:
    before = store_dump(running)
    got, problem = await running.call(
        "POST",
        "/api/v1/alerts",
        data=body,
        headers={**running.headers(), "Content-Type": "application/json"},
    )
    assert (got, problem["errcode"]) == (status, errcode), problem
    assert isinstance(problem["error"], str) and "Traceback" not in problem["error"]
    assert store_dump(running) == before


async def test_wrong_content_type_and_method_and_route(running: RunningNode) -> None:
    before = store_dump(running)
    status, problem = await running.call(
        "POST",
        "/api/v1/alerts",
        data=VALID,
        headers={**running.headers(), "Content-Type": "text/plain"},
    )
    assert (status, problem["errcode"]) == (415, "AVISA_UNSUPPORTED_MEDIA_TYPE")
    status, problem = await running.call("DELETE", "/api/v1/alerts")
    assert (status, problem["errcode"]) == (405, "AVISA_METHOD_NOT_ALLOWED")
    status, problem = await running.call("GET", "/nowhere")
    assert (status, problem["errcode"]) == (404, "AVISA_NOT_FOUND")
    for query in ("active=yes", "limit=0", "limit=abc", "limit=100000"):
        status, problem = await running.call("GET", f"/api/v1/alerts?{query}")
        assert (status, problem["errcode"]) == (400, "AVISA_BAD_QUERY"), query
    status, problem = await running.call(
        "POST", "/api/v1/alerts", data=VALID, headers={"Content-Type": "application/json"}
    )
    assert (status, problem["errcode"]) == (401, "AVISA_UNAUTHORIZED")
    assert store_dump(running) == before


async def test_update_and_cancel_of_what_is_not_ours(running: RunningNode) -> None:
    status, problem = await running.call(
        "POST",
        "/api/v1/alerts/la/01M82V7M000000000000000000/cancel",
        json={"text": {"en": {"headline": "x", "body": ""}}},
    )
    assert (status, problem["errcode"]) == (404, "AVISA_NOT_FOUND")
    status, problem = await running.call(
        "POST", "/api/v1/alerts/ventura/01M82V7M000000000000000000/cancel", json={"text": {}}
    )
    assert (status, problem["errcode"]) == (400, "AVISA_BAD_REQUEST")


async def test_pipeline_refuses_non_canonical_and_forged_envelopes(running: RunningNode) -> None:
    alert = make_alert("ventura")
    envelope = envelope_for(alert, running.node.key)
    payload = encode_alert(alert)
    # Re-signed by the node's own key, so the signature is valid: the
    # non-canonical bytes alone must get the payload refused.
    non_canonical = encode_envelope(sign(payload.replace(b'{"id"', b'{ "id"'), running.node.key))
    tampered = Envelope(
        envelope.payloadType,
        base64.b64encode(payload.replace(b"ICE", b"CBP")).decode(),
        envelope.signatures,
    )
    before = store_dump(running)
    outcomes = await running.node.pipeline.ingest(
        [
            non_canonical,
            encode_envelope(tampered),
            b"{}",
            b"\xff",
            b"x" * 70_000,
            encode_envelope(envelope_for(alert, key(9))),
        ],
        from_peer=None,
    )
    assert [o.reason for o in outcomes] == [
        "non_canonical",
        "bad_signature",
        "malformed",
        "malformed",
        "too_large",
        "unknown_key",
    ]
    assert all(o.status == "rejected" for o in outcomes)
    alerts_rows = [line for line in store_dump(running) if 'INTO "alerts"' in line]
    assert alerts_rows == [line for line in before if 'INTO "alerts"' in line] == []
