"""``python -m bench.cap --quick`` runs end to end and prints every figure (none asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.cap.kit import FIXTURES


def test_bench_cap_quick_prints_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.cap", "--quick", "--xsd", str(FIXTURES / "cap12.xsd")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["messages"]["validated"] == figures["messages"]["of"] == 30
    assert figures["feed"]["ratio_atom_to_json"] > 0
    for name in ("import_linked", "import_embedded", "import_linked_real_desk"):
        assert figures[name]["filed"] == figures[name]["entries"] > 0, name
