"""Fixtures for the Matrix tests: one real Synapse per session, fresh users per test.

The homeserver is installed (first run only) and started once per session;
its install and start-up times are printed in the test summary. Each test
gets its own bridge user, reader and rooms, so tests never see each other's
messages, and a test that stops the homeserver starts it again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bridges.matrix.localsynapse import Homeserver, Registered, launch
from bridges.runner import start_bridges
from relay.runtime.clock import FakeClock
from relay.runtime.node import Node
from relay.storage.files import write_private
from tests.conftest import start_node
from tests.matrix.reader import Reader

TIMINGS: dict[str, Any] = {}


@pytest.fixture(scope="session")
def homeserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homeserver]:
    server, install_seconds = launch(tmp_path_factory.mktemp("synapse"))
    TIMINGS["install"] = install_seconds
    TIMINGS["startups"] = server.startup_seconds
    try:
        yield server
    finally:
        server.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        startups = ", ".join(f"{s:.1f}s" for s in TIMINGS["startups"])
        install = TIMINGS["install"]
        terminalreporter.write_line(
            f"synapse: install {install:.1f}s (about 0 when cached), start-ups {startups}"
        )


@dataclass
class Sleeps:
    """The bridge's injected sleep: records every wait, waits at most ``cap`` seconds."""

    cap: float = 0.05
    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(min(seconds, self.cap))


@dataclass
class World:
    homeserver: Homeserver
    owner: Registered
    bot: Registered
    reader: Reader
    tmp: Path

    async def room(self, *, encrypted: bool = False, join: bool = True) -> tuple[str, str]:
        alias = "r" + uuid.uuid4().hex[:10]
        room_id = await self.homeserver.create_room(self.owner, alias, encrypted=encrypted)
        if join:
            await self.reader.join(room_id)
        return f"#{alias}:localhost", room_id

    def bridge_toml(
        self,
        routes: str,
        *,
        expiry_check: str = "1s",
        retry_max: str = "5m",
        secret: str = "password_file",
    ) -> str:
        return f"""
[[bridges.matrix]]
homeserver = "{self.homeserver.url}"
user_id = "{self.bot.user_id}"
{secret} = "matrix.secret"
expiry_check = "{expiry_check}"
retry_max = "{retry_max}"
{routes}
"""

    async def start_node(
        self,
        clock: FakeClock,
        routes: str,
        *,
        sleeps: Sleeps | None = None,
        network: str = "ventura",
        **options: Any,
    ) -> tuple[Node, Any, str, str]:
        """A node on 127.0.0.1:0 with this world's bridge, started."""
        node, runner, url, token = await start_node(
            self.tmp, clock, network, self.bridge_toml(routes, **options)
        )
        by_token = options.get("secret") == "access_token_file"
        secret = self.bot.access_token if by_token else self.bot.password
        write_private(node.data_dir / "matrix.secret", secret.encode())
        node.bridges = start_bridges(node, sleep=sleeps or Sleeps(), idle_wait=0.2)
        return node, runner, url, token

    async def restart_node(self, node: Node, runner: Any, clock: FakeClock, sleeps: Sleeps) -> Node:
        await runner.cleanup()
        await node.stop()
        fresh = Node.load(node.data_dir, clock)
        await fresh.start()
        fresh.bridges = start_bridges(fresh, sleep=sleeps, idle_wait=0.2)
        return fresh


@pytest.fixture
async def world(homeserver: Homeserver, tmp_path: Path) -> AsyncIterator[World]:
    tag = uuid.uuid4().hex[:8]
    owner = await homeserver.register(f"owner{tag}", admin=True)
    bot = await homeserver.register(f"avisa{tag}")
    reader_user = await homeserver.register(f"member{tag}")
    reader = Reader(homeserver, reader_user, tmp_path / "reader-store")
    await reader.start()
    try:
        yield World(homeserver, owner, bot, reader, tmp_path)
    finally:
        await reader.stop()


async def set_power(world: World, room_id: str, user_id: str, level: int) -> None:
    """The room owner gives ``user_id`` a power level (e.g. to enable encryption)."""
    path = f"/_matrix/client/v3/rooms/{room_id}/state/m.room.power_levels"
    token = world.owner.access_token
    levels = await world.homeserver.request("GET", path, token)
    levels.setdefault("users", {})[user_id] = level
    await world.homeserver.request("PUT", path, token, levels)
