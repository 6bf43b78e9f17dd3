"""Baselines measured in the same run, so every figure can be read as a ratio.

- ``verify_per_s_1core``: raw PyNaCl ``crypto_sign_open`` of a typical
  envelope's PAE (the exact bytes a node verifies), one thread.
- ``verify_per_s_all_cores``: the same on one thread per core at once
  (libsodium runs with the GIL released, so threads scale).
- ``fsync_commit_ms``: one small SQLite commit in WAL mode with
  ``synchronous=FULL`` on the disk the nodes use (the floor of any durable
  write).
- ``loopback_rtt_ms``: one small HTTP request and reply over 127.0.0.1
  (aiohttp on both ends), the floor of one hop.
- ``python_start_ms``: ``python -c pass`` on this interpreter, the floor of a
  cold start.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import nacl.bindings
from aiohttp import web

from bench.alerts import signed_envelopes
from bench.harness import free_port
from keys.core.signing import NodeKey
from relay.core.envelope import open_envelope, pae


def _typical_message() -> tuple[bytes, bytes, bytes]:
    """(signed message = signature + PAE, public key) of a typical alert."""
    key = NodeKey.generate()
    (raw,) = signed_envelopes(key, "bench-origin", NodeKey.generate(), 1)
    envelope, payload = open_envelope(raw)
    message = pae(envelope.payloadType, payload)
    signature = base64.b64decode(envelope.signatures[0].sig)
    return signature + message, key.public_key, message


def _verify_loop(signed: bytes, public_key: bytes, seconds: float, counts: list[int]) -> None:
    open_ = nacl.bindings.crypto_sign_open
    done, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            open_(signed, public_key)
        done += 100
    counts.append(done)


def verifies_per_second(threads: int, seconds: float) -> int:
    signed, public_key, _ = _typical_message()
    counts: list[int] = []
    workers = [
        threading.Thread(target=_verify_loop, args=(signed, public_key, seconds, counts))
        for _ in range(threads)
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return round(sum(counts) / (time.perf_counter() - started))


def fsync_commit_ms(directory: Path, commits: int) -> float:
    conn = sqlite3.connect(directory / "fsync-baseline.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, v BLOB)")
    times = []
    for n in range(commits):
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (n, v) VALUES (?, ?)", (n, b"x" * 1200))
        conn.execute("COMMIT")
        times.append(time.perf_counter() - started)
    conn.close()
    return round(statistics.median(times) * 1000, 3)


async def loopback_rtt_ms(requests: int) -> float:
    async def hello(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    times = []
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(requests):
                started = time.perf_counter()
                async with http.get(f"http://127.0.0.1:{port}/") as reply:
                    await reply.read()
                times.append(time.perf_counter() - started)
    finally:
        await runner.cleanup()
    return round(statistics.median(times) * 1000, 3)


def python_start_ms(runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 1)


def verify_rates(seconds: float) -> dict[str, float]:
    return {
        "verify_per_s_1core": verifies_per_second(1, seconds),
        "verify_per_s_all_cores": verifies_per_second(os.cpu_count() or 1, seconds),
    }


def measure(directory: Path, seconds: float) -> dict[str, float]:
    return {
        **verify_rates(seconds),
        "fsync_commit_ms": fsync_commit_ms(directory, 50),
        "loopback_rtt_ms": asyncio.run(loopback_rtt_ms(200)),
        "python_start_ms": python_start_ms(3),
    }
