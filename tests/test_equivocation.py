"""Equivocation (DESIGN §16, issue 29 item 5): an origin of the tests' own (a key, and
requests written from docs/protocol.md) signs two different checkpoints for one ``seq``
and gives one to each of two real nodes that relay to each other. The first node that
sees both keeps both envelopes as evidence, shows them (API, CLI), and holds the
origin's new alerts (``equivocation``) until an operator clears it."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from keys.core.keyring import KeyEntry
from relay.cli.main import main
from relay.core.checkpoints import chain_heads, entry_digest, make_checkpoint, sign_checkpoint
from relay.core.model import ALERT_PAYLOAD_TYPE, Alert, encode_alert
from relay.core.policy import PeerPolicy
from relay.federation.auth import authorization
from relay.runtime.clock import FakeClock
from relay.storage import trust
from tests.fedkit import Member, members, trusts
from tests.helpers import T0, key, make_alert, new_id, raw_envelope, wait_for

ORIGIN = key(60)
_txns = itertools.count()


async def trusts_origin(member: Member) -> None:
    """``member`` holds the origin's key (its url answers nothing)."""
    record = trust.PeerRecord(
        "ventura",
        "http://127.0.0.1:9",
        (KeyEntry("ventura", ORIGIN.public_key),),
        PeerPolicy(network="ventura", speaks_for=("fips:06",), forward=False),
    )
    await member.node.db.write(lambda conn: trust.save_peer(conn, record, member.node.clock()))
    await member.node.reload_trust()


async def as_origin(to: Member, method: str, path: str, body: bytes) -> tuple[int, Any]:
    header = authorization(ORIGIN, method, path, "ventura", to.network, to.node.clock(), body)
    headers = {"Authorization": header, "Content-Type": "application/json"}
    async with to.http.request(method, to.url + path, data=body, headers=headers) as reply:
        return reply.status, await reply.json()


async def send_alert(to: Member, seq: int) -> dict[str, Any]:
    alert = make_alert(alert_id=new_id("ventura", T0.replace(minute=seq, second=seq)), seq=seq)
    return await send_alert_of(to, alert)


async def send_alert_of(to: Member, alert: Alert) -> dict[str, Any]:
    body = b'{"envelopes":[' + raw_envelope(alert, ORIGIN) + b"]}"
    status, reply = await as_origin(to, "PUT", f"/federation/v1/send/t{next(_txns)}", body)
    assert status == 200, reply
    (result,) = reply["results"]
    return result  # type: ignore[no-any-return]


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Member, Member, FakeClock]]:
    clock = FakeClock(T0)
    async with members(tmp_path, clock, ["ojai", "oxnard"]) as nodes:
        ojai, oxnard = nodes["ojai"], nodes["oxnard"]
        for member in (ojai, oxnard):
            await trusts_origin(member)
        await trusts(ojai, oxnard)
        await trusts(oxnard, ojai)
        yield ojai, oxnard, clock


async def evidence_at(member: Member) -> list[dict[str, Any]]:
    status, body = await member.call("GET", "/api/v1/equivocations")
    assert status == 200
    return body["equivocations"]  # type: ignore[no-any-return]


