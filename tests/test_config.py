"""``avisa.toml``: typed decode, errors that name the setting."""

from __future__ import annotations

import pytest

from relay.core.config import parse, render
from relay.core.errors import ConfigError

GOOD = render("ventura", "127.0.0.1:8470", "https://avisa.example.org")


def test_what_init_writes_loads_with_defaults() -> None:
    config = parse(GOOD)
    assert config.node.network == "ventura"
    assert config.policy.on_fail == "hold" and config.policy.min_endorsements == 1
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 8470)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (('max_age = "7d"', 'max_age = "6 hours"'), "policy.max_age"),
        (("min_endorsements = 1", "min_endorsements = 99"), "policy.min_endorsements"),
        (('on_fail = "hold"', 'on_fail = "drop"'), "policy.on_fail"),
        (("[store]", "[store]\nretention_days = 7"), "store"),
        (('network = "ventura"', 'network = "Ventura County"'), "node.network"),
        (('listen = "127.0.0.1:8470"', 'listen = "localhost"'), "node.listen"),
        (('url = "https://avisa.example.org"', 'url = "ftp://x"'), "node.url"),
        (('max_future_skew = "5m"', 'max_future_skew = "2h"'), "policy.max_future_skew"),
        (('max_age = "7d"', 'max_age = "30d"'), "policy.max_age"),
        (("hold_certainties = []", 'hold_certainties = ["maybe"]'), "policy.hold_certainties"),
        (('network = "ventura"', 'network = "ventura"\nverify_workers = -9'), "node.verify"),
    ],
)
def test_errors_name_the_setting(change: tuple[str, str], path: str) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(ConfigError) as error:
        parse(GOOD.replace(old, new))
    assert error.value.path.startswith(path), str(error.value)


def test_not_toml_at_all() -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse("[node\nnetwork=")


def test_verify_workers_default_to_one_per_core_and_can_be_fewer() -> None:
    import os

    from relay.runtime.node import verify_workers

    assert parse(GOOD).node.verify_workers == 0
    assert verify_workers(0) == max(1, os.cpu_count() or 2)
    one = parse(GOOD.replace('network = "ventura"', 'network = "ventura"\nverify_workers = 1'))
    assert verify_workers(one.node.verify_workers) == 1


@pytest.mark.parametrize(
    ("tiles", "extra", "says"),
    [
        ("/srv/maps/ventura.pmtiles", "", "inside the data directory"),
        ("../ventura.pmtiles", "", "inside the data directory"),
        ("maps/ventura.mbtiles", "", "a .pmtiles file"),
        ("maps/ventura.pmtiles", 'tile_url = "https://t.example/{z}/{x}/{y}.png"', "not both"),
    ],
)
def test_the_desk_tiles_are_a_pmtiles_file_in_the_data_directory(
    tiles: str, extra: str, says: str
) -> None:
    assert parse(GOOD + '\n[desk_web]\ntiles = "maps/ventura.pmtiles"\n').desk_web.tiles
    with pytest.raises(ConfigError, match=says) as error:
        parse(GOOD + f'\n[desk_web]\ntiles = "{tiles}"\n{extra}\n')
    assert error.value.path == "desk_web.tiles"
