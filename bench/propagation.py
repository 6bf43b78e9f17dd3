"""Propagation: publish at the first node of a chain, accepted at the last.

    N1 — N2 — N3 — N4 — N5        (``avisa run`` processes on 127.0.0.1)

Each node trusts its neighbours. N2 accepts N1's alerts as authoritative
(N1 speaks for their area); every later node knows only its upstream
neighbour, which endorses what it forwards, so N3…N5 accept because of that
endorsement, and an alert reaches N5 with four signatures. Peer rate limits
are the defaults.

The bench follows N5's ``/api/v1/stream`` and publishes ``alerts`` alerts at
N1 through the local API at ``rate`` per second, on a fixed schedule (each
publish starts on time whatever the previous one is doing). An alert's
latency is from just before its ``POST`` at N1 to the moment N5's stream
announces it, which N5 does only after committing it as accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import (
    SIGHTING,
    NodeProcess,
    follow,
    linked,
    stopping,
    summary_ms,
    wait_until,
)


def build_chain(root: Path, count: int, prefix: str = "chain") -> list[NodeProcess]:
    nodes = [NodeProcess(root, f"{prefix}-{n + 1}") for n in range(count)]
    for index, node in enumerate(nodes):
        peers = []
        if index > 0:
            peers.append(nodes[index - 1].as_peer())
        if index < count - 1:
            peers.append(nodes[index + 1].as_peer(endorse=index > 0))
        node.trust(*peers)
    return nodes


async def start_all(http: aiohttp.ClientSession, nodes: list[NodeProcess]) -> None:
    for node in nodes:
        node.start()
    for node in nodes:
        await node.ready(http)
    for node in nodes:
        await wait_until(lambda node=node: linked(http, node), 30, f"{node.network} linked")


async def publish_at_rate(
    http: aiohttp.ClientSession, node: NodeProcess, count: int, rate: float
) -> dict[str, float]:
    """Publish ``count`` alerts at ``node`` on a fixed schedule; id → perf_counter at start."""
    sent: dict[str, float] = {}

    async def one() -> None:
        started = time.perf_counter()
        async with http.post(
            node.url + "/api/v1/alerts", json=SIGHTING, headers=node.headers()
        ) as reply:
            body = await reply.json()
            if reply.status != 201:
                raise SystemExit(f"bench: publish failed: {reply.status} {body}")
        sent[body["id"]] = started

    tasks = []
    origin = time.perf_counter()
    for n in range(count):
        delay = origin + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return sent


async def arrivals(
    http: aiohttp.ClientSession,
    first: NodeProcess,
    last: NodeProcess,
    count: int,
    rate: float,
    timeout: float = 60.0,
) -> tuple[list[float], int]:
    """Publish at ``first``, wait for each at ``last``: (latencies in s, how many never came)."""
    arrived: dict[str, float] = {}
    stream = asyncio.create_task(follow(http, last, arrived))
    await asyncio.sleep(0.3)  # let the stream subscribe before the first publish
    try:
        sent = await publish_at_rate(http, first, count, rate)

        async def all_arrived() -> bool:
            return set(sent) <= set(arrived)

        with contextlib.suppress(SystemExit):  # what never came is reported as lost
            await wait_until(all_arrived, timeout, "every alert at the last node", every=0.05)
    finally:
        stream.cancel()
    latencies = [arrived[i] - sent[i] for i in sent if i in arrived]
    return latencies, len(set(sent) - set(arrived))


async def run(root: Path, count_nodes: int, alerts: int, rate: float) -> dict[str, Any]:
    nodes = build_chain(root, count_nodes)
    async with aiohttp.ClientSession() as http:
        with stopping(nodes):
            await start_all(http, nodes)
            latencies, lost = await arrivals(http, nodes[0], nodes[-1], alerts, rate)
    return {
        "latency_ms": summary_ms(latencies),
        "nodes": count_nodes,
        "alerts": alerts,
        "rate_per_s": rate,
        "lost": lost,
    }
