"""The desk's pages and forms (DESIGN §13), except the live stream (``live``).

Each page is one GET that renders the whole page, or only its changing part
when htmx asks (``HX-Request``), so the live feed can swap just that part.
Each change is a POST form with the session's CSRF token; it answers with a
redirect back to its page (post/redirect/get), carrying a fixed outcome code
in the query, never text from the request. What a role may not do, the page
does not show (``user.may``) and the handler refuses (``need``).

The changes themselves are the API's own (``relay.http.api``): the desk signs
updates and cancels and applies review verdicts through the same functions,
so a form and an API call cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, cast
from urllib.parse import parse_qsl

import aiohttp_jinja2
import msgspec
from aiohttp import web
from multidict import MultiDict

from relay.core import drafts
from relay.core.errors import BadInput, Forbidden
from relay.core.model import KINDS
from relay.core.times import rfc3339
from relay.http import api
from relay.http.webdesk import i18n, views
from relay.http.webdesk.session import (
    COOKIE,
    User,
    check_csrf,
    over_tls,
    same_site,
    set_cookie,
    user_for,
)
from relay.http.webdesk.state import DESK
from relay.runtime.explain import explain_envelope
from relay.runtime.httpio import read_body
from relay.runtime.node import Node
from relay.storage import store
from relay.storage.trust import ROLES, Role, roles_for

routes = web.RouteTableDef()

FORM_MAX = 32 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"
EVERYONE: tuple[Role, ...] = ROLES
OPERATIONS = api.READ
EXPIRIES = ("1h", "4h", "12h", "24h", "3d")
_OUTCOME = re.compile(r"^[A-Za-z_]{1,40}$")


def node_of(request: web.Request) -> Node:
    return request.app[api.NODE]


def current_user(request: web.Request) -> User | None:
    node = node_of(request)
    session = request.app[DESK].sessions.find(request.cookies.get(COOKIE), node.clock())
    return user_for(session, node.trust.tokens) if session else None


def need(request: web.Request, allowed: tuple[Role, ...]) -> User:
    user = current_user(request)
    if user is None:
        if request.headers.get("HX-Request"):
            raise web.HTTPUnauthorized(headers={"HX-Redirect": "/desk/login?expired=1"})
        raise web.HTTPSeeOther("/desk/login")
    if not user.may(allowed):
        raise Forbidden("your role may not do this")
    return user


def nav(user: User | None) -> list[tuple[str, str]]:
    if user is None:
        return []
    pages: list[tuple[str, str, tuple[Role, ...]]] = [
        ("tips", "nav.tips", TIPS_VIEW),
        ("alerts", "nav.alerts", EVERYONE),
        ("held", "nav.held", OPERATIONS),
        ("peers", "nav.peers", OPERATIONS),
        ("bridges", "nav.bridges", OPERATIONS),
        ("decisions", "nav.decisions", OPERATIONS),
    ]
    return [(path, key) for path, key, allowed in pages if user.may(allowed)]


TIPS_VIEW: tuple[Role, ...] = ("intake", "verifier", "publisher")


def render(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    *,
    user: User | None,
    page: str = "",
    status: int = 200,
) -> web.Response:
    language, switched = i18n.choose(request)
    t = i18n.translator(language)
    node = node_of(request)
    outcome = request.query.get("error", "")
    static = cast(web.StaticResource, request.app.router["static"])

    def asset(name: str) -> str:
        return str(static.url_for(filename=name, append_version=True))

    def why(reason: str) -> str:
        """A policy reason code in words, when the desk has words for it."""
        key = f"reason.{reason}"
        words = t(key)
        return "" if words == key else words

    base = {
        "t": t,
        "why": why,
        "lang": language,
        "other_lang": "en" if language == "es" else "es",
        "user": user,
        "roles": sorted(user.roles) if user else [],
        "csrf": user.csrf if user else "",
        "nav": nav(user),
        "page": page,
        "network": node.network,
        "error": outcome if _OUTCOME.match(outcome) else "",
        "done": request.query.get("done") == "1",
        "asset": asset,
    }
    response = aiohttp_jinja2.render_template(template, request, base | context, status=status)
    response.headers["Vary"] = "HX-Request, Cookie, Accept-Language"
    if switched:
        set_cookie(
            response,
            i18n.COOKIE,
            language,
            secure=over_tls(request, request.app[DESK].settings.trusted_proxies),
            max_age=365 * 86400,
        )
    response.enable_compression()
    return response


def partial(request: web.Request, full: str, fragment: str) -> str:
    return fragment if request.headers.get("HX-Request") else full


async def read_form(request: web.Request, user: User) -> MultiDict[str]:
    """A bounded urlencoded form, after the same-site and CSRF checks."""
    if not same_site(request):
        raise Forbidden("a form from another site")
    body = await read_body(request, FORM_MAX, FORM_TYPE)
    try:
        form = MultiDict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=64))
    except (UnicodeDecodeError, ValueError):
        raise BadInput("AVISA_BAD_FORM", "not a form") from None
    check_csrf(user, form.get("csrf"))
    return form


async def act(back: str, work: Callable[[], Awaitable[None]]) -> web.StreamResponse:
    """Do a change; go back to the page with its outcome (an error code, or done)."""
    try:
        await work()
    except BadInput as exc:
        if exc.status in (401, 403):
            raise
        raise web.HTTPSeeOther(f"{back}?error={exc.errcode}") from None
    raise web.HTTPSeeOther(f"{back}?done=1")


# --- errors -----------------------------------------------------------------


@web.middleware
async def error_pages(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadInput as exc:
        key = {403: "forbidden", 404: "notfound"}.get(exc.status, "error")
        context = {"title_key": key, "code": exc.errcode}
        return render(request, "error.html", context, user=current_user(request), status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        key = "notfound" if exc.status == 404 else "error"
        context = {"title_key": key, "code": f"HTTP {exc.status}"}
        page = render(request, "error.html", context, user=current_user(request), status=exc.status)
        if "HX-Redirect" in exc.headers:
            page.headers["HX-Redirect"] = exc.headers["HX-Redirect"]
        return page


# --- login ------------------------------------------------------------------


@routes.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    expired = "login.expired" if request.query.get("expired") else ""
    return render(request, "login.html", {"message": expired}, user=None)


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    if not same_site(request):
        raise Forbidden("a form from another site")
    body = await read_body(request, FORM_MAX, FORM_TYPE)
    form = MultiDict(parse_qsl(body.decode(errors="replace"), max_num_fields=8))
    token = form.get("token", "").strip()[:200]
    node = node_of(request)
    desk = request.app[DESK]
    if not token or roles_for(token, node.trust.tokens) is None:
        node.metrics.http_error("AVISA_UNAUTHORIZED", 401)
        return render(request, "login.html", {"message": "login.bad"}, user=None, status=401)
    session_id = desk.sessions.open(token, node.clock())
    response = web.HTTPSeeOther("/desk/")
    set_cookie(
        response,
        COOKIE,
        session_id,
        secure=over_tls(request, desk.settings.trusted_proxies),
        max_age=int(desk.sessions.ttl.total_seconds()),
    )
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    user = need(request, EVERYONE)
    await read_form(request, user)
    request.app[DESK].sessions.close(request.cookies.get(COOKIE))
    response = web.HTTPSeeOther("/desk/login")
    response.del_cookie(COOKIE, path="/desk")
    raise response


# --- alerts -----------------------------------------------------------------


@routes.get("/alerts")
async def alerts(request: web.Request) -> web.StreamResponse:
    user = need(request, EVERYONE)
    node = node_of(request)
    show_all = request.query.get("all") == "1"
    now = node.clock()
    rows = await node.db.read(
        lambda conn: store.listing(conn, now, active_only=not show_all, limit=200)
    )
    language, _ = i18n.choose(request)
    t = i18n.translator(language)
    may_publish = user.may(api.PUBLISH)
    items = [
        views.alert_row(row, now, language, t, own_network=node.network, may_publish=may_publish)
        for row in rows
    ]
    settings = request.app[DESK].settings
    context = {
        "alerts": items,
        "show_all": show_all,
        "tile_url": settings.tile_url,
        "tile_attribution": settings.tile_attribution,
        "expiries": EXPIRIES,
        "kinds": KINDS,
    }
    template = partial(request, "alerts.html", "_alerts_list.html")
    return render(request, template, context, user=user, page="alerts")


def _alert_id(request: web.Request) -> str:
    return f"{request.match_info['network']}/{request.match_info['ulid']}"


def _texts_from_form(form: MultiDict[str], languages: list[str]) -> dict[str, Any]:
    texts: dict[str, Any] = {}
    for language in languages:
        headline = form.get(f"headline_{language}", "").strip()
        if headline:
            texts[language] = {"headline": headline, "body": form.get(f"body_{language}", "")}
    return texts


@routes.post("/alerts/{network}/{ulid}/update")
async def update_alert(request: web.Request) -> web.StreamResponse:
    user = need(request, api.PUBLISH)
    form = await read_form(request, user)
    node = node_of(request)
    alert_id = _alert_id(request)

    async def work() -> None:
        stored = await node.db.read(lambda conn: store.get(conn, alert_id))
        if stored is None:
            raise BadInput("AVISA_NOT_FOUND", "no such alert", 404)
        alert = stored.alert
        expires_in = form.get("expires_in", "")
        if expires_in not in EXPIRIES:
            raise BadInput("AVISA_BAD_DRAFT", "pick an expiry")
        draft = msgspec.convert(
            {
                "kind": form.get("kind", alert.kind),
                "certainty": form.get("certainty", alert.certainty),
                "area": msgspec.to_builtins(alert.area),
                "agencies": list(alert.agencies),
                "text": _texts_from_form(form, list(alert.text)) or msgspec.to_builtins(alert.text),
                "expires_in": expires_in,
                "observed_at": rfc3339(alert.observed_at),
            },
            drafts.Draft,
        )
        await api.sign_draft(node, draft, replaces=alert_id)

    return await act("/desk/alerts", _converting(work))


@routes.post("/alerts/{network}/{ulid}/cancel")
async def cancel_alert(request: web.Request) -> web.StreamResponse:
    user = need(request, api.PUBLISH)
    form = await read_form(request, user)
    node = node_of(request)
    note = form.get("note", "").strip()[:2000]

    async def work() -> None:
        text = {
            language: {
                "headline": i18n.translator(language)("alerts.cancel_headline"),
                "body": note,
            }
            for language in i18n.LANGUAGES
        }
        body = msgspec.convert({"text": text}, drafts.CancelDraft)
        await api.sign_cancel(node, _alert_id(request), body)

    return await act("/desk/alerts", _converting(work))


def _converting(work: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """A form that does not make a valid draft is a 400, like the API's."""

    async def guarded() -> None:
        try:
            await work()
        except msgspec.ValidationError:
            raise BadInput("AVISA_BAD_DRAFT", "the form does not make a valid alert") from None

    return guarded


