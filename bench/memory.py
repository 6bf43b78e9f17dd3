"""Memory with many active alerts, and cold start.

``rss_mb_100k``: a fresh node receives ``alerts`` alerts (the same kind of
load as the ingest phase, all accepted and active); once the last reply is
in, the bench waits ``settle_s`` and reads the node's ``VmRSS``. ``VmHWM``
(its peak during the load) is reported beside it.

``cold_start_ms``: the node that now holds those alerts is stopped and
started again ``runs`` times; each time is from launching ``avisa run`` to
the first ``200`` from ``/healthz`` (polled every 2 ms). The median is the
figure; an empty node's start is reported beside it.
"""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import FakePeer, NodeProcess, stopping
from bench.ingest import drive


async def cold_starts(node: NodeProcess, http: aiohttp.ClientSession, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        node.stop()
        launched = node.start()
        times.append((await node.healthy(http)) - launched)
    return times


async def run(
    root: Path,
    origin: FakePeer,
    relay: FakePeer,
    bodies: list[bytes],
    batch: int,
    in_flight: int,
    alerts: int,
    runs: int,
    settle_s: float = 2.0,
) -> dict[str, Any]:
    empty = NodeProcess(root, "bench-empty")
    node = NodeProcess(root, "bench-memory")
    node.trust(origin.trusted(), relay.trusted())
    async with aiohttp.ClientSession() as http:
        with stopping([empty, node]):
            empty_times = await cold_starts(empty, http, runs)
            empty.stop()
            node.start()
            await node.ready(http)
            needed = -(-alerts // batch)
            tally = await drive(node, relay, bodies[:needed], batch, in_flight, alerts, 0.0)
            await asyncio.sleep(settle_s)
            rss, peak = node.memory_mb()
            times = await cold_starts(node, http, runs)
    return {
        "rss_mb_100k": rss,
        "memory": {
            "active_alerts": tally.accepted,
            "rss_mb": rss,
            "peak_rss_mb_while_loading": peak,
        },
        "cold_start_ms": round(statistics.median(times) * 1000, 1),
        "cold_start": {
            "holding_alerts": tally.accepted,
            "runs_ms": [round(t * 1000, 1) for t in times],
            "empty_node_ms": round(statistics.median(empty_times) * 1000, 1),
        },
    }
