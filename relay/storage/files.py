"""Atomic, private file writes.

A secret must never exist on disk with loose permissions, not even for the
instant between create and chmod, and a crash must leave either the old file
or the new one, never half of either. So: create a temporary file beside the
target with ``O_EXCL`` and mode 0600, write, fsync, rename over the target,
fsync the directory.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_private(path: Path, data: bytes, mode: int = 0o600, replace: bool = True) -> None:
    """Atomically replace ``path`` with ``data``, readable by the owner only.

    With ``replace=False`` an existing ``path`` is left alone and
    ``FileExistsError`` raised: the file is put in place with ``link``, which
    never overwrites, so no check-then-write race can clobber a file.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            tmp.unlink()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_private(path: Path) -> bool:
    """True when neither group nor others can read or write the file."""
    return (path.stat().st_mode & 0o077) == 0
