"""The local operator API (DESIGN §6): publish, review, read, stream.

Handlers are thin: authenticate, read a bounded strict body, call the
pipeline or a store query, shape the reply. Alert ids contain a ``/``
(``network/ULID``), so routes take them as two path segments.

Roles (a token may hold several): ``publisher`` publishes, updates and
cancels; ``reviewer`` works the held queue; ``admin`` may do everything.
Every role may read alerts. The desk's roles (``intake``, ``verifier``) and
its endpoints are in ``relay.http.desk``. ``require`` is the one check: 401
for no or an unknown token, 403 ``AVISA_FORBIDDEN`` naming what the token's
roles may not do. ``/healthz`` needs no token.
``/metrics`` needs an ``admin`` or ``metrics`` token unless
``[node] metrics_public = true``; its public figures are the node's and its
peers' (alerts, decisions, refusals, federation), never desk activity (tips,
claims, outcomes, submissions per channel) nor the bridges' and CAP sources'.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

import msgspec
from aiohttp import web

from keys.cards.trustmerge import source_view
from relay.core import drafts
from relay.core.errors import BadInput, Conflict, Forbidden, NotFound, Unauthorized
from relay.core.language import Words, negotiate
from relay.core.model import Alert
from relay.core.policy import Decision, area_matches
from relay.runtime.httpio import (
    ascii_count,
    authorization,
    convert,
    read_body,
    read_json,
    respond,
    strict_loads,
)
from relay.runtime.metrics import Metrics
from relay.runtime.node import Node
from relay.storage import gaps, runlock, store
from relay.storage import tips as tip_store
from relay.storage.db import Connection
from relay.storage.trust import ROLES, Role, Roles, roles_for, token_id
from relay.storage.writes import Writes

NODE: web.AppKey[Node] = web.AppKey("node", Node)
STREAMS = web.AppKey("streams", set[asyncio.Task[Any]])
API_BODY_MAX = 64 * 1024
NO_BODY_MAX = 1024
MAX_STREAMS = 64
KEEPALIVE_S = 15.0
_json = msgspec.json.Encoder()
routes = web.RouteTableDef()

PUBLISH: tuple[Role, ...] = ("publisher", "admin")
REVIEW: tuple[Role, ...] = ("reviewer", "admin")
# Every role reads alerts but ``metrics``, which reads only /metrics (DESIGN §17).
READ: tuple[Role, ...] = tuple(role for role in ROLES if role != "metrics")
METRICS: tuple[Role, ...] = ("metrics", "admin")


def _node(request: web.Request) -> Node:
    return request.app[NODE]


class Caller(msgspec.Struct, frozen=True):
    """Who made a request: the token's id (never the token) and its roles."""

    token_id: str
    roles: Roles


def caller(request: web.Request, allowed: tuple[Role, ...]) -> Caller:
    header = authorization(request) or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("AVISA_UNAUTHORIZED", "send Authorization: Bearer <token>")
    roles = roles_for(token.strip(), _node(request).trust.tokens)
    if roles is None:
        raise Unauthorized("AVISA_UNAUTHORIZED", "unknown token")
    if not roles & {*allowed, "admin"}:
        held = ", ".join(sorted(roles))
        raise Forbidden(f"a token with the roles {held} may not do this")
    return Caller(token_id(token.strip()), roles)


def require(request: web.Request, allowed: tuple[Role, ...]) -> Roles:
    """The caller's roles, once one of them is in ``allowed`` (admin always is)."""
    return caller(request, allowed).roles


def warning_words(request: web.Request) -> Words:
    """The words the API's warnings are said in: the one rule, with a client that asks for
    nothing taken to ask for English, the language of the API's error messages."""
    node = _node(request)
    asked = request.headers.get("Accept-Language", "")[:1000] or "en"
    return node.catalogues.words(negotiate(node.catalogues.languages, accept_language=asked))


def _alert_id(request: web.Request) -> str:
    return f"{request.match_info['network']}/{request.match_info['ulid']}"


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    value = ascii_count(raw)
    if value is None or not low <= value <= high:
        raise BadInput("AVISA_BAD_QUERY", f"{name} must be an integer from {low} to {high}")
    return value


def _new_id(node: Node, now: datetime) -> str:
    return f"{node.network}/{drafts.ulid(now, os.urandom(10))}"


async def _signed(node: Node, build: Any) -> tuple[str, bytes]:
    outcome, raw = await node.pipeline.publish(build, await node.signing_key())
    assert outcome.id is not None  # an accepted outcome always names its alert
    return outcome.id, raw


# --- publishing -------------------------------------------------------------


