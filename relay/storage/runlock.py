"""One running node per data directory: an exclusive lock on ``DIR/run.lock``.

``avisa run`` takes the lock before it opens anything and holds it until the
process ends (the kernel releases a ``flock`` when its descriptor closes, so a
crashed node leaves no stale lock behind). A second ``avisa run`` on the same
directory finds it taken and stops with one line naming the process that has
it, instead of running beside it and overwriting its ``run.json``. The lock
file is separate from ``keys.lock``, which key commands take while the node
runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from relay.core.errors import ConfigError

LOCK_NAME = "run.lock"


@contextlib.contextmanager
def hold(data_dir: Path) -> Iterator[None]:
    """Hold the data directory's run lock, or raise ``ConfigError`` at once."""
    if not data_dir.is_dir():
        raise ConfigError(str(data_dir), "no such directory; run 'avisa init' first")
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise ConfigError(
                str(data_dir),
                f"another 'avisa run' (pid {holder}) is already running on this data"
                " directory; stop it first, or give another --data",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
