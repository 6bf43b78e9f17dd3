"""The desk's frame (DESIGN §13): sessions per request, rendering, forms, errors, login.

The pages live in ``alerts`` (alerts, held), ``network`` (peers, bridges,
decisions) and ``tips``; the live stream in ``live``.

Each page is one GET that renders the whole page, or only its changing part
when htmx asks (``HX-Request``), so the live feed can swap just that part.
Each change is a POST form with the session's CSRF token; it answers with a
redirect back to its page (post/redirect/get), carrying a fixed outcome code
in the query, never text from the request. What a role may not do, the page
does not show (``user.may``) and the handler refuses (``need``).

The changes themselves are the API's and the desk's own functions
(``relay.http.api``, ``node.desk``), so a form and an API call cannot disagree.

Every page is given the same frame by ``page_context`` (an aiohttp-jinja2
context processor): the request's words (``i18n``: ``_("nav.tips")``), the
node, the last form's outcome and the static files' versioned URLs (hashed
once, ``Assets``); ``render`` adds only the signed-in user. Paths come from
route names (``url("tips")`` in templates, ``url_of`` here), so the mount
point (``session.PREFIX``) is said once.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from babel import Locale, UnknownLocaleError
from multidict import MultiDict
from yarl import URL

from relay.core.errors import BadInput, Forbidden
from relay.core.language import LANGUAGE_NAME, N_
from relay.http import api
from relay.http.clientlimit import client_address
from relay.http.webdesk import i18n
from relay.http.webdesk.session import (
    COOKIE,
    MAX_TOKEN_CHARS,
    PREFIX,
    User,
    check_csrf,
    over_tls,
    same_site,
    set_cookie,
    user_for,
)
from relay.http.webdesk.state import DESK
from relay.runtime.httpio import cookie, status_for
from relay.runtime.httpio import read_form as read_form_body
from relay.runtime.node import Node
from relay.storage.catalogues import Catalogues
from relay.storage.trust import ROLES, Role, roles_for

routes = web.RouteTableDef()

FORM_MAX = 32 * 1024
EVERYONE: tuple[Role, ...] = ROLES
OPERATIONS = api.READ
_OUTCOME = re.compile(r"^[A-Za-z_]{1,40}$")


def node_of(request: web.Request) -> Node:
    return request.app[api.NODE]


def current_user(request: web.Request) -> User | None:
    node = node_of(request)
    session = request.app[DESK].sessions.find(cookie(request, COOKIE), node.clock())
    return user_for(session, node.trust.tokens) if session else None


def need(request: web.Request, allowed: tuple[Role, ...]) -> User:
    user = current_user(request)
    if user is None:
        if request.headers.get("HX-Request"):
            expired = url_of(request, "login").with_query(expired="1")
            raise web.HTTPUnauthorized(headers={"HX-Redirect": str(expired)})
        raise web.HTTPSeeOther(url_of(request, "login"))
    if not user.may(allowed):
        raise Forbidden("your role may not do this")
    return user


def nav(user: User | None) -> list[tuple[str, str]]:
    if user is None:
        return []
    pages: list[tuple[str, str, tuple[Role, ...]]] = [
        ("tips", N_("nav.tips"), TIPS_VIEW),
        ("alerts", N_("nav.alerts"), EVERYONE),
        ("held", N_("nav.held"), OPERATIONS),
        ("peers", N_("nav.peers"), OPERATIONS),
        ("bridges", N_("nav.bridges"), OPERATIONS),
        ("decisions", N_("nav.decisions"), OPERATIONS),
    ]
    return [(path, key) for path, key, allowed in pages if user.may(allowed)]


TIPS_VIEW: tuple[Role, ...] = ("intake", "verifier", "publisher")


@dataclass(frozen=True)
class Assets:
    """Each static file's versioned URL (``?v=`` its content's hash), computed once when
    the node starts: a page asks for a name, it never hashes a file."""

    urls: Mapping[str, str]

    def __call__(self, name: str) -> str:
        return self.urls[name]


ASSETS: web.AppKey[Assets] = web.AppKey("assets", Assets)


async def page_context(request: web.Request) -> dict[str, Any]:
    """What every desk page says things with (an aiohttp-jinja2 context processor, run
    for each request before its handler, so also for an error page): the request's
    words (``_``, ``ngettext``, the language switch), the node, the outcome of the
    last form, the static files."""
    words = i18n.words(request)
    node = node_of(request)
    outcome = request.query.get("error", "")

    def why(reason: str) -> str:
        """A policy reason code in words, when the desk has words for it."""
        key = f"reason.{reason}"
        return words.gettext(key) if words.has(key) else ""

    return i18n.template_words(words, node.catalogues) | {
        "why": why,
        "network": node.network,
        "error": outcome if _OUTCOME.match(outcome) else "",
        "done": request.query.get("done") == "1",
        "asset": request.app[ASSETS],
        "agency": lambda code: i18n.agency(words, code),  # ice → ICE, police → Policía
        "language_name": lambda tag: language_name(node.catalogues, tag),
    }


def render(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    *,
    user: User | None,
    page: str = "",
    status: int = 200,
) -> web.Response:
    """``template`` with ``context``, the page's user, and ``page_context``'s words."""
    base = {
        "user": user,
        "roles": sorted(user.roles) if user else [],
        "csrf": user.csrf if user else "",
        "nav": nav(user),
        "page": page,
    }
    response = aiohttp_jinja2.render_template(template, request, base | context, status=status)
    response.headers["Vary"] = "HX-Request, Cookie, Accept-Language"
    if i18n.switched(request):
        set_cookie(
            response,
            i18n.COOKIE,
            i18n.words(request).language,
            secure=over_tls(request),
            max_age=365 * 86400,
        )
    response.enable_compression()
    return response


def language_name(catalogues: Catalogues, tag: str) -> str:
    """An alert text's language, named in itself: the catalogue's ``language.name`` for a
    served language, else Babel's (CLDR) name, else the tag."""
    if tag in catalogues.languages:
        return catalogues.words(tag).gettext(LANGUAGE_NAME)
    try:
        return Locale.parse(tag.replace("-", "_")).get_display_name() or tag
    except (ValueError, UnknownLocaleError):
        return tag


