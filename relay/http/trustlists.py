"""``GET /trustlists/v1/{list}`` and ``/trustlists/v1/{list}/{version}``: hosted trust lists.

Any node serves the trust lists it keeps (``avisa trustlist publish``,
``relay.storage.trustlists``) to anyone, without a token: a list is signed
and public by design, and a subscriber trusts the maintainers' signatures,
never the host. ``/{list}`` answers the highest version kept, ``/{list}/{N}``
version N; both the envelope bytes exactly as published. An id outside the
network id grammar or a version that is not a plain number is a 400
(``AVISA_BAD_QUERY``); a list or version not kept is a 404 (``AVISA_NOT_FOUND``).

``GET /api/v1/trustlists`` (an operator token, any role that reads) lists the
lists this node subscribes to: version held, expiry, last check, the last
refusal with its reason, and how many equivocating copies are kept.
"""

from __future__ import annotations

import re

from aiohttp import web

from keys.store.trustsub_ops import views
from relay.core.errors import BadInput, NotFound
from relay.core.model import valid_network
from relay.http.api import NODE, READ, require
from relay.runtime.httpio import respond
from relay.storage import trustlists

routes = web.RouteTableDef()
_VERSION = re.compile(r"[1-9][0-9]{0,15}")
_HEADERS = {"Cache-Control": "public, max-age=60"}


def _list_id(request: web.Request) -> str:
    name = request.match_info["list"]
    if not valid_network(name):
        raise BadInput("AVISA_BAD_QUERY", "a list id is a network id (e.g. socal.coalition)")
    return name


async def _answer(request: web.Request, name: str, version: int | None) -> web.Response:
    node = request.app[NODE]
    raw = await node.db.read(lambda conn: trustlists.envelope(conn, name, version))
    if raw is None:
        which = "" if version is None else f" version {version}"
        raise NotFound(f"this node keeps no trust list {name}{which}")
    return web.Response(body=raw, content_type="application/json", headers=_HEADERS)


@routes.get("/trustlists/v1/{list}")
async def latest(request: web.Request) -> web.Response:
    return await _answer(request, _list_id(request), None)


@routes.get("/trustlists/v1/{list}/{version}")
async def one_version(request: web.Request) -> web.Response:
    name, text = _list_id(request), request.match_info["version"]
    if not _VERSION.fullmatch(text):
        raise BadInput("AVISA_BAD_QUERY", "a version is a number from 1 (e.g. /socal/3)")
    return await _answer(request, name, int(text))


@routes.get("/api/v1/trustlists")
async def subscriptions(request: web.Request) -> web.Response:
    require(request, READ)
    node = request.app[NODE]
    now = node.clock()
    return respond({"trustlists": await node.db.read(lambda conn: views(conn, now))})
