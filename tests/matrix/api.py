"""The node's operator API as the Matrix tests use it."""

from __future__ import annotations

from typing import Any

import aiohttp

DRAFT: dict[str, Any] = {
    "kind": "sighting",
    "certainty": "confirmed",
    "area": {
        "label": "Colonia, Oxnard",
        "geohash": "9q4gch",
        "radius_m": 500,
        "codes": ["fips:06111"],
    },
    "agencies": ["ice"],
    "text": {
        "es": {"headline": "ICE en el parque Colonia", "body": "Verificado en el lugar."},
        "en": {"headline": "ICE at Colonia park", "body": "Verified on site."},
    },
    "expires_in": "4h",
}


def route(room: str, extra: str = "") -> str:
    return f"""
[[bridges.matrix.routes]]
room = "{room}"
areas = ["fips:06111"]
languages = ["es", "en"]
{extra}
"""


class Api:
    def __init__(self, url: str, token: str, http: aiohttp.ClientSession) -> None:
        self.url, self.token, self.http = url, token, http

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.http.request(method, self.url + path, json=body, headers=headers) as r:
            return r.status, await r.json(content_type=None)

    async def publish(self, **changes: Any) -> str:
        status, body = await self.call("POST", "/api/v1/alerts", {**DRAFT, **changes})
        assert status == 201, body
        return str(body["id"])

    async def route_state(self, bridge: int = 0, route: int = 0) -> dict[str, Any]:
        status, body = await self.call("GET", "/api/v1/bridges")
        assert status == 200, body
        return body["bridges"][bridge]["routes"][route]  # type: ignore[no-any-return]

    async def caught_up(self) -> bool:
        state = await self.route_state()
        return bool(state["backlog"] == 0 and state["room_id"])
