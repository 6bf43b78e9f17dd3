"""One running node per data directory: an exclusive lock on ``DIR/run.lock``.

``avisa run`` takes the lock before it opens anything and holds it until the
process ends (the kernel releases a ``flock`` when its descriptor closes, so a
crashed node leaves no stale lock behind). A second ``avisa run`` on the same
directory finds it taken and stops with one line naming the process that has
it, instead of running beside it and overwriting its ``run.json``. The lock
file is separate from ``keys.lock``, which key commands take while the node
runs.

``directory_id`` names a data directory itself, not what it holds: a copy
(``cp -a nodes/la nodes/la-copy``) has the same key, network and even
``run.json``, but another inode. The running node gives it in ``/healthz``,
and the CLI refuses to send a directory's commands to a node whose directory
is another one. It is a digest of the device and inode numbers (no path),
and stays the same when the directory is renamed or moved on its filesystem.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
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


def directory_id(data_dir: Path) -> str | None:
    """An opaque name of the directory itself (device and inode); None if it is gone."""
    try:
        info = os.stat(data_dir)
    except OSError:
        return None
    return hashlib.sha256(f"avisa-dir:{info.st_dev}:{info.st_ino}".encode()).hexdigest()[:16]