# --- held -------------------------------------------------------------------


@routes.get("/held")
async def held(request: web.Request) -> web.StreamResponse:
    user = need(request, OPERATIONS)
    node = node_of(request)
    now = node.clock()
    language, _ = i18n.choose(request)
    t = i18n.translator(language)

    def job(conn: Any) -> list[dict[str, Any]]:
        rows = store.listing(conn, now, active_only=False, held=True, limit=200)
        items = []
        for row in rows:
            item = views.alert_row(
                row, now, language, t, own_network=node.network, may_publish=False
            )
            item["reason"] = row.reason
            item["from_peer"] = row.from_peer or "—"
            item["explain"] = explain_envelope(
                conn, node.trust, row.envelope, row.from_peer, now, as_new=True
            )
            items.append(item)
        return items

    items = await node.db.read(job)
    context = {"held": items, "may_review": user.may(api.REVIEW)}
    template = partial(request, "held.html", "_held_list.html")
    return render(request, template, context, user=user, page="held")


@routes.post("/held/{network}/{ulid}/{verdict:accept|reject}")
async def review(request: web.Request) -> web.StreamResponse:
    user = need(request, api.REVIEW)
    await read_form(request, user)
    node = node_of(request)
    accept = request.match_info["verdict"] == "accept"
    return await act("/desk/held", lambda: api.apply_review(node, _alert_id(request), accept))


