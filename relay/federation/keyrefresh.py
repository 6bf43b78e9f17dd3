"""Following peers' keys: fetch their key documents and apply what they say.

A peer that rotates or revokes a key says so in its key document
(``GET /federation/v1/keys``), as statements signed the way ``keys.cards.statements``
requires. This node fetches each trusted peer's document when its link
starts, every ``REFRESH`` after that, and soon after a request from that peer
failed for an unknown key (at most once per ``MIN_GAP`` per peer, so a
stranger cannot make us fetch in a loop). ``keys.store.peerstore.store_document``
verifies the document and only ever narrows trust, except through a rotation
statement signed by the old and the new key; when it changed anything, the
trust snapshot is reloaded at once.

Documents are fetched from the URL the operator stored with ``avisa trust
add``: a document can never move a peer to another address. A peer trusted
through a coalition trust list is not followed: its keys are the list's, and a
new version of the list is how they change (DESIGN §15).
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING

import structlog

from keys.store import peerstore
from relay.core.errors import BadInput
from relay.federation.transport import PeerRefused, PeerUnavailable
from relay.runtime.aio import cancel_all
from relay.runtime.clock import every

if TYPE_CHECKING:
    from relay.federation.service import Federation

REFRESH_S = 600.0
MIN_GAP_S = 60.0
_log = structlog.get_logger("avisa.federation.keys")


class KeyRefresher:
    def __init__(self, federation: Federation) -> None:
        self._federation = federation
        self._last_asked: dict[str, float] = {}
        self._tasks: dict[str, asyncio.Task[bool]] = {}

    def soon(self, network: str) -> None:
        """Fetch ``network``'s document in the background, at most once per MIN_GAP."""
        last = self._last_asked.get(network)
        now = self._federation.host.clock.monotonic()
        if network in self._tasks or (last is not None and now - last < MIN_GAP_S):
            return
        self._last_asked[network] = now
        task = asyncio.create_task(self.refresh(network), name=f"avisa-keys-{network}")
        self._tasks[network] = task
        task.add_done_callback(lambda _: self._tasks.pop(network, None))

    async def every(self, network: str) -> None:
        """A peer link's companion: refresh now, then every REFRESH_S."""
        await self.refresh(network)
        await every(
            self._federation.host.clock, REFRESH_S, partial(self.refresh, network), "key-refresh"
        )

    async def refresh(self, network: str) -> bool:
        """Fetch and apply one peer's document; True when trust changed."""
        node = self._federation.host
        record = node.trust.peers.get(network)
        if record is None or record.policy.sources:
            return False  # a list peer's keys are what its list says, nothing else
        try:
            raw = await self._federation.client.key_document(network, record.url)
            stored = await node.db.write(
                lambda conn: peerstore.store_document(
                    conn,
                    node.config,
                    node.own_keys(),
                    raw,
                    node.clock(),
                    expected_network=network,
                )
            )
        except (PeerUnavailable, PeerRefused) as exc:
            _log.info("key document not fetched", peer=network, error=str(exc))
            return False
        except BadInput as exc:
            _log.warning(
                "key document refused", peer=network, errcode=exc.errcode, error=exc.message
            )
            return False
        applied = [c for c in stored.result.changes if c.action not in ("refused", "ignored")]
        for change in stored.result.changes:
            if change.action == "refused":
                _log.warning(
                    "key statement refused", peer=network, keyid=change.keyid, detail=change.detail
                )
        if not applied and not stored.held_again:
            return False
        await node.reload_trust()
        _log.info(
            "peer keys updated",
            peer=network,
            changes=[f"{c.action} {c.keyid}" for c in applied],
            held_again=len(stored.held_again),
        )
        return True

    async def stop(self) -> None:
        await cancel_all(list(self._tasks.values()))
