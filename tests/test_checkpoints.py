"""Checkpoints (DESIGN §16): the signed envelope and how a node reads one (pure), the
setting, and a real node that signs its own every ``checkpoint_every`` and right after a
cancel, and serves them and its stored messages to signed peer requests."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import msgspec
import nacl.bindings
import pytest

from keys.core.keyring import KeyEntry, Keyring
from relay.core import config
from relay.core.checkpoints import (
    CHECKPOINT_PAYLOAD_TYPE,
    MAX_CHECKPOINT_BYTES,
    Checkpoint,
    Refused,
    chain_heads,
    check_checkpoint,
    decode_checkpoint,
    entry_digest,
    make_checkpoint,
    sign_checkpoint,
)
from relay.core.envelope import open_envelope, pae, sign
from relay.core.errors import ConfigError
from relay.core.model import encode_envelope
from relay.federation.auth import authorization
from relay.federation.checkpointing import next_interval
from relay.runtime.clock import FakeClock
from tests.fedkit import Member, members, trusts
from tests.helpers import T0, key, wait_for

VENTURA, OTHER = key(1), key(2)
SKEW = timedelta(minutes=5)
KEYRING = Keyring([KeyEntry("ventura", VENTURA.public_key), KeyEntry("other", OTHER.public_key)])
HEAD = bytes(range(32))


def signed(seq: int = 3, at: timedelta = timedelta(0), network: str = "ventura") -> bytes:
    return sign_checkpoint(make_checkpoint(network, seq, HEAD, T0 + at), VENTURA)


def check(raw: bytes, latest: dict[str, Checkpoint] | None = None) -> Checkpoint | Refused:
    return check_checkpoint(raw, KEYRING, T0, SKEW, latest or {})


def reason(raw: bytes, latest: dict[str, Checkpoint] | None = None) -> str:
    result = check(raw, latest)
    assert isinstance(result, Refused), result
    return result.reason


def with_payload(payload: bytes, signer: object = VENTURA) -> bytes:
    return encode_envelope(sign(payload, signer, CHECKPOINT_PAYLOAD_TYPE))  # type: ignore[arg-type]


# --- the envelope, pure ------------------------------------------------------------


def test_a_checkpoint_is_a_dsse_envelope_of_the_canonical_payload() -> None:
    raw = signed()
    envelope, payload = open_envelope(raw)
    assert envelope.payloadType == "application/vnd.avisa.checkpoint.v1+json"
    assert payload == (
        b'{"network":"ventura","seq":3,"head":"' + HEAD.hex().encode() + b'",'
        b'"issued_at":"2026-11-23T12:00:00Z"}'
    )
    assert len(raw) < 500 < MAX_CHECKPOINT_BYTES
    assert check(raw) == Checkpoint("ventura", 3, HEAD.hex(), T0)


def test_refused_checkpoints_say_why() -> None:
    latest = {"ventura": Checkpoint("ventura", 5, HEAD.hex(), T0)}
    assert reason(signed(6, network="other")) == "origin_mismatch"  # ventura's key, other's name
    assert reason(sign_checkpoint(make_checkpoint("ventura", 3, HEAD, T0), key(7))) == (
        "unknown_key"
    )
    assert reason(signed(at=SKEW + timedelta(seconds=1))) == "from_future"
    assert check(signed(at=SKEW)) is not None
    assert reason(signed(4), latest) == "seq_below_seen"
    assert reason(signed(5), latest) == "not_newer"  # the same one again: a replay
    assert isinstance(check(signed(5, at=timedelta(minutes=1)), latest), Checkpoint)
    assert isinstance(check(signed(6, at=-timedelta(minutes=1)), latest), Checkpoint)
    assert reason(b" " * (MAX_CHECKPOINT_BYTES + 1)) == "too_large"
    assert reason(b'{"payloadType":1}') == "malformed"
    alert_type = encode_envelope(sign(b"{}", VENTURA))
    assert reason(alert_type) == "unsupported_payload_type"


def test_refused_payloads_and_signatures() -> None:
    good = json.loads(signed())
    good["signatures"].append(json.loads(signed())["signatures"][0] | {"keyid": OTHER.keyid})
    assert reason(json.dumps(good).encode()) == "too_many_signatures"
    forged = json.loads(signed())
    forged["payload"] = base64.b64encode(open_envelope(signed(4))[1]).decode()
    assert reason(json.dumps(forged).encode()) == "bad_signature"
    payload = open_envelope(signed())[1]
    assert reason(with_payload(payload.replace(b":3,", b": 3,"))) == "non_canonical"
    assert reason(with_payload(payload.replace(b'"seq":3', b'"seq":-1'))) == "malformed_payload"
    assert reason(with_payload(payload[:-1] + b',"x":1}')) == "malformed_payload"
    revoked = Keyring([KeyEntry("ventura", VENTURA.public_key, revoked_at=T0)])
    result = check_checkpoint(signed(), revoked, T0, SKEW, {})
    assert result == Refused("key_revoked", "ventura")


# --- the setting -----------------------------------------------------------------------


def test_checkpoint_every_defaults_to_a_minute_and_is_checked() -> None:
    base = '[node]\nnetwork = "ventura"\n'
    assert config.parse(base).federation.checkpoint_every == "60s"
    assert config.parse(base + '[federation]\ncheckpoint_every = "5m"\n').federation
    for bad in ('"0s"', '"2h"', '"soon"', "60"):
        with pytest.raises(ConfigError) as refused:
            config.parse(base + f"[federation]\ncheckpoint_every = {bad}\n")
        assert "federation.checkpoint_every" in str(refused.value)


# --- a real node ------------------------------------------------------------------------


def every_10s(text: str) -> str:
    return text + '\n[federation]\ncheckpoint_every = "10s"\n'


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Member, Member, FakeClock]]:
    clock = FakeClock(T0)
    async with members(tmp_path, clock, ["ventura", "oxnard"], every_10s) as nodes:
        ventura, oxnard = nodes["ventura"], nodes["oxnard"]
        await trusts(ventura, oxnard)
        await trusts(oxnard, ventura)
        yield ventura, oxnard, clock


async def fetch(by: Member, of: Member, path: str) -> tuple[int, bytes]:
    header = authorization(by.node.key, "GET", path, by.network, of.network, of.node.clock())
    async with of.http.get(of.url + path, headers={"Authorization": header}) as reply:
        return reply.status, await reply.read()


async def own_checkpoint(member: Member) -> Checkpoint:
    assert member.node.federation is not None
    raw = member.node.federation.checkpointer.latest
    assert raw is not None
    return decode_checkpoint(open_envelope(raw)[1])


async def test_a_node_signs_its_chain_every_interval_and_right_after_a_cancel(
    pair: tuple[Member, Member, FakeClock],
) -> None:
    ventura, oxnard, clock = pair
    await wait_for(lambda: ventura.node.federation.checkpointer.issued >= 1)
    first = await own_checkpoint(ventura)
    assert (first.seq, first.head, first.issued_at) == (0, bytes(32).hex(), T0)
    published = [await ventura.publish() for _ in range(2)]
    clock.advance("10s")
    await wait_for(lambda: ventura.node.federation.checkpointer.issued >= 2)
    second = await own_checkpoint(ventura)
    raws = []
    for n in (1, 2):
        status, raw = await fetch(oxnard, ventura, f"/federation/v1/messages/ventura/{n}")
        assert status == 200
        raws.append(raw)
    assert json.loads(raws[0]) == published[0]["envelope"]
    digests = [entry_digest(*_typed(raw)) for raw in raws]
    assert second.seq == 2 and second.head == chain_heads(digests)[-1].hex()
    assert second.issued_at == T0 + timedelta(seconds=10)
    # A cancel is announced at once, without waiting for the interval.
    await ventura.cancel(published[0]["id"])
    await wait_for(lambda: ventura.node.federation.checkpointer.issued >= 3)
    third = await own_checkpoint(ventura)
    assert third.seq == 3 and third.issued_at == second.issued_at
    # Served as signed, to a signed request of a peer.
    status, raw = await fetch(oxnard, ventura, "/federation/v1/checkpoints/ventura")
    assert status == 200
    assert check_checkpoint(
        raw, Keyring([KeyEntry("ventura", ventura.node.key.public_key)]), clock(), SKEW, {}
    ) == Checkpoint("ventura", 3, third.head, third.issued_at)
    assert "avisa_checkpoints_signed_total 3" in await ventura.metrics()


def test_intervals_are_spread_so_nodes_started_together_drift_apart() -> None:
    rng = random.Random(7)
    intervals = [next_interval(60.0, rng) for _ in range(1000)]
    assert all(48.0 <= seconds <= 60.0 for seconds in intervals)  # never later than asked
    assert max(intervals) - min(intervals) > 10.0
    # Two nodes started in the same second are apart by more than a second within minutes.
    first, second = random.Random(1), random.Random(2)
    at_first = at_second = 0.0
    for _ in range(5):
        at_first += next_interval(60.0, first)
        at_second += next_interval(60.0, second)
    assert abs(at_first - at_second) > 1.0


def _typed(raw: bytes) -> tuple[str, bytes]:
    envelope, payload = open_envelope(raw)
    return envelope.payloadType, payload


async def test_the_fetch_endpoints_refuse_bad_requests_with_a_reason(
    pair: tuple[Member, Member, FakeClock],
) -> None:
    ventura, oxnard, _ = pair
    await ventura.publish()
    for path, status, errcode in (
        ("/federation/v1/messages/ventura/2", 404, "AVISA_NOT_FOUND"),
        ("/federation/v1/messages/ventura/0", 400, "AVISA_BAD_SEQ"),
        ("/federation/v1/messages/ventura/01", 400, "AVISA_BAD_SEQ"),
        ("/federation/v1/messages/ventura/9007199254740992", 400, "AVISA_BAD_SEQ"),
        ("/federation/v1/messages/Ventura/1", 400, "AVISA_BAD_NETWORK"),
        ("/federation/v1/checkpoints/nowhere", 404, "AVISA_NOT_FOUND"),
        ("/federation/v1/checkpoints/-x", 400, "AVISA_BAD_NETWORK"),
    ):
        got, body = await fetch(oxnard, ventura, path)
        assert (got, msgspec.json.decode(body)["errcode"]) == (status, errcode), path
    # Unsigned, or signed by a stranger: 401, nothing served.
    async with ventura.http.get(ventura.url + "/federation/v1/messages/ventura/1") as reply:
        assert reply.status == 401
    async with ventura.http.get(ventura.url + "/federation/v1/checkpoints/ventura") as reply:
        assert reply.status == 401
    status, _ = await fetch(oxnard, ventura, "/federation/v1/messages/ventura/1")
    assert status == 200


def test_the_signature_covers_the_pae_of_the_payload() -> None:
    envelope, payload = open_envelope(signed())
    signature = base64.b64decode(envelope.signatures[0].sig)
    message = pae(CHECKPOINT_PAYLOAD_TYPE, payload)
    assert nacl.bindings.crypto_sign_open(signature + message, VENTURA.public_key) == message
