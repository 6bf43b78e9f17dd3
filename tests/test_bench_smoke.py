"""``python -m bench --quick`` still runs end to end and prints every figure (none asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FIGURES = {
    "verify_per_s_1core": (int, float),
    "verify_per_s_all_cores": (int, float),
    "ingest_alerts_per_s": (int, float),
    "ingest_ratio": (int, float),
    "propagation_ms": dict,
    "flood": dict,
    "rss_mb_100k": (int, float),
    "cold_start_ms": (int, float),
}


@pytest.mark.slow
def test_bench_quick_prints_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout)
    for name, kind in FIGURES.items():
        assert isinstance(figures[name], kind), name
    assert set(figures["propagation_ms"]) >= {"p50", "p99"}
    assert set(figures["flood"]) >= {"p50_ms", "p99_ms", "peak_rss_mb", "lost"}
    assert figures["details"]["ingest"]["accepted"] > 0
    assert figures["flood"]["lost"] == 0
    assert figures["details"]["propagation"]["lost"] == 0
