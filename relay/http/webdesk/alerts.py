"""Alerts (map and list; update and cancel our own) and the held queue (the
policy's explanation; accept or reject), as forms over the API's own functions
(``relay.http.api``: ``sign_draft``, ``sign_cancel``, ``apply_review``), so a
form and an API call cannot disagree."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web
from multidict import MultiDict

from relay.core import drafts
from relay.core.errors import BadInput, NotFound
from relay.core.language import N_, Words
from relay.core.model import KINDS
from relay.core.times import rfc3339
from relay.http import api
from relay.http.webdesk import i18n, tiles, views
from relay.http.webdesk.pages import (
    EVERYONE,
    OPERATIONS,
    act,
    need,
    node_of,
    partial,
    read_form,
    render,
    url_of,
)
from relay.http.webdesk.state import DESK
from relay.runtime.explain import explain_envelope
from relay.runtime.node import Node
from relay.runtime.pipeline import Rejected, prepare
from relay.storage import store

routes = web.RouteTableDef()
EXPIRIES = ("1h", "4h", "12h", "24h", "3d")


@routes.get("/alerts", name="alerts")
async def alerts(request: web.Request) -> web.StreamResponse:
    user = need(request, EVERYONE)
    node = node_of(request)
    show_all = request.query.get("all") == "1"
    now = node.clock()
    rows = await node.db.read(
        lambda conn: store.listing(conn, now, active_only=not show_all, limit=200)
    )
    words = i18n.words(request)
    may_publish = user.may(api.PUBLISH)
    items = [
        views.alert_row(row, now, words, own_network=node.network, may_publish=may_publish)
        for row in rows
    ]
    silent = node.silent_origins()  # DESIGN §16: say so beside each active alert
    for item in items:
        since = silent.get(item["origin"]) if item["state"] == "active" else None
        item["origin_silent"] = (
            ""
            if since is None
            else words.gettext(
                "peers.origin_silent",
                network=item["origin"],
                since=views.clock_time(since, words),
            )
        )
    settings = request.app[DESK].settings
    context = {
        "alerts": items,
        "show_all": show_all,
        "tile_url": settings.tile_url,
        "tile_attribution": settings.tile_attribution,
        "map": tiles.map_view(request, settings, words),
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


@routes.post("/alerts/{network}/{ulid}/update", name="alert_update")
async def update_alert(request: web.Request) -> web.StreamResponse:
    user = need(request, api.PUBLISH)
    form = await read_form(request, user)
    node = node_of(request)
    alert_id = _alert_id(request)

    async def work() -> None:
        stored = await node.db.read(lambda conn: store.get(conn, alert_id))
        if stored is None:
            raise NotFound("no such alert")
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

    return await act(url_of(request, "alerts"), _converting(work))


@routes.post("/alerts/{network}/{ulid}/cancel", name="alert_cancel")
async def cancel_alert(request: web.Request) -> web.StreamResponse:
    user = need(request, api.PUBLISH)
    form = await read_form(request, user)
    node = node_of(request)
    note = form.get("note", "").strip()[:2000]

    async def work() -> None:
        catalogues = node.catalogues
        text = {  # in every language the node serves, each in its own words
            language: {
                "headline": catalogues.words(language).gettext("alerts.cancel_headline"),
                "body": note,
            }
            for language in catalogues.languages
        }
        body = msgspec.convert({"text": text}, drafts.CancelDraft)
        await api.sign_cancel(node, _alert_id(request), body)

    return await act(url_of(request, "alerts"), _converting(work))


def _converting(work: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """A form that does not make a valid draft is a 400, like the API's."""

    async def guarded() -> None:
        try:
            await work()
        except msgspec.ValidationError:
            raise BadInput("AVISA_BAD_DRAFT", "the form does not make a valid alert") from None

    return guarded


# --- held -------------------------------------------------------------------


@routes.get("/held", name="held")
async def held(request: web.Request) -> web.StreamResponse:
    user = need(request, OPERATIONS)
    node = node_of(request)
    now = node.clock()
    words = i18n.words(request)

    def job(conn: Any) -> list[dict[str, Any]]:
        rows = store.listing(conn, now, active_only=False, held=True, limit=200)
        items = []
        for row in rows:
            item = views.alert_row(row, now, words, own_network=node.network, may_publish=False)
            item["reason"] = row.reason
            item["from_peer"] = row.from_peer or "—"
            item["explain"] = explain_envelope(
                conn, node.trust, row.envelope, row.from_peer, now, as_new=True
            )
            item["signatures"] = _signature_lines(row.envelope, node, words)
            items.append(item)
        return items

    items = await node.db.read(job)
    context = {"held": items, "may_review": user.may(api.REVIEW)}
    template = partial(request, "held.html", "_held_list.html")
    return render(request, template, context, user=user, page="held")


VALID, INVALID = N_("held.signature.valid"), N_("held.signature.invalid")
UNKNOWN_KEY = N_("held.signature.unknown")


def _signature_lines(raw: bytes, node: Node, words: Words) -> list[str]:
    """Each signature of a held alert, said in the reader's words (key, network, valid)."""
    prepared = prepare(raw, node.trust)
    if isinstance(prepared, Rejected):
        return []
    return [
        words.gettext(
            VALID if check.valid else INVALID, keyid=check.keyid, network=check.entry.network
        )
        if check.entry
        else words.gettext(UNKNOWN_KEY, keyid=check.keyid)
        for check in prepared.verification.checks
    ]


@routes.post("/held/{network}/{ulid}/{verdict:accept|reject}", name="held_verdict")
async def review(request: web.Request) -> web.StreamResponse:
    user = need(request, api.REVIEW)
    await read_form(request, user)
    node = node_of(request)
    accept = request.match_info["verdict"] == "accept"
    back = url_of(request, "held")
    return await act(back, lambda: api.apply_review(node, _alert_id(request), accept))
