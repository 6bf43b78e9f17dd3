"""``avisa tip …``: the desk from a terminal, through the running node's API.

``add`` prints the new tip's id alone on stdout (for scripts); ``publish``
prints the alert's id. A tip is named by its id or by its number on this
node (``avisa tip claim 12``). The contact given to ``add`` goes to the node
and is sealed there; no command ever prints one (the API has none to give).
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote

from relay.cli.alert import _texts
from relay.cli.client import NodeClient
from relay.core.model import KINDS
from relay.core.tips import CHANNELS, OUTCOMES


def _client(args: argparse.Namespace) -> NodeClient:
    return NodeClient.for_data_dir(args.data)


def _path(args: argparse.Namespace, action: str = "") -> str:
    return f"/api/v1/tips/{quote(str(args.tip), safe='')}" + (f"/{action}" if action else "")


def cmd_add(args: argparse.Namespace) -> int:
    where: dict[str, Any] = {"label": args.place, "codes": args.code or []}
    if args.geohash:
        where["geohash"] = args.geohash
    body: dict[str, Any] = {"text": args.text, "where": where, "channel": args.channel}
    for name in ("language", "vehicles", "size", "observed_at", "activity", "contact"):
        if getattr(args, name):
            body[name] = getattr(args, name)
    if args.agency:
        body["agencies"] = args.agency
    print(_client(args).call("POST", "/api/v1/tips", body)["id"])
    return 0


def line(tip: dict[str, Any]) -> str:
    """One tip on one line: number, state, channel, time, place, words, corroboration."""
    cluster = tip.get("cluster")
    backed = ""
    if cluster and cluster["tips"] > 1:
        backed = (
            f"  [{cluster['tips']} reports, {cluster['reporters']} reporters,"
            f" {len(cluster['channels'])} channels]"
        )
    words = tip["text"].replace("\n", " ")
    words = words if len(words) <= 60 else words[:59] + "…"
    return (
        f"#{tip['number']:<5} {tip['state']:11} {tip['channel']:8} {tip['received_at']}"
        f"  {tip['where']['label']}: {words}{backed}"
    )


def cmd_list(args: argparse.Namespace) -> int:
    query = f"?state={'all' if args.all else 'open'}&cluster={'true' if args.cluster else 'false'}"
    reply = _client(args).call("GET", "/api/v1/tips" + query)
    if args.json:
        print(json.dumps(reply))
        return 0
    for tip in reply["tips"]:
        print(line(tip))
    return 0


def _show(tip: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(tip))
        return
    print(line(tip))
    print(f"  id: {tip['id']}")
    print(f"  text: {tip['text']}")
    for name in ("observed_at", "activity", "agencies", "vehicles", "size", "alert_id"):
        if tip.get(name):
            print(f"  {name}: {tip[name]}")
    if tip.get("confirmations"):
        print(f"  confirmations: {tip['confirmations']}")
    for event in tip.get("history", []):
        detail = event.get("outcome") or event.get("alert_id") or ""
        detail += " (ruling)" if event.get("ruling") else ""
        note = f" - {event['note']}" if event.get("note") else ""
        actor = f"{event['person']} ({event['actor']})" if event.get("person") else event["actor"]
        print(f"  {event['at']}  {actor}  {event['action']} {detail}{note}")
    if tip["state"] == "disputed":
        print("  disputed: verifiers disagree; a publisher's outcome settles it")


def cmd_show(args: argparse.Namespace) -> int:
    _show(_client(args).call("GET", _path(args)), args.json)
    return 0


def _note(args: argparse.Namespace) -> dict[str, Any]:
    return {"note": args.note} if args.note else {}


def cmd_claim(args: argparse.Namespace) -> int:
    _show(_client(args).call("POST", _path(args, "claim"), _note(args)), False)
    return 0


def cmd_close(args: argparse.Namespace) -> int:
    _show(_client(args).call("POST", _path(args, "close"), _note(args)), False)
    return 0


def cmd_outcome(args: argparse.Namespace) -> int:
    body = {"outcome": args.outcome, **_note(args)}
    if args.duplicate_of:
        body["duplicate_of"] = args.duplicate_of
    _show(_client(args).call("POST", _path(args, "outcome"), body), False)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    draft: dict[str, Any] = {}
    if args.text:
        draft["text"] = _texts(args)
    for name in ("kind", "expires_in", "radius_m"):
        if getattr(args, name) is not None:
            draft[name] = getattr(args, name)
    print(_client(args).call("POST", _path(args, "publish"), draft)["id"])
    return 0


def register(commands: Any) -> None:
    tip = commands.add_parser("tip", help="the verification desk: tips in, checked, published")
    actions = tip.add_subparsers(dest="tip_command", required=True, metavar="ACTION")
    _register_add(actions)
    _register_actions(actions)


def _register_add(actions: Any) -> None:
    from relay.cli.main import data_arg

    add = actions.add_parser("add", help="record a tip (e.g. from a hotline call); prints its id")
    data_arg(add)
    add.add_argument("--text", required=True, help="what the caller saw, in their words")
    add.add_argument("--place", required=True, help="where: a place people recognise")
    add.add_argument("--geohash", help="4 to 7 characters, if known")
    add.add_argument("--code", action="append", help="area code: zip:93030, fips:06111")
    add.add_argument(
        "--channel", default="hotline", choices=CHANNELS, help="how it came in (default hotline)"
    )
    add.add_argument("--language", help="the caller's language, e.g. es")
    add.add_argument("--agency", action="append", help="ice, cbp, police, unknown …")
    add.add_argument("--activity", help="e.g. checkpoint, workplace, sighting")
    add.add_argument("--vehicles", help="vehicles seen, e.g. 'two white vans'")
    add.add_argument("--size", help="how many agents")
    add.add_argument("--observed-at", help="RFC 3339 UTC time it was seen")
    add.add_argument("--contact", help="phone to reply to (sealed at once, never shown)")
    add.set_defaults(func=cmd_add)


def _register_actions(actions: Any) -> None:
    from relay.cli.main import data_arg

    listing = actions.add_parser("list", help="open tips, newest first")
    data_arg(listing)
    listing.add_argument("--all", action="store_true", help="closed and published ones too")
    listing.add_argument("--cluster", action="store_true", help="show what corroborates each")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(func=cmd_list)

    show = actions.add_parser("show", help="one tip and its history")
    show.add_argument("tip", metavar="TIP", help="its id or number")
    data_arg(show)
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(func=cmd_show)

    for name, func, text in (
        ("claim", cmd_claim, "say you are checking it (verifier)"),
        ("close", cmd_close, "close it without an alert (verifier)"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("tip", metavar="TIP", help="its id or number")
        data_arg(action)
        action.add_argument("--note", help="a word for the other volunteers (kept in its history)")
        action.set_defaults(func=func)

    outcome = actions.add_parser("outcome", help="record what you found (verifier)")
    outcome.add_argument("tip", metavar="TIP", help="its id or number")
    outcome.add_argument("outcome", choices=OUTCOMES, help="what you found")
    data_arg(outcome)
    outcome.add_argument("--note", help="a word for the other volunteers (kept in its history)")
    outcome.add_argument(
        "--duplicate-of", metavar="TIP", help="with outcome duplicate: the tip it repeats"
    )
    outcome.set_defaults(func=cmd_outcome)

    publish = actions.add_parser(
        "publish", help="sign the alert a confirmed tip or false alarm becomes; prints its id"
    )
    publish.add_argument("tip", metavar="TIP", help="its id or number")
    data_arg(publish)
    publish.add_argument(
        "--kind", choices=KINDS, help="what is happening (default: from the tip's activity)"
    )
    publish.add_argument(
        "--text",
        action="append",
        metavar="LANG=HEADLINE",
        help='headline per language, e.g. --text es="…" (default: prefilled from the tip)',
    )
    publish.add_argument(
        "--body", action="append", metavar="LANG=BODY", help="details per language"
    )
    publish.add_argument(
        "--instruction",
        action="append",
        metavar="LANG=TEXT",
        help="what people should do, per language",
    )
    publish.add_argument("--expires-in", help="e.g. 2h (default 4h)")
    publish.add_argument("--radius-m", type=int, help="metres around the place (default 500)")
    publish.set_defaults(func=cmd_publish)
