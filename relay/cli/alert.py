"""``avisa alert …`` and ``avisa held …``: the operator's side of the API.

The commands talk to the running node over its local API with the token in
the data directory; ``publish`` prints the new alert id alone on stdout so
scripts can capture it, and warnings on stderr. Text is given per language:
``--text es="…"`` is the headline, ``--body es="…"`` and ``--instruction es="…"``
are optional. ``update`` takes only what changes; the node carries the rest
from the version it replaces (``relay.core.drafts.carried``).

A draft is checked here, with the node's own decoder, before it is sent, so a
mistake is named by the option the operator typed (``--expires-in``), not by
the API's field (``expires_in``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from urllib.parse import quote

from relay.cli.client import NodeClient
from relay.cli.words import plural
from relay.core import drafts, readable
from relay.core.errors import BadInput
from relay.core.model import CERTAINTIES, KINDS

# API field → the option that sets it, for error messages.
_OPTION_OF = {
    "kind": "--kind",
    "certainty": "--certainty",
    "area.label": "--area-label",
    "area.geohash": "--geohash",
    "area.radius_m": "--radius-m",
    "area.codes": "--code",
    "agencies": "--agency",
    "text": "--text",
    "expires_in": "--expires-in",
    "expires_at": "--expires-in",
    "observed_at": "--observed-at",
}


def option_name(path: str) -> str:
    """``area.codes[0]`` → ``--code``; ``text[...].body`` → ``--body``."""
    field = path.split("[", 1)[0]
    if field == "text" and path.endswith((".body", ".instruction")):
        return "--" + path.rsplit(".", 1)[1]
    return _OPTION_OF.get(field, path)


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
    stray = sorted((set(bodies) | set(instructions)) - set(headlines))
    if stray:
        raise BadInput(
            "AVISA_USAGE",
            f"--body/--instruction in {', '.join(stray)} need a --text {stray[0]}=HEADLINE too"
            " (the text is given whole, also in an update)",
        )
    if not headlines:
        raise BadInput("AVISA_USAGE", 'give at least one --text LANG=HEADLINE, e.g. --text es="…"')
    texts: dict[str, dict[str, str]] = {}
    for lang, headline in headlines.items():
        texts[lang] = {"headline": headline, "body": bodies.get(lang, "")}
        if lang in instructions:
            texts[lang]["instruction"] = instructions[lang]
    return texts


def _given(pairs: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in pairs.items() if value is not None}


def _draft(args: argparse.Namespace) -> dict[str, Any]:
    """The options given, as the API's draft (an update's draft: only what changes)."""
    area = _given(
        {
            "label": args.area_label,
            "geohash": args.geohash,
            "radius_m": args.radius_m,
            "codes": args.code,
        }
    )
    draft = _given(
        {
            "kind": args.kind,
            "certainty": args.certainty,
            "area": area or None,
            "agencies": args.agency,
            "text": _texts(args) if args.text or args.body or args.instruction else None,
            "expires_in": args.expires_in,
            "observed_at": args.observed_at,
        }
    )
    tidy: dict[str, Any] = drafts.tidy(draft)
    return tidy


def _check(draft: dict[str, Any], partial: bool) -> None:
    """Decode the draft as the node will, naming the option at fault."""
    complete = draft
    if partial:  # what the node would carry over, with placeholders that decode
        filler = {"label": "-", "geohash": "0000", "radius_m": 0, "codes": []}
        complete = {
            "kind": "notice",
            "certainty": "confirmed",
            "text": {"en": {"headline": "-", "body": ""}},
            **draft,
            "area": {**filler, **draft.get("area", {})},
        }
        complete.setdefault("expires_in", "1h")
    try:
        readable.convert(complete, drafts.Draft, option_name)
    except readable.Invalid as exc:
        raise BadInput("AVISA_BAD_DRAFT", str(exc)) from None


def _warn(reply: dict[str, Any]) -> None:
    for warning in reply.get("warnings", []):
        print(f"avisa: warning: {warning}", file=sys.stderr)


def _path(alert_id: str) -> str:
    network, _, ulid = alert_id.partition("/")
    return f"{quote(network, safe='')}/{quote(ulid, safe='')}"


def cmd_publish(args: argparse.Namespace) -> int:
    draft = _draft(args)
    draft.setdefault("expires_in", "4h")
    draft.setdefault("area", {}).setdefault("codes", [])
    _check(draft, partial=False)
    client = NodeClient.for_data_dir(args.data)
    if args.dry_run_sms:
        print_sms_preview(client.call("POST", "/api/v1/sms/preview", draft))
        return 0
    reply = client.call("POST", "/api/v1/alerts", draft)
    print(reply["id"])
    _warn(reply)
    return 0


def _followed(asked: str, replaced: str | None) -> None:
    if replaced and replaced != asked:
        print(
            f"avisa: {asked} was updated since; acted on its newest version {replaced}",
            file=sys.stderr,
        )


def print_sms_preview(preview: dict[str, Any]) -> None:
    """What ``--dry-run-sms`` shows: per language, the text, its coding and segments."""
    if not preview["texted"]:
        print("not texted: this certainty is not in bridges.sms.certainties")
    print(
        f"recipients: {preview['recipients']}  max_segments: {preview['max_segments']}"
        f"  accents: {preview['accents']}"
    )
    for lang, text in preview["texts"].items():
        coding = "GSM-7" if text["coding"] == "gsm7" else "UCS-2"
        parts = plural(text["segments"], "segment")
        print(f"[{lang}] {parts}, {coding}, {plural(len(text['text']), 'character')}")
        print(f"  {text['text']}")


def cmd_sms_status(args: argparse.Namespace) -> int:
    reply = NodeClient.for_data_dir(args.data).call("GET", "/api/v1/sms")
    if args.json:
        print(json.dumps(reply))
        return 0
    print(f"subscribers: {reply['subscribers']}")
    for entry in reply["by_keyword"]:
        print(f"  {entry['keyword']} ({entry['lang']}): {entry['count']}")
    states = ("queued", "sending", "sent", "delivered", "failed")
    print("  ".join(f"{state}: {reply[state]}" for state in states))
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    draft = _draft(args)
    if not draft:
        raise BadInput("AVISA_USAGE", "give what changes, e.g. --certainty confirmed")
    _check(draft, partial=True)
    client = NodeClient.for_data_dir(args.data)
    reply = client.call("POST", f"/api/v1/alerts/{_path(args.id)}/update", draft)
    print(reply["id"])
    _followed(args.id, reply.get("replaces"))
    _warn(reply)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    client = NodeClient.for_data_dir(args.data)
    reply = client.call("POST", f"/api/v1/alerts/{_path(args.id)}/cancel", {"text": _texts(args)})
    print(reply["id"])
    _followed(args.id, reply.get("cancels"))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    reply = NodeClient.for_data_dir(args.data).call("GET", f"/api/v1/alerts/{_path(args.id)}")
    if args.envelope:
        print(json.dumps(reply["envelope"]))  # the signed file 'avisa policy explain' reads
    elif args.json:
        print(json.dumps(reply))
    else:
        print(_line(reply))
        for shown in _details(reply):
            print(f"  {shown}")
    return 0


def _details(item: dict[str, Any]) -> list[str]:
    """What ``alert show`` prints under the alert's line: times, place, origin, texts."""
    alert = item["alert"]
    area = alert["area"]
    where = f"geohash {area['geohash']}, {area['radius_m']} m"
    if area["codes"]:
        where += f"; {', '.join(area['codes'])}"
    endorsed = ", ".join(item.get("endorsed_by") or [])
    lines = [
        f"observed: {alert['observed_at']}  sent: {alert['sent_at']}"
        f"  expires: {alert['expires_at']}",
        f"area:     {area['label']} ({where})",
        f"origin:   {item.get('origin', alert['network'])}"
        + (f"; endorsed by {endorsed}" if endorsed else ""),
    ]
    if alert["agencies"]:
        lines.append(f"agencies: {', '.join(alert['agencies'])}")
    for lang, text in alert["text"].items():
        lines.append(f"[{lang}] {text['headline']}")
        lines += [f"     {text[part]}" for part in ("body", "instruction") if text.get(part)]
    return lines


