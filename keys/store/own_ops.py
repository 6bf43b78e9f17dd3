"""The operator's key operations behind ``avisa keys …`` and ``avisa trust …``.

Each works directly on the data directory (``node.key`` and the SQLite file
through ``relay.storage.db.open_sync`` and ``relay.storage.db.transaction``), so it works the
same whether the node runs or not; a running node notices the
``trust_version`` bump within seconds and reloads its trust snapshot, its
own key history and, after a rotation, its signing key. Checks and writes of
one operation happen in one IMMEDIATE transaction, so a refused operation
changes nothing. Time comes from an injected clock (tests pass a FakeClock).

The pure decisions are in ``keys.cards.keyset``; this module gathers inputs,
persists outputs, and turns them into reports the CLI prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from keys.cards.card import build_key_document
from keys.cards.keyset import revoke_key
from keys.cards.statements import make_revocation, make_rotation
from keys.core.fingerprint import fingerprint
from keys.core.keyring import KeyEntry
from keys.core.signing import NodeKey
from keys.store import nodekey, ownkeys
from keys.store.requeue import requeue_revoked
from relay.core import config as config_mod
from relay.core.config import Config
from relay.core.errors import BadInput, KeyFileError
from relay.core.model import Envelope, encode_envelope
from relay.core.times import Clock, parse_duration, rfc3339, whole_seconds
from relay.storage import configfile, db, trust


@contextlib.contextmanager
def open_store(data_dir: Path) -> Iterator[tuple[Config, sqlite3.Connection]]:
    config = configfile.load(data_dir)
    conn = db.open_sync(data_dir / config_mod.DB_NAME)
    try:
        yield config, conn
    finally:
        conn.close()


def own_keyring(conn: sqlite3.Connection, config: Config, data_dir: Path) -> list[KeyEntry]:
    public = nodekey.read_public(ownkeys.key_path(data_dir))
    return ownkeys.own_entries(conn, config.node.network, public)


def parse_at(text: str | None, now: datetime) -> datetime:
    """``--at``: an RFC 3339 time, not in the future; default now."""
    now = whole_seconds(now)
    if text is None:
        return now
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput("AVISA_BAD_TIME", "--at must look like 2026-11-23T13:40:00Z") from None
    if moment.tzinfo is None:
        raise BadInput("AVISA_BAD_TIME", "--at needs a time zone (end it with Z for UTC)")
    moment = whole_seconds(moment.astimezone(UTC))
    if moment > now:
        raise BadInput(
            "AVISA_BAD_TIME",
            "--at is in the future; give the earliest time the key may have been in other"
            " hands, or leave --at out to mean now",
        )
    return moment


def resolve_keyid(entries: Sequence[KeyEntry], text: str, network: str, listing: str) -> str:
    """A full keyid, or an unambiguous prefix of its hex (at least 8 digits)."""
    wanted = text.removeprefix("ed25519:").lower()
    found = [e.keyid for e in entries if e.keyid.removeprefix("ed25519:").startswith(wanted)]
    if len(wanted) < 8 or len(found) != 1:
        raise BadInput(
            "AVISA_UNKNOWN_KEY",
            f"{network} has no key {text} here (give a key id as '{listing}' shows it)",
        )
    return found[0]


# --- this node's keys --------------------------------------------------------


def key_document(conn: sqlite3.Connection, config: Config, key: NodeKey, now: datetime) -> Envelope:
    """This node's signed key document (also what ``GET /federation/v1/keys`` serves)."""
    network = config.node.network
    history = ownkeys.history(conn, network)
    return build_key_document(
        network, config.public_url, key, history, ownkeys.statements(conn), now
    )


def export_card(data_dir: Path, passphrase: bytes | None, clock: Clock) -> Envelope:
    with open_store(data_dir) as (config, conn):
        key = ownkeys.load_signing_key(data_dir, config.node.network, passphrase)
        return key_document(conn, config, key, clock())


def _status(entry: KeyEntry, now: datetime, grace: timedelta) -> str:
    status = entry.status(now)
    if status == "revoked":
        return "REVOKED from " + rfc3339(entry.revoked_at or now)
    if status == "not_yet_valid":
        return "not valid before " + rfc3339(entry.valid_from or now)
    if entry.valid_until is None:
        return "current"
    if status == "valid":
        return "valid until " + rfc3339(entry.valid_until)
    shown = "rotated out " + rfc3339(entry.valid_until)
    if now < entry.valid_until + grace:
        shown += ", verifies older messages until " + rfc3339(entry.valid_until + grace)
    return shown


