"""Peers' checkpoints: taken when they verify, and what they show missing fetched.

DESIGN §16. ``Repairs.receive`` is the one way a checkpoint from a peer is
read (``PUT /federation/v1/checkpoints/{network}``, ``relay.federation.inbound``):
the body read as a bare or relayed checkpoint (``relay.core.cosign``), then
``check_checkpoint``, off the writer (size, envelope, signature, key, time; a
reason for every refusal), then the origin must be the path's, a trusted peer
and not this node, and the cosignatures that hold are kept; only then does the
writer job read the newest checkpoint held of that origin. One with the same
``seq`` and another head is **equivocation**: both envelopes are kept as
evidence (``relay.storage.evidence``), the trust version bumped so the
origin's new alerts are held, the new one refused (``equivocation``) and
passed on once, so the peers that relay this origin see the split too.
Otherwise ``check_order`` (a lower ``seq`` or a replay is refused), and the
checkpoint is stored in its place with its cosignatures (one row per origin,
so storage is bounded whatever a peer sends), told to the silence watcher
(``heard``, ``relay.federation.silence``) and passed on
(``relay.federation.relaying``). In the same job it is compared with this
node's chain of that origin:

- the chain has reached the checkpoint's ``seq``: the heads must agree (then
  this node cosigns what it passes on); a different head is counted
  (``mismatched``), logged and kept as evidence (kind ``chain``: the
  checkpoint and the message at that ``seq``), and the origin is held;
- the chain is behind: messages ``chain + 1 … seq`` exist that this node does
  not hold. After a grace of half ``checkpoint_every`` (a checkpoint pushed
  right after a publication outruns the transaction carrying the message)
  they are ``withheld`` by the peer that delivered the origin's newest
  message here (the one that should have passed them on) until they arrive,
  and one repair task for the origin fetches them
  (``GET /federation/v1/messages/{origin}/{seq}``), from the origin itself
  first, then from the other peers, and puts each through the pipeline like
  any envelope from the peer that served it. A fetched message that does not
  move the chain (another seq, another origin's, not signed by its origin) is
  counted against that peer (``bad_fetches``) and the next source is asked.

One task per origin at most, however many checkpoints name it; a task that
found no source waits with the one backoff policy (``relay.core.backoff``) on
the node clock. If the origin itself answers 404 for a message, it has
passed retention there: it expired long ago and cannot be withheld in any way
that matters. The task then fetches the newest ``ANCHOR_WINDOW`` messages
before the checkpoint directly, so a recent withheld cancel is still
applied, and anchors the chain at the checkpoint (``chain.anchor``); this
is also how a node that joined late starts an origin's chain.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from relay.core.backoff import Backoff
from relay.core.checkpoints import Checkpoint, Refused, check_checkpoint, check_order
from relay.core.cosign import (
    Cosignature,
    encode_cosignatures,
    read_relayed,
    valid_cosignatures,
)
from relay.core.errors import BadInput
from relay.core.times import rfc3339
from relay.federation.host import FederationHost
from relay.federation.relaying import CheckpointRelay
from relay.federation.transport import PeerClient, PeerRefused, PeerUnavailable
from relay.runtime.metrics import _labels
from relay.storage import chain, evidence, store, trust
from relay.storage.db import Connection
from relay.storage.trust import TrustSnapshot

ANCHOR_WINDOW = 64
_log = structlog.get_logger("avisa.federation")


@dataclass(slots=True)
class Withheld:
    """Messages ``seq_from … seq_to`` of ``origin`` a checkpoint showed this node lacks."""

    origin: str
    seq_from: int
    seq_to: int
    peer: str | None  # the peer that should have passed them on, if any delivered before
    since: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "from": self.seq_from,
            "to": self.seq_to,
            "since": rfc3339(self.since),
        }


@dataclass(frozen=True, slots=True)
class _Taken:
    checkpoint: Checkpoint
    held: int  # how far this node's chain of the origin reaches
    differs: bool  # the chain reached its seq with another head
    agrees: bool  # the chain reached its seq with the same head: this node cosigns


@dataclass(frozen=True, slots=True)
class _Split:
    new: bool  # this node had not kept this split before


def _keep(
    conn: Connection,
    checkpoint: Checkpoint,
    kind: evidence.Kind,
    pair: tuple[bytes, bytes],
    from_peer: str,
    now: datetime,
) -> bool:
    kept = evidence.record(conn, checkpoint.network, checkpoint.seq, kind, pair, from_peer, now)
    if kept:
        trust.bump_version(conn)
    return kept


def _split(
    conn: Connection, checkpoint: Checkpoint, raw: bytes, from_peer: str, now: datetime
) -> _Split:
    """The checkpoint held and ``raw`` name one ``seq`` with two heads: both kept."""
    held = chain.checkpoint_envelope(conn, checkpoint.network) or b""
    return _Split(_keep(conn, checkpoint, "checkpoints", (held, raw), from_peer, now))


def _verified(
    body: bytes, snapshot: TrustSnapshot, now: datetime, network: str, own: str
) -> tuple[Checkpoint, bytes, list[Cosignature]] | Refused:
    """A checkpoint body read and checked (``check_checkpoint``, then whether it may be
    taken here), with the cosignatures that hold; or why not. Runs off the loop."""
    try:
        raw, cosignatures = read_relayed(body)
    except BadInput:
        return Refused("malformed")
    skew = snapshot.policy.max_future_skew
    result = check_checkpoint(raw, snapshot.keyring, now, skew, {})
    if isinstance(result, Checkpoint):
        result = _refusal(result, network, own, snapshot.peers) or result
    if isinstance(result, Refused):
        return result
    kept = valid_cosignatures(cosignatures, raw, snapshot.keyring, network, now, skew)
    return result, raw, kept


def _refusal(
    checkpoint: Checkpoint, network: str, own: str, peers: Mapping[str, object]
) -> Refused | None:
    """Whether a verified checkpoint may be taken here at all (before the store is read)."""
    if checkpoint.network != network:
        return Refused("wrong_network", checkpoint.network)
    if checkpoint.network == own:
        return Refused("own_network", own)
    if checkpoint.network not in peers:
        return Refused("untrusted_origin", checkpoint.network)
    return None


class Repairs:
    """Checkpoints received from peers, withheld messages, and the fetches that repair them."""

    def __init__(
        self, host: FederationHost, client: Callable[[], PeerClient], backoff_cap_s: float
    ) -> None:
        self.host = host
        every = host.config.duration("federation", "checkpoint_every")
        self._grace_s = every.total_seconds() / 2
        self._client = client
        self._backoff_cap_s = backoff_cap_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._targets: dict[str, Checkpoint] = {}
        self.withheld: dict[str, Withheld] = {}
        self.received: Counter[str] = Counter()  # "accepted" or the refusal's reason
        self.mismatched: Counter[str] = Counter()  # per origin
        self.fetched: Counter[str] = Counter()  # per peer: fetched messages that chained
        self.bad_fetches: Counter[str] = Counter()  # per peer: served, did not chain
        self.anchored: Counter[str] = Counter()  # per origin
        #: Per origin whose repair waits (its grace, or a backoff): until when (node clock).
        self.retry_at: dict[str, datetime] = {}
        #: Passes taken checkpoints on (``relay.federation.relaying``), set by the service.
        self.relay: CheckpointRelay | None = None
        #: Told of each checkpoint taken (``relay.federation.silence``), set by the service.
        self.heard: Callable[[Checkpoint], None] = lambda checkpoint: None

    async def receive(self, body: bytes, from_peer: str, network: str) -> Checkpoint | Refused:
        """Check a checkpoint of ``network`` a peer sent (bare, or relayed with
        cosignatures: ``relay.core.cosign``); keep it, pass it on, and start a repair if it
        shows a gap."""
        host = self.host
        snapshot, now = host.trust, host.clock()
        # Verified off the writer (Ed25519 checks); only the order needs the store.
        result = await asyncio.get_running_loop().run_in_executor(
            host.pool, _verified, body, snapshot, now, network, host.network
        )
        if isinstance(result, Refused):
            self.received[result.reason] += 1
            return result
        verified, raw, cosignatures = result

        def job(conn: Connection) -> _Taken | _Split | Refused:
            seen = chain.checkpoint_of(conn, verified.network)
            if seen is not None and seen.seq == verified.seq and seen.head != verified.head:
                return _split(conn, verified, raw, from_peer, now)
            refused = check_order(verified, seen)
            if refused is not None:
                return refused
            stored = encode_cosignatures(cosignatures)
            chain.save_checkpoint(conn, verified, raw, from_peer, now, stored)
            held, _ = chain.latest(conn, verified.network)
            head = chain.head_at(conn, verified.network, verified.seq)
            differs = head is not None and head.hex() != verified.head
            if differs:
                message = store.message_at(conn, verified.network, verified.seq) or b""
                _keep(conn, verified, "chain", (raw, message), from_peer, now)
            return _Taken(verified, held, differs, head is not None and not differs)

        # The newest checkpoint of an origin is bookkeeping the next one rebuilds: stored
        # without an fsync (a relayed checkpoint reaches every node, twice per cancel).
        # Evidence of a split or of a head that differs is not: synced before it is acted on.
        taken = await host.db.write(job, durable=False)
        if isinstance(taken, _Split) or (isinstance(taken, _Taken) and taken.differs):
            await host.db.sync()
        if isinstance(taken, _Split):
            await self._caught(verified, raw, cosignatures, from_peer, taken.new)
            return Refused("equivocation", verified.network)
        if isinstance(taken, Refused):
            self.received[taken.reason] += 1
            return taken
        self.received["accepted"] += 1
        checkpoint = taken.checkpoint
        self.heard(checkpoint)
        if self.relay is not None:
            self.relay.pass_on(checkpoint, raw, cosignatures, from_peer, taken.agrees)
        if taken.differs:
            self.mismatched[checkpoint.network] += 1
            _log.warning("checkpoint head differs from our chain", origin=checkpoint.network)
            await self.host.reload_trust()  # the origin's new alerts are held from now on
        if taken.held < checkpoint.seq:
            self._behind(checkpoint)
        return checkpoint

    async def _caught(
        self,
        checkpoint: Checkpoint,
        raw: bytes,
        cosignatures: list[Cosignature],
        from_peer: str,
        new: bool,
    ) -> None:
        """Two checkpoints, one ``seq``, two heads: counted; if this split is new here,
        the trust snapshot reloaded (the origin's alerts are held) and the other
        checkpoint passed on, so the peers that relay this origin see both too."""
        self.received["equivocation"] += 1
        if not new:
            return
        self.mismatched[checkpoint.network] += 1
        _log.warning("origin equivocates", origin=checkpoint.network, seq=checkpoint.seq)
        await self.host.reload_trust()
        if self.relay is not None:
            self.relay.pass_on(checkpoint, raw, cosignatures, from_peer, agrees=False)

    def _behind(self, checkpoint: Checkpoint) -> None:
        """The chain is behind ``checkpoint``: make sure one repair task works on it."""
        origin = checkpoint.network
        self._targets[origin] = checkpoint
        if origin not in self._tasks:
            task = asyncio.create_task(self._repair(origin), name=f"avisa-repair-{origin}")
            self._tasks[origin] = task
            task.add_done_callback(lambda _: self._tasks.pop(origin, None))

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- fetching ---------------------------------------------------------------------

    async def _held(self, origin: str) -> int:
        return (await self.host.db.read(lambda conn: chain.latest(conn, origin)))[0]

    async def _repair(self, origin: str) -> None:
        """Fetch the origin's messages after the chain until it reaches the newest target.

        First a grace of half this node's ``checkpoint_every``: a checkpoint pushed right
        after a publication usually outruns the transaction that carries the message,
        which is not withheld, only on its way."""
        await self._wait(origin, self._grace_s)
        backoff = Backoff(cap=self._backoff_cap_s, base=1.0)
        while True:
            held, target = await self._held(origin), self._targets[origin]
            if held >= target.seq or origin not in self.host.trust.peers:
                self.withheld.pop(origin, None)
                self._targets.pop(origin, None)
                return
            await self._mark_withheld(origin, held, target)
            if await self._fetch_next(origin, held, target):
                backoff.reset()
            else:
                await self._wait(origin, backoff.next_delay())

    async def _wait(self, origin: str, seconds: float) -> None:
        self.retry_at[origin] = self.host.clock() + timedelta(seconds=seconds)
        try:
            await self.host.clock.sleep(seconds)
        finally:
            self.retry_at.pop(origin, None)

    async def _mark_withheld(self, origin: str, held: int, target: Checkpoint) -> None:
        """Messages ``held + 1 … target.seq`` are withheld by the peer that delivered the
        origin's newest message here (or by nobody known, if none did)."""
        known = self.withheld.get(origin)
        if known is None:
            peer = await self.host.db.read(lambda conn: chain.last_deliverer(conn, origin))
            known = Withheld(origin, held + 1, target.seq, peer, self.host.clock())
            self.withheld[origin] = known
        known.seq_from, known.seq_to = held + 1, target.seq

    def _sources(self, origin: str) -> list[tuple[str, str]]:
        """Whom to ask: the origin first, then every other peer (name, url)."""
        peers = self.host.trust.peers
        ordered = [origin, *sorted(name for name in peers if name != origin)]
        return [(name, peers[name].url) for name in ordered if name in peers]

    async def _fetch_next(self, origin: str, held: int, target: Checkpoint) -> bool:
        """One message after ``held`` from the first source that has it; True if the
        chain moved (or was anchored)."""
        for source, url in self._sources(origin):
            try:
                raw = await self._client().message(source, url, origin, held + 1)
            except PeerRefused:
                continue
            except PeerUnavailable as failed:
                if failed.status == 404 and source == origin:
                    return await self._anchor(origin, held, target)
                continue
            await self.host.pipeline.ingest([raw], from_peer=source)
            if await self._held(origin) > held:
                self.fetched[source] += 1
                return True
            self.bad_fetches[source] += 1
        return False

    async def _anchor(self, origin: str, held: int, target: Checkpoint) -> bool:
        """The origin no longer has message ``held + 1``: take what it still has of the
        newest ``ANCHOR_WINDOW`` before the checkpoint, then anchor the chain there."""
        url = self.host.trust.peers[origin].url
        for seq in range(max(held + 2, target.seq - ANCHOR_WINDOW + 1), target.seq + 1):
            try:
                raw = await self._client().message(origin, url, origin, seq)
            except (PeerRefused, PeerUnavailable):
                continue
            await self.host.pipeline.ingest([raw], from_peer=origin)
        head = bytes.fromhex(target.head)
        await self.host.db.write(lambda conn: chain.anchor(conn, origin, target.seq, head))
        self.anchored[origin] += 1
        return True

    # --- status -----------------------------------------------------------------------

    def withheld_by(self, peer: str) -> list[dict[str, Any]]:
        return [item.as_dict() for item in self.withheld.values() if item.peer == peer]

    def metrics_lines(self) -> list[str]:
        lines = ["# TYPE avisa_checkpoints_received_total counter"]
        lines += [
            f"avisa_checkpoints_received_total{_labels({'result': reason})} {count}"
            for reason, count in sorted(self.received.items())
        ]
        withheld: Counter[str] = Counter()
        for item in self.withheld.values():
            if item.peer is not None:
                withheld[item.peer] += item.seq_to - item.seq_from + 1
        for name, kind, counter in (
            ("avisa_peer_withheld_messages", "gauge", withheld),
            ("avisa_peer_repair_fetched_total", "counter", self.fetched),
            ("avisa_peer_repair_bad_fetches_total", "counter", self.bad_fetches),
        ):
            lines.append(f"# TYPE {name} {kind}")
            lines += [
                f"{name}{_labels({'peer': peer})} {count}"
                for peer, count in sorted(counter.items())
            ]
        return lines
