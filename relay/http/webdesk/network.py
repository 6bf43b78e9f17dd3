"""Peers (health, backlog, last error, the seq gaps each left that this node is
waiting to fill, what checkpoints showed it withheld, the word from it as an
origin (silent since when), a split view caught, fingerprints to read aloud, local or
through which trust list, with a notice for a list that expired, expires within a
week or was refused), bridges
(each one's status), and the decision log (filterable)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from keys.store import trustsub_ops
from relay.core.language import Words
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
    url_of,
)
from relay.storage import evidence, gaps, store

routes = web.RouteTableDef()


@routes.get("/peers", name="peers")
async def peers(request: web.Request) -> web.StreamResponse:
    user = need(request, OPERATIONS)
    node = node_of(request)
    now = node.clock()
    words = i18n.words(request)
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
                "last_contact": views.relative(_parse_time(last), now, words)
                if last
                else words.gettext("peers.never"),
                "backoff_text": views.span(entry.get("backoff") or 0, words),
                "last_error_when": views.relative(_parse_time(entry["last_error_at"]), now, words)
                if entry.get("last_error_at")
                else "",
                "fingerprints": [
                    {"keyid": key.keyid, "fingerprint": views.cached_fingerprint(key.public_key)}
                    for key in record.keys
                ],
                "trusted_text": _trusted_text(entry, words),
                "gaps_text": _gaps_text(entry.get("seq_gaps"), words),
            }
            | _chain_facts(record.network, entry, splits, words)
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
        "list_notices": _list_notices(lists, now, words),
        "may_decide": user.may(chainview.ADMIN),
    }
    template = partial(request, "peers.html", "_peers_list.html")
    return render(request, template, context, user=user, page="peers")


def _trusted_text(entry: dict[str, Any], words: Words) -> str:
    """Local, or through which lists (version, expiry), in the desk's words."""
    if entry.get("trusted_via") != "list":
        return words.gettext("peers.local")
    via = "; ".join(
        words.gettext(
            "peers.via_list", list=s["list"], version=s["version"], until=s["expires_at"][:10]
        )
        for s in entry["lists"]
    )
    frozen = words.gettext("peers.frozen") if entry.get("frozen") else ""
    return f"{via} — {frozen}" if frozen else via


def _gaps_text(found: dict[str, Any] | None, words: Words) -> str:
    """How many messages a peer left missing, in how many gaps ("" for none)."""
    if not found or not found.get("missing"):
        return ""
    return words.ngettext(
        "peers.gaps_text",
        "peers.gaps_text",
        found["open"],
        missing=found["missing"],
        open=found["open"],
        unpulled=found["unpulled"],
    )


def _list_notices(lists: list[dict[str, Any]], now: datetime, words: Words) -> list[str]:
    """A subscribed list that expired, expires within a week, or whose last check was
    refused (the latest refusal: rollback, equivocation, unreachable, …)."""
    notices = []
    for sub in lists:
        name, version, until = sub["list"], sub["version"], sub["expires_at"][:10]
        if sub["expired"]:
            notices.append(
                words.gettext("peers.list_expired", list=name, version=version, until=until)
            )
        elif sub["expires_soon"]:
            notices.append(
                words.gettext("peers.list_expiring", list=name, version=version, until=until)
            )
        refusal = sub["refusal"]
        if refusal is not None and refusal["reason"] != "expired":
            notices.append(
                words.gettext(
                    "peers.list_refused",
                    list=name,
                    reason=refusal["reason"],
                    when=views.relative(_parse_time(refusal["at"]), now, words),
                    message=refusal["message"],
                )
            )
    return notices


@routes.post("/peers/{network}/equivocation/clear", name="equivocation_clear")
async def clear_equivocation(request: web.Request) -> web.StreamResponse:
    """An admin's decision about an origin caught equivocating (``chainview.decide``)."""
    user = need(request, chainview.ADMIN)
    await read_form(request, user)
    node, network = node_of(request), request.match_info["network"]

    async def work() -> None:
        await chainview.decide(node, network)

    return await act(url_of(request, "peers"), work)


def _clock_time(text: str, words: Words) -> str:
    """An RFC 3339 time as the desk says it: 14:02 UTC."""
    return views.clock_time(_parse_time(text), words)


def _chain_facts(
    network: str, entry: dict[str, Any], splits: dict[str, int], words: Words
) -> dict[str, Any]:
    """What checkpoints say of a peer (DESIGN §16): the messages it withheld, the word
    from it as an origin (live, silent since, or none yet), and a split caught."""
    withheld = [
        words.gettext(
            "peers.withheld_text",
            count=item["to"] - item["from"] + 1,
            origin=item["origin"],
            since=_clock_time(item["since"], words),
        )
        for item in entry.get("withheld", [])
    ]
    status, last = entry.get("origin_status", "unknown"), entry.get("last_checkpoint")
    if status == "silent" and last:
        word = words.gettext("peers.origin_silent", network=network, since=_clock_time(last, words))
    elif status == "live" and last:
        word = words.gettext("peers.origin_live", time=_clock_time(last, words))
    else:
        word = words.gettext("peers.origin_unknown")
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


@routes.get("/bridges", name="bridges")
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


@routes.get("/decisions", name="decisions")
async def decisions(request: web.Request) -> web.StreamResponse:
    user = need(request, OPERATIONS)
    node = node_of(request)
    now = node.clock()
    words = i18n.words(request)
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
            "ago": views.relative(row.at, now, words),
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
