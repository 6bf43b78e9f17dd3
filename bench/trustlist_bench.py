"""Trust list figures, printed as JSON (not a timed test).

    .venv/bin/python -m bench.trustlist_bench

For lists of 200 and 1000 members (one key each, three maintainers,
threshold 2, two signatures):

- ``bytes_<n>``: the envelope as published and served;
- ``read_<n>_ms``: ``read_list`` (bounds, strict JSON, canonical payload);
- ``walk_<n>_ms``: reading plus ``walk`` from the previous version (what a
  subscriber does per refresh that brings a new version; two Ed25519 checks);
- ``publish_<n>_ms``: ``avisa trustlist publish`` of that version on a data
  directory that keeps the previous one (walk plus one transaction);
- ``fingerprint_ms``: the maintainer-set fingerprint (5200 rounds of SHA-512);
- ``refresh_200_new_ms``, ``refresh_200_same_ms``: a subscriber's check against a real
  node serving the list over HTTP on 127.0.0.1 (fetch, walk, one transaction), when
  version 2 of a 200-member list is new, and when nothing changed since.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench.keys_bench import best_ms
from keys.cards.trustlist import OpenedList, read_list, set_fingerprint
from keys.cards.trustwalk import walk
from keys.store import trustlist_ops, trustsub_ops
from relay.cli import datadir
from relay.federation.trustfetch import fetch_forward
from relay.runtime.clock import FakeClock
from tests.conftest import start_node
from tests.trustlist_helpers import MAINTAINERS, T, document, signed


def versions(members: int) -> tuple[OpenedList, OpenedList]:
    extra = [f"m{i:04d}" for i in range(members - len(MAINTAINERS))]
    v1 = signed(document(extra=extra), MAINTAINERS[:2])
    v2 = signed(
        document(2, extra=extra[1:], previous=v1, issued_at=T + timedelta(days=1)),
        MAINTAINERS[:2],
    )
    return v1, v2


def figures() -> dict[str, Any]:
    out: dict[str, Any] = {}
    now = T + timedelta(days=2)
    for members in (200, 1000):
        v1, v2 = versions(members)
        out[f"bytes_{members}"] = len(v2.raw)
        out[f"read_{members}_ms"] = best_ms(lambda v=v2: read_list(v.raw))
        out[f"walk_{members}_ms"] = best_ms(
            lambda a=v1, b=v2: walk(a, [read_list(b.raw)], now, None)
        )
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "host"
            datadir.initialize(data, "host", clock=FakeClock(now))
            clock = FakeClock(now)
            trustlist_ops.publish(data, [v1.raw], clock)
            out[f"publish_{members}_ms"] = best_ms(
                lambda d=data, b=v2, c=clock: trustlist_ops.publish(d, [b.raw], c), runs=1
            )
    v1 = versions(200)[0]
    out["fingerprint_ms"] = best_ms(lambda: set_fingerprint(v1.document))
    out.update(asyncio.run(refresh_figures()))
    return out


async def refresh_figures() -> dict[str, float]:
    v1, v2 = versions(200)
    clock = FakeClock(T + timedelta(days=2))
    with tempfile.TemporaryDirectory() as tmp:
        host, runner, base, _ = await start_node(Path(tmp), clock)
        subscriber = Path(tmp) / "pomona"
        datadir.initialize(subscriber, "pomona", clock=clock)
        url = f"{base}/trustlists/v1/socal"
        try:
            trustlist_ops.publish(host.data_dir, [v1.raw, v2.raw], clock)
            fp = set_fingerprint(v1.document)
            trustsub_ops.subscribe(subscriber, url, fp, [], [v1.raw], clock)
            async with aiohttp.ClientSession() as session:
                timed = []
                for _ in range(2):
                    start = time.perf_counter()
                    fetched = await fetch_forward(session, url, 1 if not timed else 2)
                    trustsub_ops.refresh(subscriber, "socal", fetched, clock)
                    timed.append(round((time.perf_counter() - start) * 1000, 2))
        finally:
            await runner.cleanup()
            await host.stop()
    return {"refresh_200_new_ms": timed[0], "refresh_200_same_ms": timed[1]}


if __name__ == "__main__":
    print(json.dumps(figures(), indent=2))
