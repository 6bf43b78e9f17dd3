"""Reading ``DIR/avisa.toml``: the one place the config file is opened."""

from __future__ import annotations

from pathlib import Path

from relay.core.config import CONFIG_NAME, Config, parse
from relay.core.errors import ConfigError


def load(data_dir: Path) -> Config:
    path = data_dir / CONFIG_NAME
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), "no config here; run 'avisa init' first") from None
    return parse(text, str(path))
