"""Latency along a line of three nodes: publish at A, ``accepted`` at C, via B.

    python -m bench.line [--n 100] [--interval-ms 300]

Starts three ``avisa run`` processes on 127.0.0.1 (real servers, real SQLite
files with ``synchronous=FULL``, the system clock), peered A–B–C: B endorses
what it relays to C, and C does not know A at all, so C accepts only because
of B's endorsement. It follows C's ``/api/v1/stream`` and publishes ``--n``
alerts at A through the local API, one after another, ``--interval-ms``
apart. For each alert the latency is from just before the publish request
at A to the moment C's stream announces it (C has committed it as
accepted). Prints one JSON object with the median and p99 in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import SIGHTING, follow
from keys.core.keyring import KeyEntry
from keys.store import nodekey
from relay.cli import datadir
from relay.core.policy import PeerPolicy
from relay.runtime.clock import TEST_CLOCK_ENV, system_clock
from relay.storage import db, trust


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Node:
    def __init__(self, root: Path, network: str) -> None:
        self.network = network
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = datadir.initialize(root / network, network, f"127.0.0.1:{self.port}").data_dir
        self.token = (self.data / "operator.token").read_text().strip()
        self.public_key = nodekey.read_public(self.data / "node.key")
        self.process: subprocess.Popen[bytes] | None = None

    def trusts(self, peer: Node, endorse: bool = False) -> None:
        record = trust.PeerRecord(
            peer.network,
            peer.url,
            (KeyEntry(peer.network, peer.public_key),),
            PeerPolicy(
                network=peer.network,
                speaks_for=("fips:06",),
                rate_limit_per_min=1_000_000,
                endorse=endorse,
            ),
        )
        conn = db.open_sync(self.data / "avisa.db")
        try:
            db.transaction(conn, lambda c: trust.save_peer(c, record, system_clock()))
        finally:
            conn.close()

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != TEST_CLOCK_ENV}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "relay",
                "run",
                "--data",
                str(self.data),
                "--log-level",
                "warning",
            ],
            env=env,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def linked(http: aiohttp.ClientSession, node: Node) -> bool:
    try:
        async with http.get(node.url + "/api/v1/peers", headers=node.headers()) as reply:
            peers = (await reply.json())["peers"]
    except aiohttp.ClientError:
        return False
    return bool(peers) and all(p.get("last_success") for p in peers)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest rank."""
    rank = max(1, -(-int(fraction * 1000) * len(sorted_values) // 1000))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def run(n: int, interval_ms: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="avisa-bench-") as tmp:
        root = Path(tmp)
        a, b, c = Node(root, "bench-a"), Node(root, "bench-b"), Node(root, "bench-c")
        a.trusts(b)
        b.trusts(a)
        b.trusts(c, endorse=True)
        c.trusts(b)
        nodes = [a, b, c]
        try:
            for node in nodes:
                node.start()
            async with aiohttp.ClientSession() as http:
                for node in nodes:
                    await wait_until(lambda node=node: linked(http, node), 30, f"{node.network} up")
                arrived: dict[str, float] = {}
                stream = asyncio.create_task(follow(http, c, arrived))
                await asyncio.sleep(0.2)  # let the stream subscribe before the first publish
                sent: dict[str, float] = {}
                for _ in range(n):
                    started = time.perf_counter()
                    async with http.post(
                        a.url + "/api/v1/alerts", json=SIGHTING, headers=a.headers()
                    ) as reply:
                        assert reply.status == 201, await reply.text()
                        sent[(await reply.json())["id"]] = started
                    if interval_ms:
                        await asyncio.sleep(interval_ms / 1000)

                async def all_arrived() -> bool:
                    return set(sent) <= set(arrived)

                await wait_until(all_arrived, 60, "every alert at C")
                stream.cancel()
        finally:
            for node in nodes:
                node.stop()
    latencies = sorted((arrived[i] - sent[i]) * 1000 for i in sent)
    return {
        "benchmark": "line A-B-C, publish at A to accepted at C",
        "n": n,
        "interval_ms": interval_ms,
        "median_ms": round(percentile(latencies, 0.5), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "min_ms": round(latencies[0], 2),
        "max_ms": round(latencies[-1], 2),
        "sqlite_synchronous": "FULL",
        "nodes": "3 avisa run processes on 127.0.0.1",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="alerts to publish at A")
    parser.add_argument(
        "--interval-ms", type=float, default=300.0, help="pause between publishes (0: back to back)"
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.n, args.interval_ms))))


if __name__ == "__main__":
    main()