async def test_an_origin_that_signs_two_heads_is_caught_and_held(
    pair: tuple[Member, Member, FakeClock], capsys: pytest.CaptureFixture[str]
) -> None:
    ojai, oxnard, clock = pair
    one = sign_checkpoint(make_checkpoint("ventura", 5, bytes(32), clock()), ORIGIN)
    other = sign_checkpoint(make_checkpoint("ventura", 5, b"\1" * 32, clock()), ORIGIN)
    path = "/federation/v1/checkpoints/ventura"
    assert (await as_origin(ojai, "PUT", path, one))[1]["status"] == "accepted"
    # oxnard is given the other: it already has ``one`` from ojai, or gets it next.
    await as_origin(oxnard, "PUT", path, other)

    await wait_for(lambda: evidence_at(oxnard), what="oxnard to catch the split")
    (item,) = await evidence_at(oxnard)
    assert (item["network"], item["seq"], item["kind"]) == ("ventura", 5, "checkpoints")
    pair_seen = {json.dumps(item["first"]), json.dumps(item["second"])}
    assert pair_seen == {json.dumps(json.loads(raw)) for raw in (one, other)}
    assert item["cleared_at"] is None
    await wait_for(lambda: evidence_at(ojai), what="ojai to catch it too, from oxnard's relay")
    status, body = await oxnard.call("GET", "/api/v1/equivocations")
    assert body["held_origins"] == ["ventura"]
    assert 'avisa_checkpoints_received_total{result="equivocation"}' in await oxnard.metrics()
    # The same split seen again adds nothing.
    await as_origin(oxnard, "PUT", path, one)
    assert len(await evidence_at(oxnard)) == 1

    # The origin's new alerts are held for review until an operator decides.
    held = await send_alert(oxnard, 1)
    assert (held["status"], held["reason"]) == ("held", "equivocation")

    data = str(oxnard.node.data_dir)
    assert main(["trust", "equivocation", "list", "--data", data, "--json"]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith('{"equiv')]
    listed = json.loads(line)["equivocations"]
    assert [(e["network"], e["seq"]) for e in listed] == [("ventura", 5)]
    assert main(["trust", "equivocation", "clear", "ventura", "--data", data]) == 0
    assert "Cleared 1" in capsys.readouterr().out
    assert main(["trust", "equivocation", "clear", "ventura", "--data", data]) == 1
    await oxnard.node.reload_trust()
    accepted = await send_alert(oxnard, 2)
    assert (accepted["status"], accepted["reason"]) == ("accepted", "authoritative")
    (cleared,) = await evidence_at(oxnard)
    assert cleared["cleared_at"] is not None

    # ojai's operator decides through the API (admin token); bad input changes nothing.
    assert (await ojai.call("POST", "/api/v1/equivocations/Not A Network/clear"))[0] == 400
    assert (await ojai.call("POST", "/api/v1/equivocations/la-rrn/clear"))[0] == 404
    status, body = await ojai.call("POST", "/api/v1/equivocations/ventura/clear")
    assert (status, body) == (200, {"network": "ventura", "cleared": 1})
    status, body = await ojai.call("GET", "/api/v1/equivocations")
    assert body["held_origins"] == []


async def test_a_checkpoint_against_the_messages_held_is_evidence_too(
    pair: tuple[Member, Member, FakeClock],
) -> None:
    """The origin sent oxnard message 1 and signs a checkpoint over another message 1 (the
    one it showed someone else): oxnard's chain contradicts it."""
    _, oxnard, clock = pair
    shown = make_alert(alert_id=new_id("ventura", T0.replace(minute=1)), seq=1)
    other = make_alert(alert_id=new_id("ventura", T0.replace(minute=2)), seq=1)
    assert (await send_alert_of(oxnard, shown))["status"] == "accepted"
    (head,) = chain_heads([entry_digest(ALERT_PAYLOAD_TYPE, encode_alert(other))])
    raw = sign_checkpoint(make_checkpoint("ventura", 1, head, clock()), ORIGIN)
    status, reply = await as_origin(oxnard, "PUT", "/federation/v1/checkpoints/ventura", raw)
    assert (status, reply["status"]) == (200, "accepted")  # newer: taken, and compared
    await wait_for(lambda: evidence_at(oxnard), what="the contradiction kept")
    (item,) = await evidence_at(oxnard)
    assert (item["seq"], item["kind"]) == (1, "chain")
    assert item["first"] == json.loads(raw)
    assert json.loads(base64.b64decode(item["second"]["payload"]))["id"] == shown.id
    held = await send_alert(oxnard, 2)
    assert (held["status"], held["reason"]) == ("held", "equivocation")
