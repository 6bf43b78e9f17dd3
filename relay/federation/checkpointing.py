"""This node's own checkpoints: signed every ``checkpoint_every`` and right after a cancel.

DESIGN §16. ``Checkpointer.begin`` signs one as the node starts, then ``run``
signs one whenever ``[federation] checkpoint_every`` has passed on the node
clock or this node has signed a cancel (``Pipeline.cancel_signed``), whichever comes first: a
withdrawal is announced at once, everything else within one interval. A
checkpoint is signed even when the chain has not moved: its ``issued_at`` is
what tells peers the origin is alive. The head is read from the committed
chain (``relay.storage.chain``), so a checkpoint never names a head the store
does not hold; the newest is kept in memory (``latest``), never written: it
is derived from the chain, the time and the key, and signed again at start,
so signing costs no write. ``GET /federation/v1/checkpoints/{network}``
(``relay.federation.inbound``) serves it.

The checkpoint that follows a cancel waits ``CANCEL_SETTLE_S`` (half a second of
real time) after it: the cancel's own transactions, which every peer is waiting
for, go first instead of sharing the coalition's cores with a flood of the
checkpoint (every peer verifies, cosigns and passes it on), and cancels signed
within that half second share one checkpoint. A peer waits half an interval
before it calls a message withheld anyway (``relay.federation.repair``), so the
repair of a withheld cancel is later by that half second at most.

Signing costs one Ed25519 signature and one small write a minute; the head
is read from the chain the writer keeps (no rescans).

Each interval is shortened by up to a fifth at random (``JITTER``): nodes
started together (a coalition after a power cut, or a bench) would otherwise
sign in step for ever, and since peers cosign and pass each checkpoint on
(``relay.federation.relaying``), every minute the whole coalition would
carry every node's checkpoint in the same second. Shortened, never
lengthened: a checkpoint still comes at least every ``checkpoint_every``.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable

import structlog

from relay.core.checkpoints import make_checkpoint, sign_checkpoint
from relay.federation.host import FederationHost
from relay.federation.sender import _race
from relay.federation.transport import PeerClient, PeerRefused, PeerUnavailable
from relay.runtime.aio import cancel_all
from relay.storage import chain

_log = structlog.get_logger("avisa.federation")
#: Each interval lasts between (1 - JITTER) and 1 times ``checkpoint_every``.
JITTER = 0.2
#: Real seconds between signing a cancel and the checkpoint that announces it.
CANCEL_SETTLE_S = 0.5


def next_interval(every: float, rng: random.Random) -> float:
    """Seconds until the next periodic checkpoint: ``every`` shortened by up to ``JITTER``."""
    return every * (1 - JITTER * rng.random())


class Checkpointer:
    """Signs and stores this node's checkpoints; counts them for ``/metrics``."""

    def __init__(
        self,
        host: FederationHost,
        client: Callable[[], PeerClient],
        failing: Callable[[str], bool] = lambda peer: False,
        rng: random.Random | None = None,
    ) -> None:
        """``failing``: whether the sender's link to a peer keeps failing (the peer is down);
        ``rng``: where each interval's jitter comes from (a seeded one in tests)."""
        self.host = host
        self._rng = rng or random.Random()  # noqa: S311 - spreads timers, not a secret
        self._client = client
        self._failing = failing
        # Per (peer, origin) busy with a push: the task, and the newest waiting to go.
        self._pushing: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._waiting: dict[tuple[str, str], bytes] = {}
        self.issued = 0
        #: The newest checkpoint signed, as sent (kept in memory: it is re-signed at start).
        self.latest: bytes | None = None
        self.pushed: Counter[str] = Counter()  # per peer: checkpoints it took or refused

    async def issue(self) -> bytes:
        """Sign a checkpoint of this node's chain as it is now and keep it; its envelope."""
        host = self.host
        network, key, now = host.network, host.key, host.clock()
        seq, head = await host.db.read(lambda conn: chain.latest(conn, network))
        raw = sign_checkpoint(make_checkpoint(network, seq, head, now), key)
        self.latest = raw
        self.issued += 1
        self.push(raw)
        return raw

    def push(self, raw: bytes, network: str | None = None, to: list[str] | None = None) -> None:
        """Send a checkpoint of ``network`` (this node's by default) to the peers ``to``
        (every linked peer by default), one request per peer and origin in flight: for a peer
        still busy with the last one it waits and goes next (only the newest waits, so a
        cancel's checkpoint is never lost behind an older one); a peer the sender has
        failed to reach several times in a row is skipped. Relayed checkpoints of other
        origins (``relay.federation.relaying``) go the same way."""
        origin = network or self.host.network
        peers = self.host.trust.peers
        for peer in peers if to is None else to:
            record = peers.get(peer)
            if record is None or not record.policy.linked or peer == origin or self._failing(peer):
                continue
            key = (peer, origin)
            if key in self._pushing:
                self._waiting[key] = raw
                continue
            self._pushing[key] = asyncio.create_task(self._push_one(key, record.url, raw))

    async def _push_one(self, key: tuple[str, str], url: str, raw: bytes | None) -> None:
        peer, origin = key
        try:
            while raw is not None:
                try:
                    await self._client().put_checkpoint(peer, url, origin, raw)
                    self.pushed[peer] += 1
                except (PeerUnavailable, PeerRefused):
                    pass  # an old node without checkpoints, or down: the next one tries
                raw = self._waiting.pop(key, None)
        finally:
            self._pushing.pop(key, None)

    async def stop(self) -> None:
        await cancel_all(list(self._pushing.values()))

    async def begin(self) -> None:
        """At start, before the node serves: its own chain begun (``chain.start_own``) and a
        first checkpoint signed, so a node that answers has a checkpoint to serve."""
        network = self.host.network
        self.host.pipeline.cancel_signed.clear()
        await self.host.db.write(lambda conn: chain.start_own(conn, network))
        await self.issue()

    async def run(self) -> None:
        """Until cancelled: a checkpoint every interval, or ``CANCEL_SETTLE_S`` after a cancel."""
        host = self.host
        every = host.config.duration("federation", "checkpoint_every").total_seconds()
        cancel_signed = host.pipeline.cancel_signed
        while True:
            interval = next_interval(every, self._rng)
            woke = await _race(interval=host.clock.sleep(interval), cancel=cancel_signed.wait())
            if "cancel" in woke:
                await host.clock.linger(CANCEL_SETTLE_S)
            cancel_signed.clear()
            try:
                await self.issue()
            except Exception:  # noqa: BLE001 - the next interval tries again
                _log.exception("signing a checkpoint failed")
