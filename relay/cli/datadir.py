"""Creating a node's data directory (``avisa init``) and backing it up (``avisa backup``).

The directory is created 0700 and receives ``avisa.toml``, ``node.key``
(0600, optionally passphrase-sealed), ``desk.key`` (0600, seals reporters'
phone numbers), the SQLite database with its schema,
and ``operator.token`` (0600) holding an admin token whose hash alone is in
the database. ``init`` refuses to touch a directory that already holds a node
(a key or a database), so a typo can never overwrite a key; an ``avisa.toml``
alone (one the operator wrote first, or an example) is kept and used.

Every command finds the data directory the same way (``resolve``): ``--data``,
else ``AVISA_DATA``, else ``/var/lib/avisa`` when it exists.

``backup`` copies a data directory, running or not, into a new private
directory: the database through SQLite's online backup API (a consistent
snapshot even while the node writes), every other file byte for byte with
owner-only permissions. Restoring is copying the directory back.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from keys.core.signing import NodeKey
from keys.store import nodekey, ownkeys
from relay.core import config as config_mod
from relay.core.errors import ConfigError
from relay.core.model import valid_network
from relay.core.times import Clock
from relay.runtime.clock import system_clock
from relay.storage import db, sealkey, trust
from relay.storage.files import write_private

DATA_ENV = "AVISA_DATA"
DEFAULT_DATA = Path("/var/lib/avisa")


def data_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help=f"the node's data directory (default: ${DATA_ENV}, else {DEFAULT_DATA} if it exists)",
    )


def resolve(given: Path | None) -> Path:
    """``--data``, else ``AVISA_DATA``, else ``/var/lib/avisa`` when it exists."""
    if given is not None:
        return given
    from_env = os.environ.get(DATA_ENV, "")
    if from_env:
        return Path(from_env)
    if DEFAULT_DATA.is_dir():
        return DEFAULT_DATA
    raise ConfigError(
        "--data",
        f"which node? give --data DIR, or set {DATA_ENV}=DIR"
        f" (the default, {DEFAULT_DATA}, does not exist)",
    )


@dataclass(frozen=True, slots=True)
class Initialized:
    data_dir: Path
    network: str
    keyid: str
    fingerprint: str
    token: str
    kept_config: bool = False


def initialize(
    data_dir: Path,
    network: str,
    listen: str = "127.0.0.1:8470",
    url: str = "",
    passphrase: bytes | None = None,
    clock: Clock = system_clock,
) -> Initialized:
    if not valid_network(network):
        raise ConfigError(
            "--network",
            "2 to 63 characters: labels of a-z, 0-9 and '-' joined by single dots, "
            "each starting with a letter and not ending with '-' (e.g. la-rrn, oc.resilience)",
        )
    config_path = data_dir / config_mod.CONFIG_NAME
    for name in (config_mod.KEY_NAME, config_mod.DB_NAME):
        if (data_dir / name).exists():
            raise ConfigError(
                str(data_dir), f"already holds a node ({name}); refusing to overwrite its key"
            )
    kept = config_path.exists()
    text = (
        config_path.read_text()
        if kept
        else config_mod.render(network, listen, url or f"http://{listen}")
    )
    written = config_mod.parse(text, str(config_path))  # what init writes must load
    if written.node.network != network:
        raise ConfigError(
            f"{config_path}: node.network",
            f"is {written.node.network!r} but --network is {network!r}; make them the same",
        )
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = NodeKey.generate()
    nodekey.save(data_dir / config_mod.KEY_NAME, key, passphrase)
    conn = db.open_sync(data_dir / config_mod.DB_NAME)
    try:
        token = db.transaction(conn, lambda c: trust.add_token(c, "admin", "init", clock()))
        ownkeys.ensure_current(conn, network, key)
    finally:
        conn.close()
    sealkey.load_or_create(data_dir)  # DIR/desk.key: seals reporters' phone numbers
    write_private(data_dir / config_mod.TOKEN_NAME, (token + "\n").encode())
    if not kept:
        write_private(config_path, text.encode(), mode=0o644)
    return Initialized(data_dir, network, key.keyid, key.fingerprint, token, kept)


_NOT_BACKED_UP = {"run.json", "node.log", "run.lock"}


def backup(data_dir: Path, out_dir: Path) -> list[Path]:
    """Copy ``data_dir`` into the new directory ``out_dir``; returns what was written."""
    if not (data_dir / config_mod.CONFIG_NAME).exists():
        raise ConfigError(str(data_dir), "not a node's data directory")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(str(out_dir), "exists and is not empty; give a new directory")
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    db.backup(data_dir / config_mod.DB_NAME, out_dir / config_mod.DB_NAME)
    written = [out_dir / config_mod.DB_NAME]
    for source in sorted(data_dir.rglob("*")):
        relative = source.relative_to(data_dir)
        if (
            source.is_dir()
            or relative.name in _NOT_BACKED_UP
            or relative.name.startswith(config_mod.DB_NAME)
        ):
            continue
        target = out_dir / relative
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(target, source.read_bytes())
        written.append(target)
    return written
