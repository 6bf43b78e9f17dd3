"""The command line against a real ``avisa run`` subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.cli.main import build_parser, main
from relay.storage.files import is_private

AVISA = [sys.executable, "-m", "relay"]


def avisa(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*AVISA, *args], capture_output=True, text=True, timeout=60, check=False
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    data = tmp_path / "ventura"
    out = avisa("init", "--data", str(data), "--network", "ventura", "--listen", "127.0.0.1:0")
    assert "fingerprint:" in out.stdout
    return data


@pytest.fixture
def running_node(node_dir: Path) -> Iterator[Path]:
    process = subprocess.Popen(
        [*AVISA, "run", "--data", str(node_dir)], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 20
    while not (node_dir / "run.json").exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "node did not start"
        time.sleep(0.02)
    yield node_dir
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert not (node_dir / "run.json").exists()


def test_init_creates_private_files_and_refuses_to_overwrite(node_dir: Path) -> None:
    for name in ("node.key", "operator.token"):
        assert is_private(node_dir / name), name
    assert (node_dir / "avisa.db").exists()
    assert os.stat(node_dir).st_mode & 0o077 == 0
    again = avisa("init", "--data", str(node_dir), "--network", "ventura", check=False)
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr


def test_keys_show_json(node_dir: Path) -> None:
    info = json.loads(avisa("keys", "show", "--json", "--data", str(node_dir)).stdout)
    assert set(info) == {"network", "keyid", "public_key", "fingerprint"}
    assert info["network"] == "ventura" and info["keyid"].startswith("ed25519:")
    assert len(info["fingerprint"].replace(" ", "")) == 30


def test_publish_update_cancel_and_list(running_node: Path) -> None:
    data = str(running_node)
    alert_id = avisa(
        "alert",
        "publish",
        "--data",
        data,
        "--kind",
        "sighting",
        "--certainty",
        "confirmed",
        "--area-label",
        "Colonia, Oxnard",
        "--geohash",
        "9q4gch",
        "--code",
        "fips:06111",
        "--text",
        "es=ICE en el parque",
        "--text",
        "en=ICE at the park",
        "--body",
        "en=Verified by two volunteers",
        "--agency",
        "ice",
        "--expires-in",
        "2h",
    ).stdout.strip()
    assert alert_id.startswith("ventura/") and len(alert_id) == len("ventura/") + 26
    listed = json.loads(avisa("alert", "list", "--active", "--json", "--data", data).stdout)
    assert [a["alert"]["id"] for a in listed["alerts"]] == [alert_id]
    human = avisa("alert", "list", "--data", data).stdout
    assert alert_id in human and "ICE en el parque" in human

    update_id = avisa(
        "alert",
        "update",
        alert_id,
        "--data",
        data,
        "--kind",
        "sighting",
        "--certainty",
        "confirmed",
        "--area-label",
        "5th St, Oxnard",
        "--geohash",
        "9q4gcj",
        "--text",
        "en=Moved to 5th St",
    ).stdout.strip()
    cancel_id = avisa(
        "alert", "cancel", update_id, "--data", data, "--text", "en=Withdrawn"
    ).stdout.strip()
    listed = json.loads(avisa("alert", "list", "--active", "--json", "--data", data).stdout)
    assert listed["alerts"] == []  # a cancel is never in force

    refused = avisa("alert", "cancel", alert_id, "--data", data, "--text", "en=x", check=False)
    # The cancel named the whole chain, so the original is cancelled too.
    assert refused.returncode == 1 and "is cancelled" in refused.stderr
    full = json.loads(avisa("alert", "list", "--json", "--data", data).stdout)
    states = {a["alert"]["id"]: a["state"] for a in full["alerts"]}
    assert states == {alert_id: "cancelled", update_id: "cancelled", cancel_id: "cancelled"}


def test_policy_explain_has_no_side_effects(running_node: Path, tmp_path: Path) -> None:
    from tests.helpers import key, make_alert, raw_envelope

    envelope = tmp_path / "alert.json"
    envelope.write_bytes(raw_envelope(make_alert("la"), key(2)))
    before = (running_node / "avisa.db").stat().st_size
    out = json.loads(
        avisa("policy", "explain", str(envelope), "--json", "--data", str(running_node)).stdout
    )
    assert (out["decision"], out["reason"]) == ("reject", "unknown_key")
    human = avisa("policy", "explain", str(envelope), "--data", str(running_node)).stdout
    assert "unknown_key" in human
    decisions = avisa("alert", "list", "--json", "--data", str(running_node)).stdout
    assert json.loads(decisions)["alerts"] == []
    assert (running_node / "avisa.db").stat().st_size == before


def test_cli_errors_are_one_clear_line(tmp_path: Path) -> None:
    result = avisa("alert", "list", "--data", str(tmp_path / "nowhere"), check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "avisa init" in result.stderr
    result = avisa("init", "--data", str(tmp_path / "x"), "--network", "Bad Name", check=False)
    assert result.returncode == 1 and "--network" in result.stderr


def test_client_reports_a_stopped_node(node_dir: Path) -> None:
    result = avisa("alert", "list", "--data", str(node_dir), check=False)
    assert result.returncode == 1 and "avisa run" in result.stderr


def _all_parsers(parser, prefix=()):  # type: ignore[no-untyped-def]
    yield prefix
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, (*prefix, name))


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = list(_all_parsers(build_parser()))
    assert ("alert", "publish") in commands and ("policy", "explain") in commands
    for command in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: avisa" in capsys.readouterr().out


def test_tokens_list_and_revoke(running_node: Path) -> None:
    data = str(running_node)
    extra = avisa(
        "token", "add", "--role", "publisher", "--label", "hotline laptop", "--data", data
    ).stdout.strip()
    listed = avisa("token", "list", "--data", data).stdout
    assert "admin" in listed and "hotline laptop" in listed and extra not in listed
    token_id = next(line.split()[0] for line in listed.splitlines() if "hotline" in line)
    avisa("token", "revoke", token_id, "--data", data)
    assert "hotline laptop" not in avisa("token", "list", "--data", data).stdout
    refused = avisa("token", "revoke", "zz", "--data", data, check=False)
    assert refused.returncode == 1 and "token list" in refused.stderr


def test_review_queue_and_backup_while_running(running_node: Path, tmp_path: Path) -> None:
    import sqlite3

    data = str(running_node)
    alert_id = avisa(
        "alert",
        "publish",
        "--data",
        data,
        "--kind",
        "notice",
        "--certainty",
        "confirmed",
        "--area-label",
        "Oxnard",
        "--geohash",
        "9q5681",
        "--text",
        "en=Know your rights",
    ).stdout.strip()
    assert (
        avisa("held", "list", "--data", data).stdout
        == "no held alerts: nothing waits for a reviewer\n"
    )
    refused = avisa("held", "accept", alert_id, "--data", data, check=False)
    assert refused.returncode == 1 and "no held alert" in refused.stderr

    copy = tmp_path / "backup"
    out = avisa("backup", "--data", data, "--out", str(copy))
    assert "backed up" in out.stdout and "not passphrase-protected" in out.stderr
    for name in ("avisa.toml", "node.key", "operator.token", "avisa.db"):
        assert (copy / name).exists(), name
    assert is_private(copy / "node.key") and is_private(copy / "avisa.db")
    assert not (copy / "run.json").exists()
    conn = sqlite3.connect(copy / "avisa.db")
    assert conn.execute("SELECT id FROM alerts").fetchall() == [(alert_id,)]
    conn.close()
    again = avisa("backup", "--data", data, "--out", str(copy), check=False)
    assert again.returncode == 1 and "not empty" in again.stderr
