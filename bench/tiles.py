"""What the desk's map tiles cost the node: ``/desk/tiles/NAME`` byte ranges.

``python -m bench.tiles`` starts a real node (in this process, on 127.0.0.1)
whose ``[desk_web] tiles`` is the tests' Oxnard archive, signs in to the desk,
and reads the archive as the browser's reader does: the 16 KiB header and
root-directory read, then tile-sized ranges taken from the archive itself.
It prints one JSON object: per-request latency (p50, p90, p99, one client),
ranges per second with 8 clients at once, and one 8 MiB range (the longest a
request may ask for, streamed in 64 KiB pieces) with the node's resident
memory before and after. Nothing is asserted; on the two shared cores, compare
runs, not machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.places import resident_mb
from relay.cli import datadir
from relay.core.pmtiles import MAX_RANGE
from relay.http.app import serve
from relay.runtime.clock import system_clock
from relay.runtime.node import Node
from tests.webdesk.tilekit import write_archive

NAME = "oxnard.pmtiles"


async def _ranges(
    http: aiohttp.ClientSession, url: str, spans: list[tuple[int, int]]
) -> list[float]:
    took = []
    for start, end in spans:
        began = time.perf_counter()
        async with http.get(url, headers={"Range": f"bytes={start}-{end - 1}"}) as reply:
            assert reply.status == 206, reply.status
            async for _ in reply.content.iter_chunked(64 * 1024):
                pass  # read and dropped: the client holds no more than the node
        took.append(time.perf_counter() - began)
    return took


async def run(requests: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        made = datadir.initialize(Path(tmp) / "ventura", "ventura", "127.0.0.1:0")
        archive = write_archive(made.data_dir / NAME)
        with archive.open("ab") as file:  # room for one longest range
            file.write(b"\0" * MAX_RANGE)
        config = made.data_dir / "avisa.toml"
        config.write_text(config.read_text() + f'\n[desk_web]\ntiles = "{NAME}"\n')
        node = Node.load(made.data_dir, system_clock)
        await node.start()
        runner, port = await serve(node, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{port}"
        try:
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                async with http.post(base + "/desk/login", data={"token": made.token}) as r:
                    assert r.status == 200, r.status
                url = f"{base}/desk/tiles/{NAME}"
                size = archive.stat().st_size - MAX_RANGE
                rng = random.Random(7)
                tiles = [
                    (s, s + rng.randint(400, 4000))
                    for s in (rng.randrange(16384, size - 4000) for _ in range(requests))
                ]
                await _ranges(http, url, [(0, 16384)] * 20)  # warm
                one = await _ranges(http, url, [(0, 16384), *tiles])
                began = time.perf_counter()
                share = len(tiles) // 8
                await asyncio.gather(
                    *(_ranges(http, url, tiles[i * share : (i + 1) * share]) for i in range(8))
                )
                parallel = share * 8 / (time.perf_counter() - began)
                before = resident_mb()
                (longest,) = await _ranges(http, url, [(size, size + MAX_RANGE)])
                after = resident_mb()
        finally:
            await runner.cleanup()
            await node.stop()
    ms = sorted(t * 1000 for t in one)
    return {
        "requests": len(ms),
        "range_p50_ms": round(statistics.median(ms), 2),
        "range_p90_ms": round(ms[int(len(ms) * 0.9)], 2),
        "range_p99_ms": round(ms[int(len(ms) * 0.99)], 2),
        "ranges_per_s_8_clients": round(parallel),
        "longest_range_ms": round(longest * 1000, 1),
        "resident_mb_before_longest": round(before, 1),
        "resident_mb_after_longest": round(after, 1),
    }


def main(requests: int = 2000) -> dict[str, object]:
    with contextlib.redirect_stdout(sys.stderr):  # the node's log lines are not output
        return asyncio.run(run(requests))


if __name__ == "__main__":
    print(json.dumps(main(200 if "--quick" in sys.argv else 2000)))