async def _publish_draft(request: web.Request, *, replaces: str | None = None) -> web.Response:
    """Sign a draft as a new alert, or as the update of ``replaces`` (or of its newest
    version); an update's draft gives only what changes (``drafts.carried``)."""
    require(request, PUBLISH)
    node = _node(request)
    raw = drafts.tidy(strict_loads(await read_body(request, API_BODY_MAX)))
    previous = await _own_current(node, replaces) if replaces else None
    draft = convert(drafts.carried(previous.alert, raw) if previous else raw, drafts.Draft)
    alert_id, envelope = await node.publish_draft(draft, previous.alert if previous else None)
    reply: dict[str, Any] = {"id": alert_id, "envelope": msgspec.Raw(envelope)}
    reply["warnings"] = drafts.warnings(draft, node.config.node.home_codes, warning_words(request))
    if previous:
        reply["replaces"] = previous.alert.id
    return respond(reply, 201)


@routes.post("/api/v1/alerts")
async def create_alert(request: web.Request) -> web.Response:
    return await _publish_draft(request)


async def _own_current(node: Node, alert_id: str) -> store.StoredAlert:
    """The alert an update or cancel replaces: ours, shown, and the newest version
    of ``alert_id`` (an id an update superseded leads to the update)."""
    stored = await node.db.read(lambda conn: store.get(conn, alert_id))
    if stored is None:
        raise NotFound(f"no alert {alert_id}")
    if stored.alert.network != node.network:
        raise Forbidden("only the origin network can update or cancel an alert")
    newest, cancelled = await node.db.read(lambda conn: store.newest_version(conn, alert_id))
    if cancelled:
        raise Conflict("AVISA_CANCELLED", f"alert {alert_id} is cancelled (by {newest})")
    if newest != alert_id:
        found = await node.db.read(lambda conn: store.get(conn, newest))
        stored = found or stored
    state = stored.view_state(node.clock())
    if state != "active":
        raise Conflict(f"AVISA_{state.upper()}", f"alert {stored.alert.id} is {state}")
    return stored


@routes.post("/api/v1/alerts/{network}/{ulid}/update")
async def update_alert(request: web.Request) -> web.Response:
    return await _publish_draft(request, replaces=_alert_id(request))


async def sign_draft(
    node: Node, draft: drafts.Draft, *, replaces: str | None = None
) -> tuple[str, bytes]:
    """Sign a complete draft as a new alert, or as the update of ``replaces`` (the web
    desk's forms send whole drafts): (id, envelope)."""
    previous = await _own_current(node, replaces) if replaces else None
    return await node.publish_draft(draft, previous.alert if previous else None)


@routes.post("/api/v1/alerts/{network}/{ulid}/cancel")
async def cancel_alert(request: web.Request) -> web.Response:
    require(request, PUBLISH)
    body = await read_json(request, API_BODY_MAX, drafts.CancelDraft)
    cancel_id, raw, cancels = await sign_cancel(_node(request), _alert_id(request), body)
    return respond({"id": cancel_id, "envelope": msgspec.Raw(raw), "cancels": cancels}, 201)


async def sign_cancel(
    node: Node, alert_id: str, body: drafts.CancelDraft
) -> tuple[str, bytes, str]:
    """Sign the cancel of our own ``alert_id`` (its newest version): the cancel's id,
    its envelope, and the id it cancels."""
    previous = await _own_current(node, alert_id)
    now = node.clock()
    cancel_id = _new_id(node, now)
    signed_id, raw = await _signed(
        node,
        lambda seq: drafts.cancel_of(
            previous.alert,
            body,
            seq=seq,
            alert_id=cancel_id,
            now=now,
        ),
    )
    return signed_id, raw, previous.alert.id


# --- reading ----------------------------------------------------------------


@routes.get("/api/v1/alerts")
async def list_alerts(request: web.Request) -> web.Response:
    require(request, READ)
    node = _node(request)
    active = request.query.get("active", "false")
    if active not in ("true", "false"):
        raise BadInput("AVISA_BAD_QUERY", "active must be true or false")
    area = request.query.get("area", "")
    if len(area) > 40:
        raise BadInput("AVISA_BAD_QUERY", "area is a code or a geohash prefix")
    limit = _int_param(request, "limit", 100, 1, 1000)
    now = node.clock()
    in_force = active == "true"

    def keep(alert: Alert) -> bool:
        if in_force and alert.msg_type == "cancel":
            return False  # a withdrawal is never in force
        return not area or area_matches(alert, area)

    rows = await node.db.read(
        lambda conn: store.listing(conn, now, active_only=in_force, limit=limit, keep=keep)
    )
    silent = node.silent_origins()
    views = [row.view(now, silent) for row in rows]
    return respond({"alerts": views})


