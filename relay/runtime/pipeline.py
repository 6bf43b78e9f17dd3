"""The one path every envelope takes, whether published here or sent by a peer.

    size limit → parse → verify signatures → canonical payload decode
      → (writer thread) replay state → policy → store, one transaction
      → wake the feed's consumers

The CPU-heavy first half (JSON, base64, Ed25519) is one function,
``envelope.open_and_check``, then ``finish`` (which decodes the payload); where
it runs depends on the batch: on the event loop for a small one (up to
``INLINE_BYTES``: most peer transactions carry one alert, and each thread
hand-off spared is a wait for a core on a busy host), in the verification
worker processes (``relay.runtime.verifier``) for a large one, in the parse
thread for up to ``INLINE_ENVELOPES``, and on a thread pool in chunks while
the workers are not running. An envelope with no valid
signature from a known key is rejected there, before its payload is even
decoded, and leaves a decision row only while such refusals from its peer
stay under 10 a second (``RowSampler``). The second half runs as one
job on the database writer, so the duplicate and tombstone checks see
exactly what the insert will see, and a whole peer transaction costs one
commit.

Local publishing allocates the origin ``seq``, signs and then takes the same
path inside one writer job, so a sequence number is never spent on an alert
that was not stored.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import msgspec

from keys.core.signing import NodeKey
from relay.core.checkpoints import chained_digest
from relay.core.envelope import (
    Opened,
    Refusal,
    Verification,
    keys_to_check,
    open_and_check,
    sign,
    verification_of,
)
from relay.core.errors import BadInput
from relay.core.model import (
    Alert,
    Envelope,
    NonCanonical,
    decode_alert,
    encode_alert,
    encode_envelope,
)
from relay.core.policy import Decision, decide
from relay.core.times import Clock
from relay.runtime.log import DecisionLog
from relay.runtime.metrics import Metrics
from relay.runtime.verifier import VerifierPool, WorkerGone, encode_keys, read_answers
from relay.storage import store
from relay.storage.db import Connection, Database
from relay.storage.trust import TrustSnapshot
from relay.storage.writes import Writes

Status = Literal["accepted", "duplicate", "held", "rejected"]
#: Envelopes' bytes, or a function that returns them (see ``Pipeline.ingest``).
Raws = Sequence[bytes] | Callable[[], Sequence[bytes]]
# Envelopes per verification job: small enough to spread one batch over every
# core, large enough that thread hand-off costs little next to Ed25519.
CHUNK = 8
# Up to this many envelopes are verified in the parsing thread itself: a round trip
# to a worker process wakes two processes and three threads, which on a busy host
# costs more latency than the few Ed25519 checks (about 60 µs each) it would spare.
INLINE_ENVELOPES = CHUNK
# Envelopes of up to this many bytes in all (a transaction of one to three alerts,
# most of what peers send) are read and verified on the event loop itself, about
# 0.2 ms an envelope: each thread hand-off it spares is, on a busy host, a wait for
# a core and for the GIL, which measured as most of a hop's latency at 40 nodes.
INLINE_BYTES = 8 * 1024


class Outcome(msgspec.Struct, frozen=True):
    id: str | None
    status: Status
    reason: str
    pos: int | None = None


@dataclass(frozen=True, slots=True)
class Committed:
    """A writer job's outcomes, and for which peers it queued outbox rows (None: unknown)."""

    outcomes: list[Outcome]
    queued_for: set[str] | None


class Rejected(msgspec.Struct, frozen=True):
    """Refused before the policy: the input never verified, so it names no alert."""

    reason: str


class Prepared(msgspec.Struct, frozen=True):
    envelope: Envelope
    verification: Verification
    incoming: store.Incoming

    @property
    def alert(self) -> Alert:
        return self.incoming.alert


def prepare(raw: bytes, snapshot: TrustSnapshot) -> Prepared | Rejected:
    """Parse and verify one envelope here; pure apart from the CPU it burns."""
    return finish(open_and_check(raw, snapshot.keyring.public_key), snapshot)


def finish(opened: Opened | Refusal, snapshot: TrustSnapshot) -> Prepared | Rejected:
    """What is left once the signatures are checked (here or in a worker): name the keys
    that signed, refuse forgeries, decode the payload."""
    if isinstance(opened, str):
        return Rejected(opened)
    envelope = opened.envelope
    keyids = [signature.keyid for signature in envelope.signatures]
    entries = keys_to_check(keyids, snapshot.keyring.get)
    verification = verification_of(keyids, entries, opened.valid)
    if verification.forged:
        return Rejected("bad_signature")
    if not verification.any_valid:
        return Rejected("unknown_key")
    try:
        alert = decode_alert(opened.payload)
    except NonCanonical:
        return Rejected("non_canonical")
    except (msgspec.DecodeError, msgspec.ValidationError):
        return Rejected("malformed_payload")
    endorsers = [net for net in verification.valid_networks() if net != alert.network]
    digest = chained_digest(verification, alert, envelope.payloadType, opened.payload)
    incoming = store.Incoming(encode_envelope(envelope), alert, endorsers, digest)
    return Prepared(envelope, verification, incoming)


