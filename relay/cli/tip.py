"""``avisa tip …``: the desk from a terminal, through the running node's API.

``add`` prints the new tip's number and id on one line (``#12 01J…``: the
number is what the other commands and the desk show; a script takes the last
word); ``publish`` prints the alert's id alone. ``publish`` first asks the node
what it would sign (``POST …/draft``: the place the gazetteer completed, and
warnings), says the place and the warnings on stderr, and signs past a warning
only with ``--yes`` or a "y" typed at a terminal: nothing is held by surprise. A
tip is named by its id or by its number on this node (``avisa tip claim 12``).
The contact given to ``add`` goes to the node and is sealed there; no command
ever prints one (the API has none to give).

What they print is in the volunteer's language (``relay.cli.words``: ``--lang``,
``$AVISA_LANG``, the terminal's, else the node's first), ids ``cli.tip.*``;
states, channels and actions are shown as the codes the commands take.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from urllib.parse import quote

from relay.cli.alert import _texts
from relay.cli.client import NodeClient
from relay.cli.words import lang_arg, words_of
from relay.core.language import N_, Words
from relay.core.model import KINDS
from relay.core.tips import OPERATOR_CHANNELS, OUTCOMES


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
    client = _client(args)
    tip_id = client.call("POST", "/api/v1/tips", body)["id"]
    number = client.call("GET", f"/api/v1/tips/{quote(tip_id, safe='')}")["number"]
    print(f"#{number} {tip_id}")
    return 0


#: The fields ``show`` prints, each with its label (``cli.tip.field.*``).
_FIELDS = {
    "observed_at": N_("cli.tip.field.observed_at"),
    "activity": N_("cli.tip.field.activity"),
    "agencies": N_("cli.tip.field.agencies"),
    "vehicles": N_("cli.tip.field.vehicles"),
    "size": N_("cli.tip.field.size"),
    "alert_id": N_("cli.tip.field.alert_id"),
}


def line(tip: dict[str, Any], words: Words) -> str:
    """One tip on one line: number, state, channel, time, place, words, corroboration.

    The state and channel are the codes the commands take (``claimed``, ``sms``)."""
    cluster = tip.get("cluster")
    backed = ""
    if cluster and cluster["tips"] > 1:
        counts = (
            words.ngettext("cli.tip.count.reports", "cli.tip.count.reports", cluster["tips"]),
            words.ngettext(
                "cli.tip.count.reporters", "cli.tip.count.reporters", cluster["reporters"]
            ),
            words.ngettext(
                "cli.tip.count.channels", "cli.tip.count.channels", len(cluster["channels"])
            ),
        )
        backed = f"  [{', '.join(counts)}]"
    said = tip["text"].replace("\n", " ")
    said = said if len(said) <= 60 else said[:59] + "…"
    return (
        f"#{tip['number']:<5} {tip['state']:11} {tip['channel']:8} {tip['received_at']}"
        f"  {tip['where']['label']}: {said}{backed}"
    )


def cmd_list(args: argparse.Namespace) -> int:
    query = f"?state={'all' if args.all else 'open'}&cluster={'true' if args.cluster else 'false'}"
    reply = _client(args).call("GET", "/api/v1/tips" + query)
    if args.json:
        print(json.dumps(reply))
        return 0
    words = words_of(args)
    if not reply["tips"]:
        none = words.gettext("cli.tip.none") if args.all else words.gettext("cli.tip.none_open")
        print(none)
    for tip in reply["tips"]:
        print(line(tip, words))
    return 0


def _show(tip: dict[str, Any], as_json: bool, words: Words) -> None:
    if as_json:
        print(json.dumps(tip))
        return
    print(line(tip, words))
    print("  " + words.gettext("cli.tip.field.id", value=tip["id"]))
    print("  " + words.gettext("cli.tip.field.text", value=tip["text"]))
    for name, label in _FIELDS.items():
        if tip.get(name):
            print("  " + words.gettext(label, value=_readable(tip[name])))
    if tip.get("confirmations"):
        confirmations = _readable(tip["confirmations"])
        print("  " + words.gettext("cli.tip.field.confirmations", value=confirmations))
    for event in tip.get("history", []):
        print("  " + _event(event, words))
    if tip["state"] == "disputed":
        print("  " + words.gettext("cli.tip.disputed"))


def _event(event: dict[str, Any], words: Words) -> str:
    """One line of a tip's history: when, who, the action's code, and its detail."""
    detail = event.get("outcome") or event.get("alert_id") or ""
    if event.get("ruling"):
        detail += " (" + words.gettext("cli.tip.ruling") + ")"
    note = f" - {event['note']}" if event.get("note") else ""
    actor = f"{event['person']} ({event['actor']})" if event.get("person") else event["actor"]
    return f"{event['at']}  {actor}  {event['action']} {detail}{note}"


def _readable(value: Any) -> str:
    """A list as words (``ice, cbp``), a mapping as ``name value`` pairs; never Python's repr."""
    if isinstance(value, list):
        return ", ".join(_readable(item) for item in value)
    if isinstance(value, dict):
        return " ".join(f"{name} {_readable(item)}" for name, item in value.items())
    return str(value)


