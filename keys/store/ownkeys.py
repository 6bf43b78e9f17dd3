"""This node's own keys: the private key on disk, the history in SQLite.

Only the *current* private key exists, in ``node.key``. Every own public key
the node ever used, with its validity, is a row of ``own_keys``; the rotation
and revocation statements it made are rows of ``own_key_statements`` and
travel in its key document.

A rotation changes a file and the database, which cannot commit together, so
it goes in three steps, each leaving a state the next start can finish:

1. the new key is written to ``node.key.next`` (0600, sealed like the old);
2. one transaction records the new key as current, the old as rotated out,
   the statement, and bumps ``trust_version``;
3. the old ``node.key`` is overwritten with zeros in place, then
   ``node.key.next`` is renamed over it.

``finish_pending`` completes step 3 when the database names the staged key
as current, and erases the staged key when it does not (step 2 never
happened). Key-changing commands and node start-up hold ``keys.lock``
(``flock``) so two of them never interleave. The running node never writes
key files: it only reads whichever file holds the key the database names.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from keys.core.keyring import KeyEntry, keyid_for
from keys.core.signing import NodeKey
from keys.store import nodekey
from relay.core import config as config_mod
from relay.core.envelope import open_envelope
from relay.core.errors import KeyFileError
from relay.core.model import Envelope
from relay.core.times import from_epoch_or_none, to_epoch, to_epoch_or_none
from relay.storage import db, trust
from relay.storage.files import fsync_dir

NEXT_NAME = "node.key.next"
LOCK_NAME = "keys.lock"


# --- the database side ------------------------------------------------------


def history(conn: sqlite3.Connection, network: str) -> list[KeyEntry]:
    """Every own key row; ``learned_at`` is when the node started using the key."""
    return [
        KeyEntry(
            network,
            bytes(public_key),
            from_epoch_or_none(valid_from),
            from_epoch_or_none(valid_until),
            from_epoch_or_none(revoked_at),
            learned_at=from_epoch_or_none(valid_from),
            introduced_by=introduced_by,
        )
        for public_key, valid_from, valid_until, revoked_at, introduced_by in conn.execute(
            "SELECT public_key, valid_from, valid_until, revoked_at, introduced_by"
            " FROM own_keys ORDER BY rowid"
        )
    ]


def with_current(entries: list[KeyEntry], network: str, current: bytes) -> list[KeyEntry]:
    """``entries`` plus the current key when it has no row yet (before any rotation)."""
    if any(entry.public_key == current for entry in entries):
        return entries
    return [*entries, KeyEntry(network, current)]


def own_entries(conn: sqlite3.Connection, network: str, current: bytes) -> list[KeyEntry]:
    """The node's own keyring entries.

    The current key gets no ``valid_from`` here: the node must be able to
    sign even if its own clock steps back a little after a rotation.
    """
    return [
        KeyEntry(network, current, None, entry.valid_until, entry.revoked_at)
        if entry.public_key == current
        else entry
        for entry in with_current(history(conn, network), network, current)
    ]


def current_keyid(conn: sqlite3.Connection) -> str | None:
    """The key the database names as current, or None before the first rotation."""
    row = conn.execute(
        "SELECT keyid FROM own_keys WHERE valid_until IS NULL AND revoked_at IS NULL"
        " ORDER BY rowid DESC LIMIT 1"
    ).fetchone()
    return None if row is None else str(row[0])


def statements(conn: sqlite3.Connection) -> list[Envelope]:
    return [
        open_envelope(bytes(raw))[0]
        for (raw,) in conn.execute("SELECT envelope FROM own_key_statements ORDER BY n")
    ]


def save_entry(conn: sqlite3.Connection, entry: KeyEntry) -> None:
    conn.execute(
        "INSERT INTO own_keys (keyid, public_key, valid_from, valid_until, revoked_at,"
        " introduced_by) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (keyid) DO UPDATE SET"
        " valid_from = excluded.valid_from, valid_until = excluded.valid_until,"
        " revoked_at = excluded.revoked_at, introduced_by = excluded.introduced_by",
        (
            entry.keyid,
            entry.public_key,
            to_epoch_or_none(entry.valid_from),
            to_epoch_or_none(entry.valid_until),
            to_epoch_or_none(entry.revoked_at),
            entry.introduced_by,
        ),
    )
    trust.bump_version(conn)


def save_statement(
    conn: sqlite3.Connection, kind: str, keyid: str, at: datetime, envelope: bytes
) -> None:
    conn.execute(
        "INSERT INTO own_key_statements (kind, keyid, at, envelope) VALUES (?, ?, ?, ?)",
        (kind, keyid, to_epoch(at), envelope),
    )


# --- the file side ----------------------------------------------------------


def key_path(data_dir: Path) -> Path:
    return data_dir / config_mod.KEY_NAME


def next_path(data_dir: Path) -> Path:
    return data_dir / NEXT_NAME


@contextlib.contextmanager
def key_lock(data_dir: Path) -> Iterator[None]:
    """Serialize key-changing commands and start-up recovery on one data directory."""
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _zero(path: Path) -> bool:
    """Overwrite a file with zeros in place and sync; False when there is no file.

    On a copy-on-write or wear-levelled disk the old blocks may survive; the
    operator docs say so. On the usual ext4/xfs this destroys the key.
    """
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return False
    try:
        os.write(fd, b"\0" * os.fstat(fd).st_size)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def erase(path: Path) -> None:
    """Zero a key file, then remove it."""
    if _zero(path):
        path.unlink(missing_ok=True)
        fsync_dir(path.parent)


def stage(data_dir: Path, key: NodeKey, passphrase: bytes | None) -> None:
    """Step 1: the new key, private from the first byte, beside the current one."""
    nodekey.save(next_path(data_dir), key, passphrase)


def install(data_dir: Path) -> None:
    """Step 3: zero the old key in place, then move the staged key over it."""
    _zero(key_path(data_dir))
    os.replace(next_path(data_dir), key_path(data_dir))
    fsync_dir(data_dir)


def finish_pending(data_dir: Path, conn: sqlite3.Connection) -> None:
    """Complete or undo a rotation interrupted between its steps (hold ``key_lock``)."""
    staged = next_path(data_dir)
    if not staged.exists():
        return
    try:
        staged_keyid = keyid_for(nodekey.read_public(staged))
    except KeyFileError:
        erase(staged)
        return
    if current_keyid(conn) == staged_keyid:
        install(data_dir)
    else:
        erase(staged)


def ensure_current(conn: sqlite3.Connection, network: str, key: NodeKey) -> None:
    """Refuse a ``node.key`` the history says is not current; record it if history is empty.

    Restoring an old backup of ``node.key`` after a rotation would make the
    node sign with a rotated-out key that peers refuse; better not to start.
    """
    current = current_keyid(conn)
    if current == key.keyid:
        return
    if current is None and not history(conn, network):
        db.transaction(conn, lambda c: save_entry(c, KeyEntry(network, key.public_key)))
        return
    raise KeyFileError(
        f"node.key holds {key.keyid}, but this node's current key is {current or 'none'}"
        " (an old backup of node.key?). Put the right node.key back; if it is lost, run"
        " 'avisa keys revoke --lost' and give your peers a new card."
    )


def load_signing_key(data_dir: Path, network: str, passphrase: bytes | None) -> NodeKey:
    """The current private key, after finishing any interrupted rotation."""
    with key_lock(data_dir):
        conn = db.open_sync(data_dir / config_mod.DB_NAME)
        try:
            finish_pending(data_dir, conn)
            key = nodekey.load(key_path(data_dir), passphrase)
            ensure_current(conn, network, key)
        finally:
            conn.close()
    return key


def find_signing_key(data_dir: Path, keyid: str, passphrase: bytes | None) -> NodeKey | None:
    """For the running node: the private key ``keyid`` from whichever file holds it.

    A rotating command renames ``node.key.next`` over ``node.key`` at any
    moment, so look at ``node.key``, then the staged file, then ``node.key``
    again: one of the three reads sees the key.
    """
    for path in (key_path(data_dir), next_path(data_dir), key_path(data_dir)):
        try:
            if keyid_for(nodekey.read_public(path)) != keyid:
                continue
        except KeyFileError:
            continue  # absent, or being zeroed by the rotating command
        try:
            return nodekey.load(path, passphrase)
        except KeyFileError:
            if path.exists():
                raise  # the key is there but will not load (passphrase?)
    return None
