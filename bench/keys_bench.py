"""Key-management figures, printed as JSON (not a timed test).

    .venv/bin/python -m bench.keys_bench

- ``verify_max_document_ms``: parse and self-verify the largest key document
  (8 current keys, 32 old, 32 revoked, 32 statements).
- ``apply_chain_32_ms``: apply a chain of 32 rotations given newest first
  (the worst order: one rotation per pass).
- ``requeue_<n>_ms``: after a revocation, re-decide n active alerts that
  rested on the revoked key (real SQLite file) and move them to held.
- ``rotate_cli_ms``: ``keys.store.own_ops.rotate`` on a data directory (plain key file).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from keys.cards.apply import apply_document
from keys.cards.card import (
    KEYS_PAYLOAD_TYPE,
    CurrentKey,
    KeyDocument,
    OldKey,
    RevokedKey,
    encode_document,
    verify_key_document,
)
from keys.cards.keyset import revoke_key
from keys.cards.statements import b64
from keys.core.keyring import KeyEntry
from keys.core.signing import NodeKey
from keys.store import own_ops, peer_ops, peerstore
from relay.cli import datadir
from relay.core.envelope import endorse, sign
from relay.core.model import encode_envelope
from relay.core.policy import Decision
from relay.runtime.clock import FakeClock
from relay.storage import configfile, db, store
from relay.storage.writes import Writes
from tests.helpers import T0, key, make_alert, raw_envelope
from tests.key_helpers import document, rotation


def best_ms(work: Callable[[], Any], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return round(min(times), 2)


def largest_document() -> bytes:
    many = [key(n) for n in range(10, 82)]
    doc = KeyDocument(
        network="a" * 63,
        url="https://" + "x" * 292,
        issued_at=T0,
        keys=[CurrentKey(k.keyid, b64(k.public_key), T0, None) for k in many[:8]],
        old_keys=[OldKey(k.keyid, b64(k.public_key), T0, T0) for k in many[8:40]],
        revoked=[RevokedKey(k.keyid, b64(k.public_key), T0) for k in many[40:72]],
        statements=[rotation(key(1), key(2), network="a" * 63) for _ in range(32)],
    )
    payload = encode_document(doc)
    envelope = sign(payload, many[0], KEYS_PAYLOAD_TYPE)
    for signer in many[1:8]:
        envelope = endorse(envelope, payload, signer)
    return encode_envelope(envelope)


def chain() -> tuple[list[KeyEntry], Any]:
    keys = [NodeKey.from_seed(bytes([n]) * 32) for n in range(100, 133)]
    statements = [
        rotation(keys[i], keys[i + 1], at=T0 - timedelta(minutes=40 - i)) for i in range(32)
    ]
    known = [KeyEntry("la", keys[0].public_key)]
    return known, document(keys[-1], list(reversed(statements)))


def requeue_ms(n: int) -> float:
    clock = FakeClock(T0)
    with tempfile.TemporaryDirectory() as tmp:
        home = datadir.initialize(Path(tmp) / "ventura", "ventura", clock=clock).data_dir
        peer = key(2)
        peer_ops.add(home, document(peer).raw, peer.fingerprint, peer_ops.Scope(), clock)
        conn = db.open_sync(home / "avisa.db")

        def fill(c: Any) -> None:
            writes = Writes(c, T0, timedelta(days=8))
            for i in range(n):
                alert = make_alert("la", seq=i + 1)
                item = store.Incoming(raw_envelope(alert, peer), alert, [])
                accept = Decision("accept", "authoritative")
                writes.save(item, [peer.keyid], accept, "la", new=True)
            writes.flush()

        db.transaction(conn, fill)
        config = configfile.load(home)
        own = own_ops.own_keyring(conn, config, home)
        known = peerstore.load_known(conn)
        result = revoke_key(known, "la", peer.keyid, T0 - timedelta(minutes=1), T0)
        start = time.perf_counter()
        stored = db.transaction(conn, lambda c: peerstore.store_keys(c, config, own, result, T0))
        elapsed = (time.perf_counter() - start) * 1000
        assert len(stored.held_again) == n
        conn.close()
    return round(elapsed, 2)


def rotate_ms() -> float:
    clock = FakeClock(T0)
    with tempfile.TemporaryDirectory() as tmp:
        home = datadir.initialize(Path(tmp) / "ventura", "ventura", clock=clock).data_dir
        times = []
        for _ in range(5):
            clock.advance("1m")
            start = time.perf_counter()
            own_ops.rotate(home, None, clock)
            times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 2)


def main() -> None:
    raw = largest_document()
    known, chained = chain()
    result = apply_document(known, chained, T0)
    assert result.trusted and len(result.entries) == 33
    figures = {
        "max_document_bytes": len(raw),
        "verify_max_document_ms": best_ms(lambda: verify_key_document(raw)),
        "apply_chain_32_ms": best_ms(lambda: apply_document(known, chained, T0)),
        "requeue_1000_ms": requeue_ms(1000),
        "rotate_cli_ms": rotate_ms(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
