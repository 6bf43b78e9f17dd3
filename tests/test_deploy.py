"""deploy/: the systemd unit is valid and hardened; example configs load."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from relay.core.config import parse

DEPLOY = Path(__file__).parent.parent / "deploy"
HARDENING = (
    "User=avisa",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "PrivateTmp=yes",
    "StateDirectory=avisa",
    "CapabilityBoundingSet=",
    "ProtectHome=yes",
    "UMask=0077",
)


def test_unit_is_hardened() -> None:
    unit = (DEPLOY / "avisa.service").read_text()
    for directive in HARDENING:
        assert f"\n{directive}" in unit, directive
    assert "--data /var/lib/avisa" in unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    avisa = Path(sys.executable).with_name("avisa")
    unit = (DEPLOY / "avisa.service").read_text()
    local = tmp_path / "avisa.service"
    local.write_text(unit.replace("/opt/avisa/.venv/bin/avisa", str(avisa)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(local)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify only warns about unknown directives; treat any output as a failure.
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize("name", ["ventura", "la", "orange"])
def test_example_configs_load(name: str) -> None:
    config = parse((DEPLOY / "examples" / f"{name}.toml").read_text(), name)
    assert config.node.network == name
    assert config.public_url.startswith("https://")


def test_trust_script_uses_real_commands() -> None:
    script = (DEPLOY / "examples" / "trust.sh").read_text()
    for command in ("avisa keys export-card", "avisa trust add", "avisa trust list"):
        assert command in script
    subprocess.run(["sh", "-n", str(DEPLOY / "examples" / "trust.sh")], check=True)
