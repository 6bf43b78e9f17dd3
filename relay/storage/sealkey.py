"""``DIR/desk.key``: the key that seals phone numbers, outside the database.

Created 0600 by ``avisa init`` and by the first start of an older data
directory (``load_or_create``). Losing it makes sealed numbers unreadable,
which is acceptable: they are only reply addresses of open tips and SMS
subscriptions, and subscribers can text the keyword again. A backup of the
database without this file holds no readable number.
"""

from __future__ import annotations

from pathlib import Path

from relay.core.errors import KeyFileError
from relay.core.sealing import KEY_BYTES, Sealer
from relay.storage.files import is_private, write_private

SEAL_KEY_NAME = "desk.key"


def load_or_create(data_dir: Path) -> Sealer:
    path = data_dir / SEAL_KEY_NAME
    if not path.exists():
        write_private(path, Sealer.new_key())
    if not is_private(path):
        raise KeyFileError(f"{path}: readable by others; run: chmod 600 {path}")
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{path}: not a desk key ({len(key)} bytes, expected {KEY_BYTES})")
    return Sealer(key)
