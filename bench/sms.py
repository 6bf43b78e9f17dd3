"""The text line's figures, through a real Kannel with fakesmsc (issue 18).

    python -m bench.sms            # 10,000 subscribers, 50 alerts, 100,000 for memory
    python -m bench.sms --quick    # tiny sizes: checks that everything runs

One ``avisa run`` process with ``[bridges.sms]`` (``throughput = 0``: unpaced),
a local Kannel (bearerbox + smsbox, ``smsc = fake``) and ``fakesmsc`` in
receive-only mode as the phone network. Subscribers are written straight into
the node's database (sealed, as the line stores them), so the figures measure
sending, not subscribing.

- ``sms_fanout``: one alert to every subscriber: seconds from the publish's
  201 until the last queue row is ``sent`` (Kannel accepted it), as texts per
  second, and its ratio to **Kannel's own sendsms rate**, measured in the same
  run by a plain sequential HTTP loop of the same requests (same parameters,
  ``dlr-url`` included) against the same gateway. Goal: ratio ≥ 0.8. The node
  keeps sixteen requests in flight, so the rate of sixteen such loops at once
  (``kannel_parallel_loops_per_s``, ``ratio_to_parallel_loops``) is given beside it: the
  stricter comparison.
- ``sms_first_ms``: with one subscriber, 50 alerts one after another: from
  the publish's 201 to fakesmsc receiving the text; p50 and p99. Goal: p50 ≤ 200 ms.
- ``sms_rss_mb_100k``: the node's RSS (and peak) with 100,000 subscribers,
  after an alert for all of them was queued and sending went on for a few
  seconds. Goal ≤ 120 MB.

Prints one JSON object on stdout; progress on stderr. Needs Debian's
``kannel`` and ``kannel-extras``; says so and exits 0 without them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from bench.harness import NodeProcess, percentile
from bridges.sms import store as sms_store
from bridges.sms.bridge import IN_FLIGHT
from bridges.sms.inbound import HASH_PURPOSE
from bridges.sms.localkannel import FakeSmsc, Kannel, missing
from relay.storage import db, sealkey
from relay.storage.files import write_private
from tests.sms.kit import DRAFT  # the SMS line's one sample alert

SECRET = "bench-inbound-secret-0123456789"
GOALS = {"sms_fanout.ratio": ">= 0.8", "sms_first_ms.p50": "<= 200", "sms_rss_mb_100k": "<= 120"}


def progress(message: str) -> None:
    print(f"bench.sms: {message}", file=sys.stderr, flush=True)


def config(kannel: Kannel) -> str:
    return f"""
[bridges.sms]
sendsms_url = "{kannel.sendsms_url}"
username = "{kannel.username}"
sender = "24587"
throughput = 0
tips = false

[[bridges.sms.keywords]]
word = "ALERT"
lang = "en"
areas = ["fips:06111"]
"""


def seed(data: Path, start: int, count: int) -> None:
    sealer = sealkey.load_or_create(data)
    conn = db.open_sync(data / "avisa.db")
    try:

        def job(c: sqlite3.Connection) -> None:
            for n in range(start, start + count):
                number = f"+1{2000000000 + n}".encode()
                hashed = sealer.keyed_hash(number, HASH_PURPOSE)
                sms_store.subscribe(
                    c, hashed, sealer.seal(number), "ALERT", "en", ["fips:06111"], 0
                )

        db.transaction(conn, job)
    finally:
        conn.close()


def keep_one_subscriber(data: Path) -> None:
    conn = db.open_sync(data / "avisa.db")
    try:
        db.transaction(
            conn,
            lambda c: c.execute(
                "DELETE FROM sms_subscribers WHERE rowid > (SELECT MIN(rowid) FROM sms_subscribers)"
            ),
        )
    finally:
        conn.close()


def unfinished(data: Path) -> int:
    conn = sqlite3.connect(f"file:{data / 'avisa.db'}?mode=ro", uri=True, timeout=30)
    try:
        row = conn.execute(
            "SELECT COUNT(*) FROM sms_queue WHERE state IN ('queued', 'sending')"
        ).fetchone()
        queued = conn.execute("SELECT COUNT(*) FROM sms_queue").fetchone()
        return int(row[0]) if queued[0] else -1
    finally:
        conn.close()


async def publish(http: aiohttp.ClientSession, node: NodeProcess, **changes: Any) -> float:
    async with http.post(
        f"{node.url}/api/v1/alerts", json={**DRAFT, **changes}, headers=node.headers()
    ) as r:
        if r.status != 201:
            raise SystemExit(f"bench.sms: publish answered {r.status}: {await r.text()}")
    return time.monotonic()


async def wait(check: Any, timeout: float, what: str, every: float = 0.01) -> float:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench.sms: timed out waiting for {what}")
        await asyncio.sleep(every)
    return time.monotonic()


async def kannel_rate(
    http: aiohttp.ClientSession, kannel: Kannel, node: NodeProcess, count: int, in_flight: int
) -> float:
    """Kannel's sendsms rate with ``in_flight`` loops at once (1: the plain loop)."""
    started = time.monotonic()
    share = count // in_flight
    await asyncio.gather(
        *(kannel_loop(http, kannel, node, share, first=n * share) for n in range(in_flight))
    )
    return share * in_flight / (time.monotonic() - started)


