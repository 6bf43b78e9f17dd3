"""``/desk/stream``: the desk's live feed, Server-Sent Events for htmx.

A browser's EventSource cannot send the API's bearer token, so the desk has
its own stream behind the session cookie. It follows the same feed as
``/api/v1/stream`` (``node.feed``) and the desk's tips, but sends only which
part changed (``event: alerts``, ``event: tips``): the page then fetches that
part as HTML through the session, so one rule (the page handlers) decides
what a role sees. The stream ends when its session does. Streams are
bounded together with the API's (``api.MAX_STREAMS``) and ended on shutdown.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from relay.core.errors import BadInput
from relay.http import api
from relay.http.webdesk.pages import EVERYONE, current_user, need, node_of
from relay.http.webdesk.state import DESK
from relay.runtime.node import Node

routes = web.RouteTableDef()
KEEPALIVE_S = 15.0
# How often the desk's counters are looked at: it offers no change signal to wait on.
TIPS_POLL_S = 0.25


def tips_mark(node: Node) -> int:
    """Changes whenever the desk took, changed or published a tip (its counters)."""
    return sum(node.desk.counters.values())


@routes.get("/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    need(request, EVERYONE)
    node = node_of(request)
    if node.metrics.sse_clients >= api.MAX_STREAMS:
        raise BadInput("AVISA_TOO_MANY_STREAMS", "too many open streams", 429)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    node.metrics.sse_clients += 1
    streams = request.app[DESK].streams
    task = asyncio.current_task()
    assert task is not None
    streams.add(task)
    try:
        await _pump(request, node, response)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        streams.discard(task)
        node.metrics.sse_clients -= 1
    return response


async def _pump(request: web.Request, node: Node, response: web.StreamResponse) -> None:
    cursor = node.feed.head
    mark = tips_mark(node)
    waited = 0.0
    await response.write(b"retry: 2000\n\n")
    while current_user(request) is not None:
        moved = await node.feed.wait_beyond(cursor, TIPS_POLL_S)
        if moved or node.feed.head > cursor:
            cursor = node.feed.head
            await response.write(f"event: alerts\ndata: {cursor}\n\n".encode())
            waited = 0.0
        now_mark = tips_mark(node)
        if now_mark != mark:
            mark = now_mark
            await response.write(b"event: tips\ndata: changed\n\n")
            waited = 0.0
        waited += TIPS_POLL_S
        if waited >= KEEPALIVE_S:
            await response.write(b": keepalive\n\n")
            waited = 0.0


async def close_streams(app: web.Application) -> None:
    for task in [*app[DESK].streams]:
        task.cancel()