def key_view(entry: KeyEntry, now: datetime, grace: timedelta) -> dict[str, Any]:
    return {
        "keyid": entry.keyid,
        "fingerprint": fingerprint(entry.public_key),
        "status": _status(entry, now, grace),
        "valid_from": _maybe(entry.valid_from),
        "valid_until": _maybe(entry.valid_until),
        "revoked_at": _maybe(entry.revoked_at),
        "learned_at": _maybe(entry.learned_at),
    }


def _maybe(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)


def own_listing(data_dir: Path, clock: Clock) -> list[dict[str, Any]]:
    """This node's keys, newest last: key id, fingerprint, validity (no passphrase needed)."""
    with open_store(data_dir) as (config, conn):
        now = clock()
        grace = parse_duration(config.policy.rotation_grace)
        public = nodekey.read_public(ownkeys.key_path(data_dir))
        network = config.node.network
        entries = ownkeys.with_current(ownkeys.history(conn, network), network, public)
        return [key_view(entry, now, grace) for entry in entries]


@dataclass(frozen=True, slots=True)
class NewKey:
    old_keyid: str
    keyid: str
    fingerprint: str
    at: datetime
    held_again: list[str] = dataclasses.field(default_factory=list)
    warning: str = ""
    #: True when ``keyid`` is a key made by this operation (rotation, revoking the current key).
    made_new_key: bool = True


def _seal_with(data_dir: Path, passphrase: bytes | None) -> bytes | None:
    """Re-seal a new key exactly as the current one is sealed."""
    path = ownkeys.key_path(data_dir)
    try:
        return passphrase if nodekey.is_encrypted(path) else None
    except KeyFileError:
        return passphrase  # the old file is gone (lost key): seal if a passphrase is given


def rotate(data_dir: Path, passphrase: bytes | None, clock: Clock) -> NewKey:
    """A new current key, announced by a statement signed by the old key and the new."""
    config = configfile.load(data_dir)
    network = config.node.network
    old = ownkeys.load_signing_key(data_dir, network, passphrase)
    with ownkeys.key_lock(data_dir), open_store(data_dir) as (_, conn):
        new = NodeKey.generate()
        now = whole_seconds(clock())
        statement = encode_envelope(make_rotation(network, old, new, now))

        def job(c: sqlite3.Connection) -> None:
            if ownkeys.current_keyid(c) != old.keyid:
                raise KeyFileError("the current key changed meanwhile; run the command again")
            rows = {entry.keyid: entry for entry in ownkeys.history(c, network)}
            previous = rows.get(old.keyid, KeyEntry(network, old.public_key))
            ownkeys.save_entry(c, dataclasses.replace(previous, valid_until=now))
            ownkeys.save_entry(
                c, KeyEntry(network, new.public_key, valid_from=now, introduced_by=old.keyid)
            )
            ownkeys.save_statement(c, "rotation", old.keyid, now, statement)

        _commit_new_key(data_dir, conn, new, _seal_with(data_dir, passphrase), job)
    return NewKey(old.keyid, new.keyid, new.fingerprint, now)


def _commit_new_key(
    data_dir: Path,
    conn: sqlite3.Connection,
    new: NodeKey,
    passphrase: bytes | None,
    job: Any,
) -> Any:
    """Stage the new key file, commit the database, then install the file."""
    ownkeys.stage(data_dir, new, passphrase)
    try:
        result = db.transaction(conn, job)
    except BaseException:
        ownkeys.erase(ownkeys.next_path(data_dir))
        raise
    ownkeys.install(data_dir)
    return result


def revoke_own(
    data_dir: Path,
    keyid: str | None,
    at: str | None,
    *,
    lost: bool = False,
    passphrase: bytes | None = None,
    clock: Clock,
) -> NewKey:
    """Revoke one of this node's keys from ``at``; the current key is replaced at once."""
    config = configfile.load(data_dir)
    network = config.node.network
    parse_at(at, clock())  # refuse a bad --at before asking for the passphrase
    with open_store(data_dir) as (_, conn):
        current = ownkeys.current_keyid(conn)
        history = ownkeys.history(conn, network)
    if current is None and not lost:
        current = ownkeys.load_signing_key(data_dir, network, passphrase).keyid
    target = current if keyid is None else resolve_keyid(history, keyid, network, "avisa keys list")
    if target is None:
        raise KeyFileError(
            "this node's current key was never recorded and node.key is gone: ask your peers"
            " to run 'avisa trust revoke' for it, and start again with 'avisa init'"
        )
    if target == current:
        return _revoke_current(data_dir, config, target, at, lost, passphrase, clock)
    return _revoke_old(data_dir, config, target, at, passphrase, clock)


