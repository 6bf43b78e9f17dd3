"""Creating a node's data directory (``avisa init``).

The directory is created 0700 and receives ``avisa.toml``, ``node.key``
(0600, optionally passphrase-sealed), the SQLite database with its schema,
and ``operator.token`` (0600) holding an admin token whose hash alone is in
the database. ``init`` refuses to touch a directory that already holds a node,
so a typo can never overwrite a key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from keys import nodekey, ownkeys
from keys.files import write_private
from keys.nodekey import NodeKey
from relay import config as config_mod
from relay import db, trust
from relay.errors import ConfigError
from relay.model import NETWORK_PATTERN
from relay.timeutil import Clock, system_clock


@dataclass(frozen=True, slots=True)
class Initialized:
    data_dir: Path
    network: str
    keyid: str
    fingerprint: str
    token: str


def initialize(
    data_dir: Path,
    network: str,
    listen: str = "127.0.0.1:8470",
    url: str = "",
    passphrase: bytes | None = None,
    clock: Clock = system_clock,
) -> Initialized:
    if not re.match(NETWORK_PATTERN, network):
        raise ConfigError("--network", "lowercase letters, digits, '.' and '-', 2 to 63 long")
    config_path = data_dir / config_mod.CONFIG_NAME
    if config_path.exists() or (data_dir / config_mod.KEY_NAME).exists():
        raise ConfigError(str(data_dir), "already holds a node; refusing to overwrite its key")
    url = url or f"http://{listen}"
    text = config_mod.render(network, listen, url)
    config_mod.parse(text, str(config_path))  # what init writes must load
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = NodeKey.generate()
    nodekey.save(data_dir / config_mod.KEY_NAME, key, passphrase)
    conn = db.open_sync(data_dir / config_mod.DB_NAME)
    try:
        token = db.transaction(conn, lambda c: trust.add_token(c, "admin", "init", clock()))
        ownkeys.ensure_current(conn, network, key)
    finally:
        conn.close()
    write_private(data_dir / config_mod.TOKEN_NAME, (token + "\n").encode())
    write_private(config_path, text.encode(), mode=0o644)
    return Initialized(data_dir, network, key.keyid, key.fingerprint, token)
