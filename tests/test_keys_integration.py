"""Rotation and revocation with two real running nodes (aiohttp on 127.0.0.1:0, SQLite).

Ventura publishes through its real API; its envelopes reach LA's pipeline
the way federation will deliver them (``pipeline.ingest`` with
``from_peer``), and key documents reach LA through the store helper that
federation will call, or through ``avisa trust update``. The operator's key
commands run as the CLI runs them, against the data directories, while both
nodes keep running.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from keys.core.fingerprint import fingerprint
from keys.store import own_ops, peer_ops, peerstore
from relay.cli import datadir
from relay.core.model import encode_envelope
from relay.runtime.clock import FakeClock
from relay.runtime.node import Node
from relay.storage.files import write_private
from tests.conftest import RunningNode, start_node
from tests.helpers import T0, make_alert, raw_envelope, wait_for
from tests.test_api import DRAFT


@dataclass
class Pair:
    ventura: RunningNode
    la: RunningNode
    clock: FakeClock


@pytest.fixture
async def pair(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Pair]:
    started = [await start_node(tmp_path, clock, name) for name in ("ventura", "la")]
    async with aiohttp.ClientSession() as http:
        nodes = [RunningNode(n, url, token, http, n.data_dir) for n, _, url, token in started]
        yield Pair(nodes[0], nodes[1], clock)
    for node, runner, _, _ in started:
        await runner.cleanup()
        await node.stop()


async def publish(node: RunningNode) -> tuple[str, bytes]:
    status, body = await node.call("POST", "/api/v1/alerts", json=DRAFT)
    assert status == 201, body
    return body["id"], json.dumps(body["envelope"]).encode()


def signer(raw: bytes) -> str:
    return str(json.loads(raw)["signatures"][0]["keyid"])


async def deliver(pair: Pair, raw: bytes) -> tuple[str, str]:
    (outcome,) = await pair.la.node.pipeline.ingest([raw], from_peer="ventura")
    return outcome.status, outcome.reason


async def state_at_la(pair: Pair, alert_id: str) -> Any:
    status, body = await pair.la.call("GET", "/api/v1/alerts/" + alert_id)
    assert status == 200, body
    return body["state"]


async def ceremony(pair: Pair) -> None:
    """Ventura exports its card; LA's operator adds it with the fingerprint read aloud."""
    card = encode_envelope(
        await asyncio.to_thread(own_ops.export_card, pair.ventura.data_dir, None, pair.clock)
    )
    spoken = fingerprint(pair.ventura.node.key.public_key)
    scope = peer_ops.Scope(speaks_for=["fips:06111"])
    await asyncio.to_thread(peer_ops.add, pair.la.data_dir, card, spoken, scope, pair.clock)


def ticking(clock: FakeClock, condition: Callable[[], bool]) -> Callable[[], bool]:
    """``condition``, moving the node's clock a second each time it is still false:
    the trust poll runs every ``TRUST_POLL_S`` on the node's clock, not in real time."""

    def check() -> bool:
        if condition():
            return True
        clock.advance(timedelta(seconds=1))
        return False

    return check


async def la_trusts(pair: Pair, keyid: str, *, revoked: bool = False) -> None:
    """Wait for LA's running node to reload its snapshot (it polls every ~2 s)."""

    def seen() -> bool:
        entry = pair.la.node.trust.keyring.get(keyid)
        return entry is not None and (entry.revoked_at is not None) == revoked

    await wait_for(ticking(pair.clock, seen), timeout=15, what=f"LA to reload trust for {keyid}")


