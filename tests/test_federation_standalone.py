"""A ``Federation`` built and run without a ``Node`` (issue 16 item 4).

Federation sees its node only as a ``relay.federation.host.FederationHost``.
Here that is a small dataclass over real parts: a SQLite file made by
``avisa init``, a real ``Pipeline``, a ``FeedSignal`` and a ``FakeClock``.
The tests also show the one clock at work: a link's backoff ends when the
fake clock is moved, and not before, with no real time waited.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import aiohttp
import msgspec
import pytest
from aiohttp import web

from keys.core.keyring import KeyEntry, Keyring
from keys.core.signing import NodeKey
from keys.store import ownkeys
from relay.cli import datadir
from relay.core.config import Config
from relay.core.policy import PeerPolicy
from relay.federation import inbound
from relay.federation.service import Federation
from relay.runtime.clock import FakeClock
from relay.runtime.feed import FeedSignal
from relay.runtime.httpio import error_middleware
from relay.runtime.log import DecisionLog
from relay.runtime.metrics import Metrics
from relay.runtime.pipeline import Pipeline
from relay.storage import configfile, trust
from relay.storage.db import Database
from relay.storage.trust import TrustSnapshot
from tests.helpers import key, wait_for

PEER_KEY = key(7)


@dataclass
class Standalone:
    """Everything federation uses of a node, and nothing else."""

    network: str
    key: NodeKey
    config: Config
    db: Database
    clock: FakeClock
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(2))
    feed: FeedSignal = field(default_factory=FeedSignal)
    metrics: Metrics = field(default_factory=Metrics)
    trust: TrustSnapshot = field(init=False)
    pipeline: Pipeline = field(init=False)

    def __post_init__(self) -> None:
        self.trust = TrustSnapshot(trust.policy_from_config(self.config, ()), Keyring())
        self.pipeline = Pipeline(
            self.db,
            self.clock,
            lambda: self.trust,
            self.pool,
            timedelta(days=8),
            DecisionLog(),
            lambda pos, _: self.feed.advance(pos),
            self.metrics,
        )

    def own_keys(self) -> list[KeyEntry]:
        return [KeyEntry(self.network, self.key.public_key)]

    async def reload_trust(self) -> None:
        own = self.own_keys()
        self.trust = await self.db.read(lambda c: trust.load_snapshot(c, self.config, own))

    def retention_window(self) -> timedelta:
        return timedelta(days=7)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def host(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Standalone]:
    data = datadir.initialize(tmp_path / "hub", "hub", "127.0.0.1:0", clock=clock).data_dir
    config = configfile.load(data)
    signing = ownkeys.load_signing_key(data, "hub", None)
    made = Standalone("hub", signing, config, Database(data / "avisa.db"), clock)
    record = trust.PeerRecord(
        "down",
        f"http://127.0.0.1:{closed_port()}",
        (KeyEntry("down", PEER_KEY.public_key),),
        PeerPolicy(network="down", speaks_for=("fips:06",)),
    )
    await made.db.write(lambda c: trust.save_peer(c, record, clock()))
    await made.reload_trust()
    yield made
    made.pool.shutdown(wait=True)
    made.db.close()


async def test_link_backs_off_on_the_fake_clock_and_retries_when_it_moves(
    host: Standalone, clock: FakeClock
) -> None:
    federation = Federation(host)
    federation.timing.random = lambda: 0.5  # the backoff at its midpoint: 0.75 s, then 1.5 s
    await federation.start()
    try:
        await wait_for(lambda: federation.peer_status("down").get("failures") == 1, 10, "failure")
        status = federation.peer_status("down")
        assert status["backoff"] == 0.75
        await wait_for(lambda: clock.sleepers() >= 1, 10, "the link to wait on the clock")
        for _ in range(20):  # real time passes, fake time does not: the link keeps waiting
            await asyncio.sleep(0)
        assert federation.peer_status("down")["failures"] == 1
        clock.advance(timedelta(seconds=1))
        await wait_for(lambda: federation.peer_status("down")["failures"] == 2, 10, "a retry")
        assert federation.peer_status("down")["backoff"] == 1.5
    finally:
        await federation.stop()


async def test_inbound_routes_serve_from_a_standalone_federation(host: Standalone) -> None:
    federation = Federation(host)
    app = web.Application(middlewares=[error_middleware(lambda errcode, status: None)])
    app[inbound.FEDERATION] = federation
    app.add_routes(inbound.routes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/federation/v1/keys") as reply:
                assert reply.status == 200
                document = msgspec.json.decode(await reply.read())
            async with http.put(f"http://127.0.0.1:{port}/federation/v1/send/t1") as refused:
                assert refused.status == 401
                assert (await refused.json())["errcode"].startswith("AVISA_")
    finally:
        await runner.cleanup()
        await federation.stop()
    payload = msgspec.json.decode(base64.b64decode(document["payload"]))
    assert payload["network"] == "hub"
