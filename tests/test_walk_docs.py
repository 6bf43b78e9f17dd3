"""Issue 27: docs/sms.md's ``--dry-run-sms`` example is what the command prints.

The configuration block of docs/sms.md is appended to a real node's
``avisa.toml``; the example command from the same page runs against it through
the real ``avisa``, and its output must be the page's, line for line (the page
assumes 2,380 subscribers; this node has none, the only difference allowed).
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from relay.core import geohash
from tests.test_operator_cli import Running, avisa, init

SMS_DOC = Path(__file__).resolve().parents[1] / "docs" / "sms.md"


def _indented_block(text: str, after: str) -> list[str]:
    """The first 4-space-indented block after the line ``after``."""
    lines = text[text.index(after) :].splitlines()[1:]
    start = next(n for n, line in enumerate(lines) if line.startswith("    "))
    block = []
    for line in lines[start:]:
        if not line.startswith("    "):
            break
        block.append(line[4:])
    return block


def test_the_dry_run_example_of_docs_sms_is_what_avisa_prints(tmp_path: Path) -> None:
    text = SMS_DOC.read_text(encoding="utf-8")
    config = re.search(r"## Configuration\n\n```toml\n(.*?)```", text, re.S)
    assert config is not None
    data = init(tmp_path / "ventura")
    with (data / "avisa.toml").open("a") as toml:
        toml.write("\n" + config.group(1))
    for name, content in (("sms.pass", "pw\n"), ("sms-inbound.secret", "a" * 48 + "\n")):
        (data / name).write_text(content)
        os.chmod(data / name, 0o600)
    command = " ".join(
        part.rstrip("\\").strip() for part in _indented_block(text, "See the segments")
    )
    printed = _indented_block(text, "prints, with the configuration above")
    args = shlex.split(command.replace("DIR", str(data)))
    assert args[0] == "avisa"
    running = Running(data)
    try:
        result = avisa(*args[1:])
    finally:
        running.stop()
    assert result.stdout.splitlines() == [
        printed[0].replace("recipients: 2380", "recipients: 0"),
        *printed[1:],
    ]
    where = args[args.index("--geohash") + 1]
    south, west, north, east = _box(where)
    assert south < 34.2006 < north and west < -119.1650 < east  # Colonia, Oxnard


def _box(code: str) -> tuple[float, float, float, float]:
    lat, lon, lat_err, lon_err = geohash.decode(code)
    return lat - lat_err, lon - lon_err, lat + lat_err, lon + lon_err
