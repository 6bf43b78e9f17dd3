"""Idle CPU of a node with 10 peers (a developer tool, issue 29's figure).

    python -m bench.idle_peers [--seconds 180]

Eleven real ``avisa run`` processes on 127.0.0.1 (one verification worker each): a hub
that trusts ten peers, each trusting the hub. Nothing is published; after 20 s of
settling (start-up pulls, key documents) the bench reads the CPU time of the hub (its
main process and worker, all threads, from ``/proc``) and of the peers over the window
and prints the share of one core. What remains at idle is the periodic work: links'
housekeeping, key refreshes and, every ``[federation] checkpoint_every``, one checkpoint
signed and pushed to each peer and each peer's checkpoint verified.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.harness import NodeProcess, cpu_seconds, stopping

PEERS = 10
SETTLE_S = 20.0


async def measure(window: float) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="avisa-idle-"))
    nodes = [NodeProcess(root, "hub")] + [NodeProcess(root, f"peer{n}") for n in range(PEERS)]
    for node in nodes:
        config = node.data / "avisa.toml"
        config.write_text(config.read_text().replace("[node]\n", "[node]\nverify_workers = 1\n", 1))
    hub, peers = nodes[0], nodes[1:]
    hub.trust(*(peer.as_peer() for peer in peers))
    for peer in peers:
        peer.trust(hub.as_peer())
    with stopping(nodes):
        for node in nodes:
            node.start()
        async with aiohttp.ClientSession() as http:
            for node in nodes:
                await node.ready(http, 60)
        await asyncio.sleep(SETTLE_S)
        hub_before, began = cpu_seconds(hub.pid), time.monotonic()
        peers_before = sum(cpu_seconds(peer.pid) for peer in peers)
        await asyncio.sleep(window)
        hub_spent = cpu_seconds(hub.pid) - hub_before
        peers_spent = sum(cpu_seconds(peer.pid) for peer in peers) - peers_before
        elapsed = time.monotonic() - began
    return {
        "seconds": round(elapsed),
        "hub_10_peers_percent_of_a_core": round(hub_spent / elapsed * 100, 3),
        "peer_1_peer_percent_of_a_core": round(peers_spent / PEERS / elapsed * 100, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    print(asyncio.run(measure(parser.parse_args().seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