def cmd_show(args: argparse.Namespace) -> int:
    _show(_client(args).call("GET", _path(args)), args.json, words_of(args))
    return 0


def _note(args: argparse.Namespace) -> dict[str, Any]:
    return {"note": args.note} if args.note else {}


def cmd_claim(args: argparse.Namespace) -> int:
    _show(_client(args).call("POST", _path(args, "claim"), _note(args)), False, words_of(args))
    return 0


def cmd_close(args: argparse.Namespace) -> int:
    _show(_client(args).call("POST", _path(args, "close"), _note(args)), False, words_of(args))
    return 0


def cmd_outcome(args: argparse.Namespace) -> int:
    body = {"outcome": args.outcome, **_note(args)}
    if args.duplicate_of:
        body["duplicate_of"] = args.duplicate_of
    _show(_client(args).call("POST", _path(args, "outcome"), body), False, words_of(args))
    return 0


def _publish_body(args: argparse.Namespace) -> dict[str, Any]:
    draft: dict[str, Any] = {}
    if args.text:
        draft["text"] = _texts(args)
    for name in ("kind", "expires_in", "radius_m", "geohash", "area_label"):
        if getattr(args, name) is not None:
            draft[name] = getattr(args, name)
    if args.code:
        draft["codes"] = args.code
    return draft


# A yes in the languages Avisa ships, whichever language asked (a typed "s" is a "sí").
_YES = ("y", "yes", "s", "si", "sí")


def _confirmed(warnings: list[str], yes: bool, words: Words) -> bool:
    """Warnings go to stderr before signing; signing past one needs --yes or a "y"."""
    for warning in warnings:
        print("avisa: " + words.gettext("cli.tip.warning", warning=warning), file=sys.stderr)
    if not warnings or yes:
        return True
    if not sys.stdin.isatty():
        print("avisa: " + words.gettext("cli.tip.nothing_signed"), file=sys.stderr)
        return False
    # The question goes to stderr: stdout holds the alert's id alone, for scripts.
    print(words.gettext("cli.tip.sign_anyway") + " ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in _YES


def cmd_publish(args: argparse.Namespace) -> int:
    client, body, words = _client(args), _publish_body(args), words_of(args)
    client.language = words.language  # the preview's warnings in the command's language
    preview = client.call("POST", _path(args, "draft"), body)
    area = preview["draft"]["area"]
    codes = " ".join(area["codes"]) or words.gettext("cli.tip.place.no_codes")
    place = words.gettext(
        "cli.tip.place",
        label=area["label"],
        geohash=area["geohash"],
        radius=area["radius_m"],
        codes=codes,
    )
    print(place, file=sys.stderr)
    if not _confirmed(preview["warnings"], args.yes, words):
        return 1
    print(client.call("POST", _path(args, "publish"), body)["id"])
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
    lang_arg(add)
    add.add_argument("--text", required=True, help="what the caller saw, in their words")
    add.add_argument("--place", required=True, help="where: a place people recognise")
    add.add_argument("--geohash", help="4 to 7 characters, if known")
    add.add_argument("--code", action="append", help="area code: zip:93030, fips:06111")
    add.add_argument(
        "--channel",
        default="hotline",
        choices=OPERATOR_CHANNELS,
        help="how it came in (default hotline)",
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
    lang_arg(listing)
    listing.add_argument("--all", action="store_true", help="closed and published ones too")
    listing.add_argument("--cluster", action="store_true", help="show what corroborates each")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(func=cmd_list)

    show = actions.add_parser("show", help="one tip and its history")
    show.add_argument("tip", metavar="TIP", help="its id or number")
    data_arg(show)
    lang_arg(show)
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(func=cmd_show)

    for name, func, text in (
        ("claim", cmd_claim, "say you are checking it (verifier)"),
        ("close", cmd_close, "close it without an alert (verifier)"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("tip", metavar="TIP", help="its id or number")
        data_arg(action)
        lang_arg(action)
        action.add_argument("--note", help="a word for the other volunteers (kept in its history)")
        action.set_defaults(func=func)

    outcome = actions.add_parser("outcome", help="record what you found (verifier)")
    outcome.add_argument("tip", metavar="TIP", help="its id or number")
    outcome.add_argument("outcome", choices=OUTCOMES, help="what you found")
    data_arg(outcome)
    lang_arg(outcome)
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
    lang_arg(publish)
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
    _register_place(publish)
    publish.set_defaults(func=cmd_publish)


def _register_place(publish: Any) -> None:
    publish.add_argument(
        "--geohash", help="the alert's place, 4 to 9 characters, e.g. 9q5681 (default: the tip's)"
    )
    publish.add_argument(
        "--code",
        action="append",
        help="area code, e.g. zip:93030 (becomes its county, fips:06111) or fips:06111;"
        " repeatable (default: the tip's county)",
    )
    publish.add_argument("--area-label", help="the place as people say it (default: the tip's)")
    publish.add_argument(
        "--radius-m", type=int, help="metres around the place (default 500; 5000 for a county)"
    )
    publish.add_argument(
        "--yes", action="store_true", help="sign even when a warning says peers would hold it"
    )
