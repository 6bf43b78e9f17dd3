"""``python -m bench.coalition``: a coalition of real nodes on one machine (issue 30).

    python -m bench.coalition                    # 40 nodes (5 clusters of 8), ~5 minutes
    python -m bench.coalition --nodes 16 --clusters 4 --outage-s 30   # a quicker look
    python -m bench.coalition --relay-all        # every node relays everything (before)

Every node is a real ``avisa run`` process on 127.0.0.1 with its own data directory
and one verification worker (``[node] verify_workers = 1``, so 40 fit in memory),
trusting its peers as ``bench.topology`` lays out. The bench follows every node's
``/api/v1/stream`` and publishes through the nodes' own APIs:

1. **Reach**: ``alerts`` alerts from random origins at ``rate`` per second, then a
   cancel of every fourth. Each message's reach is the time from just before its
   ``POST`` to its arrival on the stream of the *last* node that accepts it.
2. **Cost**: from every node's ``/metrics`` before and after, envelopes received
   from peers per node reached (1.0 is a spanning tree), duplicates refused per
   message; loopback bytes per message (``/proc/net/dev``, less what the bench's
   own streams and publishes carried); node CPU per message summed over the
   coalition (``/proc``, main process and worker); RSS per node.
3. **Recovery**: a quarter of the nodes SIGKILLed for ``outage_s`` while alerts and
   cancels keep coming from the others (some alerts expire during the outage), then
   restarted: time from the last restart until every node holds every message meant
   for it, what never arrived, cancelled alerts still active anywhere, and expired
   alerts delivered after their expiry.

JSON on stdout, progress on stderr; every process is stopped on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench import coalition_net as net
from bench import topology
from bench.harness import NodeProcess, summary_ms


def progress(message: str) -> None:
    print(f"bench.coalition: {message}", file=sys.stderr, flush=True)


def build(root: Path, args: argparse.Namespace) -> tuple[dict[str, NodeProcess], dict[str, str]]:
    coalition = topology.members(args.nodes, args.clusters)
    nodes = {m.network: NodeProcess(root, m.network) for m in coalition}
    for node in nodes.values():
        config = node.data / "avisa.toml"
        config.write_text(config.read_text().replace("[node]\n", "[node]\nverify_workers = 1\n", 1))
    entries: dict[str, list[Any]] = {name: [] for name in nodes}
    for link in topology.links(coalition, relay_all=args.relay_all):
        peer = nodes[link.peer]
        entries[link.holder].append(
            peer.as_peer(speaks_for=link.speaks_for, endorse=link.endorse, relay=link.relay)
        )
    for name, node in nodes.items():
        node.trust(*entries[name])
    return nodes, {m.network: m.county for m in coalition}


def hops_between(args: argparse.Namespace) -> Callable[[str, str], int]:
    """Links crossed from one network to another in the bench's shape."""
    shape = {m.network: m for m in topology.members(args.nodes, args.clusters)}
    return lambda origin, node: topology.hops(shape[origin], shape[node])


async def reach_phase(
    http: aiohttp.ClientSession, coalition: net.Coalition, args: argparse.Namespace
) -> dict[str, Any]:
    rng = random.Random(args.seed)
    names = list(coalition.nodes)
    before = await coalition.snapshot()
    published = await coalition.publish_at_rate(
        [(rng.choice(names), None) for _ in range(args.alerts)], args.rate
    )
    await coalition.settle(published, timeout=args.settle_s)
    cancels = await coalition.publish_at_rate(
        [(published[i].origin, i) for i in list(published)[::4]], args.rate
    )
    everything = {**published, **cancels}
    await coalition.settle(cancels, timeout=args.settle_s)
    after = await coalition.snapshot()
    cost = net.cost(before, after, everything, coalition)
    return {
        "alerts": len(published),
        "cancels": len(cancels),
        "reach_ms": coalition.reach(published),
        "cancel_reach_ms": coalition.reach(cancels),
        "per_node_ms": summary_ms(coalition.latencies(published)),
        "per_node_ms_by_hops": coalition.by_hops(published, hops_between(args)),
        "missing": coalition.missing(everything),
        **cost,
    }


