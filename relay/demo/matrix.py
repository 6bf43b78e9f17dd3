"""``avisa demo --matrix``: a local Synapse, a room, and Ventura bridged into it.

Synapse comes from ``bridges.matrix.localsynapse`` (installed once into the project's
cache). A member account creates a public room; Ventura's node gets a bridge
account, its password in a 0600 file, and a ``[[bridges.matrix]]`` route in
its ``avisa.toml`` before it starts. The story reads the room back as that
member, so the demo shows what people in the room see.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from bridges.matrix.localsynapse import Homeserver, Registered, launch
from relay.core import config as config_mod
from relay.demo.run import Federation3
from relay.storage.files import write_private

ROOM_ALIAS = "alerts-ventura"


class MatrixRoom:
    def __init__(self, server: Homeserver, member: Registered, room_id: str) -> None:
        self.server = server
        self.member = member
        self.room_id = room_id
        self.alias = f"#{ROOM_ALIAS}:localhost"
        self._events: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, federation: Federation3) -> MatrixRoom:
        from bridges.matrix.localsynapse import CACHE

        print(f"\nStarting a local Synapse homeserver (installed into {CACHE} the first time)…")
        server, _ = await asyncio.to_thread(launch, federation.workdir / "synapse")
        try:
            member = await server.register("member")
            bot = await server.register("avisa")
            room_id = await server.create_room(member, ROOM_ALIAS)
            ventura = federation["ventura"]
            write_private(ventura.data / "matrix.password", bot.password.encode())
            config = ventura.data / config_mod.CONFIG_NAME
            config.write_text(config.read_text() + _bridge_toml(server.url, bot.user_id))
        except BaseException:
            server.stop()
            raise
        print(f"  {server.url}: room #{ROOM_ALIAS}:localhost, bridged from ventura")
        return cls(server, member, room_id)

    async def _refresh(self) -> None:
        path = f"/_matrix/client/v3/rooms/{quote(self.room_id)}/messages?dir=b&limit=100"
        reply = await self.server.request("GET", path, self.member.access_token)
        self._events = list(reply.get("chunk", []))

    def _posted(self, alert_id: str) -> dict[str, Any] | None:
        for event in self._events:
            content = event.get("content", {})
            if content.get("org.avisa.alert_id") == alert_id and "m.relates_to" not in content:
                return event
        return None

    async def has(self, alert_id: str) -> bool:
        await self._refresh()
        return self._posted(alert_id) is not None

    def body(self, alert_id: str) -> str:
        event = self._posted(alert_id)
        return str(event["content"].get("body", "")) if event else ""

    async def edited(self, alert_id: str) -> bool:
        await self._refresh()
        original = self._posted(alert_id)
        if original is None:
            return False
        return any(
            event.get("content", {}).get("m.relates_to", {}).get("event_id") == original["event_id"]
            for event in self._events
        )

    def how_to_read(self) -> str:
        return (
            "\nMatrix: open a Matrix client on this machine with homeserver"
            f" {self.server.url},\n  log in as {self.member.user_id} (password"
            f" {self.member.password}) and open {self.alias}."
        )

    async def close(self) -> None:
        await asyncio.to_thread(self.server.stop)


def _bridge_toml(homeserver: str, user_id: str) -> str:
    return f"""
[[bridges.matrix]]
homeserver = "{homeserver}"
user_id = "{user_id}"
password_file = "matrix.password"

[[bridges.matrix.routes]]
room = "#{ROOM_ALIAS}:localhost"
areas = ["fips:06111"]
languages = ["es", "en"]
"""
