"""``/api/v1/equivocations``: what shows an origin signed two heads, and clearing it.

DESIGN §16. ``GET /api/v1/equivocations`` (any role that reads) lists the
evidence kept (``relay.storage.evidence``), newest first: for each, the origin,
the ``seq``, the kind (``checkpoints``: two checkpoints; ``chain``: a checkpoint
against this node's chain of the origin), both signed envelopes as JSON
objects (``second`` is null when this node no longer holds the message), the
peer that brought the second, when it was seen and, once an operator decided,
when it was cleared. It also names the origins whose new alerts are held for
it (``held_origins``) and the silent ones (``silent``: since when).

``POST /api/v1/equivocations/{network}/clear`` (admin) is the operator's
decision, as ``avisa trust equivocation clear NETWORK`` is: the evidence stays,
marked cleared, and the origin's new alerts are no longer held (those already
held wait in ``/api/v1/held`` for a reviewer). A network with nothing to clear
is a 404. The desk's peers page offers the same decision to an admin
(``relay.http.webdesk.network``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web

from relay.core.errors import BadInput, NotFound
from relay.core.model import valid_network
from relay.core.times import rfc3339
from relay.http.api import NODE, READ, require
from relay.runtime.httpio import respond
from relay.runtime.node import Node
from relay.storage import db, evidence, trust

routes = web.RouteTableDef()
ADMIN: tuple[trust.Role, ...] = ("admin",)


def _view(item: evidence.Evidence) -> dict[str, Any]:
    return {
        "network": item.network,
        "seq": item.seq,
        "kind": item.kind,
        "first": msgspec.Raw(item.first),
        "second": msgspec.Raw(item.second) if item.second else None,
        "from_peer": item.from_peer,
        "seen_at": rfc3339(item.seen_at),
        "cleared_at": None if item.cleared_at is None else rfc3339(item.cleared_at),
    }


@routes.get("/api/v1/equivocations")
async def listing(request: web.Request) -> web.Response:
    require(request, READ)
    node = request.app[NODE]
    items = await node.db.read(evidence.listing)
    silent = {network: rfc3339(since) for network, since in node.silent_origins().items()}
    return respond(
        {
            "equivocations": [_view(item) for item in items],
            "held_origins": sorted(node.trust.policy.equivocating),
            "silent": silent,
        }
    )


def clear(conn: db.Connection, network: str, now: datetime) -> int:
    """``evidence.clear`` and the trust version bumped, in one transaction."""
    cleared = evidence.clear(conn, network, now)
    if cleared:
        trust.bump_version(conn)
    return cleared


async def decide(node: Node, network: str) -> int:
    """The operator's decision about ``network`` (the API's and the desk's): its evidence
    cleared, the trust snapshot reloaded; how many pieces. BadInput, changing nothing,
    for a bad network id or nothing to clear."""
    if not valid_network(network):
        raise BadInput("AVISA_BAD_NETWORK", "not a network id like ventura or oc.resilience")
    now = node.clock()
    cleared = await node.db.write(lambda conn: clear(conn, network, now))
    if not cleared:
        raise NotFound(f"no evidence against {network} waits for a decision")
    await node.reload_trust()
    return cleared


@routes.post("/api/v1/equivocations/{network}/clear")
async def clear_origin(request: web.Request) -> web.Response:
    require(request, ADMIN)
    network = request.match_info["network"]
    cleared = await decide(request.app[NODE], network)
    return respond({"network": network, "cleared": cleared})
