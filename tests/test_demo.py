"""``avisa demo``: the scenario plays and every process it started is gone afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bridges.sms.localkannel import missing

AVISA = [sys.executable, "-m", "relay", "demo"]


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if text.encode() in cmdline:
            found.append(int(entry.name))
    return found


def avisa_text(*argv: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "relay", *argv], capture_output=True, text=True, check=True
    )
    return result.stdout


def test_scenario_only_passes_and_leaves_no_process(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [*AVISA, "--scenario-only", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    if missing() is None:  # Ventura's text line through a local Kannel (relay.demo.sms)
        assert "8 of 8 steps happened as narrated" in result.stdout
        assert "the resident's phone got: «Avisa: suscrito" in result.stdout
        assert "«ALERTA CONFIRMADA: Avistamiento. ICE confirmado" in result.stdout
        assert "«CANCELADO: Retirada: ya se fueron." in result.stdout
    else:
        assert "7 of 7 steps happened as narrated" in result.stdout
        assert "No text line in this demo" in result.stdout
    for phrase in (
        "the tip itself stayed at ventura",
        "la endorsed it",
        "holds it for review",
        "debunk reached",
        "withdrawn at orange",
        "in ventura's CAP feed (/cap/v1/feed.atom): Alert",
        "CAP feed carries the Cancel of ventura/",
        "outside_speaks_for",
        # The coalition step: orange trusts ventura through the list, never having met it.
        "ventura$ avisa trustlist draft --out socal-1.json --list socal",
        "signed by la; 0 more signatures needed",
        "orange$  avisa trustlist subscribe http://127.0.0.1:",
        "shows ventura trusted via list socal v1 for fips:06111",
        ": authoritative, on ventura's own word now",
        "origin_trusted: through list socal version 1, expires ",
    ):
        assert phrase in result.stdout, phrase
    assert processes_mentioning(str(workdir)) == []
    # What the step left at orange, read back by its operator: ventura is a peer only
    # through the list, with the key the list gave; la stays a local peer.
    trusted = avisa_text("trust", "list", "--data", str(workdir / "orange"))
    ventura = trusted[trusted.index("ventura  http://") :]
    assert "trusted:      through list socal v1, expires" in ventura
    assert "(learned from list)" in ventura
    assert "trusted:      locally (avisa trust add)" in trusted[: trusted.index("ventura  ")]


def test_interactive_demo_prints_access_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    process = subprocess.Popen(
        [*AVISA, "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 240
    while not any("Ctrl-C stops every node" in line for line in lines):
        assert time.monotonic() < deadline and process.poll() is None, "".join(lines)
        lines.append(process.stdout.readline())
    output = "".join(lines)
    assert "token avisa_" in output and "http://127.0.0.1:" in output
    assert "how orange trusts ventura (through list socal): " in output
    assert len(processes_mentioning(str(workdir))) >= 3  # the three nodes run
    process.send_signal(signal.SIGINT)
    while not any("Stopping the demo nodes" in line for line in lines):
        assert time.monotonic() < deadline and process.poll() is None, "".join(lines)
        lines.append(process.stdout.readline())
    process.send_signal(signal.SIGTERM)  # a second signal, as make passes its own on
    rest = process.stdout.read()
    assert process.wait(timeout=60) == 0
    assert "Traceback" not in rest, rest
    assert processes_mentioning(str(workdir)) == []


def test_matrix_demo_bridges_ventura_into_a_room(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [*AVISA, "--scenario-only", "--matrix", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "posted in #alerts-ventura:localhost" in result.stdout
    assert "ICE confirmado cerca de la escuela Ramona" in result.stdout  # read back from the room
    assert "edited to say it was withdrawn" in result.stdout
    assert processes_mentioning(str(workdir)) == []