async def kannel_loop(
    http: aiohttp.ClientSession, kannel: Kannel, node: NodeProcess, count: int, first: int
) -> None:
    """A plain sequential loop of the node's own sendsms request."""
    dlr = f"{node.url}/sms/v1/kannel/{quote(SECRET)}/report?ref=0&status=%d&reply=%A"
    for n in range(first, first + count):
        params = {
            "username": kannel.username,
            "password": kannel.password,
            "from": "24587",
            "to": f"+1{3000000000 + n}",
            "text": "CONFIRMED ALERT: Sighting. ICE at Colonia park. Verified on site.",
            "charset": "UTF-8",
            "coding": "0",
            "dlr-mask": "31",
            "dlr-url": dlr,
            "max-messages": "10",
        }
        async with http.get(kannel.sendsms_url, params=params) as r:
            await r.read()
            if r.status not in (200, 202):
                raise SystemExit(f"bench.sms: sendsms answered {r.status}")


async def run(
    root: Path, subscribers: int, alerts: int, memory_subscribers: int, loop_count: int
) -> dict[str, Any]:
    node = NodeProcess(root, "bench-sms")
    kannel = Kannel(
        root / "kannel",
        post_url=f"{node.url}/sms/v1/kannel/{SECRET}?from=%p&to=%P&id=%I",
        log_level=2,
    )
    toml = node.data / "avisa.toml"
    toml.write_text(toml.read_text() + config(kannel))
    write_private(node.data / "sms.pass", kannel.password.encode())
    write_private(node.data / "sms-inbound.secret", SECRET.encode())
    results: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        node.start()
        await node.healthy(http)
        node.stop()
        seed(node.data, 0, subscribers)
        kannel.start()
        phones = FakeSmsc(kannel, receive_only=True)
        try:
            node.start()
            await node.healthy(http)
            progress(f"fan-out to {subscribers} subscribers")
            accepted = await publish(http, node)
            await wait(lambda: unfinished(node.data) == 0, 600, "the fan-out")
            last = time.monotonic()
            node_rate = subscribers / (last - accepted)
            await wait(
                lambda: len(phones.messages()) >= subscribers, 120, "fakesmsc to see every text"
            )
            progress(f"Kannel's own rate: {loop_count} sendsms requests in a loop")
            loop_rate = await kannel_rate(http, kannel, node, loop_count, 1)
            progress(f"and with {IN_FLIGHT} loops at once, as the node sends")
            parallel_rate = await kannel_rate(http, kannel, node, loop_count, IN_FLIGHT)
            results["sms_fanout"] = {
                "subscribers": subscribers,
                "seconds": round(last - accepted, 3),
                "texts_per_s": round(node_rate, 1),
                "kannel_loop_per_s": round(loop_rate, 1),
                "ratio": round(node_rate / loop_rate, 3),
                "kannel_parallel_loops_per_s": round(parallel_rate, 1),
                "ratio_to_parallel_loops": round(node_rate / parallel_rate, 3),
            }
            expected = subscribers + loop_count + loop_count // IN_FLIGHT * IN_FLIGHT
            await wait(lambda: len(phones.messages()) >= expected, 180, "the loops' texts")
            node.stop()
            keep_one_subscriber(node.data)
            node.start()
            await node.healthy(http)
            progress(f"first text latency over {alerts} alerts")
            latencies = []
            for _ in range(alerts):
                before = len(phones.messages())
                sent = await publish(http, node)
                await wait(lambda b=before: len(phones.arrivals) > b, 30, "a text", every=0.001)
                latencies.append((phones.arrivals[before] - sent) * 1000)
            results["sms_first_ms"] = {
                "alerts": alerts,
                "p50": round(percentile(latencies, 0.5), 1),
                "p99": round(percentile(latencies, 0.99), 1),
                "max": round(max(latencies), 1),
            }
            node.stop()
            seed(node.data, subscribers, memory_subscribers - 1)
            node.start()
            await node.healthy(http)
            progress(f"memory with {memory_subscribers} subscribers")
            await publish(http, node)
            await wait(lambda: unfinished(node.data) > 0, 120, "the alert queued")
            await asyncio.sleep(3.0)  # sending under way; a figure, not a synchronisation
            rss, peak = node.memory_mb()
            results["sms_rss_mb_100k"] = rss
            results["details"] = {
                "sms_memory": {"subscribers": memory_subscribers, "rss_mb": rss, "peak_mb": peak}
            }
        finally:
            node.stop()
            phones.stop()
            kannel.stop()
    results["goals"] = GOALS
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sms", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes; figures meaningless")
    parser.add_argument(
        "--sizes", type=int, nargs=4, metavar=("FANOUT", "ALERTS", "MEMORY", "LOOP"), help="sizes"
    )
    parser.add_argument("--keep", type=Path, help="run in this directory and keep it (logs)")
    args = parser.parse_args()
    reason = missing()
    if reason:
        print(json.dumps({"skipped": reason}))
        return 0
    sizes = (200, 5, 1000, 100) if args.quick else (10_000, 50, 100_000, 3000)
    sizes = tuple(args.sizes) if args.sizes else sizes
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        results = asyncio.run(run(args.keep, *sizes))
    else:
        with tempfile.TemporaryDirectory(prefix="avisa-bench-sms-") as root:
            results = asyncio.run(run(Path(root), *sizes))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
