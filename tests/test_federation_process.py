"""Two ``avisa run`` processes on a shared test clock file; one is SIGKILLed mid-stream."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from keys.core.keyring import KeyEntry
from keys.store import nodekey
from relay.cli import datadir
from relay.core.policy import PeerPolicy
from relay.core.times import rfc3339
from relay.runtime.clock import TEST_CLOCK_ENV, FakeClock
from relay.storage import db, trust
from tests.helpers import T0, wait_for
from tests.test_api import DRAFT
from tests.test_cli import AVISA


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def set_clock(path: Path, moment: datetime) -> None:
    draft = path.with_suffix(".tmp")
    draft.write_text(rfc3339(moment))
    draft.replace(path)  # readers see the old time or the new one, never half


def tick(path: Path, seconds: int = 1) -> None:
    """Move the file clock on: a node's loops run on it, and a clock that stands still
    after a jump runs no timer again (wait on a purge with this inside the condition)."""
    now = datetime.fromisoformat(path.read_text().strip())
    set_clock(path, now + timedelta(seconds=seconds))


class Proc:
    """One node as an ``avisa run`` subprocess."""

    log_level = "warning"

    def __init__(self, data: Path, port: int, env: dict[str, str]) -> None:
        self.data, self.port, self.env = data, port, env
        self.url = f"http://127.0.0.1:{port}"
        self.token = (data / "operator.token").read_text().strip()
        self.log = data.parent / f"{data.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*AVISA, "run", "--data", str(self.data), "--log-level", self.log_level],
                env=self.env,
                stderr=log,
                stdout=subprocess.DEVNULL,
            )

        def announced() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()
            try:
                return json.loads((self.data / "run.json").read_text())["pid"] == self.process.pid
            except (OSError, ValueError):
                return False

        await wait_for(announced, timeout=30, what=f"{self.data.name} started")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)


def setup_node(tmp_path: Path, network: str, port: int) -> Path:
    return datadir.initialize(
        tmp_path / network, network, f"127.0.0.1:{port}", clock=FakeClock(T0)
    ).data_dir


def trust_peer(data: Path, peer_data: Path, peer_network: str, peer_port: int) -> None:
    record = trust.PeerRecord(
        peer_network,
        f"http://127.0.0.1:{peer_port}",
        (KeyEntry(peer_network, nodekey.read_public(peer_data / "node.key")),),
        PeerPolicy(network=peer_network, speaks_for=("fips:06",)),
    )
    conn = db.open_sync(data / "avisa.db")
    try:
        db.transaction(conn, lambda c: trust.save_peer(c, record, T0))
    finally:
        conn.close()


async def api(http: aiohttp.ClientSession, proc: Proc, method: str, path: str, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {proc.token}"}
    async with http.request(method, proc.url + path, headers=headers, **kw) as reply:
        assert reply.status in (200, 201), await reply.text()
        return await reply.json()


@pytest.mark.slow
async def test_node_killed_while_peer_publishes_catches_up_an_hour_later(
    tmp_path: Path, procs: list[Proc]
) -> None:
    clock_file = tmp_path / "clock"
    set_clock(clock_file, T0)
    env = {**os.environ, TEST_CLOCK_ENV: str(clock_file)}
    port_a, port_b = free_port(), free_port()
    data_a, data_b = setup_node(tmp_path, "net-a", port_a), setup_node(tmp_path, "net-b", port_b)
    trust_peer(data_a, data_b, "net-b", port_b)
    trust_peer(data_b, data_a, "net-a", port_a)
    a, b = Proc(data_a, port_a, env), Proc(data_b, port_b, env)
    procs += [a, b]
    await a.start()
    await b.start()
    assert "AVISA_TEST_CLOCK_FILE is set" in b.log.read_text()

    async with aiohttp.ClientSession() as http:

        async def linked(proc: Proc, peer: str) -> bool:
            peers = (await api(http, proc, "GET", "/api/v1/peers"))["peers"]
            return any(p["network"] == peer and p.get("last_success") for p in peers)

        await wait_for(lambda: linked(a, "net-b"), timeout=20, what="a linked")
        await wait_for(lambda: linked(b, "net-a"), timeout=20, what="b linked")

        ids, short_lived = [], set()
        for n in range(100):
            expires_in = "30m" if n % 2 == 0 else "4h"
            body = await api(
                http, a, "POST", "/api/v1/alerts", json={**DRAFT, "expires_in": expires_in}
            )
            ids.append(body["id"])
            if expires_in == "30m":
                short_lived.add(body["id"])
            if n == 19:
                b.kill()  # mid-stream, possibly mid-transaction
        after_kill = set(ids[20:])

        set_clock(clock_file, T0 + timedelta(hours=1, seconds=1))
        await b.start()

        unexpired = set(ids) - short_lived

        async def caught_up() -> bool:
            tick(clock_file)  # A's backoff towards B runs on this clock
            listed = await api(http, b, "GET", "/api/v1/alerts?limit=1000")
            return unexpired <= {item["alert"]["id"] for item in listed["alerts"]}

        await wait_for(caught_up, timeout=30, what="B has every unexpired alert")

        async def drained() -> bool:
            tick(clock_file)
            peers = (await api(http, a, "GET", "/api/v1/peers"))["peers"]
            return peers[0]["backlog"] == 0 and peers[0]["failures"] == 0

        await wait_for(drained, timeout=30, what="A's queue for B drained")

        listed = await api(http, b, "GET", "/api/v1/alerts?limit=1000")
        at_b = {item["alert"]["id"] for item in listed["alerts"]}
        assert not (short_lived & after_kill) & at_b, "an expired alert reached B"
        decisions = (await api(http, b, "GET", "/api/v1/decisions?limit=1000"))["decisions"]
        assert not [d for d in decisions if d["reason"] == "expired"], "an expired alert was sent"
        bearer = {"Authorization": f"Bearer {a.token}"}
        async with http.get(a.url + "/metrics", headers=bearer) as reply:
            metrics = await reply.text()
        dropped = [
            line
            for line in metrics.splitlines()
            if line.startswith('avisa_peer_dropped_total{peer="net-b",reason="expired"}')
        ]
        assert dropped and float(dropped[0].split()[-1]) >= 40, metrics
