"""Flood: legitimate alerts through a node that two peers are flooding.

    python -m bench.flood [--batch 50]   # alone, as ``make bench`` runs it (~1 min)

    A — F — C       (``avisa run`` processes; A publishes, C receives via F)
        |  \\
        M   U       (played by the bench)

- M is a peer F trusts (its request signatures are valid, its rate limit is
  effectively unlimited, so F's per-minute limit does not hide the flood).
  It offers ``envelopes_per_s`` envelopes a second, in transactions of
  ``batch``, on a fixed schedule (open loop: a new transaction every
  ``batch / envelopes_per_s`` seconds, up to ``MAX_OWN_IN_FLIGHT`` of its
  own outstanding; F answers those beyond its per-peer limit with 429).
  Every envelope names M's key and carries random signature bytes, so F
  must run one Ed25519 verification per envelope to refuse it.
- U sends ``unsigned_per_s`` transactions a second with no Authorization
  header (each with a full 50-envelope body), also open loop.

While both run, A publishes ``legit_alerts`` at ``legit_rate`` per second
and the bench follows C's stream. Figures: p50/p99 of publish-at-A to
accepted-at-C, how many never arrived (``lost``), F's peak RSS (``VmHWM``)
and its RSS before the flood, and what the flood actually achieved
(envelopes F answered per second, 429s, unsigned requests refused).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.alerts import bad_envelopes, transactions
from bench.harness import FakePeer, NodeProcess, PeerStub, stopping, summary_ms
from bench.propagation import arrivals, start_all

MAX_OWN_IN_FLIGHT = 8
BODIES = 8


@dataclass
class FloodTally:
    statuses: dict[int, int] = field(default_factory=dict)
    envelopes_answered: int = 0
    launched: int = 0

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


async def open_loop(per_second: float, stop: asyncio.Event, send: Any, tally: FloodTally) -> None:
    """Call ``send`` every 1/per_second s, at most MAX_OWN_IN_FLIGHT outstanding."""
    pending: set[asyncio.Task[None]] = set()
    origin, n = time.perf_counter(), 0
    while not stop.is_set():
        delay = origin + n / per_second - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        n += 1
        if len(pending) >= MAX_OWN_IN_FLIGHT:
            continue
        tally.launched += 1
        task = asyncio.create_task(send())
        pending.add(task)
        task.add_done_callback(pending.discard)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def run(
    root: Path,
    stub: PeerStub,
    envelopes_per_s: int,
    unsigned_per_s: int,
    batch: int,
    legit_alerts: int,
    legit_rate: float,
) -> dict[str, Any]:
    a, f, c = (NodeProcess(root, name) for name in ("flood-a", "flood-f", "flood-c"))
    flooder = FakePeer("bench-flooder", url=stub.url)
    a.trust(f.as_peer())
    f.trust(a.as_peer(), c.as_peer(endorse=True), flooder.trusted())
    c.trust(f.as_peer())
    bodies = list(transactions(bad_envelopes(flooder.key, flooder.network, batch * BODIES), batch))
    signed, unsigned = FloodTally(), FloodTally()
    stop = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=60)

    async with aiohttp.ClientSession(timeout=timeout) as http:
        attack = aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(limit=4 * MAX_OWN_IN_FLIGHT)
        )

        async def send_signed() -> None:
            body = bodies[signed.launched % len(bodies)]
            path = f"/federation/v1/send/{secrets.token_hex(8)}"
            headers = flooder.put_headers(f.network, path, body)
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with attack.put(f.url + path, data=body, headers=headers) as reply:
                    await reply.read()
                    signed.count(reply.status)
                    if reply.status == 200:
                        signed.envelopes_answered += batch

        async def send_unsigned() -> None:
            path = f"/federation/v1/send/{secrets.token_hex(8)}"
            headers = {"Content-Type": "application/json"}
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with attack.put(f.url + path, data=bodies[0], headers=headers) as reply:
                    await reply.read()
                    unsigned.count(reply.status)

        with stopping([a, f, c]):
            await start_all(http, [a, f, c])
            rss_before, _ = f.memory_mb()
            flood_started = time.perf_counter()
            loops = [
                asyncio.create_task(open_loop(envelopes_per_s / batch, stop, send_signed, signed)),
                asyncio.create_task(open_loop(unsigned_per_s, stop, send_unsigned, unsigned)),
            ]
            await asyncio.sleep(1.0)  # the flood reaches its steady state first
            latencies, lost = await arrivals(http, a, c, legit_alerts, legit_rate)
            stop.set()
            await asyncio.gather(*loops)
            flood_seconds = time.perf_counter() - flood_started
            _, peak = f.memory_mb()
            await attack.close()
    latency = summary_ms(latencies)
    return {
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
        "max_ms": latency["max"],
        "lost": lost,
        "peak_rss_mb": peak,
        "rss_before_mb": rss_before,
        "legit_alerts": legit_alerts,
        "legit_rate_per_s": legit_rate,
        "bad_envelopes_offered_per_s": envelopes_per_s,
        "bad_envelopes_answered_per_s": round(signed.envelopes_answered / flood_seconds),
        "bad_signed_statuses": {str(k): v for k, v in sorted(signed.statuses.items())},
        "unsigned_offered_per_s": unsigned_per_s,
        "unsigned_statuses": {str(k): v for k, v in sorted(unsigned.statuses.items())},
        "seconds": round(flood_seconds, 1),
    }


async def _alone(batch: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="avisa-flood-") as tmp:
        async with PeerStub() as stub:
            return await run(Path(tmp), stub, 20_000, 400, batch, 200, 20.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.flood", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--batch", type=int, default=50, help="forged envelopes per transaction (1 to 50)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.batch <= 50:
        parser.error("--batch must be 1 to 50")
    print(json.dumps(asyncio.run(_alone(args.batch))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
