"""``avisa keys export-card|rotate|revoke``; ``avisa trust add|set|update|list|remove|revoke``
(and ``deny|undeny|denied``, in ``relay.cli.trustdeny``).

Thin: parse options, call ``keys.store.own_ops`` / ``keys.store.peer_ops`` (which do the
work on the data directory, node running or not), print a short report.
Refusals raise ``AvisaError`` subclasses, which ``relay.cli.main.main`` prints as
one line and exit code 1. Nothing printed here contains a private key or a
passphrase; key ids and fingerprints are public by design.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from keys.cards.keyset import Change
from keys.store import own_ops, peer_ops
from relay.cli import equivocation
from relay.cli.trustdeny import register_deny
from relay.cli.words import plural
from relay.core.errors import BadInput, ConfigError
from relay.core.model import CERTAINTIES, KINDS
from relay.core.policy import RELAYS
from relay.core.times import rfc3339
from relay.runtime.clock import system_clock
from relay.runtime.node import read_passphrase
from relay.storage import configfile
from relay.storage.files import write_private

RELAY_SAYS = {"own": " (our own alerts only)", "peers": " (ours and our peers' only)"}


def _data(parser: argparse.ArgumentParser) -> None:
    from relay.cli.datadir import data_arg

    data_arg(parser)


def _passphrase_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--passphrase-file",
        metavar="FILE",
        help="passphrase of a sealed node.key (default: AVISA_PASSPHRASE or node.passphrase_file)",
    )


def _passphrase(args: argparse.Namespace) -> bytes | None:
    try:
        if args.passphrase_file:
            return Path(args.passphrase_file).read_bytes().rstrip(b"\r\n")
        return read_passphrase(args.data, configfile.load(args.data))
    except OSError as exc:
        raise ConfigError(
            args.passphrase_file or "node.passphrase_file", f"cannot read ({exc.strerror})"
        ) from None


# --- avisa keys ----------------------------------------------------------------


# Files of a data directory a card must never replace, even with --force.
_DATA_FILES = ("node.key", "node.key.next", "operator.token", "desk.key", "keys.lock")
_DATA_SUFFIXES = (".key", ".token", ".toml", ".db", ".db-wal", ".db-shm", ".json", ".lock")


def card_target(out: str, data_dir: Path, force: bool) -> Path:
    """Where ``--out`` may write a card, or a ``ConfigError`` saying why not."""
    target = Path(out).resolve()
    if target.is_dir():
        raise ConfigError("--out", f"{out} is a directory; name a file, e.g. {out}/node.card")
    if not target.parent.is_dir():
        raise ConfigError("--out", f"{target.parent} is not an existing directory")
    data = data_dir.resolve()
    inside = target.parent == data and (
        target.name in _DATA_FILES or target.name.endswith(_DATA_SUFFIXES)
    )
    same = target.exists() and any(
        (data / name).exists() and target.samefile(data / name) for name in _DATA_FILES
    )
    if inside or same:
        raise ConfigError(
            "--out", f"{out} is one of the node's own files; write the card elsewhere"
        )
    if target.exists() and not force:
        raise ConfigError("--out", f"{out} exists; give --force to replace it")
    return target


def cmd_export_card(args: argparse.Namespace) -> int:
    target = None if args.out is None else card_target(args.out, args.data, args.force)
    envelope = own_ops.export_card(args.data, _passphrase(args), system_clock)
    card = (json.dumps(msgspec.to_builtins(envelope), indent=2) + "\n").encode()
    if target is None:
        sys.stdout.write(card.decode())
        return 0
    try:
        write_private(target, card, mode=0o644, replace=args.force)
    except FileExistsError:
        raise ConfigError("--out", f"{args.out} exists; give --force to replace it") from None
    print(f"Card written to {args.out} (key {envelope.signatures[0].keyid}).")
    print("Send it to the other operator, then read them the fingerprint from")
    print(f"'avisa keys show --data {args.data}' over the phone or in person.")
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    report = own_ops.rotate(args.data, _passphrase(args), system_clock)
    print(f"Rotated: {report.old_keyid} -> {report.keyid} at {rfc3339(report.at)}")
    print(f"  new fingerprint: {report.fingerprint}")
    print("Peers that trust the old key accept the new one from the rotation statement in")
    print("this node's key document. Cards exported before now are outdated: export a new one.")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    report = own_ops.revoke_own(
        args.data,
        args.keyid,
        args.at,
        lost=args.lost,
        passphrase=_passphrase(args),
        clock=system_clock,
    )
    print(f"Revoked {report.old_keyid} from {rfc3339(report.at)}.")
    if report.made_new_key:
        print(f"  new key:         {report.keyid}")
        print(f"  new fingerprint: {report.fingerprint}")
    if report.held_again:
        print(f"  {plural(len(report.held_again), 'alert')} moved back to review (held).")
    if report.warning:
        print(report.warning)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    keys = own_ops.own_listing(args.data, system_clock)
    if args.json:
        print(json.dumps({"keys": keys}))
        return 0
    for key in keys:
        print(f"{key['keyid']}  {key['status']}")
        print(f"    fingerprint {key['fingerprint']}")
    return 0


def register_keys(actions: Any) -> None:
    """Add ``list``, ``rotate``, ``revoke``, ``export-card`` to ``avisa keys``."""
    listing = actions.add_parser(
        "list", help="every key this node has had: current, rotated out, revoked"
    )
    _data(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object")
    listing.set_defaults(func=cmd_keys_list)

    export = actions.add_parser(
        "export-card", help="print this node's signed peer card (JSON) for a key ceremony"
    )
    _data(export)
    export.add_argument(
        "--out",
        metavar="FILE",
        help="write the card to FILE instead of stdout (never over an existing file, "
        "unless --force; never over the data directory's own files)",
    )
    export.add_argument("--force", action="store_true", help="replace FILE if it exists")
    _passphrase_arg(export)
    export.set_defaults(func=cmd_export_card)

    rotate = actions.add_parser(
        "rotate", help="replace the signing key; peers follow via a statement both keys sign"
    )
    _data(rotate)
    _passphrase_arg(rotate)
    rotate.set_defaults(func=cmd_rotate)

    revoke = actions.add_parser(
        "revoke",
        help="revoke a key of this node (seized or lost); revoking the current one makes a new key",
    )
    revoke.add_argument("keyid", nargs="?", metavar="KEYID", help="default: the current key")
    _data(revoke)
    revoke.add_argument(
        "--at", metavar="TIME", help="RFC 3339; the earliest time others may have had it"
    )
    revoke.add_argument(
        "--lost",
        action="store_true",
        help="the current key file is gone or unreadable: revoke without its signature",
    )
    _passphrase_arg(revoke)
    revoke.set_defaults(func=cmd_revoke)


# --- avisa trust ---------------------------------------------------------------


def _print_changes(changes: tuple[Change, ...]) -> None:
    for change in changes:
        print(f"  {change.action:20} {change.keyid}  {change.detail}")


def _card_path(args: argparse.Namespace) -> Path:
    """The card file, also when a many-valued option took it (``--speaks-for A B card.json``)."""
    if args.card is not None:
        return Path(args.card)
    for name in ("speaks_for", "kinds", "certainties"):
        values = getattr(args, name) or []
        if values and Path(values[-1]).is_file():
            setattr(args, name, values[:-1] or None)
            return Path(values[-1])
    raise BadInput("AVISA_USAGE", "give the card file: avisa trust add CARD_FILE ...")


def _scope(args: argparse.Namespace) -> peer_ops.Scope:
    return peer_ops.Scope(
        speaks_for=args.speaks_for,
        kinds=args.kinds,
        certainties=args.certainties,
        rate_limit_per_min=args.rate_limit,
        forward=args.forward,
        endorse=args.endorse,
        relay=args.relay,
    )


def cmd_trust_add(args: argparse.Namespace) -> int:
    card = _card_path(args)
    scope = _scope(args)
    added = peer_ops.add(args.data, peer_ops.read_card(card), args.fingerprint, scope, system_clock)
    plan, policy = added.plan, added.policy
    verb = "Updated" if plan.already_trusted else "Trusted"
    print(f"{verb} {plan.network} ({plan.url}).")
    _print_changes(plan.changes)
    print(
        f"  speaks for: {', '.join(policy.speaks_for) or '(nothing: its alerts need endorsements)'}"
    )
    if added.held_again:
        print(f"  {plural(len(added.held_again), 'alert')} moved back to review (held).")
    return 0


def cmd_trust_set(args: argparse.Namespace) -> int:
    policy = peer_ops.set_scope(args.data, args.network, _scope(args), system_clock)
    print(f"Updated the settings of {args.network}; a running node applies them within seconds.")
    _print_settings(
        list(policy.speaks_for),
        sorted(policy.kinds),
        sorted(policy.certainties),
        policy.rate_limit_per_min,
        forward=policy.forward,
        endorse=policy.endorse,
        relay=policy.relay,
    )
    return 0


def _print_settings(
    speaks_for: list[str],
    kinds: list[str],
    certainties: list[str],
    rate_limit: int,
    *,
    forward: bool,
    endorse: bool,
    relay: str = "all",
) -> None:
    print(f"  speaks for:   {', '.join(speaks_for) or '-'}")
    print(f"  kinds:        {'all' if len(kinds) == len(KINDS) else ', '.join(kinds)}")
    print(f"  certainties:  {', '.join(certainties)}")
    print(
        f"  rate limit:   {rate_limit}/min; forward {'yes' if forward else 'no'}"
        f"{RELAY_SAYS.get(relay, '')}; endorse {'yes' if endorse else 'no'}"
    )


def cmd_trust_update(args: argparse.Namespace) -> int:
    stored = peer_ops.update(args.data, peer_ops.read_card(Path(args.card)), system_clock)
    result = stored.result
    print(f"Applied the key document of {result.network}.")
    _print_changes(result.changes)
    if not result.trusted:
        print("  Its signing key is not trusted here: only revocations were taken.")
    if stored.held_again:
        print(f"  {plural(len(stored.held_again), 'alert')} moved back to review (held).")
    return 0


def cmd_trust_list(args: argparse.Namespace) -> int:
    peers = peer_ops.listing(args.data, system_clock)
    if args.network:
        peers = [peer for peer in peers if peer["network"] == args.network]
    if args.json:
        print(json.dumps({"peers": peers}))
        return 0
    if not peers:
        print("No trusted peers." if not args.network else f"No trusted peer {args.network}.")
    for peer in peers:
        print(f"{peer['network']}  {peer['url']}")
        _print_settings(
            peer["speaks_for"],
            peer["kinds"],
            peer["certainties"],
            peer["rate_limit_per_min"],
            forward=peer["forward"],
            endorse=peer["endorse"],
            relay=peer["relay"],
        )
        print(f"  trusted:      {_trusted_via(peer)}")
        for key in peer["keys"]:
            print(f"  key {key['keyid']}  {key['status']}")
            print(f"      fingerprint {key['fingerprint']}  (learned from {key['learned_from']})")
    return 0


def _trusted_via(peer: dict[str, Any]) -> str:
    """``local`` or each list (version, expiry) the peer comes through; FROZEN once expired."""
    if peer["trusted_via"] == "local":
        return "locally (avisa trust add)"
    via = "; ".join(
        f"list {s['list']} v{s['version']}, {'expired' if s['expired'] else 'expires'}"
        f" {s['expires_at']}"
        for s in peer["lists"]
    )
    return f"through {via}" + (" — FROZEN: new alerts are held" if peer["frozen"] else "")


def cmd_trust_remove(args: argparse.Namespace) -> int:
    peer_ops.remove(args.data, args.network)
    print(f"Removed {args.network} and its keys.")
    return 0


def cmd_trust_revoke(args: argparse.Namespace) -> int:
    stored = peer_ops.revoke(args.data, args.network, args.keyid, args.at, system_clock)
    _print_changes(stored.result.changes)
    print(f"  {plural(len(stored.held_again), 'alert')} moved back to review (held).")
    return 0


def _add_options(add: argparse.ArgumentParser) -> None:
    add.add_argument(
        "card",
        nargs="?",
        metavar="CARD_FILE",
        help="the card the other operator exported",
    )
    add.add_argument(
        "--fingerprint",
        metavar="FP",
        help="the 30 digits the other operator read to you over a separate channel"
        " (not needed again to change the settings of a peer already trusted)",
    )
    _scope_options(add)


def _scope_options(add: argparse.ArgumentParser) -> None:
    add.add_argument(
        "--speaks-for",
        nargs="+",
        action="extend",
        metavar="CODE",
        help="area codes (fips:06037, zip:93101, iso:us-ca) or geohash prefixes where its"
        " own alerts are authoritative",
    )
    add.add_argument(
        "--kinds",
        nargs="+",
        action="extend",
        metavar="KIND",
        help=f"accepted kinds, some of {', '.join(KINDS)} (default: all)",
    )
    add.add_argument(
        "--certainties",
        nargs="+",
        action="extend",
        metavar="CERTAINTY",
        help=f"accepted certainties, some of {', '.join(CERTAINTIES)} (default: all)",
    )
    add.add_argument("--rate-limit", type=int, metavar="N", help="envelopes per minute (600)")
    add.add_argument(
        "--forward",
        action=argparse.BooleanOptionalAction,
        help="forward alerts to this peer (default yes; --no-forward to stop)",
    )
    add.add_argument(
        "--endorse",
        action=argparse.BooleanOptionalAction,
        help="append our endorsement to what we relay to it (default no)",
    )
    add.add_argument(
        "--relay",
        choices=RELAYS,
        help="what we forward to it: 'all' we accept (default); only our 'own' alerts (a"
        " neighbour that hears the others directly); or ours and our trusted 'peers''"
        " (not what we accepted on endorsements: one hub to another). docs/federation.md",
    )


def register_trust(commands: Any) -> None:
    """Add ``avisa trust add|set|update|list|remove|revoke``."""
    trust = commands.add_parser("trust", help="peer networks this node trusts, and their keys")
    actions = trust.add_subparsers(dest="trust_command", required=True, metavar="ACTION")
    equivocation.register(actions)

    add = actions.add_parser(
        "add", help="trust a peer's card once its fingerprint, read aloud, matches"
    )
    _add_options(add)
    _data(add)
    add.set_defaults(func=cmd_trust_add)

    settings = actions.add_parser(
        "set",
        help="change the settings of a peer already trusted (options not given keep their value)",
    )
    settings.add_argument("network", metavar="NETWORK", help="as 'avisa trust list' shows it")
    _scope_options(settings)
    _data(settings)
    settings.set_defaults(func=cmd_trust_set)

    update = actions.add_parser(
        "update",
        help="apply a newer card or key document of a trusted peer (rotations, revocations)",
    )
    update.add_argument("card", metavar="CARD_FILE", help="the peer's newer card or key document")
    _data(update)
    update.set_defaults(func=cmd_trust_update)

    listing = actions.add_parser(
        "list", help="each peer: url, scope, keys, fingerprints and validity"
    )
    listing.add_argument("network", nargs="?", metavar="NETWORK", help="only this peer")
    _data(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object")
    listing.set_defaults(func=cmd_trust_list)

    remove = actions.add_parser("remove", help="stop trusting a peer and forget its keys")
    remove.add_argument("network", metavar="NETWORK", help="as 'avisa trust list' shows it")
    _data(remove)
    remove.set_defaults(func=cmd_trust_remove)

    revoke = actions.add_parser(
        "revoke", help="revoke a peer's key by operator decision (seized or lost)"
    )
    revoke.add_argument("network", metavar="NETWORK", help="the peer whose key it is")
    revoke.add_argument("keyid", metavar="KEYID", help="as 'avisa trust list' shows it")
    revoke.add_argument("--at", metavar="TIME", help="RFC 3339; default now")
    _data(revoke)
    revoke.set_defaults(func=cmd_trust_revoke)
    register_deny(actions)
