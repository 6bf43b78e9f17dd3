"""``/desk/stream``: the desk's live feed, Server-Sent Events for htmx.

A browser's EventSource cannot send the API's bearer token, so the desk has
its own stream behind the session cookie. It waits on two signals at once:
the feed ``/api/v1/stream`` follows (``node.feed``) and the desk's tips
(``node.desk.changes``); it sends only which part changed (``event:
alerts``, ``event: tips``): the page then fetches that part as HTML through
the session, so one rule (the page handlers) decides what a role sees. The
stream ends when its session does (looked at every ``SESSION_CHECK_S``).
Streams are bounded together with the API's (``api.MAX_STREAMS``) and ended
on shutdown.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from relay.http import api
from relay.http.webdesk.pages import EVERYONE, current_user, need, node_of
from relay.http.webdesk.state import DESK
from relay.runtime.node import Node

routes = web.RouteTableDef()
KEEPALIVE_S = 15.0
# How soon a stream notices that its session ended (signed out, token revoked,
# expired): sessions give no signal, so each wait is this long at most.
SESSION_CHECK_S = 1.0


async def changed(node: Node, cursor: int, mark: int, timeout: float) -> None:
    """Until the feed moves past ``cursor`` or the desk's tips past ``mark``, or ``timeout``."""
    waits = [
        asyncio.ensure_future(node.feed.wait_beyond(cursor, timeout)),
        asyncio.ensure_future(node.desk.changes.wait_beyond(mark, timeout)),
    ]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


@routes.get("/stream", name="stream")
async def stream(request: web.Request) -> web.StreamResponse:
    need(request, EVERYONE)
    node = node_of(request)
    return await api.event_stream(
        request,
        node.metrics,
        request.app[DESK].streams,
        lambda response: _pump(request, node, response),
    )


async def _pump(request: web.Request, node: Node, response: web.StreamResponse) -> None:
    cursor, mark = node.feed.head, node.desk.changes.head
    quiet_since = asyncio.get_running_loop().time()
    await response.write(b"retry: 2000\n\n")
    while current_user(request) is not None:
        await changed(node, cursor, mark, SESSION_CHECK_S)
        now = asyncio.get_running_loop().time()
        if node.feed.head > cursor:
            cursor = node.feed.head
            await response.write(f"event: alerts\ndata: {cursor}\n\n".encode())
            quiet_since = now
        if node.desk.changes.head > mark:
            mark = node.desk.changes.head
            await response.write(b"event: tips\ndata: changed\n\n")
            quiet_since = now
        if now - quiet_since >= KEEPALIVE_S:
            await response.write(b": keepalive\n\n")
            quiet_since = now


async def close_streams(app: web.Application) -> None:
    for task in [*app[DESK].streams]:
        task.cancel()