def partial(request: web.Request, full: str, fragment: str) -> str:
    return fragment if request.headers.get("HX-Request") else full


async def read_form(request: web.Request, user: User) -> MultiDict[str]:
    """A bounded urlencoded form, after the same-site and CSRF checks."""
    if not same_site(request, node_of(request).config.node.url):
        raise Forbidden("a form from another site")
    form = await read_form_body(request, FORM_MAX, 64)
    check_csrf(user, form.get("csrf"))
    return form


def url_of(request: web.Request, route: str, /, **parts: str) -> URL:
    """A desk route's URL by its name: the mount point and the paths are said once."""
    return request.app.router[route].url_for(**parts)


async def act(
    back: URL, work: Callable[[], Awaitable[None]], also: Callable[[], str] | None = None
) -> web.StreamResponse:
    """Do a change; go back to the page with its outcome (an error code, or done, and
    what ``also`` adds to the query once the work is done, e.g. a warning)."""
    try:
        await work()
    except BadInput as exc:
        if status_for(exc) in (401, 403):
            raise
        raise web.HTTPSeeOther(f"{back}?error={exc.errcode}") from None
    raise web.HTTPSeeOther(f"{back}?done=1{also() if also else ''}")


# --- errors -----------------------------------------------------------------

FORBIDDEN, NOT_FOUND, COULD_NOT = N_("desk.forbidden"), N_("desk.notfound"), N_("desk.error")


@web.middleware
async def error_pages(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadInput as exc:
        status = status_for(exc)
        key = {403: FORBIDDEN, 404: NOT_FOUND}.get(status, COULD_NOT)
        context = {"title_key": key, "code": exc.errcode}
        return render(request, "error.html", context, user=current_user(request), status=status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        key = NOT_FOUND if exc.status == 404 else COULD_NOT
        context = {"title_key": key, "code": f"HTTP {exc.status}"}
        page = render(request, "error.html", context, user=current_user(request), status=exc.status)
        if "HX-Redirect" in exc.headers:
            page.headers["HX-Redirect"] = exc.headers["HX-Redirect"]
        return page


# --- login ------------------------------------------------------------------


@routes.get("/login", name="login")
async def login_page(request: web.Request) -> web.StreamResponse:
    expired = N_("login.expired") if request.query.get("expired") else ""
    return render(request, "login.html", {"message": expired}, user=None)


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    """Sign in. A correct token always signs in: tokens hold 256 random bits, so no
    limit is what protects them, and refusing one because of failures counted against
    its client (an office behind one address, a proxy) would lock a coordinator out.
    Failed sign-ins are limited per client, as ``/report`` limits posts: past the limit
    a wrong token is answered 429, and counted, instead of 401."""
    node = node_of(request)
    if not same_site(request, node.config.node.url):
        raise Forbidden("a form from another site")
    desk = request.app[DESK]
    form = await read_form_body(request, FORM_MAX, 8)
    token = form.get("token", "").strip()[:MAX_TOKEN_CHARS]
    if not token or roles_for(token, node.trust.tokens) is None:
        if not desk.login_failures.allow(client_address(request)):  # spends a try
            node.metrics.http_error("AVISA_RATE_LIMITED", 429)
            return render(
                request, "login.html", {"message": N_("login.slow")}, user=None, status=429
            )
        node.metrics.http_error("AVISA_UNAUTHORIZED", 401)
        return render(request, "login.html", {"message": N_("login.bad")}, user=None, status=401)
    session_id = desk.sessions.open(token, node.clock())
    response = web.HTTPSeeOther(url_of(request, "home"))
    set_cookie(
        response,
        COOKIE,
        session_id,
        secure=over_tls(request),
        max_age=int(desk.sessions.ttl.total_seconds()),
    )
    raise response


@routes.post("/logout", name="logout")
async def logout(request: web.Request) -> web.StreamResponse:
    user = need(request, EVERYONE)
    await read_form(request, user)
    request.app[DESK].sessions.close(cookie(request, COOKIE))
    response = web.HTTPSeeOther(url_of(request, "login"))
    response.del_cookie(COOKIE, path=PREFIX)
    raise response
