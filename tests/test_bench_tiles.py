"""``python -m bench.tiles`` runs and prints every figure (a few ranges only)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_tiles_quick_prints_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.tiles", "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(done.stdout)
    assert figures["requests"] == 201
    assert figures["range_p50_ms"] > 0 and figures["ranges_per_s_8_clients"] > 0
    assert figures["longest_range_ms"] > 0
    assert "Traceback" not in done.stderr
