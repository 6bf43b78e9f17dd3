"""The desk's peers page and checkpoints (DESIGN §16): what a peer withheld, the word
from it as an origin (a checkpoint at 12:00, or "no word from net-a since 12:00", also
beside its active alerts), and a split view caught, in both languages, cleared by an
admin; a real node, checkpoints signed by the test as the peer would (docs/protocol.md
§9)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from keys.core.keyring import KeyEntry
from relay.core.checkpoints import make_checkpoint, sign_checkpoint
from relay.core.policy import PeerPolicy
from relay.federation.auth import authorization
from relay.runtime.clock import FakeClock
from relay.storage import trust
from tests.conftest import RunningNode, start_node
from tests.helpers import key, make_alert, raw_envelope, wait_for
from tests.webdesk.deskclient import DeskClient

PEER = key(81)


@pytest.fixture
async def node(tmp_path: Path, clock: FakeClock) -> AsyncIterator[RunningNode]:
    started, runner, url, token = await start_node(tmp_path, clock)
    async with aiohttp.ClientSession() as http:
        running = RunningNode(started, url, token, http, started.data_dir)
        record = trust.PeerRecord(
            "net-a",
            "http://127.0.0.1:9",
            (KeyEntry("net-a", PEER.public_key),),
            PeerPolicy(network="net-a", speaks_for=("fips:06",)),
        )
        await started.db.write(lambda conn: trust.save_peer(conn, record, started.clock()))
        await started.reload_trust()
        yield running
    await runner.cleanup()
    await started.stop()


@pytest.fixture
async def desk(node: RunningNode) -> AsyncIterator[DeskClient]:
    client = DeskClient.open(node.url)
    await client.login(node.token)
    yield client
    await client.close()


async def push(node: RunningNode, seq: int, head: bytes) -> str:
    """net-a pushes its checkpoint; the verdict."""
    raw = sign_checkpoint(make_checkpoint("net-a", seq, head, node.node.clock()), PEER)
    path = "/federation/v1/checkpoints/net-a"
    now = node.node.clock()
    header = authorization(PEER, "PUT", path, "net-a", node.node.network, now, raw)
    headers = {"Authorization": header, "Content-Type": "application/json"}
    async with node.http.put(node.url + path, data=raw, headers=headers) as reply:
        assert reply.status == 200
        return str((await reply.json())["status"])


async def test_the_peers_page_shows_withheld_silence_and_a_split(
    node: RunningNode, desk: DeskClient, clock: FakeClock
) -> None:
    _, page, _ = await desk.page("/desk/peers?lang=en")
    assert "no checkpoint yet" in page and "Withheld" in page

    # net-a delivered its message 1, then its checkpoint shows 3: 2 and 3 are withheld.
    envelope = raw_envelope(make_alert("net-a", seq=1), PEER)
    await node.node.pipeline.ingest([envelope], from_peer="net-a")
    assert await push(node, 3, bytes(32)) == "accepted"
    _, page, _ = await desk.page("/desk/peers?lang=en")
    assert "checkpoint at 12:00 UTC" in page
    assert node.node.federation is not None
    repairs = node.node.federation.repairs  # type: ignore[attr-defined]
    await wait_for(lambda: "net-a" in repairs.retry_at, what="the repair's grace")
    clock.advance(timedelta(seconds=30))

    async def withheld() -> bool:
        _, text, _ = await desk.page("/desk/peers?lang=en")
        return "2 from net-a, since 12:00 UTC" in text

    await wait_for(withheld, what="the withheld messages on the peers page")

    # Five minutes and more without a word: silent.
    clock.advance(timedelta(minutes=5))
    _, page, _ = await desk.page("/desk/peers?lang=en")
    assert "no word from net-a since 12:00 UTC" in page
    _, page, _ = await desk.page("/desk/peers?lang=es")
    assert "sin noticias de net-a desde las 12:00 UTC" in page and "Retenidos" in page
    _, page, _ = await desk.page("/desk/alerts?lang=en")  # beside net-a's active alert
    assert 'origin-silent">no word from net-a since 12:00 UTC</span>' in page

    # Another checkpoint for seq 3 with another head: a split view, caught and shown.
    assert await push(node, 3, b"\1" * 32) == "refused"
    _, page, _ = await desk.page("/desk/peers?lang=en")
    assert "net-a signed two different histories (seq 3)" in page
    _, page, _ = await desk.page("/desk/peers?lang=es")
    assert "net-a firmó dos historias distintas (seq 3)" in page

    # An admin decides from the page; a forged form changes nothing.
    path = "/desk/peers/net-a/equivocation/clear"
    assert (await desk.post(path, {"csrf": "forged"}))[0] == 403
    assert node.node.trust.policy.equivocating == frozenset({"net-a"})
    token = await desk.csrf("/desk/peers")
    status, _, headers = await desk.post(path, {"csrf": token})
    assert status == 303 and headers["Location"] == "/desk/peers?done=1"
    assert node.node.trust.policy.equivocating == frozenset()
    _, page, _ = await desk.page("/desk/peers?lang=en")
    assert "signed two different histories" not in page
    status, _, headers = await desk.post(path, {"csrf": token})  # nothing left to clear
    assert status == 303 and headers["Location"] == "/desk/peers?error=AVISA_NOT_FOUND"
