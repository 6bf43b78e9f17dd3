"""Issue 27: Ctrl-C and a closed pipe end every ``avisa`` command quietly.

Real ``avisa`` processes. A Ctrl-C is sent to the whole process group (as a
terminal does) at moments found by watching the process, not by sleeping: while
its modules load (a compiled extension only ``avisa``'s commands import is
mapped), and while the node starts (it has taken the data directory's run lock).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.test_operator_cli import AVISA, init

INTERRUPTED = 130
PIPE_CLOSED = 141


def _start_run(data: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*AVISA, "run", "--data", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )


def _wait_until(process: subprocess.Popen[str], ready: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 30
    while not ready():
        assert process.poll() is None, f"avisa ended before {what}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.001)


def _maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


def _interrupt(process: subprocess.Popen[str]) -> str:
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    return stderr


def test_ctrl_c_while_the_modules_load_is_quiet(tmp_path: Path) -> None:
    data = init(tmp_path / "ventura")
    process = _start_run(data)
    _wait_until(process, lambda: "msgspec" in _maps(process.pid), "the modules loading")
    stderr = _interrupt(process)
    assert process.returncode in (INTERRUPTED, 0), stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr


def test_ctrl_c_while_the_node_starts_is_quiet(tmp_path: Path) -> None:
    data = init(tmp_path / "ventura")
    process = _start_run(data)
    lock = data / "run.lock"
    _wait_until(process, lambda: lock.exists() and lock.read_text().strip(), "the run lock")
    stderr = _interrupt(process)
    assert process.returncode in (INTERRUPTED, 0), stderr
    for noise in ("Traceback", "KeyboardInterrupt", "Error", "never retrieved", "destroyed"):
        assert noise not in stderr, stderr
    assert not (data / "run.json").exists()


def _with_closed_stdout(*args: str) -> subprocess.CompletedProcess[str]:
    """``avisa ARGS | head -0``: the reader is gone before ``avisa`` writes a line."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [*AVISA, *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)


def test_a_closed_pipe_ends_init_quietly_and_the_node_is_made(tmp_path: Path) -> None:
    data = tmp_path / "la"
    result = _with_closed_stdout(
        "init", "--data", str(data), "--network", "la", "--listen", "127.0.0.1:0"
    )
    assert (result.returncode, result.stderr) == (PIPE_CLOSED, "")
    assert (data / "node.key").exists()


def test_a_closed_pipe_ends_a_listing_quietly(tmp_path: Path) -> None:
    data = init(tmp_path / "ventura")
    result = _with_closed_stdout("keys", "show", "--data", str(data))
    assert (result.returncode, result.stderr) == (PIPE_CLOSED, "")
