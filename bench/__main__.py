"""``python -m bench``: every figure of issue 7 as one JSON object (see bench/README.md).

    python -m bench            # full sizes, a few minutes
    python -m bench --quick    # tiny sizes: checks that everything runs, figures meaningless

Phases, in order: baselines (verify rate, fsync, loopback, interpreter
start), ingest, the verify rates again, memory and cold start, propagation
along a chain, flood. Progress goes to stderr, the JSON to stdout.
Each phase starts its own ``avisa run`` processes in a fresh temporary
directory and stops them before the next phase begins, so phases never
share a CPU with each other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench import alerts, baseline, flood, memory, propagation
from bench.harness import FakePeer, NodeProcess, PeerStub, stopping
from bench.ingest import drive, report

GOALS = {
    "ingest_ratio": ">= 0.5 (not resolved below 0.35)",
    "propagation_ms.p99": "<= 100",
    "flood.p99_ms": "<= 500",
    "flood.peak_rss_mb": "<= 200",
    "flood.lost": "== 0",
    "rss_mb_100k": "<= 120",
    "cold_start_ms": "<= 1000",
}


@dataclass(frozen=True)
class Sizes:
    verify_seconds: float = 3.0
    batch: int = 50
    in_flight: int = 4
    ingest_min_alerts: int = 100_000
    ingest_min_seconds: float = 20.0
    memory_alerts: int = 100_000
    cold_start_runs: int = 5
    chain_nodes: int = 5
    chain_alerts: int = 200
    chain_rate: float = 20.0
    flood_envelopes_per_s: int = 20_000
    flood_unsigned_per_s: int = 400
    flood_legit_alerts: int = 200
    flood_legit_rate: float = 20.0


QUICK = Sizes(
    verify_seconds=0.2,
    ingest_min_alerts=500,
    ingest_min_seconds=0.5,
    memory_alerts=500,
    cold_start_runs=1,
    chain_alerts=10,
    flood_envelopes_per_s=2_000,
    flood_unsigned_per_s=50,
    flood_legit_alerts=10,
)


def progress(phase: str) -> None:
    print(f"bench: {phase}", file=sys.stderr, flush=True)


def ingest_pool_size(sizes: Sizes, verify_all: float) -> int:
    """Enough alerts that even a node at the physical limit is busy ``min_seconds``
    (with margin: the baseline may have been taken in a busy moment)."""
    at_limit = verify_all / 2 * sizes.ingest_min_seconds * 1.5
    wanted = max(sizes.ingest_min_alerts, sizes.memory_alerts, int(at_limit))
    return -(-wanted // sizes.batch) * sizes.batch


#: Ingest is run again (on a fresh node) while other processes, or the hypervisor
#: (steal time), kept more than this many CPUs busy: a ratio measured on a
#: machine that gave a third of a core away says little. Every attempt is reported.
QUIET_CPUS = 0.3
INGEST_ATTEMPTS = 3


async def ingest_once(
    root: Path, sizes: Sizes, origin: FakePeer, relay: FakePeer, bodies: list[bytes]
) -> dict[str, Any]:
    node = NodeProcess(root, "bench-ingest")
    node.trust(origin.trusted(), relay.trusted())
    async with aiohttp.ClientSession() as http:
        with stopping([node]):
            node.start()
            await node.ready(http)
            tally = await drive(
                node,
                relay,
                bodies,
                sizes.batch,
                sizes.in_flight,
                sizes.ingest_min_alerts,
                sizes.ingest_min_seconds,
            )
            result = report(tally, sizes.batch, sizes.in_flight)
            result["rss_mb"], result["peak_rss_mb"] = node.memory_mb()
    return result


async def ingest_phase(
    root: Path, sizes: Sizes, origin: FakePeer, relay: FakePeer, bodies: list[bytes]
) -> dict[str, Any]:
    """The quietest of up to ``INGEST_ATTEMPTS`` runs (the first one quiet enough)."""
    attempts: list[dict[str, Any]] = []
    for attempt in range(INGEST_ATTEMPTS):
        if attempt:
            progress(
                f"ingest again: other processes used {attempts[-1]['other_processes_cpus']} CPUs"
            )
        directory = root / f"attempt-{attempt + 1}"
        directory.mkdir()
        attempts.append(await ingest_once(directory, sizes, origin, relay, bodies))
        if attempts[-1]["other_processes_cpus"] <= QUIET_CPUS:
            break
    chosen = min(attempts, key=lambda result: result["other_processes_cpus"])
    chosen["attempts"] = [
        {key: result[key] for key in ("alerts_per_s", "other_processes_cpus")}
        for result in attempts
    ]
    return chosen


async def node_phases(
    root: Path, sizes: Sizes, origin: FakePeer, relay: FakePeer, bodies: list[bytes]
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    async with PeerStub() as stub:
        origin.url = relay.url = stub.url
        progress("ingest")
        figures["ingest"] = await ingest_phase(root / "ingest", sizes, origin, relay, bodies)
        progress("verification baseline, again")
        figures["verify_after"] = baseline.verify_rates(sizes.verify_seconds)
        progress("memory and cold start")
        figures["memory"] = await memory.run(
            root / "memory",
            origin,
            relay,
            bodies,
            sizes.batch,
            sizes.in_flight,
            sizes.memory_alerts,
            sizes.cold_start_runs,
        )
        progress("propagation")
        figures["propagation"] = await propagation.run(
            root / "chain", sizes.chain_nodes, sizes.chain_alerts, sizes.chain_rate
        )
        progress("flood")
        figures["flood"] = await flood.run(
            root / "flood",
            stub,
            sizes.flood_envelopes_per_s,
            sizes.flood_unsigned_per_s,
            sizes.batch,
            sizes.flood_legit_alerts,
            sizes.flood_legit_rate,
        )
    return figures


def run(sizes: Sizes, quick: bool) -> dict[str, Any]:
    started, load = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="avisa-bench-") as tmp:
        root = Path(tmp)
        for part in ("ingest", "memory", "chain", "flood"):
            (root / part).mkdir()
        progress("baselines")
        base = baseline.measure(root, sizes.verify_seconds)
        origin, relay = FakePeer("bench-origin"), FakePeer("bench-relay")
        pool = ingest_pool_size(sizes, base["verify_per_s_all_cores"])
        progress(f"signing {pool} alerts for the load generator")
        envelopes = alerts.signed_envelopes(origin.key, origin.network, relay.key, pool)
        bodies = list(alerts.transactions(envelopes, sizes.batch))
        del envelopes
        figures = asyncio.run(node_phases(root, sizes, origin, relay, bodies))
    ingest, mem, chain, flooded = (
        figures["ingest"],
        figures["memory"],
        figures["propagation"],
        figures["flood"],
    )
    # The verification rates are taken before and after ingest; the higher of each
    # is the baseline (a busy moment can only lower a rate, and a lower baseline
    # would flatter the ratio).
    after = figures["verify_after"]
    one_core = max(base["verify_per_s_1core"], after["verify_per_s_1core"])
    all_cores = max(base["verify_per_s_all_cores"], after["verify_per_s_all_cores"])
    limit = all_cores / 2
    verify_us = 2e6 / one_core
    node_us = max(ingest["node_cpu_us_per_alert"], 1.0)
    ingest["verify_share_of_node_cpu"] = round(verify_us / node_us, 3)
    return {
        "verify_per_s_1core": one_core,
        "verify_per_s_all_cores": all_cores,
        "ingest_alerts_per_s": ingest["alerts_per_s"],
        "ingest_ratio": round(ingest["alerts_per_s"] / limit, 3) if limit else 0.0,
        "propagation_ms": chain["latency_ms"],
        "flood": flooded,
        "rss_mb_100k": mem["rss_mb_100k"],
        "cold_start_ms": mem["cold_start_ms"],
        "details": {
            "ingest": ingest,
            "propagation": chain,
            "memory": mem["memory"],
            "cold_start": mem["cold_start"],
        },
        "baselines": {
            **{k: v for k, v in base.items() if not k.startswith("verify")},
            "verify_per_s_all_cores_before_after": [
                base["verify_per_s_all_cores"],
                after["verify_per_s_all_cores"],
            ],
            "verify_per_s_1core_before_after": [
                base["verify_per_s_1core"],
                after["verify_per_s_1core"],
            ],
            "ingest_limit_alerts_per_s": round(limit),
            # The CPU two verifications take on one core: set it against
            # details.ingest.node_cpu_us_per_alert (steadier than rates on a busy host).
            "verify_cpu_us_per_alert": round(verify_us, 1),
        },
        "goals": GOALS,
        "run": {
            "quick": quick,
            "sizes": asdict(sizes),
            "seconds": round(time.perf_counter() - started, 1),
            "cpus": os.cpu_count(),
            "load_average_at_start": load,
            "python": platform.python_version(),
            "sqlite_synchronous": "FULL",
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    print(json.dumps(run(sizes, args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
