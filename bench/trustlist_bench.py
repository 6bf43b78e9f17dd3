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
- ``fingerprint_ms``: the maintainer-set fingerprint (5200 rounds of SHA-512).
"""

from __future__ import annotations

import json
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.keys_bench import best_ms
from keys.cards.trustlist import OpenedList, read_list, set_fingerprint
from keys.cards.trustwalk import walk
from keys.store import trustlist_ops
from relay.cli import datadir
from relay.runtime.clock import FakeClock
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
    return out


if __name__ == "__main__":
    print(json.dumps(figures(), indent=2))
