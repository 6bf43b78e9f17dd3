"""Cosigned checkpoints passed on (DESIGN §16, issue 29 item 2): the cosignature and the
relayed checkpoint (pure), and a chain of real nodes origin → ojai → oxnard where oxnard
does not hear from the origin at all and the link from ojai loses the cancel: oxnard
still learns the origin's head from ojai's relayed checkpoint, fetches the cancel from
ojai and applies it within 2 × ``checkpoint_every``; the next checkpoint reaches it
cosigned by ojai."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web

from keys.core.keyring import KeyEntry, Keyring
from relay.core.checkpoints import make_checkpoint, sign_checkpoint
from relay.core.cosign import (
    MAX_COSIGNATURES,
    Cosignature,
    cosign,
    decode_cosignatures,
    encode_relayed,
    read_relayed,
    valid_cosignatures,
)
from relay.core.envelope import open_envelope
from relay.core.errors import BadInput
from relay.federation.auth import authorization
from relay.runtime.clock import FakeClock
from relay.storage import chain
from tests.fedkit import Front, Member, members, pulled, trusts
from tests.helpers import T0, key, wait_for

ORIGIN, WITNESS, STRANGER = key(1), key(2), key(3)
SKEW = timedelta(minutes=5)
EVERY = timedelta(seconds=10)
KEYRING = Keyring([KeyEntry("ventura", ORIGIN.public_key), KeyEntry("ojai", WITNESS.public_key)])


def _checkpoint(seq: int = 3) -> tuple[bytes, bytes]:
    raw = sign_checkpoint(make_checkpoint("ventura", seq, bytes(32), T0), ORIGIN)
    return raw, open_envelope(raw)[1]


def _valid(items: list[Cosignature], raw: bytes) -> list[Cosignature]:
    return valid_cosignatures(items, raw, KEYRING, "ventura", T0, SKEW)


def test_a_witness_cosignature_holds_and_binds_the_checkpoint_and_the_time() -> None:
    raw, payload = _checkpoint()
    mine = cosign(payload, WITNESS, T0 + timedelta(microseconds=5))
    assert mine.time == T0 and mine.witness == WITNESS.keyid
    assert _valid([mine], raw) == [mine]
    other_raw, _ = _checkpoint(seq=4)
    assert _valid([mine], other_raw) == []  # moved to another checkpoint
    moved = Cosignature(mine.witness, T0 + timedelta(seconds=1), mine.sig)
    assert _valid([moved], raw) == []  # another time
    by_origin = cosign(payload, ORIGIN, T0)
    by_stranger = cosign(payload, STRANGER, T0)
    future = cosign(payload, WITNESS, T0 + SKEW + timedelta(seconds=1))
    garbled = Cosignature(mine.witness, T0, "not base64!")
    kept = _valid([by_origin, by_stranger, future, garbled, mine], raw)
    assert kept == [mine]


def test_one_cosignature_per_witness_network_the_newest() -> None:
    raw, payload = _checkpoint()
    older = cosign(payload, WITNESS, T0 - timedelta(seconds=30))
    newer = cosign(payload, WITNESS, T0)
    assert _valid([newer, older], raw) == [newer]


def test_a_relayed_checkpoint_round_trips_and_a_bare_envelope_reads_as_one() -> None:
    raw, payload = _checkpoint()
    mine = cosign(payload, WITNESS, T0)
    body = encode_relayed(raw, [mine])
    assert json.loads(body)["checkpoint"] == raw.decode()
    assert read_relayed(body) == (raw, [mine])
    assert read_relayed(raw) == (raw, [])
    many = [cosign(payload, WITNESS, T0 - timedelta(seconds=n)) for n in range(6)]
    sent = read_relayed(encode_relayed(raw, many))[1]
    assert len(sent) == MAX_COSIGNATURES and sent[-1].time == T0  # the newest kept
    too_many = json.dumps(
        {"checkpoint": raw.decode(), "cosignatures": [json.loads(body)["cosignatures"][0]] * 5}
    ).encode()
    with pytest.raises(BadInput):
        read_relayed(too_many)
    with pytest.raises(BadInput):
        read_relayed(b'{"checkpoint":"x","extra":1}')


class LosesCancels(Front):
    """The link from ojai to oxnard: passes everything but transactions holding a cancel,
    which it answers as accepted and drops (the cancel is withheld on this path)."""

    dropped: int = 0

    async def _handle(self, request: web.Request) -> web.Response:
        if request.method == "PUT" and request.path.startswith("/federation/v1/send/"):
            envelopes = json.loads(await request.read())["envelopes"]
            payloads = [json.loads(base64.b64decode(item["payload"])) for item in envelopes]
            if any(payload["msg_type"] == "cancel" for payload in payloads):
                self.dropped += 1
                results = [{"id": p["id"], "status": "accepted", "reason": ""} for p in payloads]
                return web.json_response({"results": results})
        return await super()._handle(request)


def every_10s(text: str) -> str:
    return text + '\n[federation]\ncheckpoint_every = "10s"\n'


async def _state(member: Member, alert_id: str) -> str | None:
    found = await member.alert(alert_id)
    return None if found is None else str(found["state"])


async def test_a_far_node_learns_the_head_through_a_relay_and_repairs_the_cancel(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    async with members(tmp_path, clock, ["ventura", "ojai", "oxnard"], every_10s) as nodes:
        origin, relay, far = nodes["ventura"], nodes["ojai"], nodes["oxnard"]
        link, dead = LosesCancels(far.url), Front(origin.url, status=503)
        await link.start()
        await dead.start()
        try:
            # The origin knows only ojai; oxnard knows the origin's key but cannot reach it.
            await trusts(origin, relay)
            await trusts(relay, origin, forward=False)
            await trusts(relay, far, url=link.url)
            await trusts(far, relay, forward=False)
            await trusts(far, origin, url=dead.url, forward=False)
            # Each link's start-up pull done first: the cancel must come by repair alone.
            await wait_for(lambda: pulled(far, "ojai"), what="oxnard's first pull from ojai")
            await wait_for(lambda: pulled(relay, "ventura"), what="ojai's first pull")
            alert_id = (await origin.publish())["id"]
            await wait_for(lambda: _state(far, alert_id), what="the alert, through ojai")
            signed_at = clock()
            await origin.cancel(alert_id)
            await wait_for(lambda: link.dropped, what="the link to lose the cancel")
            assert far.node.federation is not None
            repairs = far.node.federation.repairs
            await wait_for(lambda: "ventura" in repairs.retry_at, what="the relayed checkpoint")
            assert (await far.node.db.read(lambda c: chain.checkpoint_of(c, "ventura"))) is not None
            clock.advance(EVERY / 2)

            async def cancelled() -> bool:
                return await _state(far, alert_id) == "cancelled"

            await wait_for(cancelled, what="the cancel fetched from ojai")
            assert clock() - signed_at <= 2 * EVERY
            # The fetch is counted once the chain has moved, a moment after the cancel applied.
            await wait_for(lambda: repairs.fetched == {"ojai": 1}, what="the fetch counted")
            await wait_for(lambda: not repairs.withheld, what="the withheld mark cleared")

            # The next checkpoint: ojai holds the origin's chain to it and cosigns it.
            clock.advance(EVERY)

            async def cosigned() -> list[Cosignature]:
                stored = await far.node.db.read(
                    lambda c: chain.checkpoint_cosignatures(c, "ventura")
                )
                return decode_cosignatures(stored)

            await wait_for(cosigned, what="the checkpoint cosigned by ojai")
            found = await cosigned()
            assert [item.witness for item in found] == [relay.node.key.keyid]
            raw = await far.node.db.read(lambda c: chain.checkpoint_envelope(c, "ventura"))
            assert raw is not None
            keyring = far.node.trust.keyring
            assert valid_cosignatures(found, raw, keyring, "ventura", clock(), SKEW) == found
            metrics = await relay.metrics()
            assert 'avisa_checkpoints_relayed_total{origin="ventura"}' in metrics
        finally:
            await link.stop()
            await dead.stop()


async def test_relayed_bodies_that_do_not_hold_are_refused_or_lose_their_cosignatures(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    async with members(tmp_path, clock, ["ventura", "oxnard"], every_10s) as nodes:
        origin, far = nodes["ventura"], nodes["oxnard"]
        await trusts(far, origin, forward=False)
        await trusts(origin, far, forward=False)
        path = "/federation/v1/checkpoints/ventura"

        async def put(body: bytes) -> tuple[int, dict[str, object]]:
            now = far.node.clock()
            header = authorization(origin.node.key, "PUT", path, "ventura", "oxnard", now, body)
            headers = {"Authorization": header, "Content-Type": "application/json"}
            async with far.http.put(far.url + path, data=body, headers=headers) as reply:
                return reply.status, await reply.json()

        clock.advance(EVERY)
        raw = sign_checkpoint(make_checkpoint("ventura", 0, bytes(32), clock()), origin.node.key)
        _, payload = open_envelope(raw)
        stranger = cosign(payload, STRANGER, clock())  # a key oxnard does not know
        by_origin = cosign(payload, origin.node.key, clock())  # an origin is no witness
        body = encode_relayed(raw, [stranger, by_origin])
        assert await put(body) == (200, {"status": "accepted", "reason": ""})
        kept = await far.node.db.read(lambda c: chain.checkpoint_cosignatures(c, "ventura"))
        assert decode_cosignatures(kept) == []
        for bad in (b'{"checkpoint":5}', b'{"checkpoint":"x","more":[]}'):
            assert await put(bad) == (200, {"status": "refused", "reason": "malformed"})
        status, reply = await put(b'{"checkpoint":"' + b" " * 4096 + b'"}')
        assert status == 413 and reply["errcode"] == "AVISA_TOO_LARGE"
        stored = await far.node.db.read(lambda c: chain.checkpoint_envelope(c, "ventura"))
        assert stored == raw  # what was refused changed nothing
