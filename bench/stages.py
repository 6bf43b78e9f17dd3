"""Per-alert cost of each ingest stage, in-process and single-threaded (a developer tool).

    python -m bench.stages [--alerts 5000]

Where ``python -m bench`` measures the whole node, this times the stages one
by one on one thread, so an optimization's effect can be read even on a
noisy machine (CPU time of the measuring thread, best of three):

- ``parse_txn``: ``inbound.parse_transaction`` of a 50-envelope body, per envelope;
- ``prepare``: ``pipeline.prepare`` (parse, canonical base64, both signatures,
  canonical payload decode); beside it the raw verifications alone, and
  ``prepare_python``: prepare with the Ed25519 call replaced by ``True``,
  which is the part that holds the GIL;
- ``commit``: the writer job of ``Pipeline.ingest`` (replay state, policy,
  store, feed, outbox, decision), 50 alerts per transaction, on a real
  SQLite file with ``synchronous=FULL``; the node has one downstream peer,
  so each alert also gets an outbox row.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nacl.bindings

from bench.alerts import signed_envelopes
from keys.core.keyring import KeyEntry, Keyring
from keys.core.signing import NodeKey
from relay.core import envelope
from relay.core.envelope import open_envelope, pae
from relay.core.policy import PeerPolicy, Policy
from relay.federation.inbound import parse_transaction
from relay.runtime.clock import system_clock
from relay.runtime.log import DecisionLog
from relay.runtime.metrics import Metrics
from relay.runtime.pipeline import Pipeline, Prepared, Rejected, prepare
from relay.storage import db, trust
from relay.storage.trust import PeerRecord, TrustSnapshot

BATCH = 50


def snapshot(origin: NodeKey, relay: NodeKey) -> TrustSnapshot:
    entries = {"bench-origin": origin, "bench-relay": relay, "bench-down": NodeKey.generate()}
    peers = {
        network: PeerRecord(
            network,
            "http://127.0.0.1:9",
            (KeyEntry(network, key.public_key),),
            PeerPolicy(network=network, speaks_for=("fips:06",), rate_limit_per_min=10**9),
        )
        for network, key in entries.items()
    }
    return TrustSnapshot(
        policy=Policy("bench-node", peers={n: p.policy for n, p in peers.items()}),
        keyring=Keyring([key for peer in peers.values() for key in peer.keys]),
        peers=peers,
    )


def per_item_us(work: Callable[[], object], items: int, repeat: int = 3) -> float:
    """Best of ``repeat`` in CPU time of this thread (steadier than wall time on a busy host)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time()
        work()
        best = min(best, time.thread_time() - started)
    return round(best / items * 1e6, 2)


def raw_verify_us(raws: list[bytes], keys: dict[str, bytes]) -> float:
    jobs = []
    for raw in raws:
        envelope, payload = open_envelope(raw)
        message = pae(envelope.payloadType, payload)
        for signature in envelope.signatures:
            jobs.append((base64.b64decode(signature.sig) + message, keys[signature.keyid]))
    open_ = nacl.bindings.crypto_sign_open
    return per_item_us(lambda: [open_(signed, key) for signed, key in jobs], len(raws))


async def commit_us(raws: list[bytes], snap: TrustSnapshot, directory: Path) -> tuple[float, float]:
    """The writer job, one transaction of BATCH per call: (CPU of the job, wall incl. commit)."""
    database = db.Database(directory / "stages.db")
    peers = list(snap.peers.values())
    await database.write(lambda conn: [trust.save_peer(conn, p, system_clock()) for p in peers])
    pipeline = Pipeline(
        database,
        system_clock,
        lambda: snap,
        None,  # type: ignore[arg-type]
        snap.policy.max_lifetime,
        DecisionLog(),
        lambda pos, queued: None,
        Metrics(),
    )
    prepared: list[Prepared | Rejected] = [prepare(raw, snap) for raw in raws]
    now = datetime.now(UTC)
    cpu = wall = 0.0
    for start in range(0, len(prepared), BATCH):
        chunk = prepared[start : start + BATCH]

        def job(conn: Any, chunk: list[Prepared | Rejected] = chunk) -> float:
            began = time.thread_time()
            pipeline._commit(conn, chunk, "bench-relay", snap, now)
            return time.thread_time() - began

        began = time.perf_counter()
        cpu += await database.write(job)
        wall += time.perf_counter() - began
    database.close()
    return round(cpu / len(raws) * 1e6, 2), round(wall / len(raws) * 1e6, 2)


def measure(count: int) -> dict[str, float]:
    origin, relay = NodeKey.generate(), NodeKey.generate()
    raws = signed_envelopes(origin, "bench-origin", relay, count)
    snap = snapshot(origin, relay)
    keys = {entry.keyid: entry.public_key for entry in snap.keyring}
    bodies = [
        b'{"envelopes":[' + b",".join(raws[i : i + BATCH]) + b"]}"
        for i in range(0, len(raws), BATCH)
    ]
    verify = raw_verify_us(raws, keys)
    prep = per_item_us(lambda: [prepare(raw, snap) for raw in raws], len(raws))
    real_check = envelope.verify_signature
    envelope.verify_signature = lambda public_key, message, signature: True
    try:
        python_only = per_item_us(lambda: [prepare(raw, snap) for raw in raws], len(raws))
    finally:
        envelope.verify_signature = real_check
    commits = []
    for _ in range(3):
        with tempfile.TemporaryDirectory(prefix="avisa-stages-") as tmp:
            commits.append(asyncio.run(commit_us(raws, snap, Path(tmp))))
    return {
        "parse_txn_us": per_item_us(lambda: [parse_transaction(b) for b in bodies], len(raws)),
        "verify_2sig_us": verify,
        "prepare_us": prep,
        "prepare_python_us": python_only,
        "commit_cpu_us": min(cpu for cpu, _ in commits),
        "commit_wall_us": min(wall for _, wall in commits),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=5000)
    args = parser.parse_args()
    print(json.dumps(measure(args.alerts)))
    return 0


if __name__ == "__main__":
    main()
