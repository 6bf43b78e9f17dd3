"""This node's own checkpoints: signed every ``checkpoint_every`` and right after a cancel.

DESIGN §16. ``Checkpointer.run`` signs one at start, then whenever
``[federation] checkpoint_every`` has passed on the node clock or this node
has signed a cancel (``Pipeline.cancel_signed``), whichever comes first: a
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
import contextlib
import sqlite3

import structlog

from relay.core.checkpoints import make_checkpoint, sign_checkpoint
from relay.federation.host import FederationHost
from relay.storage import chain

_log = structlog.get_logger("avisa.federation")


class Checkpointer:
    """Signs and stores this node's checkpoints; counts them for ``/metrics``."""

    def __init__(self, host: FederationHost) -> None:
        self.host = host
        self.issued = 0

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
        return raw

    async def run(self) -> None:
        """Until cancelled: a checkpoint now, then every interval or after each cancel."""
        host = self.host
        interval = host.config.duration("federation", "checkpoint_every").total_seconds()
        cancel_signed = host.pipeline.cancel_signed
        while True:
            cancel_signed.clear()
            try:
                await self.issue()
            except Exception:  # noqa: BLE001 - the next interval tries again
                _log.exception("signing a checkpoint failed")
            await _first_of(host.clock.sleep(interval), cancel_signed.wait())


async def _first_of(*waits: object) -> None:
    """Wait until the first of ``waits`` (coroutines) is done; cancel the others."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
