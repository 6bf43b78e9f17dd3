"""Several real nodes on 127.0.0.1 in one test: start them, make them peers, watch them.

``Member`` is one in-process node (real SQLite file, real aiohttp server on
port 0, the test's ``FakeClock``). ``trusts(a, b)`` writes ``b`` into ``a``'s
peers table the way ``avisa trust add`` will, then reloads ``a``'s trust so
its federation links start now instead of at the next poll.

``Front`` is a real HTTP server placed in front of a node: it relays every
request unchanged (so signatures still verify) unless a test tells it to
answer 5xx for a while or to refuse transactions holding some envelope,
which is how a broken or stricter peer behaves.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from keys.core.keyring import KeyEntry
from relay.cli import datadir
from relay.core.policy import PeerPolicy, Relay
from relay.http.app import serve
from relay.runtime.clock import FakeClock
from relay.runtime.node import Node
from relay.storage import trust
from tests.conftest import RunningNode
from tests.helpers import wait_for
from tests.test_api import DRAFT


@dataclass
class Member(RunningNode):
    runner: web.AppRunner

    @property
    def network(self) -> str:
        return self.node.network

    async def publish(self, **changes: Any) -> dict[str, Any]:
        status, body = await self.call("POST", "/api/v1/alerts", json={**DRAFT, **changes})
        assert status == 201, body
        return body  # type: ignore[no-any-return]

    async def update(self, alert_id: str, **changes: Any) -> dict[str, Any]:
        draft = {**DRAFT, **changes}
        status, body = await self.call("POST", f"/api/v1/alerts/{alert_id}/update", json=draft)
        assert status == 201, body
        return body  # type: ignore[no-any-return]

    async def cancel(self, alert_id: str) -> dict[str, Any]:
        text = {"en": {"headline": "Withdrawn", "body": ""}}
        status, body = await self.call(
            "POST", f"/api/v1/alerts/{alert_id}/cancel", json={"text": text}
        )
        assert status == 201, body
        return body  # type: ignore[no-any-return]

    async def alert(self, alert_id: str) -> dict[str, Any] | None:
        status, body = await self.call("GET", f"/api/v1/alerts/{alert_id}")
        return body if status == 200 else None  # type: ignore[no-any-return]

    async def stored_ids(self) -> set[str]:
        rows = await self.node.db.read(lambda c: c.execute("SELECT id FROM alerts").fetchall())
        return {row[0] for row in rows}

    async def feed_counts(self) -> dict[str, int]:
        rows = await self.node.db.read(
            lambda c: c.execute("SELECT alert_id, count(*) FROM feed GROUP BY 1").fetchall()
        )
        return dict(rows)

    async def decisions(self) -> list[dict[str, Any]]:
        status, body = await self.call("GET", "/api/v1/decisions?limit=1000")
        assert status == 200
        return list(reversed(body["decisions"]))  # oldest first

    async def peer(self, network: str) -> dict[str, Any]:
        status, body = await self.call("GET", "/api/v1/peers")
        assert status == 200
        (entry,) = [p for p in body["peers"] if p["network"] == network]
        return entry  # type: ignore[no-any-return]

    async def metrics(self) -> str:
        async with self.http.get(self.url + "/metrics", headers=self.headers()) as r:
            return await r.text()


async def start_member(
    tmp_path: Path,
    clock: FakeClock,
    network: str,
    http: aiohttp.ClientSession,
    edit_config: Callable[[str], str] | None = None,
) -> Member:
    result = datadir.initialize(tmp_path / network, network, "127.0.0.1:0", clock=clock)
    if edit_config is not None:
        path = result.data_dir / "avisa.toml"
        path.write_text(edit_config(path.read_text()))
    node = Node.load(result.data_dir, clock)
    await node.start()
    runner, port = await serve(node, "127.0.0.1", 0)
    return Member(node, f"http://127.0.0.1:{port}", result.token, http, node.data_dir, runner)


@asynccontextmanager
async def members(
    tmp_path: Path,
    clock: FakeClock,
    networks: Iterable[str],
    edit_config: Callable[[str], str] | None = None,
) -> AsyncIterator[dict[str, Member]]:
    started: dict[str, Member] = {}
    async with aiohttp.ClientSession() as http:
        try:
            for network in networks:
                started[network] = await start_member(tmp_path, clock, network, http, edit_config)
            yield started
        finally:
            for member in started.values():
                await member.runner.cleanup()
                await member.node.stop()


async def trusts(
    a: Member,
    b: Member,
    *,
    url: str | None = None,
    speaks_for: tuple[str, ...] = ("fips:06",),
    forward: bool = True,
    endorse: bool = False,
    rate_limit_per_min: int = 600,
    relay: Relay = "all",
) -> None:
    """``a`` adds ``b`` as a peer (reached at ``url``, by default ``b``'s own)."""
    record = trust.PeerRecord(
        network=b.network,
        url=url or b.url,
        keys=(KeyEntry(b.network, b.node.key.public_key),),
        policy=PeerPolicy(
            network=b.network,
            speaks_for=speaks_for,
            rate_limit_per_min=rate_limit_per_min,
            forward=forward,
            endorse=endorse,
            relay=relay,
        ),
    )
    await a.node.db.write(lambda conn: trust.save_peer(conn, record, a.node.clock()))
    await a.node.reload_trust()


async def pulled(a: Member, network: str) -> bool:
    """``a``'s link to ``network`` has talked to it successfully (its start-up pull)."""
    return bool((await a.peer(network)).get("last_success"))


async def decision_for(member: Member, alert_id: str) -> dict[str, Any]:
    """Wait for ``member``'s one decision about ``alert_id`` and return it."""

    async def decided() -> bool:
        return any(d["alert_id"] == alert_id for d in await member.decisions())

    await wait_for(decided, what=f"a decision at {member.network}")
    (decision,) = [d for d in await member.decisions() if d["alert_id"] == alert_id]
    return decision


def headline_of(envelope: dict[str, Any]) -> str:
    payload = json.loads(base64.b64decode(envelope["payload"]))
    return str(next(iter(payload["text"].values()))["headline"])


@dataclass
class Front:
    """A relay in front of a node that can play a failing or stricter peer."""

    target: str
    status: int | None = None
    refuse: Callable[[dict[str, Any]], bool] | None = None
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None
    _http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def puts(self) -> list[str]:
        """The transactions relayed (checkpoints, also PUT, are not counted)."""
        return [
            path
            for method, path in self.requests
            if method == "PUT" and path.startswith("/federation/v1/send/")
        ]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((request.method, request.raw_path))
        if self.status is not None:
            return web.json_response(
                {"errcode": "AVISA_TEST_FAULT", "error": "injected"}, status=self.status
            )
        if self.refuse is not None and request.method == "PUT":
            envelopes = json.loads(body)["envelopes"]
            if any(self.refuse(envelope) for envelope in envelopes):
                return web.json_response(
                    {"errcode": "AVISA_TEST_REFUSED", "error": "refused"}, status=400
                )
        headers = {
            name: value
            for name, value in request.headers.items()
            if name in ("Authorization", "Content-Type")
        }
        assert self._http is not None
        async with self._http.request(
            request.method,
            URL(self.target + request.raw_path, encoded=True),
            data=body or None,
            headers=headers,
        ) as reply:
            return web.Response(
                body=await reply.read(), status=reply.status, content_type="application/json"
            )
