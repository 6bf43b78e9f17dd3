"""The writer thread: a failing job leaves nothing behind, alone or in a batch."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from relay.storage.db import Database


def _put(key: str, fail: bool = False):  # type: ignore[no-untyped-def]
    def job(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO meta (key, value) VALUES (?, 'x')", (key,))
        if fail:
            raise ValueError("this job fails after writing")
        return key

    return job


async def _keys(db: Database) -> set[str]:
    rows = await db.read(lambda conn: conn.execute("SELECT key FROM meta").fetchall())
    return {key for (key,) in rows} - {"trust_version"}


async def test_a_failing_job_alone_leaves_nothing(tmp_path: Path) -> None:
    db = Database(tmp_path / "a.db")
    try:
        with pytest.raises(ValueError):
            await db.write(_put("lost", fail=True))
        assert await db.write(_put("kept")) == "kept"
        assert await _keys(db) == {"kept"}
    finally:
        db.close()


async def test_a_failing_job_in_a_batch_is_undone_alone(tmp_path: Path) -> None:
    db = Database(tmp_path / "b.db")
    gate = threading.Event()
    try:
        # The writer is held by the first job (alone, or with the three that follow it)
        # until all four are queued, so the three run in one batch of several jobs.
        holding = asyncio.ensure_future(db.write(lambda conn: gate.wait(10)))
        jobs = [db.write(_put("one")), db.write(_put("lost", fail=True)), db.write(_put("two"))]
        gate.set()
        results = await asyncio.gather(holding, *jobs, return_exceptions=True)
        assert results[1:] == ["one", results[2], "two"]
        assert isinstance(results[2], ValueError)
        assert await _keys(db) == {"one", "two"}
    finally:
        db.close()


def test_database_files_are_private_from_birth(tmp_path: Path) -> None:
    from relay.storage import db

    path = tmp_path / "avisa.db"
    conn = db.open_sync(path)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    files = [p for p in tmp_path.iterdir() if p.name.startswith("avisa.db")]
    assert {p.name for p in files} >= {"avisa.db", "avisa.db-wal", "avisa.db-shm"}
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in files), [
        (p.name, oct(p.stat().st_mode)) for p in files
    ]
    conn.close()


def test_an_older_loose_database_is_tightened(tmp_path: Path) -> None:
    from relay.storage import db

    path = tmp_path / "avisa.db"
    sqlite3.connect(path).close()
    path.chmod(0o644)
    db.open_sync(path).close()
    assert path.stat().st_mode & 0o777 == 0o600


async def test_a_running_node_sees_what_a_command_in_another_process_commits(
    tmp_path: Path,
) -> None:
    """A command (its own process) opens, writes and closes; the node's reader must see
    every commit. Opening the file in ``connect`` used to drop the node's own SQLite
    locks, so the command took itself for the last connection and deleted the WAL."""
    import subprocess
    import sys

    from relay.storage.db import connect

    path = tmp_path / "c.db"
    db = Database(path)
    try:
        connect(path).close()  # the node opens (and closes) more connections as it runs
        command = (
            "import sys; from pathlib import Path; from relay.storage import db;"
            "c = db.open_sync(Path(sys.argv[1]));"
            "db.transaction(c, lambda t: t.execute("
            "\"INSERT INTO meta (key, value) VALUES (?, 'x')\", (sys.argv[2],)));"
            "c.close()"
        )
        for key in ("first", "second", "third"):
            subprocess.run([sys.executable, "-c", command, str(path), key], check=True)
            assert key in await _keys(db)
    finally:
        db.close()


async def test_bookkeeping_commits_without_an_fsync_and_a_mixed_batch_with_one(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "lazy.db")

    def synchronous(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA synchronous").fetchone()[0])

    try:
        assert await db.write(_put("lazy"), durable=False) == "lazy"
        assert (db.commits, db.lazy_commits) == (1, 1)
        assert await db.write(synchronous, durable=False) == 1  # NORMAL
        assert await db.write(synchronous) == 2  # FULL again for a durable job
        # A batch that holds one durable job commits durably, lazy jobs with it.
        gate = threading.Event()
        holding = asyncio.ensure_future(db.write(lambda conn: gate.wait(10), durable=False))
        together = [db.write(_put("a"), durable=False), db.write(synchronous)]
        gate.set()
        *_, level = await asyncio.gather(holding, *together)
        assert level == 2
        assert await _keys(db) == {"lazy", "a"}
    finally:
        db.close()


def test_bookkeeping_survives_the_process_being_killed(tmp_path: Path) -> None:
    """SIGKILL right after a lazy commit returned: the row is there (only a power loss
    could take it, which no test here can make)."""
    import signal
    import subprocess
    import sys

    path = tmp_path / "killed.db"
    script = (
        "import asyncio, os, signal, sys\n"
        "from relay.storage.db import Database\n"
        "db = Database(__import__('pathlib').Path(sys.argv[1]))\n"
        "async def main():\n"
        "    row = \"INSERT INTO meta (key, value) VALUES ('k', 'v')\"\n"
        "    await db.write(lambda c: c.execute(row), durable=False)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], check=False, timeout=60)
    assert done.returncode == -signal.SIGKILL
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key = 'k'").fetchone() == ("v",)
    finally:
        conn.close()


async def test_sync_makes_lazy_commits_durable_through_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "sync.db"
    db = Database(path)
    try:
        await db.write(_put("evidence"), durable=False)
        await db.sync()
        # Read the database file alone, ignoring the WAL: the row was checkpointed into it,
        # which SQLite does only after syncing the WAL.
        frozen = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
        try:
            found = frozen.execute("SELECT key FROM meta WHERE key = 'evidence'").fetchone()
        finally:
            frozen.close()
        assert found == ("evidence",)
    finally:
        db.close()
