"""``avisa trustlist draft|sign|verify|publish|list|show|subscribe|refresh|unsubscribe``.

Thin: parse options, call ``keys.store.trustlist_ops``, print a short report.
Maintainers draft a version on one machine, pass the file around and each
signs it with their own node (``sign``, in place unless ``--out``); anyone
checks it with ``verify`` (who signed, who is missing, what changed since
the previous version); a node publishes it with ``publish`` and then serves
it at ``GET /trustlists/v1/{list}``. A subscriber's node fetches it
(``subscribe``, ``refresh``: ``relay.federation.trustfetch``) and walks it
forward (``keys.store.trustsub_ops``). Refusals raise ``AvisaError``s, which
``relay.cli.main`` prints as one line and exit code 1 (``verify`` exits 1
when a subscriber would refuse the list).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from keys.cards.card import verify_key_document
from keys.cards.trustdraft import DraftRequest, draft, member_from_card, read_members
from keys.cards.trustlist import TrustList, TrustListRefused, read_list, set_fingerprint
from keys.cards.trustwalk import Signers
from keys.store import trustlist_ops as ops
from keys.store import trustsub_ops as subs
from relay.cli.keys import _passphrase, _passphrase_arg, card_target
from relay.core.errors import ConfigError
from relay.core.model import KINDS
from relay.core.times import rfc3339
from relay.federation.trustfetch import FetchFailed, fetch_forward
from relay.runtime.clock import system_clock
from relay.storage import configfile
from relay.storage.files import write_private


def _data(parser: argparse.ArgumentParser) -> None:
    from relay.cli.datadir import data_arg

    data_arg(parser)


def _write(target: Path, data: bytes, replace: bool) -> None:
    try:
        write_private(target, data, mode=0o644, replace=replace)
    except FileExistsError:
        raise ConfigError("--out", f"{target} exists; give --force to replace it") from None


def cmd_draft(args: argparse.Namespace) -> int:
    previous = None if args.previous is None else read_list(ops.read_file(Path(args.previous)))
    editing = None
    if args.edit is not None:
        editing, _, signed = ops.read_any(ops.read_file(Path(args.edit)))
        if signed is not None or previous is not None:
            raise ConfigError("--edit", "give an unsigned draft, without --previous")
    add = []
    for card_file in args.add_card or []:
        card = verify_key_document(ops.read_file(Path(card_file))).document
        add.append(member_from_card(card, args.speaks_for or [], args.kinds or list(KINDS)))
    members = None if args.members is None else read_members(ops.read_file(Path(args.members)))
    request = DraftRequest(
        list_id=args.list,
        maintainers=args.maintainers,
        threshold=args.threshold,
        members=members,
        add=add,
        remove=args.remove or [],
        days=args.days,
    )
    document = draft(previous, request, system_clock(), editing)
    target = card_target(args.out, args.data, args.force)
    _write(target, ops.draft_bytes(document), args.force)
    print(f"Drafted {document.list} version {document.version} in {args.out}:")
    print(f"  {len(document.members)} members; maintainers {_set(document)}")
    print(f"  expires {rfc3339(document.expires_at)}")
    if document.version == 1:
        print(f"  maintainer-set fingerprint: {set_fingerprint(document)}")
    print("Each maintainer now signs it: avisa trustlist sign " + args.out)
    return 0


def _set(document: TrustList) -> str:
    networks = document.maintainers.networks
    return f"{', '.join(networks)} ({document.maintainers.threshold} of {len(networks)} sign)"


def cmd_sign(args: argparse.Namespace) -> int:
    source = Path(args.file)
    previous = None if args.previous is None else ops.read_file(Path(args.previous))
    signed = ops.sign_file(args.data, ops.read_file(source), _passphrase(args), previous)
    out = card_target(args.out, args.data, args.force) if args.out else source.resolve()
    _write(out, signed.raw, replace=args.out is None or args.force)
    print(f"Signed with {signed.keyid}; written to {args.out or args.file}.")
    _print_signers(signed.who)
    return 0


def _print_signers(who: Signers) -> None:
    print(f"  signed by maintainers: {', '.join(sorted(who.signed)) or 'none yet'}")
    print(f"  still needed: {max(0, who.threshold - len(who.signed))} of {', '.join(who.missing)}")
    if who.old_threshold:
        print(f"  previous maintainers signed: {', '.join(sorted(who.old_signed)) or 'none'}")
        needed = max(0, who.old_threshold - len(who.old_signed))
        print(f"  previous maintainers still needed: {needed} of {', '.join(who.old_missing)}")
    for keyid in who.unknown:
        print(f"  signed by {keyid}: no maintainer's key (subscribers refuse it: unknown_signer)")
    for keyid in who.bad:
        print(f"  the signature by {keyid} does not verify")


def cmd_verify(args: argparse.Namespace) -> int:
    previous = None if args.previous is None else ops.read_file(Path(args.previous))
    result = ops.verify_file(args.data, ops.read_file(Path(args.file)), previous, system_clock)
    document = result.document
    print(f"{document.list} version {document.version}")
    print(f"  issued {rfc3339(document.issued_at)}, expires {rfc3339(document.expires_at)}")
    print(f"  maintainers: {_set(document)}; {len(document.members)} members")
    if document.version == 1:
        print(f"  maintainer-set fingerprint: {set_fingerprint(document)}")
    if result.previous is not None:
        print(f"Changes since version {result.previous.version}:")
        for line in result.changes or ["(none)"]:
            print(f"  {line}")
    if result.who is None:
        print("Not signed yet (a draft): avisa trustlist sign FILE")
        return 1
    _print_signers(result.who)
    if result.refusal is not None:
        print(f"A subscriber would refuse it: {result.refusal.message}")
        return 1
    print("A subscriber holding the previous version would take it.")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    raws = [ops.read_file(Path(name)) for name in args.files]
    published = ops.publish(args.data, raws, system_clock)
    config = configfile.load(args.data)
    versions = ", ".join(str(v) for v in published.versions) or "nothing new"
    print(f"Published {published.list}: {versions}.")
    print(f"  served at {config.public_url.rstrip('/')}/trustlists/v1/{published.list}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    rows = ops.kept(args.data)
    subscribed = subs.listing(args.data, system_clock)
    if args.json:
        out = [
            {
                "list": row.list,
                "version": row.latest,
                "versions_kept": row.versions,
                "issued_at": rfc3339(row.issued_at),
                "expires_at": rfc3339(row.expires_at),
            }
            for row in rows
        ]
        print(json.dumps({"trustlists": out, "subscriptions": subscribed}))
        return 0
    if not rows and not subscribed:
        print("This node keeps no trust list and subscribes to none.")
    for row in rows:
        print(f"{row.list}  version {row.latest} ({row.versions} kept, served here)")
        print(f"  expires {rfc3339(row.expires_at)}")
    for sub in subscribed:
        _print_subscription(sub)
    return 0


def _print_subscription(sub: dict[str, Any]) -> None:
    frozen = " (EXPIRED: frozen)" if sub["expired"] else ""
    print(f"{sub['list']}  version {sub['version']}, subscribed from {sub['url']}")
    print(f"  expires {sub['expires_at']}{frozen}; {sub['members']} members")
    print(f"  last checked {sub['checked_at']}")
    if sub["refusal"]:
        refusal = sub["refusal"]
        print(f"  refused at {refusal['at']}: {refusal['message']}")
    if sub["evidence"]:
        print(f"  {sub['evidence']} equivocating version(s) kept as evidence")


def _fetch(url: str, held: int | None) -> list[bytes]:
    async def fetch() -> list[bytes]:
        async with aiohttp.ClientSession() as session:
            return await fetch_forward(session, url, held)

    return asyncio.run(fetch())


def cmd_subscribe(args: argparse.Namespace) -> int:
    scope = args.max_speaks_for or []
    subs.check_request(args.url, args.fingerprint, scope)
    held = subs.subscribe(
        args.data, args.url, args.fingerprint, scope, _fetch(args.url, None), system_clock
    )
    document = held.document
    print(f"Subscribed to {document.list}: version {document.version}, {len(document.members)}"
          f" members, expires {rfc3339(document.expires_at)}.")  # fmt: skip
    print("  Its members are peers now, within --max-speaks-for; a running node takes them"
          " at once (avisa trust list shows them).")  # fmt: skip
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    names = (
        [args.list] if args.list else [sub["list"] for sub in subs.listing(args.data, system_clock)]
    )
    failed = 0
    for name in names:
        url, held = subs.target(args.data, name)
        fetched: list[bytes] | subs.Unfetched
        try:
            fetched = _fetch(url, held)
        except FetchFailed as exc:
            fetched = subs.Unfetched("unreachable", str(exc))
        except TrustListRefused as exc:
            fetched = subs.Unfetched(exc.reason, exc.message)
        result = subs.refresh(args.data, name, fetched, system_clock)
        taken = ", ".join(str(v) for v in result.accepted) or "nothing new"
        print(f"{name}: version {result.version} held ({taken}).")
        if result.refusal is not None:
            failed += 1
            print(f"  refused: {result.refusal[1]}")
    return 1 if failed else 0


def cmd_unsubscribe(args: argparse.Namespace) -> int:
    subs.unsubscribe(args.data, args.list)
    print(f"Unsubscribed from {args.list}.")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    opened, first = ops.stored(args.data, args.list, args.version)
    if args.raw:
        print(opened.raw.decode("utf-8"))
        return 0
    document = opened.document
    print(f"{document.list} version {document.version} (sha256 {opened.digest})")
    print(f"  issued {rfc3339(document.issued_at)}, expires {rfc3339(document.expires_at)}")
    print(f"  maintainers: {_set(document)}")
    if first is not None:
        print(f"  version 1's maintainer-set fingerprint: {set_fingerprint(first)}")
    for member in document.members:
        print(f"  {member.network}  {member.url}")
        print(
            f"    speaks for {', '.join(member.speaks_for) or '-'}; kinds {', '.join(member.kinds)}"
        )
        for key in member.keys:
            print(f"    key {key.keyid}")
    return 0


def _int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError("a whole number")
    return int(text)


def _draft_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="FILE", help="where to write the draft")
    parser.add_argument("--force", action="store_true", help="replace FILE if it exists")
    parser.add_argument("--list", metavar="ID", help="the list's id (version 1 only)")
    parser.add_argument("--previous", metavar="FILE", help="the signed version before")
    parser.add_argument(
        "--edit", metavar="DRAFT", help="change an unsigned draft (same version) instead"
    )
    parser.add_argument("--maintainers", nargs="+", metavar="NETWORK", help="replace the set")
    parser.add_argument("--threshold", type=_int, metavar="K", help="signatures needed")
    parser.add_argument("--members", metavar="FILE", help="a JSON array of members (replace all)")
    parser.add_argument(
        "--add-card",
        action="append",
        metavar="CARD_FILE",
        help="add (or replace) the member whose card this is ('avisa keys export-card')",
    )
    parser.add_argument("--speaks-for", nargs="+", metavar="CODE", help="for --add-card")
    parser.add_argument("--kinds", nargs="+", metavar="KIND", help="for --add-card (default all)")
    parser.add_argument("--remove", nargs="+", metavar="NETWORK", help="members to remove")
    parser.add_argument("--days", type=_int, default=30, metavar="N", help="valid for (30, ≤90)")


def register(commands: Any) -> None:
    """Add ``avisa trustlist draft|sign|verify|publish|list|show|subscribe|refresh|unsubscribe``."""
    trustlist = commands.add_parser("trustlist", help="coalition trust lists (maintainers, hosts)")
    actions = trustlist.add_subparsers(dest="trustlist_command", required=True, metavar="ACTION")
    drafting = actions.add_parser("draft", help="write the next version's payload, unsigned")
    _draft_options(drafting)
    _data(drafting)
    drafting.set_defaults(func=cmd_draft)

    signing = actions.add_parser("sign", help="add this node's signature to a draft or list")
    signing.add_argument("file", metavar="FILE", help="a draft or a list others signed")
    signing.add_argument("--out", metavar="FILE", help="write there (default: FILE in place)")
    signing.add_argument("--force", action="store_true", help="replace --out if it exists")
    signing.add_argument("--previous", metavar="FILE", help="the version before (if not kept)")
    _data(signing)
    _passphrase_arg(signing)
    signing.set_defaults(func=cmd_sign)

    checking = actions.add_parser("verify", help="who signed, what is missing, what changed")
    checking.add_argument("file", metavar="FILE", help="a draft or a signed list")
    checking.add_argument("--previous", metavar="FILE", help="the version before (if not kept)")
    _data(checking)
    checking.set_defaults(func=cmd_verify)

    publishing = actions.add_parser("publish", help="keep and serve versions (oldest first)")
    publishing.add_argument(
        "files", nargs="+", metavar="FILE", help="signed versions of one list, oldest first"
    )
    _data(publishing)
    publishing.set_defaults(func=cmd_publish)

    listing = actions.add_parser("list", help="the lists this node serves and subscribes to")
    listing.add_argument("--json", action="store_true", help="one JSON object")
    _data(listing)
    listing.set_defaults(func=cmd_list)

    subscribing = actions.add_parser(
        "subscribe", help="follow a coalition's list (fetch, check, hold; members not applied yet)"
    )
    subscribing.add_argument("url", metavar="URL", help="e.g. https://host/trustlists/v1/socal")
    subscribing.add_argument(
        "--fingerprint",
        required=True,
        metavar="FP",
        help="version 1's maintainer-set fingerprint, read to you by a maintainer",
    )
    subscribing.add_argument(
        "--max-speaks-for",
        nargs="+",
        metavar="CODE",
        help="the widest scope any member of this list may speak for here",
    )
    _data(subscribing)
    subscribing.set_defaults(func=cmd_subscribe)

    refreshing = actions.add_parser("refresh", help="fetch subscribed lists now, walk forward")
    refreshing.add_argument("list", nargs="?", metavar="LIST", help="default: every list")
    _data(refreshing)
    refreshing.set_defaults(func=cmd_refresh)

    leaving = actions.add_parser("unsubscribe", help="stop following a list")
    leaving.add_argument("list", metavar="LIST", help="as 'avisa trustlist list' shows it")
    _data(leaving)
    leaving.set_defaults(func=cmd_unsubscribe)

    showing = actions.add_parser("show", help="a kept version: maintainers, members, fingerprint")
    showing.add_argument("list", metavar="LIST", help="a list this node keeps")
    showing.add_argument("--version", type=_int, metavar="N", help="default: the highest kept")
    showing.add_argument("--raw", action="store_true", help="print the envelope as published")
    _data(showing)
    showing.set_defaults(func=cmd_show)
