"""This node's own checkpoints: signed every ``checkpoint_every`` and right after a cancel.

DESIGN §16. ``Checkpointer.begin`` signs one as the node starts, then ``run``
signs one whenever ``[federation] checkpoint_every`` has passed on the node
clock or this node has signed a cancel (``Pipeline.cancel_signed``), whichever comes first: a
withdrawal is announced at once, everything else within one interval. A
checkpoint is signed even when the chain has not moved: its ``issued_at`` is
what tells peers the origin is alive. Each one replaces the last in
``checkpoints`` (``relay.storage.chain``), in one writer job that reads the
head and stores the envelope, so the stored checkpoint never names a head the
store does not hold. ``GET /federation/v1/checkpoints/{network}``
(``relay.federation.inbound``) serves it.

Signing costs one Ed25519 signature and one small write a minute; the head
is read from the chain the writer keeps (no rescans).
"""

from __future__ import annotations

import asyncio
import sqlite3
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


class Checkpointer:
    """Signs and stores this node's checkpoints; counts them for ``/metrics``."""

    def __init__(self, host: FederationHost, client: Callable[[], PeerClient]) -> None:
        self.host = host
        self._client = client
        self._pushing: dict[str, asyncio.Task[None]] = {}
        self.issued = 0
        self.pushed: Counter[str] = Counter()  # per peer: checkpoints it took or refused

    async def issue(self) -> bytes:
        """Sign a checkpoint of this node's chain as it is now and keep it; its envelope."""
        host = self.host
        network, key, now = host.network, host.key, host.clock()

        def job(conn: sqlite3.Connection) -> bytes:
            checkpoint = make_checkpoint(network, *chain.latest(conn, network), now)
            raw = sign_checkpoint(checkpoint, key)
            chain.save_checkpoint(conn, checkpoint, raw, None, now)
            return raw

        raw = await host.db.write(job)
        self.issued += 1
        self.push(raw)
        return raw

    def push(self, raw: bytes) -> None:
        """Send the checkpoint to every peer, one request per peer in flight: a peer still
        busy with the last one is skipped (the next one is at most an interval away)."""
        network = self.host.network
        for peer, record in self.host.trust.peers.items():
            if peer == network or peer in self._pushing:
                continue
            task = asyncio.create_task(self._push_one(peer, record.url, raw))
            self._pushing[peer] = task
            task.add_done_callback(self._pushed)

    def _pushed(self, task: asyncio.Task[None]) -> None:
        for peer, pushing in list(self._pushing.items()):
            if pushing is task:
                del self._pushing[peer]

    async def _push_one(self, peer: str, url: str, raw: bytes) -> None:
        try:
            await self._client().put_checkpoint(peer, url, self.host.network, raw)
        except (PeerUnavailable, PeerRefused):
            return  # an old node without checkpoints, or down: the next interval tries again
        self.pushed[peer] += 1

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
        """Until cancelled: a checkpoint every interval, or at once after a cancel."""
        host = self.host
        interval = host.config.duration("federation", "checkpoint_every").total_seconds()
        cancel_signed = host.pipeline.cancel_signed
        while True:
            await _race(interval=host.clock.sleep(interval), cancel=cancel_signed.wait())
            cancel_signed.clear()
            try:
                await self.issue()
            except Exception:  # noqa: BLE001 - the next interval tries again
                _log.exception("signing a checkpoint failed")
