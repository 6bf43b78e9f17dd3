"""The desk's operator API (DESIGN §10): tips in, claimed, checked, published.

Thin handlers over ``node.desk``: authenticate with the token's roles
(``relay.http.api.caller``), read a bounded strict body, act, answer. Who
acted is recorded as ``token:<id>`` (the hash prefix ``avisa token list``
shows), never the token. No endpoint returns a contact or a reporter hash:
``Tip`` has no field for either. Tips submitted here come from people at the
desk (``hotline``, ``web``); the ``sms``, ``cap`` and ``matrix`` channels are
the node's own lines (the text line, CAP sources, the desk room) and a token
cannot claim them (403 ``AVISA_CHANNEL_RESERVED``, DESIGN §17).

| role       | may                                                        |
|------------|------------------------------------------------------------|
| intake     | submit tips, read them                                     |
| verifier   | read tips, claim, record an outcome, close                 |
| publisher  | publish an alert from a tip, see its prefilled draft, read;|
|            | record the outcome that settles a disputed tip             |
| admin      | everything                                                 |

A draft's place is completed from the gazetteer (``relay.core.tipplace``):
``POST /api/v1/tips/{id}/draft`` answers what a body would sign and its
``warnings`` (no area code, codes outside ``[node] home_codes``) and signs
nothing; ``publish`` answers the same ``warnings`` beside the alert.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec
from aiohttp import web
from msgspec import Meta

from relay.core.errors import BadInput, Forbidden
from relay.core.tipdrafts import TipDraft
from relay.core.tips import OPERATOR_CHANNELS, Note, Outcome, TipIn
from relay.http.api import API_BODY_MAX, NODE, Caller, caller, warning_words
from relay.runtime.desk import Desk
from relay.runtime.httpio import ascii_count, read_json, respond
from relay.storage.trust import Role

routes = web.RouteTableDef()
TIP_BODY_MAX = 16 * 1024

INTAKE: tuple[Role, ...] = ("intake",)
READ: tuple[Role, ...] = ("intake", "verifier", "publisher")
VERIFY: tuple[Role, ...] = ("verifier",)
PUBLISH: tuple[Role, ...] = ("publisher",)
JUDGE: tuple[Role, ...] = ("verifier", "publisher")


class TipPost(TipIn, frozen=True, forbid_unknown_fields=True):
    """``POST /api/v1/tips``: a tip and, optionally, a phone number to reply to."""

    contact: Annotated[str, Meta(min_length=1, max_length=64)] | None = None


class NoteBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    note: Note | None = None


class OutcomeBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    outcome: Outcome
    note: Note | None = None
    duplicate_of: Annotated[str, Meta(max_length=26)] | None = None


B = TypeVar("B", NoteBody, TipDraft)


def _desk(request: web.Request) -> Desk:
    return request.app[NODE].desk


def actor(who: Caller) -> str:
    return f"token:{who.token_id}"


def _ref(request: web.Request) -> str:
    ref = request.match_info["tip"]
    if len(ref) > 26 or not ref.isascii() or not ref.isalnum():
        raise BadInput("AVISA_BAD_QUERY", "a tip is named by its id or its number")
    return ref


async def _body_or_empty(request: web.Request, type_: type[B]) -> B:
    """The body as ``type_``; no body at all reads as ``{}``."""
    if not request.body_exists:
        return type_()
    return await read_json(request, API_BODY_MAX, type_)


@routes.post("/api/v1/tips")
async def submit(request: web.Request) -> web.Response:
    caller(request, INTAKE)
    posted = await read_json(request, TIP_BODY_MAX, TipPost)
    if posted.channel not in OPERATOR_CHANNELS:
        raise Forbidden(
            f"the {posted.channel} channel is the node's own line; a token may submit"
            f" tips on {' or '.join(OPERATOR_CHANNELS)}",
            "AVISA_CHANNEL_RESERVED",
        )
    fields = msgspec.structs.asdict(posted)
    contact = fields.pop("contact")
    tip_id = await _desk(request).submit(TipIn(**fields), contact=contact)
    return respond({"id": tip_id}, 201)


@routes.get("/api/v1/tips")
async def listing(request: web.Request) -> web.Response:
    caller(request, READ)
    state = request.query.get("state", "open")
    cluster = request.query.get("cluster", "false")
    if state not in ("open", "all") or cluster not in ("true", "false"):
        raise BadInput("AVISA_BAD_QUERY", "state is open or all; cluster is true or false")
    limit = ascii_count(request.query.get("limit", "200"))
    if limit is None or not 1 <= limit <= 1000:
        raise BadInput("AVISA_BAD_QUERY", "limit must be an integer from 1 to 1000")
    found = await _desk(request).listing(
        open_only=state == "open", cluster=cluster == "true", limit=limit
    )
    return respond({"tips": found})


@routes.get("/api/v1/tips/{tip}")
async def get_tip(request: web.Request) -> web.Response:
    caller(request, READ)
    return respond(await _desk(request).get(_ref(request)))


@routes.post("/api/v1/tips/{tip}/claim")
async def claim(request: web.Request) -> web.Response:
    who = caller(request, VERIFY)
    body = await _body_or_empty(request, NoteBody)
    return respond(await _desk(request).claim(_ref(request), actor(who), body.note))


@routes.post("/api/v1/tips/{tip}/outcome")
async def outcome(request: web.Request) -> web.Response:
    who = caller(request, JUDGE)
    body = await read_json(request, API_BODY_MAX, OutcomeBody)
    shown = await _desk(request).outcome(
        _ref(request),
        actor(who),
        body.outcome,
        body.note,
        body.duplicate_of,
        may_verify=bool(who.roles & {"verifier", "admin"}),
        may_rule=bool(who.roles & {"publisher", "admin"}),
    )
    return respond(shown)


@routes.post("/api/v1/tips/{tip}/close")
async def close(request: web.Request) -> web.Response:
    who = caller(request, VERIFY)
    body = await _body_or_empty(request, NoteBody)
    return respond(await _desk(request).close(_ref(request), actor(who), body.note))


@routes.get("/api/v1/tips/{tip}/draft")
async def draft(request: web.Request) -> web.Response:
    """The prefilled draft a publisher would start from (409 until it may be published)."""
    caller(request, PUBLISH)
    return respond(await _desk(request).draft_for(_ref(request)))


@routes.post("/api/v1/tips/{tip}/draft")
async def preview(request: web.Request) -> web.Response:
    """What publishing this body would sign, and what to warn about first; signs nothing."""
    caller(request, PUBLISH)
    desk = _desk(request)
    body = await _body_or_empty(request, TipDraft)
    complete = await desk.draft_for(_ref(request), body)
    return respond({"draft": complete, "warnings": desk.warnings(complete, warning_words(request))})


@routes.post("/api/v1/tips/{tip}/publish")
async def publish(request: web.Request) -> web.Response:
    who = caller(request, PUBLISH)
    desk = _desk(request)
    draft = await _body_or_empty(request, TipDraft)
    warned = desk.warnings(await desk.draft_for(_ref(request), draft), warning_words(request))
    alert_id, envelope = await desk.publish(_ref(request), actor(who), draft)
    return respond({"id": alert_id, "envelope": msgspec.Raw(envelope), "warnings": warned}, 201)
