"""``avisa alert …`` and ``avisa held …``: the operator's side of the API.

The commands talk to the running node over its local API with the token in
the data directory; ``publish`` prints the new alert id alone on stdout so
scripts can capture it. Text is given per language: ``--text es="…"`` is the
headline, ``--body es="…"`` and ``--instruction es="…"`` are optional.
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote

from relay.cli.client import NodeClient
from relay.core.errors import BadInput
from relay.core.model import CERTAINTIES, KINDS


def _by_language(pairs: list[str] | None, option: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for pair in pairs or []:
        lang, sep, value = pair.partition("=")
        if not sep or not lang:
            raise BadInput("AVISA_USAGE", f'{option} takes LANG=TEXT, e.g. {option} es="…"')
        result[lang] = value
    return result


def _texts(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    headlines = _by_language(args.text, "--text")
    bodies = _by_language(args.body, "--body")
    instructions = _by_language(getattr(args, "instruction", None), "--instruction")
    if not headlines:
        raise BadInput("AVISA_USAGE", "give at least one --text LANG=HEADLINE")
    stray = (set(bodies) | set(instructions)) - set(headlines)
    if stray:
        raise BadInput("AVISA_USAGE", f"--body/--instruction for {sorted(stray)} need a --text")
    texts: dict[str, dict[str, str]] = {}
    for lang, headline in headlines.items():
        texts[lang] = {"headline": headline, "body": bodies.get(lang, "")}
        if lang in instructions:
            texts[lang]["instruction"] = instructions[lang]
    return texts


def _draft(args: argparse.Namespace) -> dict[str, Any]:
    draft: dict[str, Any] = {
        "kind": args.kind,
        "certainty": args.certainty,
        "area": {
            "label": args.area_label,
            "geohash": args.geohash,
            "radius_m": args.radius_m,
            "codes": args.code or [],
        },
        "agencies": args.agency or [],
        "text": _texts(args),
        "expires_in": args.expires_in,
    }
    if args.observed_at:
        draft["observed_at"] = args.observed_at
    return draft


def _path(alert_id: str) -> str:
    network, _, ulid = alert_id.partition("/")
    return f"{quote(network, safe='')}/{quote(ulid, safe='')}"


def cmd_publish(args: argparse.Namespace) -> int:
    reply = NodeClient.for_data_dir(args.data).call("POST", "/api/v1/alerts", _draft(args))
    print(reply["id"])
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    client = NodeClient.for_data_dir(args.data)
    reply = client.call("POST", f"/api/v1/alerts/{_path(args.id)}/update", _draft(args))
    print(reply["id"])
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    client = NodeClient.for_data_dir(args.data)
    reply = client.call("POST", f"/api/v1/alerts/{_path(args.id)}/cancel", {"text": _texts(args)})
    print(reply["id"])
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    query = f"?active={'true' if args.active else 'false'}"
    if args.area:
        query += f"&area={quote(args.area, safe='')}"
    reply = NodeClient.for_data_dir(args.data).call("GET", f"/api/v1/alerts{query}")
    if args.json:
        print(json.dumps(reply))
        return 0
    for item in reply["alerts"]:
        print(_line(item))
    return 0


def _line(item: dict[str, Any], extra: str = "") -> str:
    alert = item["alert"]
    headline = next(iter(alert["text"].values()))["headline"]
    return (
        f"{alert['id']}  {item['state']:10} {alert['kind']:12} {alert['certainty']:11}"
        f" {alert['area']['label']}: {headline}{extra}"
    )


def cmd_held_list(args: argparse.Namespace) -> int:
    reply = NodeClient.for_data_dir(args.data).call("GET", "/api/v1/held")
    if args.json:
        print(json.dumps(reply))
        return 0
    for item in reply["held"]:
        print(_line(item, f"  [{item['reason']}, from {item['from_peer'] or 'here'}]"))
    return 0


def cmd_held_verdict(args: argparse.Namespace) -> int:
    client = NodeClient.for_data_dir(args.data)
    reply = client.call("POST", f"/api/v1/held/{_path(args.id)}/{args.verdict}")
    print(f"{reply['id']}: {reply['state']}")
    return 0


def _content_options(parser: argparse.ArgumentParser) -> None:
    from relay.cli.main import data_arg

    data_arg(parser)
    parser.add_argument("--kind", required=True, choices=KINDS)
    parser.add_argument("--certainty", required=True, choices=CERTAINTIES)
    parser.add_argument("--area-label", required=True, help="place name people recognise")
    parser.add_argument("--geohash", required=True, help="4 to 9 characters")
    parser.add_argument("--radius-m", type=int, default=500, help="metres (default 500)")
    parser.add_argument(
        "--code",
        action="append",
        metavar="CODE",
        help="area code: fips:06037, zip:93101, iso:us-ca (repeatable)",
    )
    parser.add_argument("--agency", action="append", help="ice, cbp, hsi, police, unknown …")
    _text_options(parser)
    parser.add_argument("--expires-in", default="4h", help="e.g. 90m, 4h, 2d (default 4h)")
    parser.add_argument("--observed-at", help="RFC 3339 UTC time it was seen (default now)")


def _text_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--text",
        action="append",
        metavar="LANG=HEADLINE",
        required=True,
        help='headline per language, e.g. --text es="…" (repeatable)',
    )
    parser.add_argument("--body", action="append", metavar="LANG=BODY")
    parser.add_argument("--instruction", action="append", metavar="LANG=TEXT")


def register(commands: Any) -> None:
    from relay.cli.main import data_arg

    alert = commands.add_parser("alert", help="publish, update, cancel and list alerts")
    actions = alert.add_subparsers(dest="alert_command", required=True, metavar="ACTION")

    publish = actions.add_parser("publish", help="sign and publish a verified alert; prints its id")
    _content_options(publish)
    publish.set_defaults(func=cmd_publish)

    update = actions.add_parser("update", help="replace an alert of ours with new content")
    update.add_argument("id", metavar="ID")
    _content_options(update)
    update.set_defaults(func=cmd_update)

    cancel = actions.add_parser("cancel", help="withdraw an alert of ours everywhere")
    cancel.add_argument("id", metavar="ID")
    data_arg(cancel)
    _text_options(cancel)
    cancel.set_defaults(func=cmd_cancel)

    listing = actions.add_parser("list", help="alerts this node holds")
    data_arg(listing)
    listing.add_argument("--active", action="store_true", help="only alerts in force")
    listing.add_argument("--area", help="a code (fips:06037) or geohash prefix")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)

    held = commands.add_parser("held", help="the review queue: alerts waiting for a reviewer")
    review = held.add_subparsers(dest="held_command", required=True, metavar="ACTION")
    pending = review.add_parser("list", help="held alerts with the policy's reason")
    data_arg(pending)
    pending.add_argument("--json", action="store_true")
    pending.set_defaults(func=cmd_held_list)
    for verdict, text in (("accept", "show and relay it"), ("reject", "drop it for good")):
        action = review.add_parser(verdict, help=f"{text} (reviewer or admin token)")
        action.add_argument("id", metavar="ID")
        data_arg(action)
        action.set_defaults(func=cmd_held_verdict, verdict=verdict)