def cmd_list(args: argparse.Namespace) -> int:
    query = f"?active={'true' if args.active else 'false'}"
    if args.area:
        query += f"&area={quote(args.area, safe='')}"
    reply = NodeClient.for_data_dir(args.data).call("GET", f"/api/v1/alerts{query}")
    if args.json:
        print(json.dumps(reply))
        return 0
    if not reply["alerts"]:
        where = f" in {args.area}" if args.area else ""
        print(f"no active alerts{where}" if args.active else f"no alerts{where}")
    for item in reply["alerts"]:
        print(_line(item))
    return 0


def _line(item: dict[str, Any], extra: str = "") -> str:
    alert = item["alert"]
    headline = next(iter(alert["text"].values()))["headline"]
    if alert["msg_type"] == "cancel" and alert["references"]:
        extra = f"  [withdraws {alert['references'][0]}]{extra}"
    return (
        f"{alert['id']}  {item['state']:10} {alert['kind']:12} {alert['certainty']:11}"
        f" {alert['area']['label']}: {headline}{extra}"
    )


def cmd_held_list(args: argparse.Namespace) -> int:
    reply = NodeClient.for_data_dir(args.data).call("GET", "/api/v1/held")
    if args.json:
        print(json.dumps(reply))
        return 0
    if not reply["held"]:
        print("no held alerts: nothing waits for a reviewer")
    for item in reply["held"]:
        print(_line(item, f"  [{item['reason']}, from {item['from_peer'] or 'here'}]"))
    return 0


def cmd_held_verdict(args: argparse.Namespace) -> int:
    client = NodeClient.for_data_dir(args.data)
    reply = client.call("POST", f"/api/v1/held/{_path(args.id)}/{args.verdict}")
    print(f"{reply['id']}: {reply['state']}")
    return 0


