"""The text line's API (DESIGN §11): counts, and what an alert would look like as a text.

``GET /api/v1/sms`` (admin): subscribers per keyword and language, and the
queue by state; never a number. ``POST /api/v1/sms/preview`` (publisher,
admin): a draft as ``POST /api/v1/alerts`` takes it, answered with the text
each subscriber language would get, its coding (GSM-7 or UCS-2), its
segment count, and how many subscribers it would reach; nothing is signed
or sent (``avisa alert publish --dry-run-sms``).

The gateway's webhooks (``/sms/v1/{backend}/{secret}``) are routed here and
answered by the line; their template is declared to the log
(``relay.runtime.log.declare_secret_path``), so the secret never reaches a
log line, whatever goes wrong inside.
"""

from __future__ import annotations

import os

from aiohttp import web

from bridges.sms import store as sms_store
from bridges.sms.bridge import SmsBridgeRunner
from bridges.sms.compose import Layout, texts_for
from relay.core import drafts
from relay.core.errors import NotFound
from relay.core.model import Alert
from relay.core.policy import area_matches
from relay.http.api import API_BODY_MAX, NODE, PUBLISH, require
from relay.runtime.httpio import read_json, respond
from relay.runtime.log import declare_secret_path
from relay.runtime.node import Node
from relay.storage.db import Connection

routes = web.RouteTableDef()


def line_of(node: Node) -> SmsBridgeRunner | None:
    for bridge in node.bridges:
        if isinstance(bridge, SmsBridgeRunner):
            return bridge
    return None


async def _webhook(request: web.Request) -> web.StreamResponse:
    """A gateway calling back (inbound text, delivery report): the line decides."""
    line = line_of(request.app[NODE])
    if line is None:
        raise web.HTTPNotFound()
    return await line.webhook(request)


# The path carries the line's inbound secret: declared, so no log line shows it.
WEBHOOK = "/sms/v1/{backend}/{secret}"
declare_secret_path(WEBHOOK)
routes.post(WEBHOOK)(_webhook)
routes.route("*", WEBHOOK + "/{what:report}")(_webhook)


@routes.get("/api/v1/sms")
async def status(request: web.Request) -> web.Response:
    require(request, ("admin",))
    line = line_of(request.app[NODE])
    if line is None:
        raise NotFound("this node runs no text line ([bridges.sms])")
    return respond({**await line.counts(), "line": line.status()})


def _reach(alert: Alert, conn: Connection) -> tuple[int, list[str]]:
    wanted = [
        areas
        for areas in sms_store.area_sets(conn)
        if any(area_matches(alert, area) for area in areas)
    ]
    return sms_store.count_in(conn, wanted), sms_store.languages(conn)


@routes.post("/api/v1/sms/preview")
async def preview(request: web.Request) -> web.Response:
    require(request, PUBLISH)
    node = request.app[NODE]
    config = node.config.bridges.sms
    if config is None:
        raise NotFound("this node runs no text line ([bridges.sms])")
    draft = await read_json(request, API_BODY_MAX, drafts.Draft)
    now = node.clock()
    alert = drafts.build(
        draft,
        network=node.network,
        seq=1,
        alert_id=f"{node.network}/{drafts.ulid(now, os.urandom(10))}",
        now=now,
        max_lifetime=node.trust.policy.max_lifetime,
    )
    recipients, langs = await node.db.read(lambda conn: _reach(alert, conn))
    layout = Layout(config.accents, config.max_segments)
    wanted = sorted(set(langs) | {keyword.lang for keyword in config.keywords})
    encoded = texts_for(alert, "alert", wanted, node.catalogues.words, layout)
    texts = {
        lang: {"text": one.text, "coding": one.coding, "segments": one.segments}
        for lang, one in encoded.items()
    }
    return respond(
        {
            "texted": alert.certainty in config.certainties,
            "recipients": recipients,
            "max_segments": config.max_segments,
            "accents": config.accents,
            "texts": texts,
        }
    )
