"""Where a node's CPU goes under the ingest load, per process and thread (a developer tool).

    python -m bench.cpu_split [--seconds 15] [--in-flight 4]

Runs the ingest load against one ``avisa run`` and reads ``/proc`` before and
after: CPU microseconds per accepted alert of the node's main process (each of
its threads) and of each verification worker, and the ingest ratio against
the all-core verification rate measured right after. The node's main process is held
to one core by its GIL, so when its total nears ``1e6 / alerts_per_s`` it is
the bottleneck and only less Python per alert raises throughput; the workers
take whatever CPU is left. Thread ids are in creation order: the database
writer first, then (lazily) the reader and the parse stage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

import aiohttp

from bench import alerts, baseline
from bench.harness import FakePeer, NodeProcess, PeerStub, children, stopping
from bench.ingest import drive, report

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def thread_ticks(pid: int) -> dict[str, int]:
    """utime + stime of each thread of ``pid``, keyed "pid/tid"."""
    ticks: dict[str, int] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        ticks[f"{pid}/{tid}"] = int(fields[11]) + int(fields[12])
    return ticks


def snapshot(pid: int) -> dict[str, int]:
    ticks = thread_ticks(pid)
    for child in children(pid):
        ticks.update(thread_ticks(child))
    return ticks


def split(
    before: dict[str, int], after: dict[str, int], main: int, alerts_n: int
) -> dict[str, object]:
    per_alert = {
        key: round((after[key] - before.get(key, 0)) / TICKS_PER_S * 1e6 / alerts_n, 1)
        for key in sorted(after)
    }
    main_prefix = f"{main}/"
    node = {k: v for k, v in per_alert.items() if k.startswith(main_prefix) and v}
    workers: dict[str, float] = {}
    for key, value in per_alert.items():
        if not key.startswith(main_prefix):
            pid = key.partition("/")[0]
            workers[pid] = round(workers.get(pid, 0.0) + value, 1)
    return {
        "main_process_us_per_alert": round(sum(node.values()), 1),
        "main_threads_us_per_alert": node,
        "workers_us_per_alert": workers,
    }


async def run(seconds: float, in_flight: int) -> dict[str, object]:
    origin, relay = FakePeer("bench-origin"), FakePeer("bench-relay")
    envelopes = alerts.signed_envelopes(
        origin.key, origin.network, relay.key, 12_000 * int(seconds)
    )
    bodies = list(alerts.transactions(envelopes, 50))
    with tempfile.TemporaryDirectory(prefix="avisa-cpu-split-") as tmp:
        async with PeerStub() as stub, aiohttp.ClientSession() as http:
            origin.url = relay.url = stub.url
            node = NodeProcess(Path(tmp), "bench-ingest")
            node.trust(origin.trusted(), relay.trusted())
            with stopping([node]):
                node.start()
                await node.ready(http)
                before = snapshot(node.pid)
                tally = await drive(node, relay, bodies, 50, in_flight, 0, seconds)
                after = snapshot(node.pid)
                main = node.pid
    figures = report(tally, 50, in_flight)
    # Taken after the load, as make bench's second baseline is (a busy moment can only
    # lower it, which would flatter the ratio).
    limit = baseline.verify_rates(3.0)["verify_per_s_all_cores"] / 2
    return {
        "alerts_per_s": figures["alerts_per_s"],
        "ingest_ratio": round(figures["alerts_per_s"] / limit, 3),
        "node_cpu_us_per_alert": figures["node_cpu_us_per_alert"],
        **split(before, after, main, max(1, tally.accepted)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--in-flight", type=int, default=4)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.seconds, args.in_flight)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
