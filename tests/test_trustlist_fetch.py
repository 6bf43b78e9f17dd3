"""``relay.federation.trustfetch`` against a real aiohttp server on 127.0.0.1: the versions
between, and every reply that must be refused (redirect, error status, too large, slow)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from keys.cards.trustlist import MAX_LIST_BYTES
from relay.federation.trustfetch import FetchFailed, fetch_forward, fetch_one
from tests.trustlist_helpers import chain

VERSIONS = chain(3)


@pytest.fixture
async def base() -> AsyncIterator[str]:
    never = asyncio.Event()

    async def newest(request: web.Request) -> web.Response:
        return web.Response(body=VERSIONS[-1].raw, content_type="application/json")

    async def version(request: web.Request) -> web.Response:
        return web.Response(body=VERSIONS[int(request.match_info["n"]) - 1].raw)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/trustlists/v1/socal")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b" " * (MAX_LIST_BYTES + 1))

    async def slow(request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    app = web.Application()
    app.router.add_get("/trustlists/v1/socal", newest)
    app.router.add_get("/trustlists/v1/socal/{n}", version)
    app.router.add_get("/moved", redirect)
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    never.set()
    await runner.cleanup()


async def test_the_versions_between_come_first(base: str) -> None:
    url = base + "/trustlists/v1/socal"
    async with aiohttp.ClientSession() as session:
        raws = [v.raw for v in VERSIONS]
        assert await fetch_forward(session, url, None) == raws
        assert await fetch_forward(session, url, 1) == raws[1:]
        assert await fetch_forward(session, url, 3) == raws[2:]
        assert await fetch_forward(session, url, 7) == raws[2:]


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/moved", "redirected elsewhere: not followed"),
        ("/missing", "HTTP 404"),
        ("/big", "reply too large"),
        ("/slow", "timeout"),
    ],
)
async def test_replies_that_are_refused(base: str, path: str, why: str) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(FetchFailed) as caught:
            await fetch_one(session, base + path, timeout_s=0.5)
    assert str(caught.value) == why
