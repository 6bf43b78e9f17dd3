"""SQLite access: one writer thread with group commit, one reader thread.

SQLite allows one writer at a time, and with ``synchronous=FULL`` each commit
costs an fsync. So every write is a *job* (a function of a connection) queued
to a single writer thread, which takes all jobs waiting, runs each inside its
own SAVEPOINT (a failing job is rolled back alone), and commits them together:
one fsync per batch, however many alerts or peers are writing. A job's result
or exception reaches its awaiting coroutine only after the commit, so "the
call returned" always means "it is on disk".

Bookkeeping that can be done again (``write(job, durable=False)``: a peer link
forming its next transaction, or recording what a peer took; the newest
checkpoint taken of another origin, which its next one rebuilds) commits with
``synchronous=NORMAL``: in WAL mode that commit survives the process being
killed, and only a power loss can roll it back, after which the link sends
again and the peer refuses the copy as a duplicate. It skips the fsync that
a hub would otherwise pay twice per peer per alert; the next durable commit
syncs it with its own. A batch with any durable job commits durably.

Reads go to a second connection on its own thread; WAL lets it read while the
writer writes. Neither thread ever runs on the event loop.

The schema is versioned by named migrations (``relay.storage.schema``) recorded
in ``schema_migrations``; later features append there and never edit an applied one.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from relay.core.errors import ConfigError
from relay.storage import schema

T = TypeVar("T")
#: The connection a job gets. Layers above storage name it by this alias: only storage
#: modules import ``sqlite3`` (an import-linter contract in pyproject.toml).
Connection: TypeAlias = sqlite3.Connection
Job = Callable[[Connection], T]

MAX_BATCH = 512
# Prepared statements kept per connection: relay.storage.writes uses one per row count.
STATEMENT_CACHE = 512

# The migrations themselves live in relay.storage.schema (re-exported for callers).
MIGRATIONS = schema.MIGRATIONS


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    _make_private(path)
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
        timeout=10,
        cached_statements=STATEMENT_CACHE,
    )
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA secure_delete = ON")
    conn.execute("PRAGMA foreign_keys = ON")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    return conn


def _make_private(path: Path) -> None:
    """The database holds sealed contacts and desk history: owner-only, from birth.

    SQLite gives its ``-wal`` and ``-shm`` files the main file's mode, so creating
    the main file 0600 (and tightening one an older version left 0644) covers all three.
    """
    # Only a file that does not exist yet is opened here: closing any descriptor of a
    # file drops every POSIX lock this process holds on it, the locks of SQLite's
    # connections included. A node's second connection would then release the first's,
    # and an 'avisa' command closing its own connection would take itself for the last
    # one, fold and delete the WAL under the running node's feet (which then never
    # saw another commit from outside its process).
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except FileNotFoundError:
        return  # no such directory: sqlite3.connect says so in its own words
    else:
        os.close(fd)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    for suffix in ("-wal", "-shm"):
        sidecar = path.with_name(path.name + suffix)
        if sidecar.exists() and sidecar.stat().st_mode & 0o077:
            sidecar.chmod(0o600)


def open_readonly(path: Path) -> sqlite3.Connection:
    """Read-only access for inspection commands; never creates the file."""
    if not path.exists():
        raise ConfigError(str(path), "no database yet (run 'avisa init' first)")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    conn.execute("PRAGMA query_only = ON")
    return conn


def backup(source: Path, target: Path) -> None:
    """A consistent copy of the database at ``source`` into a new file ``target`` (0600),
    taken while a node may be writing it (SQLite's online backup)."""
    live = open_readonly(source)
    copy = sqlite3.connect(target)
    try:
        live.backup(copy)
    finally:
        copy.close()
        live.close()
    target.chmod(0o600)


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations not yet applied, each in its own transaction."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY)")
    done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
    applied = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (name) VALUES (?)", (name,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


def _statements(sql: str) -> list[str]:
    return [part.strip() for part in sql.split(";") if part.strip()]


def open_sync(path: Path) -> sqlite3.Connection:
    """A migrated connection for one-shot CLI work (no threads)."""
    conn = connect(path)
    migrate(conn)
    return conn


