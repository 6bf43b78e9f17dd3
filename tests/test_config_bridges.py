"""``[[bridges.matrix]]`` in ``avisa.toml``: typed decode, checks that name the setting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridges.matrix.session import read_secret
from relay.core.config import parse, render
from relay.core.errors import ConfigError

BASE = render("ventura", "127.0.0.1:8470", "https://avisa.example.org")
BRIDGE = """
[[bridges.matrix]]
homeserver = "http://127.0.0.1:8008"
user_id = "@avisa:localhost"
password_file = "matrix.password"

[[bridges.matrix.routes]]
room = "#alerts-ventura:localhost"
areas = ["fips:06083"]
languages = ["es", "en"]
certainties = ["confirmed", "false"]

[[bridges.matrix.routes]]
room = "!AbCdEf:localhost"
encrypted = true
timezone = "America/Los_Angeles"
"""


def test_the_issue_example_loads() -> None:
    (bridge,) = parse(BASE + BRIDGE).bridges.matrix
    assert bridge.user_id == "@avisa:localhost" and bridge.password_file == "matrix.password"
    first, second = bridge.routes
    assert first.areas == ["fips:06083"] and first.languages == ["es", "en"]
    assert first.msgtype == "m.notice" and not first.encrypted
    assert second.certainties is None and second.encrypted  # None: policy.bridge_certainties
    assert parse(BASE).bridges.matrix == []


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ('room = "!AbCdEf:localhost"', "room = 5", "bridges.matrix[0].routes[1].room"),
        ('room = "!AbCdEf:localhost"', 'room = "alerts"', "bridges.matrix[0].routes[1].room"),
        (
            'room = "!AbCdEf:localhost"',
            'room = "#alerts-ventura:localhost"',
            "bridges.matrix[0].routes[1].room",
        ),
        ("encrypted = true", "encrypted = true\ncolour = 1", "bridges.matrix[0].routes[1]"),
        ('areas = ["fips:06083"]', 'areas = ["Ventura"]', "bridges.matrix[0].routes[0].areas[0]"),
        ('areas = ["fips:06083"]', 'areas = ["9q4", "9q4"]', "bridges.matrix[0].routes[0].areas"),
        (
            'languages = ["es", "en"]',
            'languages = ["Spanish"]',
            "bridges.matrix[0].routes[0].languages[0]",
        ),
        (
            'certainties = ["confirmed", "false"]',
            'certainties = ["unconfirmed"]',
            "bridges.matrix[0].routes[0].certainties",
        ),
        (
            'timezone = "America/Los_Angeles"',
            'timezone = "Mars/Olympus"',
            "bridges.matrix[0].routes[1].timezone",
        ),
        ('user_id = "@avisa:localhost"', 'user_id = "avisa"', "bridges.matrix[0].user_id"),
        (
            'homeserver = "http://127.0.0.1:8008"',
            'homeserver = "http://h/_matrix"',
            "bridges.matrix[0].homeserver",
        ),
        (
            'password_file = "matrix.password"',
            'password_file = "/etc/shadow"',
            "bridges.matrix[0].password_file",
        ),
        (
            'password_file = "matrix.password"',
            'password_file = "../matrix.password"',
            "bridges.matrix[0].password_file",
        ),
        ('password_file = "matrix.password"', "", "bridges.matrix[0]"),
        (
            'password_file = "matrix.password"',
            'password_file = "p"\naccess_token_file = "t"',
            "bridges.matrix[0]",
        ),
        (
            'homeserver = "http://127.0.0.1:8008"',
            'homeserver = "http://127.0.0.1:8008"\nexpiry_check = "0s"',
            "bridges.matrix[0].expiry_check",
        ),
    ],
)
def test_errors_name_the_setting(old: str, new: str, path: str) -> None:
    assert old in BRIDGE
    with pytest.raises(ConfigError) as error:
        parse(BASE + BRIDGE.replace(old, new))
    assert error.value.path == path, str(error.value)


def test_a_bridge_needs_routes_and_one_login_per_user() -> None:
    no_routes = BRIDGE.split("[[bridges.matrix.routes]]", maxsplit=1)[0]
    with pytest.raises(ConfigError) as error:
        parse(BASE + no_routes)
    assert str(error.value) == "bridges.matrix[0].routes: is required"
    with pytest.raises(ConfigError) as error:
        parse(BASE + no_routes + "routes = []\n")
    assert error.value.path == "bridges.matrix[0].routes"
    with pytest.raises(ConfigError, match="same user_id"):
        parse(BASE + BRIDGE + BRIDGE)


def test_secret_file_must_be_private_and_never_echoed(tmp_path: Path) -> None:
    (bridge,) = parse(BASE + BRIDGE).bridges.matrix
    where = "bridges.matrix[0]"
    with pytest.raises(ConfigError) as missing:
        read_secret(tmp_path, bridge, where)
    assert missing.value.path == "bridges.matrix[0].password_file"

    secret = tmp_path / "matrix.password"
    secret.write_text("hunter2-correct-horse\n")
    os.chmod(secret, 0o644)
    with pytest.raises(ConfigError, match="chmod 600") as loose:
        read_secret(tmp_path, bridge, where)
    assert "hunter2" not in str(loose.value)

    os.chmod(secret, 0o600)
    assert read_secret(tmp_path, bridge, where) == ("password", "hunter2-correct-horse")
    secret.write_text("")
    with pytest.raises(ConfigError, match="one line"):
        read_secret(tmp_path, bridge, where)
