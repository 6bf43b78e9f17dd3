"""``[bridges.cap]`` in ``avisa.toml`` (typed, checks name the setting) and ``avisa cap status``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from relay.cli.main import main
from relay.core.config import parse, render
from relay.core.errors import ConfigError
from relay.runtime.clock import FakeClock
from relay.storage.files import write_private
from tests.cap.kit import cap_node

BASE = render("ventura", "127.0.0.1:8470", "https://avisa.example.org")
CAP = """
[bridges.cap]
public = true
certainties = ["confirmed"]

[[bridges.cap.sources]]
url = "https://alerts.county.example/cap/index.atom"
every = "2m"
name = "county"

[[bridges.cap.sources]]
url = "https://city.example/alert.xml"
"""


def test_the_issue_example_loads() -> None:
    cap = parse(BASE + CAP).bridges.cap
    assert cap.public and cap.certainties == ["confirmed"] and cap.max_entries == 1000
    county, city = cap.sources
    assert (county.every, county.name) == ("2m", "county") and city.every == "2m"
    assert parse(BASE).bridges.cap.sources == [] and not parse(BASE).bridges.cap.public


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (('every = "2m"', 'every = "4s"'), "bridges.cap.sources[0].every"),
        (('every = "2m"', 'every = "2 minutes"'), "bridges.cap.sources[0].every"),
        (
            ("https://alerts.county.example", "ftp://alerts.county.example"),
            "bridges.cap.sources[0].url",
        ),
        (
            ("https://city.example/alert.xml", "https://alerts.county.example/cap/index.atom"),
            "bridges.cap.sources[1].url",
        ),
        (
            ('certainties = ["confirmed"]', 'certainties = ["unconfirmed"]'),
            "bridges.cap.certainties",
        ),
        (
            ('certainties = ["confirmed"]', 'certainties = ["false", "false"]'),
            "bridges.cap.certainties",
        ),
        (("public = true", "public = true\nmax_entries = 0"), "bridges.cap.max_entries"),
        (("public = true", "public = true\nwhatever = 1"), "bridges.cap"),
    ],
)
def test_bad_settings_name_their_path(change: tuple[str, str], path: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse(BASE + CAP.replace(*change))
    assert error.value.path.startswith(path), error.value


async def test_cap_status_command(
    tmp_path: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    from bridges.cap.importer import CapImporter

    extra = (
        '\n[[bridges.cap.sources]]\nurl = "http://127.0.0.1:9/down.cap?key=SECRET"\nevery = "5s"\n'
    )
    async with cap_node(tmp_path, clock, extra=extra) as node:

        async def wait_forever(seconds: float) -> None:
            await asyncio.Event().wait()

        importer = CapImporter(node.node, node.node.desk, sleep=wait_forever)
        node.node.bridges = [importer]
        await importer.pollers[0].poll()  # port 9: nothing listens, so it fails
        port = int(node.url.rsplit(":", 1)[1])
        write_private(node.data_dir / "run.json", json.dumps({"port": port}).encode())
        code = await asyncio.to_thread(main, ["cap", "status", "--data", str(node.data_dir)])
        out = capsys.readouterr().out
        assert code == 0
        assert "export: /cap/v1/feed.atom (needs a token); certainties confirmed, false" in out
        assert "source http://127.0.0.1:9/down.cap (every 5s)" in out
        assert "failing: 1 in a row" in out and "SECRET" not in out
        code = await asyncio.to_thread(
            main, ["cap", "status", "--data", str(node.data_dir), "--json"]
        )
        status = json.loads(capsys.readouterr().out)
        assert status["sources"][0]["failures"] == 1 and status["export"]["public"] is False
