"""The maintainer's trust list operations: ``avisa trustlist draft|sign|verify|publish|list|show``.

Like ``keys.store.peer_ops``, each works on a data directory, node running or
not. ``publish`` walks the files given forward from the highest version the
node keeps (``keys.cards.trustwalk``, no fingerprint: a host vouches for
nothing, it only refuses to serve what does not chain) and keeps them in one
IMMEDIATE transaction: a refusal keeps nothing. ``sign`` appends this node's
signature only when its current key is a maintainer key of the version (or of
the version before, whose maintainers must agree to a new set); ``verify``
reports who signed, who is missing and what changed, and whether a
subscriber holding the previous version would take it.

The previous version comes from a file (``--previous``) or, when this node
keeps the list, from its database.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from keys.cards.trustdraft import changes
from keys.cards.trustlist import (
    TRUSTLIST_PAYLOAD_TYPE,
    OpenedList,
    TrustList,
    TrustListRefused,
    decode_list,
    encode_list,
    read_list,
)
from keys.cards.trustwalk import Signers, check_step, signers, walk
from keys.core.signing import NodeKey
from keys.store import ownkeys
from keys.store.own_ops import open_store
from relay.core.envelope import endorse, sign
from relay.core.errors import BadInput
from relay.core.model import encode_envelope
from relay.core.times import Clock
from relay.storage import db, trustlists

_ENVELOPE = re.compile(rb'\A\s*\{\s*"payloadType"')


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInput("AVISA_BAD_FILE", f"cannot read {path} ({exc.strerror})") from None


def read_any(raw: bytes) -> tuple[TrustList, bytes, OpenedList | None]:
    """A draft payload or a signed list: (document, payload bytes, the list if signed)."""
    if _ENVELOPE.match(raw):
        opened = read_list(raw)
        return opened.document, opened.payload, opened
    payload = raw.rstrip(b"\n")
    return decode_list(payload), payload, None


def previous_of(
    conn: sqlite3.Connection, document: TrustList, given: bytes | None
) -> OpenedList | None:
    """Version N−1: from ``--previous`` when given, else as this node keeps it."""
    if document.version == 1:
        return None
    if given is not None:
        previous = read_list(given)
        if previous.document.list != document.list or previous.version != document.version - 1:
            raise BadInput(
                "AVISA_BAD_FILE",
                f"--previous is {previous.document.list} version {previous.version};"
                f" {document.list} version {document.version} needs version {document.version - 1}",
            )
        return previous
    return trustlists.version_of(conn, document.list, document.version - 1)


@dataclass(frozen=True, slots=True)
class Signed:
    raw: bytes
    keyid: str
    who: Signers


def _may_sign(key: NodeKey, network: str, document: TrustList, previous: OpenedList | None) -> None:
    listed = {**(previous.document.maintainer_keys() if previous else {})}
    listed.update(document.maintainer_keys())
    held = listed.get(key.keyid)
    if held is None or held[0] != network:
        raise BadInput(
            "AVISA_NOT_A_MAINTAINER",
            f"this node ({network}, key {key.keyid}) is not a maintainer of {document.list}"
            f" version {document.version} or of the version before: its signature would not"
            " count. A maintainer's current key must be listed in the members",
        )


def sign_file(
    data_dir: Path, raw: bytes, passphrase: bytes | None, previous_raw: bytes | None
) -> Signed:
    """This node's signature on a draft or a signed list (once; others' kept as they are)."""
    document, payload, opened = read_any(raw)
    with open_store(data_dir) as (config, conn):
        previous = previous_of(conn, document, previous_raw)
        key = ownkeys.load_signing_key(data_dir, config.node.network, passphrase)
    _may_sign(key, config.node.network, document, previous)
    if opened is None:
        envelope = sign(payload, key, TRUSTLIST_PAYLOAD_TYPE)
    else:
        envelope = endorse(opened.envelope, payload, key)
    signed = read_list(encode_envelope(envelope))
    return Signed(signed.raw, key.keyid, signers(signed, previous.document if previous else None))


@dataclass(frozen=True, slots=True)
class Verified:
    document: TrustList
    previous: TrustList | None
    who: Signers | None
    changes: tuple[str, ...]
    refusal: TrustListRefused | None


def verify_file(
    data_dir: Path | None, raw: bytes, previous_raw: bytes | None, clock: Clock
) -> Verified:
    """Who signed, who is missing, what changed; and the refusal a subscriber would give."""
    document, _, opened = read_any(raw)
    previous = None
    if document.version > 1 and (data_dir is not None or previous_raw is not None):
        if data_dir is None:
            previous = read_list(previous_raw or b"")
        else:
            with open_store(data_dir) as (_, conn):
                previous = previous_of(conn, document, previous_raw)
    old = None if previous is None else previous.document
    said = tuple(changes(old, document)) if old is not None else ()
    if opened is None:
        return Verified(document, old, None, said, None)
    refusal = None
    if document.version == 1 or previous is not None:
        result = walk(previous, [opened], clock(), None)
        refusal = result.refusal
    else:
        refusal = TrustListRefused(
            "skipped_version",
            f"version {document.version - 1} is needed to judge it; give --previous FILE",
        )
    return Verified(document, old, signers(opened, old), said, refusal)


@dataclass(frozen=True, slots=True)
class Published:
    list: str
    versions: tuple[int, ...]


def publish(data_dir: Path, raws: list[bytes], clock: Clock) -> Published:
    """Keep the given versions, walked forward from the highest kept, all or none."""
    opened = [read_list(raw) for raw in raws]
    names = {item.document.list for item in opened}
    if len(names) != 1:
        raise BadInput("AVISA_BAD_FILE", "publish the versions of one list at a time")
    name = names.pop()
    with open_store(data_dir) as (_, conn):

        def job(c: sqlite3.Connection) -> Published:
            now = clock()
            held = trustlists.head(c, name)
            fresh = [item for item in opened if held is None or item.version > held.version]
            replaced = []
            for copy in (item for item in opened if item not in fresh):
                kept = trustlists.version_of(c, name, copy.version)
                if kept is None or kept.payload != copy.payload:
                    raise walk(held, [copy], now, None).refusal or TrustListRefused(
                        "rollback", f"version {copy.version} is not the one kept here"
                    )
                check_step(_before(c, copy), copy, now)
                if len(copy.envelope.signatures) > len(kept.envelope.signatures):
                    trustlists.put(c, copy, now)  # the same version, with more signatures
                    replaced.append(copy.version)
            result = walk(held, fresh, now, None)
            if result.refusal is not None:
                raise result.refusal
            for item in result.accepted:
                trustlists.put(c, item, now)
            return Published(name, (*replaced, *(item.version for item in result.accepted)))

        return db.transaction(conn, job)


def _before(conn: sqlite3.Connection, opened: OpenedList) -> OpenedList | None:
    return trustlists.version_of(conn, opened.document.list, opened.version - 1)


def kept(data_dir: Path) -> list[trustlists.KeptList]:
    with open_store(data_dir) as (_, conn):
        return trustlists.kept(conn)


def stored(data_dir: Path, name: str, version: int | None) -> tuple[OpenedList, TrustList | None]:
    """A kept version (default: the highest) and version 1's document (for the fingerprint)."""
    with open_store(data_dir) as (_, conn):
        raw = trustlists.envelope(conn, name, version)
        first = trustlists.version_of(conn, name, 1)
    if raw is None:
        which = "any version" if version is None else f"version {version}"
        raise BadInput("AVISA_UNKNOWN_TRUSTLIST", f"this node keeps no {which} of list {name}")
    return read_list(raw), None if first is None else first.document


def draft_bytes(document: TrustList) -> bytes:
    return encode_list(document) + b"\n"
