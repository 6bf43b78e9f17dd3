"""The tips page (DESIGN §10, §13): new and claimed tips, their clusters, and
claim → outcome → publish, all through ``node.desk`` as the tip API does.

A verifier sees Claim, an outcome form and Close; a publisher sees the
alert that publishing would sign, prefilled by the desk's own ``prefill``
(so the form shows exactly what the API would complete), editable, and only
once the two-person rule allows it: the card says how many distinct
persons have confirmed and how many the node asks for, and the history names
each actor's person. A disputed tip says so; a publisher sees the outcome
form on it, and their outcome settles it (``Desk.outcome(may_rule=...)``). The reporter's
words are shown to the desk (escaped) and never copied into the alert.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

import msgspec
from aiohttp import web
from multidict import MultiDict

from relay.core.drafts import Draft, problems
from relay.core.errors import BadInput
from relay.core.language import N_, Words
from relay.core.model import Area
from relay.core.tipdrafts import (
    DEFAULT_EXPIRES_IN,
    DEFAULT_RADIUS_M,
    PlaceFinder,
    TipDraft,
    prefill,
)
from relay.core.tips import OUTCOMES, Tip, confirmers, publish_certainty, who
from relay.http.webdesk import i18n, picker, tiles, views
from relay.http.webdesk.pages import (
    EVERYONE,
    TIPS_VIEW,
    act,
    need,
    node_of,
    partial,
    read_form,
    render,
    url_of,
)
from relay.http.webdesk.session import User
from relay.http.webdesk.state import DESK
from relay.runtime.desk import Desk
from relay.runtime.node import Node
from relay.storage.trust import Role

routes = web.RouteTableDef()
VERIFY: tuple[Role, ...] = ("verifier",)
PUBLISH: tuple[Role, ...] = ("publisher",)
JUDGE: tuple[Role, ...] = ("verifier", "publisher")
EXPIRIES = ("1h", "2h", "4h", "12h", "24h")


def _desk(node: Node) -> Desk:
    return node.desk


def _ref(request: web.Request) -> str:
    ref = request.match_info["tip"]
    if len(ref) > 26 or not ref.isascii() or not ref.isalnum():
        raise BadInput("AVISA_BAD_QUERY", "a tip is named by its id or its number")
    return ref


def tip_card(
    tip: Tip, user: User, node: Node, words: Words, places: PlaceFinder | None = None
) -> dict[str, Any]:
    """One tip as the page shows it to ``user`` (``places``: the gazetteer, for a
    publisher's draft)."""
    now = node.clock()
    needed = node.desk.section.confirmations
    confirmed_by = confirmers(tip.history)
    certainty = _certainty(tip, needed)
    alert_words = node.desk.alert_words()
    draft = (
        _draft_view(tip, certainty, places, alert_words)
        if certainty and user.may(PUBLISH)
        else None
    )
    return {
        "tip": tip,
        "received": views.relative(tip.received_at, now, words),
        "observed": views.relative(tip.observed_at, now, words) if tip.observed_at else "",
        "history": [
            {
                "ago": views.relative(event.at, now, words),
                "actor": event.actor,
                "person": event.person or "",
                "ruling": event.ruling,
                "mine": event.actor == user.actor,
                "action": event.action,
                "outcome": event.outcome or "",
                "note": event.note or "",
                "alert_id": event.alert_id or "",
            }
            for event in tip.history
        ],
        "confirmations": len(confirmed_by),
        "needed": needed,
        "i_confirmed": any(
            who(event) in confirmed_by for event in tip.history if event.actor == user.actor
        ),
        "certainty": certainty,
        "draft": draft,
        "open": tip.state not in ("published", "closed"),
    }


def _certainty(tip: Tip, needed: int) -> str | None:
    try:
        return publish_certainty(tip.state, tip.history, needed)
    except BadInput:
        return None


def _draft_view(
    tip: Tip, certainty: Any, places: PlaceFinder | None, words: Sequence[Words]
) -> dict[str, Any]:
    """What publishing would sign now, its place completed by the gazetteer
    (``picker``). A tip the desk cannot place gets its texts all the same, and
    the map starts on the whole country for the publisher to pick the place."""
    try:
        draft: Draft | None = prefill(tip, TipDraft(), certainty, places, words=words)
    except BadInput:
        draft = None
    stand_in = Area(
        label=tip.where.label or "-", geohash="0000", radius_m=DEFAULT_RADIUS_M, codes=[]
    )
    shown = draft or prefill(tip, TipDraft(area=stand_in), certainty, words=words)
    zip_code = next((c[4:] for c in tip.where.codes if c.startswith("zip:")), "")
    return {
        "needs_area": draft is None,
        "kind": shown.kind,
        "texts": {lang: {"headline": x.headline, "body": x.body} for lang, x in shown.text.items()},
        "radius_m": shown.area.radius_m,
        "geohash": "" if draft is None else shown.area.geohash,
        "place": picker.view(draft, zip_code, tip.where.label),
    }


@routes.get("/", name="home")
async def home(request: web.Request) -> web.StreamResponse:
    """``/desk/`` is the tips page (DESIGN §13), or the alerts for roles without tips."""
    user = need(request, EVERYONE)
    if not user.may(TIPS_VIEW):
        raise web.HTTPSeeOther(url_of(request, "alerts"))
    return await tips_page(request)


@routes.get("/tips", name="tips")
async def tips_page(request: web.Request) -> web.StreamResponse:
    user = need(request, TIPS_VIEW)
    node = node_of(request)
    show_all = request.query.get("all") == "1"
    found = await _desk(node).listing(open_only=not show_all, cluster=True, limit=200)
    words = i18n.words(request)
    places = await node.desk.places() if user.may(PUBLISH) else None
    settings = request.app[DESK].settings
    warn = request.query.get("warn", "")
    context = {
        "warning": _place_warning_text(warn, node, words),
        "tips": [tip_card(tip, user, node, words, places) for tip in found],
        "map": tiles.map_view(request, settings, words),
        "tile_url": settings.tile_url,
        "tile_attribution": settings.tile_attribution,
        "show_all": show_all,
        "may_verify": user.may(VERIFY),
        "may_publish": user.may(PUBLISH),
        "outcomes": OUTCOMES,
        "expiries": EXPIRIES,
        "default_expiry": DEFAULT_EXPIRES_IN,
        "needed": node.desk.section.confirmations,
    }
    template = partial(request, "tips.html", "_tips_list.html")
    return render(request, template, context, user=user, page="tips")


def _note(form: MultiDict[str]) -> str | None:
    return form.get("note", "").strip()[:1000] or None


@routes.post("/tips/{tip}/claim", name="tip_claim")
async def claim(request: web.Request) -> web.StreamResponse:
    user = need(request, VERIFY)
    form = await read_form(request, user)
    desk = _desk(node_of(request))

    async def work() -> None:
        await desk.claim(_ref(request), user.actor, _note(form))

    return await act(url_of(request, "tips"), work)


@routes.post("/tips/{tip}/outcome", name="tip_outcome")
async def outcome(request: web.Request) -> web.StreamResponse:
    user = need(request, JUDGE)
    form = await read_form(request, user)
    desk = _desk(node_of(request))
    chosen = form.get("outcome", "")

    async def work() -> None:
        if chosen not in OUTCOMES:
            raise BadInput("AVISA_BAD_REQUEST", "pick an outcome")
        duplicate_of = form.get("duplicate_of", "").strip().lstrip("#")[:26] or None
        await desk.outcome(
            _ref(request),
            user.actor,
            chosen,  # type: ignore[arg-type]
            _note(form),
            duplicate_of if chosen == "duplicate" else None,
            may_verify=user.may(VERIFY),
            may_rule=user.may(PUBLISH),
        )

    return await act(url_of(request, "tips"), work)


@routes.post("/tips/{tip}/close", name="tip_close")
async def close(request: web.Request) -> web.StreamResponse:
    user = need(request, VERIFY)
    form = await read_form(request, user)
    desk = _desk(node_of(request))

    async def work() -> None:
        await desk.close(_ref(request), user.actor, _note(form))

    return await act(url_of(request, "tips"), work)


@routes.post("/tips/{tip}/publish", name="tip_publish")
async def publish(request: web.Request) -> web.StreamResponse:
    user = need(request, PUBLISH)
    form = await read_form(request, user)
    desk = _desk(node_of(request))

    async def work() -> None:
        tip = await desk.get(_ref(request))
        fields: dict[str, Any] = {}
        texts = {}
        for language in _text_languages(form):
            headline = form.get(f"headline_{language}", "").strip()
            if headline:
                texts[language] = {"headline": headline, "body": form.get(f"body_{language}", "")}
        if texts:
            fields["text"] = texts
        expires_in = form.get("expires_in", DEFAULT_EXPIRES_IN)
        if expires_in not in EXPIRIES:
            raise BadInput("AVISA_BAD_DRAFT", "pick an expiry")
        fields["expires_in"] = expires_in
        radius = form.get("radius_m", "").strip()
        if radius:
            fields["radius_m"] = _int(radius)
        fields.update(picker.from_form(form))  # the place: the gazetteer completes it
        try:
            draft = msgspec.convert(fields, TipDraft)
        except msgspec.ValidationError:
            raise BadInput("AVISA_BAD_DRAFT", "the form does not make a valid alert") from None
        warned.append(place_warning(await desk.draft_for(tip.id, draft), desk.home_codes))
        await desk.publish(tip.id, user.actor, draft)

    warned: list[str] = []
    back = url_of(request, "tips")
    return await act(back, work, lambda: f"&warn={warned[0]}" if warned[0] else "")


#: What the page says after signing an alert whose place peers will hold (``?warn=``).
PLACE_WARNINGS: Final = {"nocode": N_("tips.warn.nocode"), "outside": N_("tips.warn.outside")}
_TEXT_FIELD = re.compile(r"^headline_([a-z]{2,3}(?:-[A-Za-z0-9]{1,8})?)$")


def _text_languages(form: MultiDict[str]) -> list[str]:
    """The languages the publish form has texts in (its ``headline_<lang>`` fields)."""
    found = (_TEXT_FIELD.match(name) for name in form)
    return list(dict.fromkeys(match.group(1) for match in found if match))[:16]


def _place_warning_text(warn: str, node: Node, words: Words) -> str:
    if warn not in PLACE_WARNINGS:
        return ""
    home = ", ".join(node.config.node.home_codes) or "-"
    return words.gettext(PLACE_WARNINGS[warn], home=home)


def place_warning(draft: Draft, home_codes: list[str] | tuple[str, ...]) -> str:
    """Which warning the published alert's place deserves ("" for none), for the page
    to say in the reader's language (DESIGN §14: nothing is held by surprise)."""
    if not problems(draft, home_codes):
        return ""
    return "outside" if draft.area.codes else "nocode"


def _int(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise BadInput("AVISA_BAD_DRAFT", "the radius is a number of metres")
    return int(text)