def _prepare_chunk(raws: Sequence[bytes], snapshot: TrustSnapshot) -> list[Prepared | Rejected]:
    return [prepare(raw, snapshot) for raw in raws]


def _read_or_prepare(
    raws: Raws, snapshot: TrustSnapshot
) -> tuple[Sequence[bytes], list[Prepared | Rejected] | None]:
    """The envelopes, and, when they are few, already prepared here."""
    raws = raws() if callable(raws) else raws
    return raws, _prepare_chunk(raws, snapshot) if len(raws) <= INLINE_ENVELOPES else None


def _from_workers(
    answers: Sequence[tuple[bytes, int]], snapshot: TrustSnapshot
) -> list[Prepared | Rejected] | None:
    """The workers' answers read and finished; None when one does not parse."""
    try:
        results = read_answers(answers)
    except WorkerGone:
        return None
    return [finish(result, snapshot) for result in results]


def _status(decision: Decision) -> Status:
    if decision.reason == "duplicate":
        return "duplicate"
    return {"accept": "accepted", "hold": "held", "reject": "rejected"}[decision.action]  # type: ignore[return-value]


class RowSampler:
    """At most ``per_second`` decision rows a second per (peer, reason), for refusals of
    input that never verified. Such rows name no alert; a flood of them would only
    grow the table and the writer's work. /metrics and the log count every one."""

    def __init__(self, per_second: int = 10) -> None:
        self._per_second = per_second
        self._seen: dict[tuple[str | None, str], tuple[int, int]] = {}

    def keep(self, peer: str | None, reason: str, second: int) -> bool:
        start, kept = self._seen.get((peer, reason), (second, 0))
        if start != second:
            start, kept = second, 0
        self._seen[(peer, reason)] = (start, kept + 1)
        if len(self._seen) > 4096:  # peers and reasons are few; never let it grow
            self._seen.clear()
        return kept < self._per_second