def transaction(conn: sqlite3.Connection, job: Job[T]) -> T:
    """Run ``job`` in one IMMEDIATE transaction on a plain connection."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = job(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


@dataclass(slots=True)
class _Pending:
    job: Job[Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    outside_transaction: bool = False
    durable: bool = True


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Database:
    """Async face of one SQLite file: ``await db.write(job)``, ``await db.read(job)``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        setup = connect(path)
        try:
            migrate(setup)
        finally:
            setup.close()
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="avisa-db-writer")
        self._writer_conn = connect(path)
        self._reader_conn = connect(path, readonly=True)
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="avisa-db-reader")
        self._closed = False
        self.commits = 0
        self.lazy_commits = 0
        self._synchronous = "FULL"  # the writer connection's setting (``connect``)
        self._writer.start()

    async def write(self, job: Job[T], *, durable: bool = True) -> T:
        """Run ``job`` in the writer's next batch; returns once it is committed.

        ``durable=False``: bookkeeping that a power loss may roll back, never a
        process crash (the module's docstring says when that is right)."""
        if self._closed:
            raise RuntimeError("database is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Pending(job, loop, future, durable=durable))
        return await future

    async def checkpoint(self) -> None:
        """Fold the WAL into the database and truncate it (after purges)."""
        await self._wal_checkpoint("TRUNCATE")

    async def sync(self) -> None:
        """Make every commit so far durable, lazy ones included: SQLite syncs the WAL
        before a checkpoint (``PASSIVE``: it waits for no reader)."""
        await self._wal_checkpoint("PASSIVE")

    async def _wal_checkpoint(self, mode: str) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(f"PRAGMA wal_checkpoint({mode})")

        self._queue.put(_Pending(job, loop, future, outside_transaction=True))
        await future

    async def read(self, job: Job[T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, job, self._reader_conn)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._writer.join()
        self._reader.shutdown(wait=True)
        self._writer_conn.close()
        self._reader_conn.close()

    def _take_batch(self, first: _Pending) -> tuple[list[_Pending], bool]:
        batch, stop = [first], False
        while len(batch) < MAX_BATCH:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stop = True
                break
            batch.append(item)
        return batch, stop

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._take_batch(first)
            plain = [pending for pending in batch if pending.outside_transaction]
            jobs = [pending for pending in batch if not pending.outside_transaction]
            self._set_synchronous("FULL" if any(p.durable for p in jobs) else "NORMAL")
            outcomes = self._run_batch(jobs)
            outcomes += [self._run_plain(pending) for pending in plain]
            for pending, result, error in outcomes:
                pending.loop.call_soon_threadsafe(_settle, pending.future, result, error)
            if stop:
                return

    def _set_synchronous(self, level: str) -> None:
        """Between transactions only (SQLite ignores it inside one)."""
        if level != self._synchronous:
            self._writer_conn.execute(f"PRAGMA synchronous = {level}")
            self._synchronous = level

    def _committed(self) -> None:
        self.commits += 1
        if self._synchronous != "FULL":
            self.lazy_commits += 1

    def _run_plain(self, pending: _Pending) -> tuple[_Pending, Any, BaseException | None]:
        try:
            return pending, pending.job(self._writer_conn), None
        except Exception as exc:  # noqa: BLE001 - handed to the job's awaiter
            return pending, None, exc

    def _run_alone(self, pending: _Pending) -> tuple[_Pending, Any, BaseException | None]:
        """A batch of one job: its own transaction undoes it alone, no savepoint needed
        (each statement is a GIL hand-off for the writer thread)."""
        conn = self._writer_conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = pending.job(conn)
            except Exception as exc:  # noqa: BLE001 - handed to the job's awaiter
                conn.execute("ROLLBACK")
                return pending, None, exc
            conn.execute("COMMIT")
            self._committed()
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return pending, None, exc
        return pending, result, None

    def _run_batch(self, batch: list[_Pending]) -> list[tuple[_Pending, Any, BaseException | None]]:
        if not batch:
            return []
        if len(batch) == 1:
            return [self._run_alone(batch[0])]
        conn = self._writer_conn
        outcomes: list[tuple[_Pending, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for pending in batch:
                conn.execute("SAVEPOINT job")
                try:
                    outcomes.append((pending, pending.job(conn), None))
                except Exception as exc:  # noqa: BLE001 - handed to the job's awaiter
                    conn.execute("ROLLBACK TO job")
                    outcomes.append((pending, None, exc))
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
            self._committed()
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(pending, None, exc) for pending in batch]
        return outcomes
