"""Peers (health, backlog, last error, the seq gaps each left that this node is
waiting to fill, what checkpoints showed it withheld, the word from it as an
origin (silent since when), a split view caught, fingerprints to read aloud, local or
through which trust list, with a notice for a list that expired, expires within a
week or was refused), bridges
(each one's status), and the decision log (filterable)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from keys.store import trustsub_ops
from relay.core.times import rfc3339
from relay.http import api, chainview
from relay.http.webdesk import i18n, views
from relay.http.webdesk.pages import (
    OPERATIONS,
    act,
    need,
    node_of,
    partial,
    read_form,
    render,
)
from relay.storage import evidence, gaps, store

routes = web.RouteTableDef()


@routes.get("/peers")
async def peers(request: web.Request) -> web.StreamResponse:
    user = need(request, OPERATIONS)
    node = node_of(request)
    now = node.clock()
    language, _ = i18n.choose(request)
    t = i18n.translator(language)
    waiting = await node.db.read(gaps.by_peer)
    splits = {  # origins caught equivocating, not cleared: the newest seq of the split
        item.network: item.seq
        for item in reversed(await node.db.read(evidence.listing))
        if item.cleared_at is None
    }
    listing = {entry["network"]: entry for entry in api.peer_listing(node, waiting)}
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
                "last_error_when": views.relative(_parse_time(entry["last_error_at"]), now, t)
                if entry.get("last_error_at")
                else "",
                "fingerprints": [
                    {"keyid": key.keyid, "fingerprint": views.cached_fingerprint(key.public_key)}
                    for key in record.keys
                ],
                "trusted_text": _trusted_text(entry, t),
            }
            | _chain_facts(record.network, entry, splits, t)
        )
    own_keys = {key.keyid: key for key in node.own_keys()}  # the current key is listed twice
    own = [
        {"keyid": key.keyid, "fingerprint": views.cached_fingerprint(key.public_key)}
        for key in own_keys.values()
    ]
    lists = await node.db.read(lambda conn: trustsub_ops.views(conn, now))
    context = {
        "peers": items,
        "own_keys": own,
        "list_notices": _list_notices(lists, now, t),
        "may_decide": user.may(chainview.ADMIN),
    }
    template = partial(request, "peers.html", "_peers_list.html")
    return render(request, template, context, user=user, page="peers")


def _trusted_text(entry: dict[str, Any], t: Callable[[str], str]) -> str:
    """Local, or through which lists (version, expiry), in the desk's words."""
    if entry.get("trusted_via") != "list":
        return t("peers.local")
    via = "; ".join(
        t("peers.via_list").format(s["list"], s["version"], s["expires_at"][:10])
        for s in entry["lists"]
    )
    return via + (f" — {t('peers.frozen')}" if entry.get("frozen") else "")


def _list_notices(lists: list[dict[str, Any]], now: datetime, t: Callable[[str], str]) -> list[str]:
    """A subscribed list that expired, expires within a week, or whose last check was
    refused (the latest refusal: rollback, equivocation, unreachable, …)."""
    notices = []
    for sub in lists:
        name, version, until = sub["list"], sub["version"], sub["expires_at"][:10]
        if sub["expired"]:
            notices.append(t("peers.list_expired").format(name, version, until))
        elif sub["expires_soon"]:
            notices.append(t("peers.list_expiring").format(name, version, until))
        refusal = sub["refusal"]
        if refusal is not None and refusal["reason"] != "expired":
            when = views.relative(_parse_time(refusal["at"]), now, t)
            notices.append(
                t("peers.list_refused").format(name, refusal["reason"], when, refusal["message"])
            )
    return notices


@routes.post("/peers/{network}/equivocation/clear")
async def clear_equivocation(request: web.Request) -> web.StreamResponse:
    """An admin's decision about an origin caught equivocating (``chainview.decide``)."""
    user = need(request, chainview.ADMIN)
    await read_form(request, user)
    node, network = node_of(request), request.match_info["network"]

    async def work() -> None:
        await chainview.decide(node, network)

    return await act("/desk/peers", work)


def _clock_time(text: str) -> str:
    """An RFC 3339 time as the desk says it: 14:02 UTC."""
    return _parse_time(text).strftime("%H:%M UTC")


def _chain_facts(
    network: str, entry: dict[str, Any], splits: dict[str, int], t: Callable[[str], str]
) -> dict[str, Any]:
    """What checkpoints say of a peer (DESIGN §16): the messages it withheld, the word
    from it as an origin (live, silent since, or none yet), and a split caught."""
    withheld = [
        t("peers.withheld_text").format(
            item["to"] - item["from"] + 1, item["origin"], _clock_time(item["since"])
        )
        for item in entry.get("withheld", [])
    ]
    status, last = entry.get("origin_status", "unknown"), entry.get("last_checkpoint")
    if status == "silent" and last:
        word = t("peers.origin_silent").format(network, _clock_time(last))
    elif status == "live" and last:
        word = t("peers.origin_live").format(_clock_time(last))
    else:
        word = t("peers.origin_unknown")
    return {
        "withheld_lines": withheld,
        "withheld_count": sum(item["to"] - item["from"] + 1 for item in entry.get("withheld", [])),
        "origin_word": word,
        "origin_silent": status == "silent",
        "equivocating": network in splits,
        "equivocation_seq": splits.get(network),
    }


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