# --- peers, bridges, decisions ----------------------------------------------


@routes.get("/peers")
async def peers(request: web.Request) -> web.StreamResponse:
    user = need(request, OPERATIONS)
    node = node_of(request)
    now = node.clock()
    language, _ = i18n.choose(request)
    t = i18n.translator(language)
    listing = {entry["network"]: entry for entry in api.peer_listing(node)}
    items = []
    for record in node.trust.peers.values():
        entry = listing.get(record.network, {})
        last = entry.get("last_success")
        items.append(
            entry
            | {
                "healthy": bool(last) and not entry.get("failures"),
                "last_contact": views.relative(_parse_time(last), now, t)
                if last
                else t("peers.never"),
                "backoff_text": views.span(entry.get("backoff") or 0),
                "fingerprints": [
                    {"keyid": key.keyid, "fingerprint": views.cached_fingerprint(key.public_key)}
                    for key in record.keys
                ],
            }
        )
    own_keys = {key.keyid: key for key in node.own_keys()}  # the current key is listed twice
    own = [
        {"keyid": key.keyid, "fingerprint": views.cached_fingerprint(key.public_key)}
        for key in own_keys.values()
    ]
    context = {"peers": items, "own_keys": own}
    template = partial(request, "peers.html", "_peers_list.html")
    return render(request, template, context, user=user, page="peers")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@routes.get("/bridges")