@routes.get("/api/v1/alerts/{network}/{ulid}")
async def get_alert(request: web.Request) -> web.Response:
    require(request, READ)
    node = _node(request)
    alert_id = _alert_id(request)
    stored = await node.db.read(lambda conn: store.get(conn, alert_id))
    if stored is None:
        raise NotFound(f"no alert {alert_id}")
    view = msgspec.to_builtins(stored.view(node.clock(), node.silent_origins()))
    view["envelope"] = msgspec.Raw(stored.envelope)
    return respond(view)


@routes.get("/api/v1/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events from the feed; resumes from ``Last-Event-ID``."""
    require(request, READ)
    node = _node(request)
    resume = request.headers.get("Last-Event-ID") or request.query.get("since")
    position = ascii_count(resume)
    if resume is not None and position is None:
        raise BadInput("AVISA_BAD_QUERY", "Last-Event-ID must be a feed position")
    pos = position if position is not None else node.feed.head
    return await event_stream(
        request, node.metrics, request.app[STREAMS], lambda response: _pump(node, response, pos)
    )


async def event_stream(
    request: web.Request,
    metrics: Metrics,
    streams: set[asyncio.Task[Any]],
    pump: Callable[[web.StreamResponse], Awaitable[None]],
) -> web.StreamResponse:
    """A Server-Sent Events response that ``pump`` writes until the client goes: at most
    ``MAX_STREAMS`` at once, counted in metrics, ended at shutdown through ``streams``
    (the API's feed and the web desk's live page both stream this way)."""
    if metrics.sse_clients >= MAX_STREAMS:
        raise BadInput("AVISA_TOO_MANY_STREAMS", "too many open streams")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    metrics.sse_clients += 1
    task = asyncio.current_task()
    assert task is not None
    streams.add(task)
    try:
        await pump(response)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        streams.discard(task)
        metrics.sse_clients -= 1
    return response


async def close_streams(app: web.Application) -> None:
    """On shutdown, end open streams now instead of at their next keepalive."""
    streams = app[STREAMS]
    for task in [*streams]:
        task.cancel()


async def _pump(node: Node, response: web.StreamResponse, cursor: int) -> None:
    while True:
        rows = await node.db.read(partial(store.feed_since, pos=cursor, limit=100))
        for pos, stored in rows:
            data = _json.encode(stored.view(node.clock(), node.silent_origins())).decode()
            event = stored.alert.msg_type
            await response.write(f"id: {pos}\nevent: {event}\ndata: {data}\n\n".encode())
            cursor = pos
        if not rows and not await node.feed.wait_beyond(cursor, KEEPALIVE_S):
            await response.write(b": keepalive\n\n")


# --- review -----------------------------------------------------------------


@routes.get("/api/v1/held")
async def held(request: web.Request) -> web.Response:
    require(request, READ)
    node = _node(request)
    now = node.clock()
    rows = await node.db.read(
        lambda conn: store.listing(conn, now, active_only=False, held=True, limit=1000)
    )
    items = []
    for row in rows:
        item = msgspec.to_builtins(row.view(now))
        item |= {"reason": row.reason, "from_peer": row.from_peer}
        items.append(item)
    return respond({"held": items})


async def _no_body(request: web.Request) -> None:
    """A call that takes no body accepts none, or ``{}``: a body meant for
    something else must not be read as a yes."""
    if not request.body_exists:
        return
    if strict_loads(await read_body(request, NO_BODY_MAX)) != {}:
        raise BadInput("AVISA_BAD_REQUEST", "this call takes no body (or {})")


@routes.post("/api/v1/held/{network}/{ulid}/{verdict:accept|reject}")
async def review(request: web.Request) -> web.Response:
    require(request, REVIEW)
    await _no_body(request)
    alert_id = _alert_id(request)
    verdict = request.match_info["verdict"]
    await apply_review(_node(request), alert_id, accept=verdict == "accept")
    return respond({"id": alert_id, "state": "active" if verdict == "accept" else "rejected"})


async def apply_review(node: Node, alert_id: str, accept: bool) -> None:
    """A reviewer's verdict on a held alert: publish it, or reject it for good."""
    now = node.clock()

    def job(conn: Connection) -> int | None:
        stored = store.get(conn, alert_id)
        if stored is None or stored.state != "held":
            raise NotFound(f"no held alert {alert_id} (avisa held list shows what waits)")
        alert = stored.alert
        if not accept:
            store.reject_held(conn, alert_id, now, node.tombstone_ttl)
            store.record_decision(conn, now, Decision("reject", "reviewer"), alert, None)
            return None
        if alert.expires_at <= now:
            raise Conflict("AVISA_EXPIRED", f"alert {alert_id} has expired")
        if store.policy_state(conn, alert, None).references_cancelled:
            raise Conflict("AVISA_CANCELLED", "it updates an alert that was cancelled")
        writes = Writes(conn, now, node.tombstone_ttl)
        pos = writes.activate(alert, stored.keyids, stored.from_peer)
        store.record_decision(conn, now, Decision("accept", "reviewer"), alert, None)
        return pos

    pos = await node.db.write(job)
    if pos:
        node.feed.advance(pos)


@routes.get("/api/v1/decisions")
async def decisions(request: web.Request) -> web.Response:
    require(request, READ)
    node = _node(request)
    limit = _int_param(request, "limit", 100, 1, 1000)
    rows = await node.db.read(lambda conn: store.decisions(conn, limit))
    return respond({"decisions": rows})


@routes.get("/api/v1/peers")
async def peers(request: web.Request) -> web.Response:
    require(request, READ)
    node = _node(request)
    waiting = await node.db.read(gaps.by_peer)
    return respond({"peers": peer_listing(node, waiting)})


def peer_listing(
    node: Node, waiting: Mapping[str, gaps.PeerGaps] | None = None
) -> list[dict[str, Any]]:
    """Each trusted peer: its policy, its keys, its link's status, and (given
    ``waiting``, from ``gaps.by_peer``) the seq gaps it left."""
    result = []
    now = node.clock()
    for record in node.trust.peers.values():
        policy = record.policy
        entry: dict[str, Any] = {
            "network": record.network,
            "url": record.url,
            "speaks_for": list(policy.speaks_for),
            "kinds": sorted(policy.kinds),
            "certainties": sorted(policy.certainties),
            "forward": policy.forward,
            "endorse": policy.endorse,
            "relay": policy.relay,
            "keys": [key.keyid for key in record.keys],
        }
        entry |= source_view(policy, now)
        entry |= node.peer_status(record.network)
        if waiting is not None:
            peer_gaps = waiting.get(record.network, gaps.PeerGaps(0, 0, 0, []))
            entry["seq_gaps"] = {
                "open": peer_gaps.ranges,
                "missing": peer_gaps.missing,
                "unpulled": peer_gaps.unpulled,
                "newest": peer_gaps.newest,
            }
        result.append(entry)
    return result


@routes.get("/api/v1/bridges")
async def bridges(request: web.Request) -> web.Response:
    """Each bridge and route: cursor, backlog, last success, last error, backoff."""
    require(request, READ)
    node = _node(request)
    return respond({"bridges": [bridge.status() for bridge in node.bridges]})


# --- health -----------------------------------------------------------------


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    node = _node(request)
    directory = runlock.directory_id(node.data_dir)  # the CLI's check against a copy
    return respond(
        {"status": "ok", "network": node.network, "keyid": node.key.keyid, "dir": directory}
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    node = _node(request)
    public = node.config.node.metrics_public and authorization(request) is None
    if not public:
        require(request, METRICS)
    now = node.clock()
    counts = await node.db.read(lambda conn: store.counts(conn, now))
    waiting = await node.db.read(gaps.by_peer)
    gauges: dict[str, dict[tuple[tuple[str, str], ...], float]] = {
        "avisa_alerts": {(("state", state),): float(n) for state, n in counts.items()},
        "avisa_feed_position": {(): float(node.feed.head)},
        "avisa_db_commits": {(): float(node.db.commits)},
        "avisa_sse_clients": {(): float(node.metrics.sse_clients)},
        "avisa_verify_workers": {(): float(node.verifier.alive)},
        # seq gaps each peer left that this node is waiting to fill (docs/federation.md)
        "avisa_peer_seq_gaps": {(("peer", p),): float(g.ranges) for p, g in waiting.items()},
        "avisa_peer_seq_gap_messages": {
            (("peer", p),): float(g.missing) for p, g in waiting.items()
        },
        "avisa_peer_seq_gaps_unpulled": {
            (("peer", p),): float(g.unpulled) for p, g in waiting.items()
        },
    }
    collectors = None
    if public:  # the node's and its peers' figures only: nothing from the desk or bridges
        collectors = [node.federation.metrics_lines] if node.federation else []
    else:
        tip_counts = await node.db.read(tip_store.counts)
        gauges["avisa_tips"] = {(("state", state),): float(n) for state, n in tip_counts.items()}
    text = node.metrics.render(gauges, collectors)
    return web.Response(text=text, content_type="text/plain")
