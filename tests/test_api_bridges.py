"""``GET /api/v1/bridges`` and ``avisa run`` with a bridge it cannot start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from relay.cli import datadir
from tests.conftest import RunningNode

BRIDGE = """
[[bridges.matrix]]
homeserver = "http://127.0.0.1:9"
user_id = "@avisa:localhost"
password_file = "matrix.password"
[[bridges.matrix.routes]]
room = "#alerts:localhost"
"""


async def test_bridges_endpoint_needs_a_token_and_lists_none(running: RunningNode) -> None:
    status, body = await running.call("GET", "/api/v1/bridges", headers={"X": "y"})
    assert status == 401 and body["errcode"] == "AVISA_UNAUTHORIZED"
    status, body = await running.call("GET", "/api/v1/bridges")
    assert (status, body) == (200, {"bridges": []})


def test_run_refuses_a_readable_secret_and_exits(tmp_path: Path) -> None:
    init = datadir.initialize(tmp_path / "node", "ventura", "127.0.0.1:0")
    config = init.data_dir / "avisa.toml"
    config.write_text(config.read_text() + BRIDGE)
    secret = init.data_dir / "matrix.password"
    secret.write_text("correct-horse-battery\n")
    os.chmod(secret, 0o644)
    done = subprocess.run(
        [sys.executable, "-m", "relay", "run", "--data", str(init.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "bridges.matrix[0].password_file" in done.stderr and "chmod 600" in done.stderr
    assert "correct-horse" not in done.stderr + done.stdout
    assert not (init.data_dir / "run.json").exists()
