"""The offline gazetteer's costs: reading the bundled data once, and one lookup.

``python -m bench.places`` prints one JSON object: the wall and CPU time of
``relay.runtime.places.load`` in this fresh process, the resident memory it
added, and the mean time of ``relay.core.gazetteer.lookup`` per kind of query
(ZIP, point, geohash, code). Nothing is asserted; on the two shared cores,
read CPU seconds rather than wall time.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time

from relay.core.gazetteer import lookup
from relay.runtime import places

QUERIES = {
    "zip": {"zip": "93030"},
    "point": {"lat": "34.1975", "lon": "-119.1771"},
    "geohash": {"geohash": "9q5681"},
    "code": {"code": "fips:06111"},
}


def resident_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main(rounds: int = 5000) -> dict[str, object]:
    before = resident_mb()
    started, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(sys.stderr):  # its one log line: progress, not output
        gazetteer = places.load()
    figures: dict[str, object] = {
        "zips": len(gazetteer),
        "load_wall_s": round(time.perf_counter() - started, 2),
        "load_cpu_s": round(time.process_time() - cpu, 2),
        "load_resident_mb": round(resident_mb() - before, 1),
    }
    for name, query in QUERIES.items():
        started = time.perf_counter()
        for _ in range(rounds):
            lookup(gazetteer, query)
        figures[f"lookup_{name}_us"] = round((time.perf_counter() - started) / rounds * 1e6, 1)
    return figures


if __name__ == "__main__":
    print(json.dumps(main(500 if "--quick" in sys.argv else 5000)))
