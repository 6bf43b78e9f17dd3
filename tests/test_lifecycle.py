"""Start-up and shutdown (``relay.http.app``): checks before anything exists, and a
start-up that fails half-way undoes exactly what it started (issue 16 item 6, issue 21)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.cli import datadir
from relay.http.app import owned_node, serve
from relay.runtime.clock import FakeClock
from relay.runtime.node import Node

ROOT = Path(__file__).resolve().parent.parent

MATRIX_BRIDGE = """
[[bridges.matrix]]
homeserver = "http://127.0.0.1:9"
user_id = "@avisa:localhost"
password_file = "matrix.pass"

[[bridges.matrix.routes]]
room = "#alerts:localhost"
"""


def initialized(
    tmp_path: Path, clock: FakeClock, extra: str = "", listen: str = "127.0.0.1:0"
) -> Path:
    data = datadir.initialize(tmp_path / "ventura", "ventura", listen, clock=clock).data_dir
    config = data / "avisa.toml"
    config.write_text(config.read_text() + extra)
    return data


def avisa_run(data: Path) -> subprocess.CompletedProcess[str]:
    """``avisa run`` with every warning shown (``-W default``), as a process."""
    return subprocess.run(
        [sys.executable, "-W", "default", "-m", "relay", "run", "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def assert_one_clean_line(result: subprocess.CompletedProcess[str], setting: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    assert "never awaited" not in result.stderr, result.stderr
    assert result.stderr.startswith("avisa: ") and setting in result.stderr, result.stderr


def test_missing_bridge_password_file_stops_run_with_one_line(
    tmp_path: Path, clock: FakeClock
) -> None:
    data = initialized(tmp_path, clock, MATRIX_BRIDGE)
    assert_one_clean_line(avisa_run(data), "bridges.matrix[0].password_file")
    assert not (data / "run.json").exists()


DESK_ROOM = """
[desk.matrix]
homeserver = "http://127.0.0.1:9"
user_id = "@desk:localhost"
room = "#desk:localhost"
verifiers = ["@ana:localhost"]
password_file = "desk.secret"
"""


def test_missing_desk_room_password_file_stops_run_with_one_line(
    tmp_path: Path, clock: FakeClock
) -> None:
    data = initialized(tmp_path, clock, DESK_ROOM)
    assert_one_clean_line(avisa_run(data), "desk.matrix.password_file")
    assert not (data / "run.json").exists()


SMS_LINE = """
[bridges.sms]
gateway = "kannel"
sendsms_url = "http://127.0.0.1:9/cgi-bin/sendsms"
username = "avisa"
password_file = "sms.pass"
sender = "24587"
inbound_secret_file = "sms-inbound.secret"

[[bridges.sms.keywords]]
word = "ALERTA"
lang = "es"
areas = ["fips:06111"]
"""


def test_missing_sms_password_file_stops_run_with_one_line(
    tmp_path: Path, clock: FakeClock
) -> None:
    data = initialized(tmp_path, clock, SMS_LINE)
    assert_one_clean_line(avisa_run(data), "bridges.sms.password_file")
    assert not (data / "run.json").exists()


def test_bad_bridge_config_stops_run_with_one_line(tmp_path: Path, clock: FakeClock) -> None:
    data = initialized(tmp_path, clock, MATRIX_BRIDGE.replace("#alerts:localhost", "alerts"))
    assert_one_clean_line(avisa_run(data), "bridges.matrix[0].routes[0]")


def test_world_readable_password_file_is_refused_before_start(
    tmp_path: Path, clock: FakeClock
) -> None:
    data = initialized(tmp_path, clock, MATRIX_BRIDGE)
    secret = data / "matrix.pass"
    secret.write_text("hunter2\n")
    secret.chmod(0o644)
    assert_one_clean_line(avisa_run(data), "bridges.matrix[0].password_file")


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


async def test_start_up_failing_half_way_undoes_what_started(
    tmp_path: Path, clock: FakeClock, busy_port: int
) -> None:
    """Every context of ``avisa run`` is entered (node, bridges, verifier workers,
    federation), then binding fails: each is left again, and nothing keeps running."""
    data = initialized(tmp_path, clock)
    node = Node.load(data, clock)
    before = asyncio.all_tasks()
    with pytest.raises(OSError):
        await serve(node, "127.0.0.1", busy_port, owned_node(node))
    assert asyncio.all_tasks() <= before, asyncio.all_tasks() - before
    assert node.db.closed
    assert node.verifier.alive == 0 and not node.verifier.ready
    with pytest.raises(RuntimeError, match="shutdown"):
        node.pool.submit(int)
    assert node.federation is not None and node.bridges == []


async def test_serve_with_owned_node_runs_and_cleans_up(tmp_path: Path, clock: FakeClock) -> None:
    data = initialized(tmp_path, clock)
    node = Node.load(data, clock)
    runner, port = await serve(node, "127.0.0.1", 0, owned_node(node))
    try:
        assert port > 0 and node.feed.head >= 0
        assert clock.sleepers() >= 2  # the trust and purge loops wait on the node's clock
    finally:
        await runner.cleanup()
    assert node.db.closed
