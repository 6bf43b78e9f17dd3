"""SQLite access: one writer thread with group commit, one reader thread.

SQLite allows one writer at a time, and with ``synchronous=FULL`` each commit
costs an fsync. So every write is a *job* (a function of a connection) queued
to a single writer thread, which takes all jobs waiting, runs each inside its
own SAVEPOINT (a failing job is rolled back alone), and commits them together:
one fsync per batch, however many alerts or peers are writing. A job's result
or exception reaches its awaiting coroutine only after the commit, so "the
call returned" always means "it is on disk".

Reads go to a second connection on its own thread; WAL lets it read while the
writer writes. Neither thread ever runs on the event loop.

The schema is versioned by named migrations recorded in ``schema_migrations``;
later features append to ``MIGRATIONS`` and never edit an applied one.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from relay.core.errors import ConfigError

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], T]

MAX_BATCH = 512
# Prepared statements kept per connection: relay.storage.writes uses one per row count.
STATEMENT_CACHE = 512

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_core",
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE alerts (
            id TEXT PRIMARY KEY,
            network TEXT NOT NULL,
            seq INTEGER NOT NULL,
            msg_type TEXT NOT NULL,
            kind TEXT NOT NULL,
            certainty TEXT NOT NULL,
            sent_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            state TEXT NOT NULL
                CHECK (state IN ('active', 'held', 'cancelled', 'superseded')),
            reason TEXT NOT NULL,
            from_peer TEXT,
            endorsed_by TEXT NOT NULL,
            pos INTEGER UNIQUE,
            envelope BLOB NOT NULL
        );
        CREATE INDEX alerts_expires ON alerts (expires_at);
        CREATE INDEX alerts_state ON alerts (state);
        CREATE TABLE feed (
            pos INTEGER PRIMARY KEY AUTOINCREMENT,
            alert_id TEXT NOT NULL,
            event TEXT NOT NULL CHECK (event IN ('alert', 'update', 'cancel'))
        );
        CREATE INDEX feed_alert ON feed (alert_id);
        CREATE TABLE tombstones (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('cancelled', 'superseded', 'rejected')),
            by_id TEXT NOT NULL,
            keep_until INTEGER NOT NULL
        );
        CREATE TABLE decisions (
            n INTEGER PRIMARY KEY AUTOINCREMENT,
            at INTEGER NOT NULL,
            alert_id TEXT,
            network TEXT,
            peer TEXT,
            action TEXT NOT NULL,
            reason TEXT NOT NULL
        );
        CREATE TABLE origins (network TEXT PRIMARY KEY, max_seq INTEGER NOT NULL);
        CREATE TABLE tokens (
            hash BLOB PRIMARY KEY,
            role TEXT NOT NULL CHECK (role IN ('publisher', 'reviewer', 'admin')),
            label TEXT NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE TABLE cursors (name TEXT PRIMARY KEY, pos INTEGER NOT NULL);
        CREATE TABLE peers (
            network TEXT PRIMARY KEY,
            url TEXT NOT NULL,
            speaks_for TEXT NOT NULL,
            kinds TEXT NOT NULL,
            certainties TEXT NOT NULL,
            rate_limit_per_min INTEGER NOT NULL,
            forward INTEGER NOT NULL,
            endorse INTEGER NOT NULL,
            added_at INTEGER NOT NULL
        );
        CREATE TABLE peer_keys (
            keyid TEXT PRIMARY KEY,
            network TEXT NOT NULL REFERENCES peers (network) ON DELETE CASCADE,
            public_key BLOB NOT NULL,
            valid_from INTEGER,
            valid_until INTEGER,
            revoked_at INTEGER
        );
        INSERT INTO meta (key, value) VALUES ('trust_version', '0');
        """,
    ),
    (
        # Key management (keys/): this node's key history and statements, how
        # each peer key was learned, and the last key document per peer.
        "0100_keys_history",
        """
        CREATE TABLE own_keys (
            keyid TEXT PRIMARY KEY,
            public_key BLOB NOT NULL,
            valid_from INTEGER,
            valid_until INTEGER,
            revoked_at INTEGER,
            introduced_by TEXT
        );
        CREATE TABLE own_key_statements (
            n INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL CHECK (kind IN ('rotation', 'revocation')),
            keyid TEXT NOT NULL,
            at INTEGER NOT NULL,
            envelope BLOB NOT NULL
        );
        ALTER TABLE peer_keys ADD COLUMN learned_at INTEGER;
        ALTER TABLE peer_keys ADD COLUMN introduced_by TEXT;
        CREATE TABLE peer_key_documents (
            network TEXT PRIMARY KEY REFERENCES peers (network) ON DELETE CASCADE,
            issued_at INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            document BLOB NOT NULL
        );
        """,
    ),
    (
        "0200_federation",
        """
        CREATE TABLE outbox (
            n INTEGER PRIMARY KEY AUTOINCREMENT,
            peer TEXT NOT NULL,
            alert_id TEXT NOT NULL,
            priority INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            txn_id TEXT,
            UNIQUE (peer, alert_id)
        );
        CREATE INDEX outbox_next ON outbox (peer, txn_id, priority, n);
        CREATE INDEX outbox_expiry ON outbox (peer, expires_at);
        CREATE TABLE peer_delivery (
            peer TEXT PRIMARY KEY,
            last_success INTEGER,
            last_error TEXT,
            last_error_at INTEGER,
            failures INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE quarantine (
            peer TEXT NOT NULL,
            alert_id TEXT NOT NULL,
            at INTEGER NOT NULL,
            reason TEXT NOT NULL,
            expires_at INTEGER NOT NULL,
            PRIMARY KEY (peer, alert_id)
        );
        CREATE TABLE fed_txns (
            origin TEXT NOT NULL,
            txn_id TEXT NOT NULL,
            at INTEGER NOT NULL,
            reply BLOB NOT NULL,
            PRIMARY KEY (origin, txn_id)
        );
        CREATE INDEX fed_txns_at ON fed_txns (at);
        CREATE TABLE pull_cursors (
            peer TEXT PRIMARY KEY,
            cursor INTEGER NOT NULL,
            pulled_at INTEGER NOT NULL
        );
        CREATE TABLE seq_gaps (
            network TEXT NOT NULL,
            seq_from INTEGER NOT NULL,
            seq_to INTEGER NOT NULL,
            peer TEXT,
            noticed_at INTEGER NOT NULL,
            pulled INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (network, seq_from)
        );
        """,
    ),
    (
        "0300_matrix",
        """
        CREATE TABLE matrix_devices (
            user_id TEXT PRIMARY KEY,
            device_id TEXT NOT NULL
        );
        CREATE TABLE matrix_posts (
            route TEXT NOT NULL,
            alert_id TEXT NOT NULL,
            room_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            root_id TEXT NOT NULL,
            root_event_id TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('active', 'cancelled', 'superseded', 'expired')),
            expires_at INTEGER NOT NULL,
            current INTEGER NOT NULL CHECK (current IN (0, 1)),
            PRIMARY KEY (route, alert_id)
        );
        CREATE INDEX matrix_posts_due ON matrix_posts (route, current, status, expires_at);
        CREATE INDEX matrix_posts_root ON matrix_posts (route, root_event_id);
        """,
    ),
    (
        # The verification desk (relay.storage.tips): tips, their history, a
        # per-node tip number; tokens hold a comma-separated set of roles.
        "0400_desk",
        """
        CREATE TABLE tips (
            id TEXT PRIMARY KEY,
            number INTEGER NOT NULL UNIQUE,
            state TEXT NOT NULL CHECK (state IN ('new', 'claimed', 'confirmed',
                'false_alarm', 'unable', 'duplicate', 'published', 'closed')),
            channel TEXT NOT NULL,
            received_at INTEGER NOT NULL,
            geohash TEXT,
            codes TEXT NOT NULL,
            reporter BLOB,
            contact BLOB,
            source_ref TEXT UNIQUE,
            alert_id TEXT,
            body BLOB NOT NULL
        );
        CREATE INDEX tips_state ON tips (state, received_at);
        CREATE INDEX tips_received ON tips (received_at);
        CREATE TABLE tip_history (
            n INTEGER PRIMARY KEY AUTOINCREMENT,
            tip_id TEXT NOT NULL REFERENCES tips (id) ON DELETE CASCADE,
            event BLOB NOT NULL
        );
        CREATE INDEX tip_history_tip ON tip_history (tip_id, n);
        CREATE TABLE tip_numbers (last INTEGER NOT NULL);
        INSERT INTO tip_numbers (last) VALUES (0);
        CREATE TABLE tokens_with_roles (
            hash BLOB PRIMARY KEY,
            roles TEXT NOT NULL CHECK (roles != ''),
            label TEXT NOT NULL,
            created_at INTEGER NOT NULL
        );
        INSERT INTO tokens_with_roles (hash, roles, label, created_at)
            SELECT hash, role, label, created_at FROM tokens;
        DROP TABLE tokens;
        ALTER TABLE tokens_with_roles RENAME TO tokens
        """,
    ),
    (
        # CAP import (bridges/cap): each outside message read (by CAP's own key,
        # sender,identifier) and the desk tip it filed or changed; index entries
        # already read; each source's HTTP validators.
        "0600_cap",
        """
        CREATE TABLE cap_imports (
            ref TEXT PRIMARY KEY,
            root TEXT NOT NULL,
            source TEXT NOT NULL,
            msg_type TEXT NOT NULL,
            sent INTEGER NOT NULL,
            expires_at INTEGER,
            outcome TEXT NOT NULL,
            keep_until INTEGER NOT NULL
        );
        CREATE INDEX cap_imports_keep ON cap_imports (keep_until);
        CREATE TABLE cap_entries (
            source TEXT NOT NULL,
            entry TEXT NOT NULL,
            keep_until INTEGER NOT NULL,
            PRIMARY KEY (source, entry)
        );
        CREATE INDEX cap_entries_keep ON cap_entries (keep_until);
        CREATE TABLE cap_sources (
            source TEXT PRIMARY KEY,
            etag TEXT,
            last_modified TEXT
        );
        """,
    ),
    (
        # fed_txns: the body a reply answered (a reused txn_id is noticed). feed: a
        # 'withdraw' event, when an accepted alert goes back to review; matrix_posts:
        # the 'withdrawn' status that event leaves in a room. SQLite cannot change a
        # CHECK, so both tables are rebuilt, keeping feed's AUTOINCREMENT counter
        # (positions are cursors and are never reused).
        "0450_protocol",
        """
        ALTER TABLE fed_txns ADD COLUMN body_sha256 BLOB;
        CREATE TABLE feed_0450 (
            pos INTEGER PRIMARY KEY AUTOINCREMENT,
            alert_id TEXT NOT NULL,
            event TEXT NOT NULL CHECK (event IN ('alert', 'update', 'cancel', 'withdraw'))
        );
        INSERT INTO feed_0450 (pos, alert_id, event) SELECT pos, alert_id, event FROM feed;
        DELETE FROM sqlite_sequence WHERE name = 'feed_0450';
        INSERT INTO sqlite_sequence (name, seq)
            SELECT 'feed_0450', seq FROM sqlite_sequence WHERE name = 'feed';
        DROP TABLE feed;
        ALTER TABLE feed_0450 RENAME TO feed;
        CREATE INDEX feed_alert ON feed (alert_id);
        CREATE TABLE matrix_posts_0450 (
            route TEXT NOT NULL,
            alert_id TEXT NOT NULL,
            room_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            root_id TEXT NOT NULL,
            root_event_id TEXT NOT NULL,
            status TEXT NOT NULL CHECK (
                status IN ('active', 'cancelled', 'superseded', 'expired', 'withdrawn')
            ),
            expires_at INTEGER NOT NULL,
            current INTEGER NOT NULL CHECK (current IN (0, 1)),
            PRIMARY KEY (route, alert_id)
        );
        INSERT INTO matrix_posts_0450 SELECT route, alert_id, room_id, event_id, root_id,
            root_event_id, status, expires_at, current FROM matrix_posts;
        DROP TABLE matrix_posts;
        ALTER TABLE matrix_posts_0450 RENAME TO matrix_posts;
        CREATE INDEX matrix_posts_due ON matrix_posts (route, current, status, expires_at);
        CREATE INDEX matrix_posts_root ON matrix_posts (route, root_event_id);
        """,
    ),
    (
        # The text line (bridges/sms): subscribers (sealed numbers), texts, the
        # per-recipient queue, inbound ids already handled.
        "0500_sms",
        """
        CREATE TABLE sms_subscribers (
            hash BLOB PRIMARY KEY,
            sealed BLOB NOT NULL,
            keyword TEXT NOT NULL,
            lang TEXT NOT NULL,
            areas TEXT NOT NULL,
            since INTEGER NOT NULL
        );
        CREATE INDEX sms_subscribers_areas ON sms_subscribers (areas);
        CREATE TABLE sms_messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            alert_id TEXT,
            root_id TEXT,
            lang TEXT NOT NULL,
            body TEXT NOT NULL,
            coding TEXT NOT NULL CHECK (coding IN ('gsm7', 'ucs2')),
            segments INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            UNIQUE (alert_id, lang)
        );
        CREATE TABLE sms_queue (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            hash BLOB NOT NULL,
            sealed BLOB,
            message_id INTEGER NOT NULL REFERENCES sms_messages (id) ON DELETE CASCADE,
            root_id TEXT,
            state TEXT NOT NULL
                CHECK (state IN ('queued', 'sending', 'sent', 'delivered', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at INTEGER NOT NULL,
            sending_at INTEGER,
            gateway_ref TEXT,
            dlr TEXT,
            created_at INTEGER NOT NULL,
            UNIQUE (hash, message_id)
        );
        CREATE INDEX sms_queue_due ON sms_queue (state, next_at);
        CREATE INDEX sms_queue_root ON sms_queue (root_id, hash);
        CREATE TABLE sms_mo (id TEXT PRIMARY KEY, at INTEGER NOT NULL);
        CREATE INDEX sms_mo_at ON sms_mo (at);
        """,
    ),
]


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
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


def open_readonly(path: Path) -> sqlite3.Connection:
    """Read-only access for inspection commands; never creates the file."""
    if not path.exists():
        raise ConfigError(str(path), "no database yet (run 'avisa init' first)")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    conn.execute("PRAGMA query_only = ON")
    return conn


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
        self._writer.start()

    async def write(self, job: Job[T]) -> T:
        if self._closed:
            raise RuntimeError("database is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Pending(job, loop, future))
        return await future

    async def checkpoint(self) -> None:
        """Fold the WAL into the database and truncate it (after purges)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def job(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

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
            outcomes = self._run_batch([p for p in batch if not p.outside_transaction])
            outcomes += [self._run_plain(pending) for pending in plain]
            for pending, result, error in outcomes:
                pending.loop.call_soon_threadsafe(_settle, pending.future, result, error)
            if stop:
                return

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
            self.commits += 1
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
            self.commits += 1
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(pending, None, exc) for pending in batch]
        return outcomes