def _revoke_current(
    data_dir: Path,
    config: Config,
    target: str,
    at: str | None,
    lost: bool,
    passphrase: bytes | None,
    clock: Clock,
) -> NewKey:
    network = config.node.network
    try:
        old = None if lost else ownkeys.load_signing_key(data_dir, network, passphrase)
    except KeyFileError as exc:
        raise KeyFileError(
            f"{exc} (if the key file or its passphrase is lost for good, add --lost)"
        ) from None
    seal = _seal_with(data_dir, passphrase)
    with ownkeys.key_lock(data_dir), open_store(data_dir) as (_, conn):
        now = whole_seconds(clock())
        when = parse_at(at, now)
        new = NodeKey.generate()

        def job(c: sqlite3.Connection) -> list[str]:
            rows = {entry.keyid: entry for entry in ownkeys.history(c, network)}
            if target not in rows or ownkeys.current_keyid(c) not in (target, None):
                raise KeyFileError("the current key changed meanwhile; run the command again")
            revoked = dataclasses.replace(rows[target], revoked_at=when)
            ownkeys.save_entry(c, revoked)
            ownkeys.save_entry(c, KeyEntry(network, new.public_key, valid_from=now))
            if old is not None:
                statement = make_revocation(network, old.public_key, when, old)
                ownkeys.save_statement(c, "revocation", target, when, encode_envelope(statement))
            return _requeue_own(c, config, new, {target: when}, now)

        moved = _commit_new_key(data_dir, conn, new, seal, job)
    warning = (
        "Your peers cannot take the new key from the old one: do a new key ceremony"
        " (export-card, read the fingerprint aloud) with every peer."
    )
    return NewKey(target, new.keyid, new.fingerprint, when, moved, warning)


def _requeue_own(
    conn: sqlite3.Connection,
    config: Config,
    current: NodeKey,
    revoked: dict[str, datetime],
    now: datetime,
) -> list[str]:
    own = ownkeys.own_entries(conn, config.node.network, current.public_key)
    snapshot = trust.load_snapshot(conn, config, own)
    return requeue_revoked(conn, snapshot, revoked, now)


def _revoke_old(
    data_dir: Path,
    config: Config,
    target: str,
    at: str | None,
    passphrase: bytes | None,
    clock: Clock,
) -> NewKey:
    network = config.node.network
    current = ownkeys.load_signing_key(data_dir, network, passphrase)
    with ownkeys.key_lock(data_dir), open_store(data_dir) as (_, conn):
        now = whole_seconds(clock())
        when = parse_at(at, now)

        def job(c: sqlite3.Connection) -> NewKey:
            if ownkeys.current_keyid(c) != current.keyid:
                raise KeyFileError("the current key changed meanwhile; run the command again")
            history = ownkeys.history(c, network)
            result = revoke_key(history, network, target, when, now)
            if not result.revoked:
                raise BadInput("AVISA_ALREADY_REVOKED", f"{target} is already revoked from earlier")
            if current.keyid in result.revoked:
                raise BadInput(
                    "AVISA_REVOKES_CURRENT",
                    f"revoking {target} from {rfc3339(when)} also discredits the current key"
                    f" {current.keyid}, which a rotation signed by {target} introduced after"
                    f" that time. Run 'avisa keys revoke --at {rfc3339(when)}' to revoke the"
                    " current key as well, then do a new key ceremony with your peers.",
                )
            for entry in result.entries:
                ownkeys.save_entry(c, entry)
            public = next(e.public_key for e in result.entries if e.keyid == target)
            statement = make_revocation(network, public, when, current)
            ownkeys.save_statement(c, "revocation", target, when, encode_envelope(statement))
            moved = _requeue_own(c, config, current, result.revoked, now)
            successors = [e.keyid for e in history if e.introduced_by == target]
            warning = (
                f"Peers that learned of {successors[0]} only after {rfc3339(when)} will stop"
                " trusting it too; give them a fresh card."
                if successors
                else ""
            )
            return NewKey(target, current.keyid, current.fingerprint, when, moved, warning, False)

        report: NewKey = db.transaction(conn, job)
    return report
