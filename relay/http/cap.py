"""The CAP 1.2 / Atom export over HTTP (DESIGN §12): routes and HTTP caching.

What is shown and how it is rendered lives in ``bridges.cap.export``; this
module decides who may read it and answers conditional requests. The feed
and its messages are public only with ``[bridges.cap] public = true``;
otherwise they need an operator token, like the rest of the API. Both carry
an ``ETag`` and ``Last-Modified``; ``If-None-Match`` (which wins when both are
sent) and ``If-Modified-Since`` get a 304 with no body.
"""

from __future__ import annotations

from email.utils import format_datetime, parsedate_to_datetime

from aiohttp import web

from bridges.cap.export import CapExport, Document
from relay.http import api

CAP_EXPORT: web.AppKey[CapExport] = web.AppKey("cap_export", CapExport)
ATOM_TYPE = "application/atom+xml"
CAP_TYPE = "application/cap+xml"
routes = web.RouteTableDef()


def _export(request: web.Request) -> CapExport:
    return request.app[CAP_EXPORT]


def _allowed(request: web.Request) -> bool:
    """Public feeds need nothing; otherwise a token of a role that reads."""
    if request.app[api.NODE].config.bridges.cap.public:
        return True
    api.require(request, api.READ)
    return False


def _base(request: web.Request) -> str:
    """Absolute links: ``[node] url`` (right behind a proxy), else this request's host.

    A URL on port 0 (a node told to bind any free port) is no address at all.
    """
    configured = request.app[api.NODE].config.node.url.rstrip("/")
    if configured and not configured.endswith(":0"):
        return configured
    return f"{request.scheme}://{request.host}"


def not_modified(request: web.Request, document: Document) -> bool:
    wanted = request.headers.get("If-None-Match")
    if wanted is not None:
        tags = {tag.strip().removeprefix("W/") for tag in wanted.split(",")}
        return "*" in tags or document.etag in tags
    since = request.headers.get("If-Modified-Since")
    if since is None:
        return False
    try:
        moment = parsedate_to_datetime(since)
    except (TypeError, ValueError, IndexError):
        return False
    return moment.tzinfo is not None and document.last_modified <= moment


def _answer(
    request: web.Request, document: Document, content_type: str, public: bool
) -> web.Response:
    headers = {
        "ETag": document.etag,
        "Last-Modified": format_datetime(document.last_modified, usegmt=True),
        "Cache-Control": ("public" if public else "private") + ", max-age=30",
        "Vary": "Authorization",
    }
    if not_modified(request, document):
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=document.body, headers=headers, content_type=content_type, charset="utf-8"
    )


@routes.get("/cap/v1/feed.atom")
async def feed(request: web.Request) -> web.Response:
    public = _allowed(request)
    document = await _export(request).feed(_base(request), request.query.get("lang"))
    return _answer(request, document, ATOM_TYPE, public)


@routes.get("/cap/v1/alerts/{network:[a-z0-9][a-z0-9.-]{1,62}}/{ulid:[0-9A-HJKMNP-TV-Z]{26}}.xml")
async def message(request: web.Request) -> web.Response:
    public = _allowed(request)
    alert_id = f"{request.match_info['network']}/{request.match_info['ulid']}"
    document = await _export(request).message(alert_id)
    return _answer(request, document, CAP_TYPE, public)