class RateCounter:
    """Envelopes per peer in a sliding minute (two fixed buckets, weighted)."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[int, int, int]] = {}

    def hit(self, peer: str, now: datetime, count: int = 1) -> int:
        minute = int(now.timestamp()) // 60
        start, previous, current = self._buckets.get(peer, (minute, 0, 0))
        if minute == start + 1:
            previous, current = current, 0
        elif minute != start:
            previous, current = 0, 0
        current += count
        self._buckets[peer] = (minute, previous, current)
        elapsed = (now.timestamp() % 60) / 60
        return int(previous * (1 - elapsed)) + current


class Pipeline:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        trust: Callable[[], TrustSnapshot],
        pool: Executor,
        tombstone_ttl: timedelta,
        log: DecisionLog,
        on_accept: Callable[[int, Collection[str] | None], None],
        metrics: Metrics,
        verifier: VerifierPool | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._trust = trust
        self._pool = pool
        self._tombstone_ttl = tombstone_ttl
        self._log = log
        self._on_accept = on_accept
        self._metrics = metrics
        self._verifier = verifier
        self._keys: tuple[TrustSnapshot | None, bytes] = (None, b"")
        self._rates = RateCounter()
        self._unverified_rows = RowSampler()
        #: Set once this node has signed and stored a cancel (its checkpoint follows at once).
        self.cancel_signed = asyncio.Event()

    async def ingest(
        self,
        raws: Raws,
        from_peer: str | None,
        then: Callable[[Connection, list[Outcome]], None] | None = None,
        first: Callable[[Connection], None] | None = None,
        size: int | None = None,
    ) -> list[Outcome]:
        """Run envelopes from one source through the pipeline; one outcome each, in order.

        ``raws`` may be a function that returns them (parsing a request body): it
        runs off the event loop, in the first stage's job, so a transaction makes
        one hand-off between threads fewer. What it raises, ``ingest`` raises.
        ``then`` runs in the same transaction after the outcomes are decided
        (federation stores its reply to the sending peer there). ``first`` runs in
        the same job before anything is decided; what it raises, ``ingest``
        raises, having changed nothing (federation answers a retried transaction
        from its stored reply that way, in the transaction that would store it).
        ``size``: the bytes a function ``raws`` reads (a list's are counted here);
        up to ``INLINE_BYTES`` they are read and verified without a hand-off.
        """
        snapshot = self._trust()
        if size is None and not callable(raws):
            size = sum(len(raw) for raw in raws)
        prepared = await self._prepare(raws, snapshot, size)
        now = self._clock()

        def job(conn: Connection) -> Committed:
            if first is not None:
                first(conn)
            committed = self._commit(conn, prepared, from_peer, snapshot, now)
            if then is not None:
                then(conn, committed.outcomes)
            return committed

        committed = await self._db.write(job)
        self._after(committed, from_peer)
        return committed.outcomes

    def _keys_of(self, snapshot: TrustSnapshot) -> bytes:
        """The snapshot's public keys in the workers' framing (framed once per snapshot)."""
        if self._keys[0] is not snapshot:
            self._keys = (snapshot, encode_keys(snapshot.keyring))
        return self._keys[1]

    async def _prepare(
        self, raws: Raws, snapshot: TrustSnapshot, size: int | None
    ) -> list[Prepared | Rejected]:
        """Parse and verify: a few small envelopes here; otherwise off the event loop,
        signatures in the worker processes when they run, else everything in the thread
        pool, in chunks spread over its threads."""
        if size is not None and size <= INLINE_BYTES:
            raws, few = _read_or_prepare(raws, snapshot)
            if few is not None:
                return few
        loop = asyncio.get_running_loop()
        if self._verifier is not None and self._verifier.ready:
            stage = self._verifier.executor
            read, few = await loop.run_in_executor(stage, _read_or_prepare, raws, snapshot)
            if few is not None:
                return few
            answers = await self._verifier.run(read, self._keys_of(snapshot))
            if answers is not None:
                done = await loop.run_in_executor(stage, _from_workers, answers, snapshot)
                if done is not None:
                    return done
                self._verifier.distrust()
            raws = read
        if callable(raws):
            raws = await loop.run_in_executor(self._pool, raws)
        chunks = [raws[i : i + CHUNK] for i in range(0, len(raws), CHUNK)]
        prepared: list[Prepared | Rejected] = []
        for part in await asyncio.gather(
            *(loop.run_in_executor(self._pool, _prepare_chunk, chunk, snapshot) for chunk in chunks)
        ):
            prepared.extend(part)
        return prepared

    async def publish(
        self,
        build: Callable[[int], Alert],
        key: NodeKey,
        also: Callable[[Connection, str], None] | None = None,
    ) -> tuple[Outcome, bytes]:
        """Sign and store an alert of this node's; ``build`` gets the next seq.

        ``also`` runs in the same transaction once the alert is stored, with its id
        (the desk records the tip it came from): both are committed, or neither.
        """
        snapshot = self._trust()
        now = self._clock()

        def job(conn: Connection) -> tuple[Committed, bytes, str]:
            alert = build(store.next_seq(conn, snapshot.policy.own_network))
            raw = encode_envelope(sign(encode_alert(alert), key))
            committed = self._commit(conn, [prepare(raw, snapshot)], None, snapshot, now)
            (outcome,) = committed.outcomes
            if outcome.status != "accepted":
                raise BadInput(
                    "AVISA_REFUSED", f"the node's own policy refused it: {outcome.reason}"
                )
            if also is not None:
                also(conn, alert.id)
            return committed, raw, alert.msg_type

        committed, raw, signed_type = await self._db.write(job)
        self._after(committed, None)
        if signed_type == "cancel":
            self.cancel_signed.set()
        return committed.outcomes[0], raw

    def _commit(
        self,
        conn: Connection,
        items: Sequence[Prepared | Rejected],
        from_peer: str | None,
        snapshot: TrustSnapshot,
        now: datetime,
    ) -> Committed:
        ids = (item.alert.id for item in items if isinstance(item, Prepared))
        writes = Writes(conn, now, self._tombstone_ttl, ids)
        outcomes = []
        second = int(now.timestamp())
        for item in items:
            if isinstance(item, Rejected):
                outcomes.append(Outcome(None, "rejected", item.reason))
                if self._unverified_rows.keep(from_peer, item.reason, second):
                    writes.decision(Decision("reject", item.reason), None, from_peer)
                continue
            decision, pos = self._decide_and_save(writes, item, from_peer, snapshot, now)
            writes.decision(decision, item.alert, from_peer)
            outcomes.append(Outcome(item.alert.id, _status(decision), decision.reason, pos))
        writes.flush()
        return Committed(outcomes, writes.queued_for)

    def _decide_and_save(
        self,
        writes: Writes,
        item: Prepared,
        from_peer: str | None,
        snapshot: TrustSnapshot,
        now: datetime,
    ) -> tuple[Decision, int | None]:
        """Decide one verified envelope and store it unless rejected."""
        alert = item.alert
        # The policy wants how many came before this one; hit() counts it too.
        recent = self._rates.hit(from_peer, now) - 1 if from_peer else 0
        writes.advance_chain(item.incoming)  # what its origin signed, whatever the policy decides
        state, new = writes.policy_state(alert, from_peer, recent)
        decision = decide(item.envelope, alert, item.verification, snapshot.policy, state, now)
        if decision.action == "reject":
            return decision, None
        keyids = [signature.keyid for signature in item.envelope.signatures]
        return decision, writes.save(item.incoming, keyids, decision, from_peer, new=new)

    def _after(self, committed: Committed, from_peer: str | None) -> None:
        """Log, count and announce a committed batch (once per batch, not per outcome)."""
        outcomes = committed.outcomes
        self._log.decisions(((o.id, o.status, o.reason) for o in outcomes), from_peer)
        for (status, reason), count in Counter((o.status, o.reason) for o in outcomes).items():
            self._metrics.decision(status, reason, from_peer, count)
        newest = max((o.pos for o in outcomes if o.pos is not None), default=0)
        if newest:
            self._on_accept(newest, committed.queued_for)