async def bridges(request: web.Request) -> web.StreamResponse:
    user = need(request, OPERATIONS)
    node = node_of(request)
    items = []
    for bridge in node.bridges:
        status = dict(bridge.status())
        kind = str(status.pop("type", "?"))
        groups = {  # routes (Matrix), sources (CAP): one small table each
            key: [[(k, _shown(v)) for k, v in row.items()] for row in value]
            for key, value in status.items()
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
        }
        fields = [(k, _shown(v)) for k, v in status.items() if k not in groups]
        items.append({"type": kind, "fields": fields, "groups": groups})
    context = {"bridges": items}
    template = partial(request, "bridges.html", "_bridges_list.html")
    return render(request, template, context, user=user, page="bridges")


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, list | tuple):
        return ", ".join(_shown(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_shown(v)}" for k, v in value.items())
    return str(value)


DECISION_ACTIONS = ("accept", "hold", "reject")


@routes.get("/decisions")
async def decisions(request: web.Request) -> web.StreamResponse:
    user = need(request, OPERATIONS)
    node = node_of(request)
    now = node.clock()
    language, _ = i18n.choose(request)
    t = i18n.translator(language)
    action = request.query.get("action", "")
    action = action if action in DECISION_ACTIONS else ""
    who = request.query.get("network", "").strip().lower()[:64]
    reason = request.query.get("reason", "")
    rows = await node.db.read(lambda conn: store.decisions(conn, 1000))
    reasons = sorted({row.reason for row in rows})
    reason = reason if reason in reasons else ""
    shown = [
        {
            "at": rfc3339(row.at),
            "ago": views.relative(row.at, now, t),
            "alert_id": row.alert_id or "—",
            "network": row.network or "—",
            "peer": row.peer or "—",
            "action": row.decision,
            "reason": row.reason,
        }
        for row in rows
        if (not action or row.decision == action)
        and (not reason or row.reason == reason)
        and (not who or who in (row.network or "") or who in (row.peer or ""))
    ][:200]
    context = {
        "decisions": shown,
        "actions": DECISION_ACTIONS,
        "reasons": reasons,
        "filter": {"action": action, "reason": reason, "network": who},
    }
    template = partial(request, "decisions.html", "_decisions_list.html")
    return render(request, template, context, user=user, page="decisions")
