"""The web desk (DESIGN §13): the node's own pages for coordinators and verifiers.

A sub-application under ``/desk/``: server-rendered Jinja2 pages (autoescaped,
so tip and alert text is always text), one vendored htmx for partial updates
and the live feed, vendored Leaflet for the map, no build step and no request
to any host but the node. ``setup`` mounts it on the node's app.

Every response carries a strict Content-Security-Policy (scripts and styles
from the node only, nothing inline), ``X-Frame-Options: DENY`` and
``Referrer-Policy: no-referrer``. Errors become HTML pages here, inside the
sub-application, before the API's JSON error middleware would see them.

Modules: ``session`` (sessions, cookies, CSRF), ``i18n`` (es/en), ``pages``
(the frame: rendering, forms, errors, login), ``tips``, ``alerts`` (alerts
and held), ``network`` (peers, bridges, decisions), ``views`` (what a
template is given), ``live`` (the stream).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from yarl import URL

from relay.http.api import NODE
from relay.http.webdesk import alerts, i18n, live, network, pages, tips
from relay.http.webdesk.state import DESK, DeskState
from relay.runtime.node import Node

STATIC = Path(__file__).parent / "static"
TEMPLATES = Path(__file__).parent / "templates"


def content_security_policy(tile_url: str) -> str:
    tiles = ""
    if tile_url:
        url = URL(tile_url.replace("{", "").replace("}", ""))
        tiles = f" {url.scheme}://{url.raw_authority}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src 'self'{tiles}; connect-src 'self'; font-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


def _headers(csp: str) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Content-Security-Policy"] = csp
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.path.startswith("/desk/static/") and "v" in request.query:
            response.headers["Cache-Control"] = "max-age=31536000, immutable"
        else:
            response.headers.setdefault("Cache-Control", "no-store")

    return on_prepare


def build(node: Node) -> web.Application:
    section = node.config.desk_web
    desk = web.Application(middlewares=[pages.error_pages])
    desk[NODE] = node
    desk[DESK] = DeskState.from_config(section)
    aiohttp_jinja2.setup(
        desk,
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    desk.on_response_prepare.append(_headers(content_security_policy(section.tile_url)))
    desk.on_shutdown.append(live.close_streams)
    desk.add_routes(pages.routes)
    desk.add_routes(alerts.routes)
    desk.add_routes(network.routes)
    desk.add_routes(live.routes)
    desk.add_routes(tips.routes)
    desk.router.add_static("/static", STATIC, name="static")
    return desk


def setup(app: web.Application, node: Node) -> None:
    """Mount the desk at ``/desk/`` (``/desk`` redirects there)."""

    async def to_desk(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/desk/")

    app.router.add_get("/desk", to_desk)
    app.add_subapp("/desk/", build(node))


__all__ = ["i18n", "setup"]