def _content_options(parser: argparse.ArgumentParser, required: bool) -> None:
    """The alert's content; an update makes every option optional (only what changes)."""
    from relay.cli.main import data_arg

    data_arg(parser)
    kept = "" if required else " (default: as it was)"
    parser.add_argument("--kind", required=required, choices=KINDS, help=f"what is happening{kept}")
    parser.add_argument(
        "--certainty", required=required, choices=CERTAINTIES, help=f"how sure it is{kept}"
    )
    parser.add_argument(
        "--area-label", required=required, help=f"place name people recognise{kept}"
    )
    parser.add_argument(
        "--geohash",
        required=required,
        help=f"where, 4 to 9 characters, e.g. 9q4gch (upper case is fine){kept}",
    )
    parser.add_argument(
        "--radius-m",
        type=int,
        default=500 if required else None,
        help=f"metres around the geohash ({'default 500' if required else kept.strip(' ()')})",
    )
    parser.add_argument(
        "--code",
        action="append",
        metavar="CODE",
        help="area code: fips:06037, zip:93101, iso:us-ca (repeatable). Without one, peers that"
        " trust this node for area codes hold the alert for review" + kept,
    )
    parser.add_argument(
        "--agency",
        action="append",
        help=f"ice, cbp, hsi, police, unknown … (repeatable){kept}",
    )
    _text_options(parser, required)
    parser.add_argument(
        "--expires-in",
        help="e.g. 90m, 4h, 2d ("
        + ("default 4h" if required else "default: the expiry it had")
        + "; at most policy.max_lifetime)",
    )
    parser.add_argument(
        "--observed-at",
        help="RFC 3339 UTC time it was seen, e.g. 2026-12-06T10:30:00Z (default now)",
    )


def _text_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--text",
        action="append",
        metavar="LANG=HEADLINE",
        required=required,
        help='headline per language, e.g. --text es="…" (repeatable'
        + ("" if required else "; replaces all texts; default: as they were")
        + ")",
    )
    parser.add_argument(
        "--body",
        action="append",
        metavar="LANG=BODY",
        help='details per language, e.g. --body es="…" (needs that language\'s --text)',
    )
    parser.add_argument(
        "--instruction",
        action="append",
        metavar="LANG=TEXT",
        help="what people should do, per language (needs that language's --text)",
    )


def register(commands: Any) -> None:
    from relay.cli.main import data_arg

    alert = commands.add_parser("alert", help="publish, update, cancel and list alerts")
    actions = alert.add_subparsers(dest="alert_command", required=True, metavar="ACTION")

    publish = actions.add_parser("publish", help="sign and publish a verified alert; prints its id")
    _content_options(publish, required=True)
    publish.add_argument(
        "--dry-run-sms",
        action="store_true",
        help="publish nothing: show the text each SMS language would get, and its segments",
    )
    publish.set_defaults(func=cmd_publish)

    sms = commands.add_parser("sms", help="the text line ([bridges.sms])")
    sms_actions = sms.add_subparsers(dest="sms_command", required=True, metavar="ACTION")
    sms_status = sms_actions.add_parser(
        "status", help="subscribers per keyword and language, and the queue (counts only)"
    )
    data_arg(sms_status)
    sms_status.add_argument("--json", action="store_true", help="print the API's JSON")
    sms_status.set_defaults(func=cmd_sms_status)

    update = actions.add_parser(
        "update", help="change an alert of ours: give only what changes; prints the new id"
    )
    update.add_argument("id", metavar="ID", help="the alert (or any older version of it)")
    _content_options(update, required=False)
    update.set_defaults(func=cmd_update)

    cancel = actions.add_parser("cancel", help="withdraw an alert of ours everywhere")
    cancel.add_argument("id", metavar="ID", help="the alert (or any older version of it)")
    data_arg(cancel)
    _text_options(cancel)
    cancel.set_defaults(func=cmd_cancel)

    show = actions.add_parser("show", help="one alert, or its signed envelope (--envelope)")
    show.add_argument("id", metavar="ID", help="as 'avisa alert list' shows it")
    data_arg(show)
    shown = show.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print one JSON object")
    shown.add_argument(
        "--envelope",
        action="store_true",
        help="print the signed envelope alone: a file for 'avisa policy explain'",
    )
    show.set_defaults(func=cmd_show)

    listing = actions.add_parser("list", help="alerts this node holds")
    data_arg(listing)
    listing.add_argument("--active", action="store_true", help="only alerts in force")
    listing.add_argument("--area", help="a code (fips:06037) or geohash prefix")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(func=cmd_list)

    held = commands.add_parser("held", help="the review queue: alerts waiting for a reviewer")
    review = held.add_subparsers(dest="held_command", required=True, metavar="ACTION")
    pending = review.add_parser("list", help="held alerts with the policy's reason")
    data_arg(pending)
    pending.add_argument("--json", action="store_true", help="print one JSON object")
    pending.set_defaults(func=cmd_held_list)
    for verdict, text in (("accept", "show and relay it"), ("reject", "drop it for good")):
        action = review.add_parser(verdict, help=f"{text} (reviewer or admin token)")
        action.add_argument("id", metavar="ID", help="as 'avisa held list' shows it")
        data_arg(action)
        action.set_defaults(func=cmd_held_verdict, verdict=verdict)
