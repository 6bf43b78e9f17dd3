"""The web desk (DESIGN §13): the node's own pages for coordinators and verifiers.

A sub-application under ``/desk/``: server-rendered Jinja2 pages (autoescaped,
so tip and alert text is always text), one vendored htmx for partial updates
and the live feed, vendored Leaflet for the map, no build step and no request
to any host but the node. ``setup`` mounts it on the node's app.

Every response carries a strict Content-Security-Policy (scripts and styles
from the node only, nothing inline), ``X-Frame-Options: DENY`` and
``Referrer-Policy: no-referrer``. Errors become HTML pages here, inside the
sub-application, before the API's JSON error middleware would see them.

Modules: ``session`` (sessions, cookies, CSRF), ``i18n`` (the request's
language by the one rule, and its words from the node's gettext catalogues:
``_("nav.tips")`` in templates), ``pages``
(the frame: rendering, forms, errors, login), ``tips``, ``alerts`` (alerts
and held), ``network`` (peers, bridges, decisions), ``views`` (what a
template is given), ``live`` (the stream), ``picker`` (the place on
the publish form's map), ``tiles`` (the map's streets: the
node's PMTiles archive, read by the browser in ranges; with a raster archive,
``blob:`` images in the policy are the tiles the vendored reader cuts from it,
never a host).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import aiohttp_jinja2
import jinja2
from aiohttp import web
from yarl import URL

from relay.http.api import NODE
from relay.http.webdesk import alerts, i18n, live, network, pages, picker, tiles, tips
from relay.http.webdesk.session import PREFIX
from relay.http.webdesk.state import DESK, DeskState
from relay.runtime.node import Node

STATIC = Path(__file__).parent / "static"
TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class PublicPages:
    """What the node's public pages (``relay.http.report``) render with: the desk's
    template environment and its static files, so there is one way to make HTML."""

    environment: jinja2.Environment
    asset: Callable[[str], str]


PUBLIC_PAGES: web.AppKey[PublicPages] = web.AppKey("public_pages", PublicPages)


def content_security_policy(tile_url: str, blob_images: bool = False) -> str:
    """``blob_images``: a raster archive's tiles, made into images in the page itself."""
    host = " blob:" if blob_images else ""
    if tile_url:
        url = URL(tile_url.replace("{", "").replace("}", ""))
        host += f" {url.scheme}://{url.raw_authority}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src 'self'{host}; connect-src 'self'; font-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


def _headers(csp: str) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Content-Security-Policy"] = csp
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.path.startswith(f"{PREFIX}/static/") and "v" in request.query:
            response.headers["Cache-Control"] = "max-age=31536000, immutable"
        else:
            response.headers.setdefault("Cache-Control", "no-store")

    return on_prepare


def build(node: Node) -> web.Application:
    section = node.config.desk_web
    desk = web.Application(middlewares=[pages.error_pages])
    desk[NODE] = node
    desk[DESK] = DeskState.from_config(section, node.clock.monotonic)
    archive = desk[tiles.TILES] = tiles.probe(node.data_dir, section)
    aiohttp_jinja2.setup(
        desk,
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
        context_processors=[pages.page_context],
    )
    # Each page is given its request's ``_``/``gettext``/``ngettext`` (``i18n``); newstyle:
    # named values as keyword arguments, escaped like any other value.
    aiohttp_jinja2.get_env(desk).newstyle_gettext = True  # type: ignore[attr-defined]
    policy = content_security_policy(section.tile_url, archive.raster)
    desk.on_response_prepare.append(_headers(policy))
    desk.on_shutdown.append(live.close_streams)
    desk.add_routes(pages.routes)
    desk.add_routes(alerts.routes)
    desk.add_routes(network.routes)
    desk.add_routes(live.routes)
    desk.add_routes(tips.routes)
    desk.add_routes(tiles.routes)
    desk.add_routes(picker.routes)
    desk.router.add_static("/static", STATIC, name="static")
    return desk


def setup(app: web.Application, node: Node) -> None:
    """Mount the desk at ``/desk/`` (``/desk`` redirects there); lend its templates and
    static files to the public pages (``PUBLIC_PAGES``)."""

    desk = build(node)

    async def to_desk(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(desk.router["home"].url_for())

    app.router.add_get(PREFIX, to_desk)
    app.add_subapp(f"{PREFIX}/", desk)
    assets = desk[pages.ASSETS] = versioned(cast(web.StaticResource, desk.router["static"]))
    app[PUBLIC_PAGES] = PublicPages(aiohttp_jinja2.get_env(desk), assets)


def versioned(static: web.StaticResource) -> pages.Assets:
    """Every static file's URL with its version (its hash): hashed here, once, after the
    desk is mounted (so the URLs carry its prefix), never while a page renders."""
    names = sorted(
        path.relative_to(STATIC).as_posix()
        for path in STATIC.rglob("*")
        if path.is_file() and path.suffix != ".gz"
    )
    return pages.Assets(
        {name: str(static.url_for(filename=name, append_version=True)) for name in names}
    )


__all__ = ["PUBLIC_PAGES", "PublicPages", "i18n", "setup"]