async def test_rotation_and_revocation_while_both_nodes_run(pair: Pair) -> None:
    clock, ventura, la = pair.clock, pair.ventura, pair.la
    first_key = ventura.node.key.keyid
    await ceremony(pair)
    await la_trusts(pair, first_key)

    a1, raw1 = await publish(ventura)
    assert signer(raw1) == first_key
    assert await deliver(pair, raw1) == ("accepted", "authoritative")

    # --- rotation by the CLI while Ventura runs ------------------------------------
    clock.advance("10m")
    rotated = await asyncio.to_thread(own_ops.rotate, ventura.data_dir, None, clock)
    a2, raw2 = await publish(ventura)
    assert signer(raw2) == rotated.keyid != first_key  # the running node switched at once
    assert ventura.node.key.keyid == rotated.keyid
    assert await deliver(pair, raw2) == ("rejected", "unknown_key")  # LA has not heard yet

    # Federation will fetch GET /federation/v1/keys and hand the bytes to the store helper.
    document = await ventura.node.db.read(
        lambda conn: own_ops.key_document(conn, ventura.node.config, ventura.node.key, clock())
    )
    stored = await la.node.db.write(
        lambda conn: peerstore.store_document(
            conn,
            la.node.config,
            la.node.own_keys(),
            encode_envelope(document),
            clock(),
            expected_network="ventura",
        )
    )
    assert stored.result.trusted and [c.action for c in stored.result.changes] == ["rotated"]
    await la_trusts(pair, rotated.keyid)
    assert await deliver(pair, raw2) == ("accepted", "authoritative")

    clock.advance("10m")
    a3, raw3 = await publish(ventura)
    assert await deliver(pair, raw3) == ("accepted", "authoritative")

    # --- Ventura's server was seized at T0+15m; found out at T0+30m ----------------
    seized = ventura.node.key  # what the intruder copied
    clock.advance("10m")
    seized_at = T0 + timedelta(minutes=15)
    revoked = await asyncio.to_thread(
        lambda: own_ops.revoke_own(ventura.data_dir, None, "2026-11-23T12:15:00Z", clock=clock)
    )
    assert revoked.old_keyid == rotated.keyid and revoked.at == seized_at
    card = await asyncio.to_thread(own_ops.export_card, ventura.data_dir, None, clock)
    result = await asyncio.to_thread(peer_ops.update, la.data_dir, encode_envelope(card), clock)
    assert result.result.revoked == {rotated.keyid: seized_at}
    assert result.held_again == [a3]  # received after the seizure, on that key's word alone
    await la_trusts(pair, rotated.keyid, revoked=True)

    assert await state_at_la(pair, a1) == "active"  # first key, untouched
    assert await state_at_la(pair, a2) == "active"  # received before the seizure
    assert await state_at_la(pair, a3) == "held"
    status, held = await la.call("GET", "/api/v1/held")
    assert [(item["alert"]["id"], item["reason"]) for item in held["held"]] == [(a3, "revoked_key")]

    # Whoever holds the seized key keeps signing: refused, backdated or not.
    for sent_at in (clock(), seized_at - timedelta(minutes=1)):  # now, and backdated
        forged = raw_envelope(make_alert("ventura", sent_at=sent_at, seq=99), seized)
        assert await deliver(pair, forged) == ("rejected", "revoked_key")

    # Ventura's new key comes only through a new ceremony.
    a4, raw4 = await publish(ventura)
    assert signer(raw4) == revoked.keyid
    assert await deliver(pair, raw4) == ("rejected", "unknown_key")
    await ceremony(pair)
    await la_trusts(pair, revoked.keyid)
    assert await deliver(pair, raw4) == ("accepted", "authoritative")


async def test_a_sealed_node_follows_a_rotation_without_being_asked(
    tmp_path: Path, clock: FakeClock
) -> None:
    """No publish triggers it: the ~2 s trust poll alone switches the signing key."""
    passphrase = b"correct horse battery staple"
    data = datadir.initialize(
        tmp_path / "ventura", "ventura", "127.0.0.1:0", passphrase=passphrase, clock=clock
    ).data_dir
    write_private(data / "passphrase", passphrase + b"\n")
    config = data / "avisa.toml"
    config.write_text(
        config.read_text().replace(
            '# passphrase_file = "passphrase"', 'passphrase_file = "passphrase"'
        )
    )
    node = Node.load(data, clock)
    await node.start()
    try:
        first = node.key.keyid
        clock.advance("1h")
        rotated = await asyncio.to_thread(own_ops.rotate, data, passphrase, clock)
        switched = ticking(clock, lambda: node.key.keyid == rotated.keyid)
        await wait_for(switched, timeout=20, what="key switch")
        assert rotated.old_keyid == first
        own = {e.keyid: e for e in node.trust.keyring if e.network == "ventura"}
        assert own[first].valid_until == T0 + timedelta(hours=1)  # the rotation's time, not later
        assert own[rotated.keyid].status(clock()) == "valid"
    finally:
        await node.stop()
