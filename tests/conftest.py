"""Fixtures: a real node on a real SQLite file, served on 127.0.0.1:0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.cli import datadir
from relay.http.app import serve
from relay.runtime.clock import FakeClock
from relay.runtime.node import Node
from relay.storage import db, trust
from tests.helpers import T0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@dataclass
class RunningNode:
    node: Node
    url: str
    token: str
    http: aiohttp.ClientSession
    data_dir: Path

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = kwargs.pop("headers", None) or self.headers()
        async with self.http.request(method, self.url + path, headers=headers, **kwargs) as r:
            body = await r.read()
            try:
                return r.status, (await r.json(content_type=None)) if body else None
            except ValueError:
                return r.status, body

    def add_peer(self, record: trust.PeerRecord) -> None:
        conn = db.open_sync(self.node.db.path)
        try:
            db.transaction(conn, lambda c: trust.save_peer(c, record, self.node.clock()))
        finally:
            conn.close()


async def start_node(
    tmp_path: Path,
    clock: FakeClock,
    network: str = "ventura",
    config_extra: str = "",
    node_extra: str = "",
) -> tuple[Node, Any, str, str]:
    """``config_extra`` is appended to avisa.toml, ``node_extra`` added to its [node]."""
    result = datadir.initialize(tmp_path / network, network, "127.0.0.1:0", clock=clock)
    path = result.data_dir / "avisa.toml"
    path.write_text(path.read_text().replace("[node]\n", "[node]\n" + node_extra, 1) + config_extra)
    node = Node.load(result.data_dir, clock)
    await node.start()
    runner, port = await serve(node, "127.0.0.1", 0)
    return node, runner, f"http://127.0.0.1:{port}", result.token


@pytest.fixture
async def running(tmp_path: Path, clock: FakeClock) -> AsyncIterator[RunningNode]:
    node, runner, url, token = await start_node(tmp_path, clock)
    async with aiohttp.ClientSession() as http:
        yield RunningNode(node, url, token, http, node.data_dir)
    await runner.cleanup()
    await node.stop()


@pytest.fixture
def procs() -> Iterator[list[Any]]:
    """``tests.test_federation_process.Proc`` nodes a test started; stopped afterwards."""
    started: list[Any] = []
    yield started
    for proc in started:
        proc.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``pytest -n N --dist loadgroup`` (make test) a file's tests stay on one
    worker (module fixtures start once) and every Matrix test shares one worker, so the
    suite starts one Synapse, not one per worker."""
    for item in items:
        relative = item.path.relative_to(Path(__file__).parent).as_posix()
        group = "matrix" if relative.startswith("matrix/") else relative
        item.add_marker(pytest.mark.xdist_group(group))
