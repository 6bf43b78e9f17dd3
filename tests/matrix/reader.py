"""A second Matrix user that reads rooms the way a member's client does.

``Reader`` is a real matrix-nio client with its own end-to-end crypto store:
it syncs in the background (``sync_forever`` uploads its device keys and
receives room keys), and records every message it sees, decrypted when the
room is encrypted. ``history`` reads a room's whole timeline over plain HTTP,
for exactly-once counts that do not depend on sync timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from nio import AsyncClient, AsyncClientConfig, MegolmEvent, RoomMessage
from nio.store import SqliteStore

from bridges.matrix.localsynapse import Homeserver, Registered
from tests.helpers import wait_for

ALERT_ID = "org.avisa.alert_id"


@dataclass
class Seen:
    event_id: str
    room_id: str
    sender: str
    content: dict[str, Any]
    decrypted: bool  # it came encrypted, and this client decrypted it
    at: float = field(default_factory=time.perf_counter)  # when this client got it

    @property
    def alert_id(self) -> str | None:
        return self.content.get(ALERT_ID)

    @property
    def edits(self) -> str | None:
        relation = self.content.get("m.relates_to") or {}
        return relation.get("event_id") if relation.get("rel_type") == "m.replace" else None


class Reader:
    def __init__(self, homeserver: Homeserver, user: Registered, store_dir: Path) -> None:
        store_dir.mkdir(parents=True, exist_ok=True)
        config = AsyncClientConfig(
            encryption_enabled=True, store=SqliteStore, store_sync_tokens=False
        )
        self.user = user
        self.homeserver = homeserver
        self.client = AsyncClient(
            homeserver.url,
            user.user_id,
            device_id=user.device_id,
            store_path=str(store_dir),
            config=config,
        )
        self.client.restore_login(user.user_id, user.device_id, user.access_token)
        self.seen: list[Seen] = []
        self.undecryptable = 0
        self._task: asyncio.Task[None] | None = None
        self.client.add_event_callback(self._on_message, (RoomMessage, MegolmEvent))

    async def _on_message(self, room: Any, event: Any) -> None:
        if isinstance(event, MegolmEvent):
            self.undecryptable += 1
            return
        self.seen.append(
            Seen(
                event.event_id,
                room.room_id,
                event.sender,
                dict(event.source.get("content", {})),
                decrypted=bool(getattr(event, "decrypted", False)),
            )
        )

    async def start(self) -> None:
        first = await self.client.sync(timeout=0, full_state=True)
        assert not hasattr(first, "status_code") or first.status_code is None, first
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        self._task = asyncio.create_task(self.client.sync_forever(timeout=1000))

    async def join(self, room: str) -> str:
        response = await self.client.join(room)
        room_id = getattr(response, "room_id", None)
        assert room_id, response
        await wait_for(lambda: room_id in self.client.rooms, 30, "reader to see the room")
        return str(room_id)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.client.close()

    def posts(self, room_id: str) -> list[Seen]:
        """Original messages from the bridge (not edits)."""
        return [s for s in self.seen if s.room_id == room_id and s.alert_id and not s.edits]

    def edits_of(self, event_id: str) -> list[Seen]:
        return [s for s in self.seen if s.edits == event_id]

    async def wait_post(self, room_id: str, alert_id: str, timeout: float = 60) -> Seen:
        def found() -> bool:
            return any(s.alert_id == alert_id for s in self.posts(room_id))

        await wait_for(found, timeout, f"a post of {alert_id}")
        return next(s for s in self.posts(room_id) if s.alert_id == alert_id)


async def history(homeserver: Homeserver, user: Registered, room_id: str) -> list[dict[str, Any]]:
    """Every event in the room's timeline, oldest first (plain HTTP, paginated)."""
    events: list[dict[str, Any]] = []
    token = ""
    headers = {"Authorization": f"Bearer {user.access_token}"}
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            url = f"{homeserver.url}/_matrix/client/v3/rooms/{quote(room_id)}/messages"
            url += "?dir=b&limit=500"
            if token:
                url += "&from=" + quote(token)
            async with http.get(url, headers=headers) as response:
                body = await response.json()
                assert response.status == 200, body
            events.extend(body.get("chunk", []))
            token = body.get("end", "")
            if not token or not body.get("chunk"):
                break
    return list(reversed(events))


def bridge_posts(events: list[dict[str, Any]]) -> list[str]:
    """Alert ids of original (non-edit) bridge messages in a plain-text timeline."""
    return [
        event["content"][ALERT_ID]
        for event in events
        if event.get("type") == "m.room.message"
        and ALERT_ID in event.get("content", {})
        and "m.relates_to" not in event["content"]
    ]