async def outage_phase(
    http: aiohttp.ClientSession, coalition: net.Coalition, args: argparse.Namespace
) -> dict[str, Any]:
    rng = random.Random(args.seed + 1)
    names = list(coalition.nodes)
    down = sorted(rng.sample(names, max(1, len(names) // 4)))
    up = [name for name in names if name not in down]
    progress(f"outage: SIGKILL {len(down)} nodes for {args.outage_s:.0f} s")
    for name in down:
        coalition.kill(name)
    count = max(4, int(args.outage_s * args.outage_rate))
    short = {i for i in range(count) if i % 10 == 0 and i / args.outage_rate < args.outage_s / 3}
    plan = [(rng.choice(up), None, "20s" if i in short else None) for i in range(count)]
    started = time.monotonic()
    published = await coalition.publish_at_rate(plan, args.outage_rate)
    normal = [i for i, p in published.items() if p.expires_in is None]
    cancels = await coalition.publish_at_rate(
        [(published[i].origin, i) for i in normal[::3]], args.outage_rate
    )
    rest = args.outage_s - (time.monotonic() - started)
    if rest > 0:
        await asyncio.sleep(rest)  # the outage lasts its planned time: this is the scenario
    progress("outage: restarting")
    for name in down:
        coalition.restart(name)
    restarted = time.perf_counter()
    for name in down:
        await coalition.reconnect(name)
    # What every node must end up with: each cancel, and each alert still in force (a
    # cancelled alert that never reached a node is not sent to it afterwards: its cancel is).
    cancelled = {s.cancels for s in cancels.values()}
    live = {
        i: p
        for i, p in {**published, **cancels}.items()
        if p.expires_in is None and i not in cancelled
    }
    converged = await coalition.settle(live, timeout=args.settle_s + args.outage_s)
    stale = await coalition.cancelled_still_active(list(cancels.values()), published)
    expired = {i: p for i, p in published.items() if p.expires_in is not None}
    return {
        "killed": len(down),
        "outage_s": args.outage_s,
        "messages_during_outage": len(published) + len(cancels),
        "converge_s_after_last_restart": round(max(0.0, converged - restarted), 2),
        "lost": coalition.missing(live),
        "cancelled_still_active": stale,
        "expired_delivered_after_expiry": coalition.late(expired),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="avisa-coalition-") as tmp:
        root = Path(tmp)
        nodes, counties = build(root, args)
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60)
        ) as http:
            coalition = net.Coalition(http, nodes, counties)
            try:
                progress(f"starting {len(nodes)} nodes")
                await coalition.start()
                progress("reach: publishing")
                reach = await reach_phase(http, coalition, args)
                progress(
                    f"reach p50/p99 {reach['reach_ms']['p50']}/{reach['reach_ms']['p99']} ms,"
                    f" cancels p99 {reach['cancel_reach_ms']['p99']} ms"
                )
                recovery = await outage_phase(http, coalition, args) if args.outage_s else None
                rss = [node.memory_mb()[0] for node in nodes.values() if node.process]
            finally:
                await coalition.stop()
    return {
        "nodes": args.nodes,
        "clusters": args.clusters,
        "links": topology.edges(topology.members(args.nodes, args.clusters)),
        "relay": "all" if args.relay_all else "members: own; hubs: peers to hubs, all to members",
        "verify_workers_per_node": 1,
        "rate_per_s": args.rate,
        "reach": reach,
        "rss_mb_per_node": {"mean": round(sum(rss) / len(rss), 1), "max": max(rss)},
        "recovery": recovery,
        "goals": {
            "reach.reach_ms.p99": "<= 250",
            "reach.deliveries_per_node_reached": "<= 2.0",
            "recovery.converge_s_after_last_restart": "<= 30",
            "recovery.lost": "== []",
        },
        "load_average_at_start": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.coalition", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--nodes", type=int, default=40)
    parser.add_argument("--clusters", type=int, default=5)
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--rate", type=float, default=5.0, help="messages per second")
    parser.add_argument("--outage-s", type=float, default=120.0, help="0: no outage phase")
    parser.add_argument("--outage-rate", type=float, default=1.0)
    parser.add_argument("--settle-s", type=float, default=60.0)
    parser.add_argument("--relay-all", action="store_true", help="every node relays everything")
    parser.add_argument("--seed", type=int, default=30)
    args = parser.parse_args(argv)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        print(json.dumps(asyncio.run(run(args))))
    finally:
        signal.signal(signal.SIGINT, old)
    return 0


if __name__ == "__main__":
    sys.exit(main())
