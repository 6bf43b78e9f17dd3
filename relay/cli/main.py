"""``avisa``: the command line (DESIGN §7).

Each command group registers itself on the parser (``relay.cli.alert``,
``relay.cli.keys``, …), so this module stays the table of contents. Commands
return an exit code: 0 done, 1 refused or failed (with one clear line on
stderr), 2 usage. No command prints a traceback for an expected failure;
Ctrl-C and a closed pipe are handled once for all commands in ``relay.entry``.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from keys.core.fingerprint import fingerprint
from keys.core.keyring import keyid_for
from keys.store import nodekey
from relay.cli import datadir
from relay.core import config as config_mod
from relay.core.errors import AvisaError, ConfigError
from relay.runtime import log
from relay.runtime.node import passphrase_from_environment
from relay.storage import configfile, db, trust

data_arg = datadir.data_arg
JSON_HELP = "print one JSON object instead of lines"


def cmd_init(args: argparse.Namespace) -> int:
    result = datadir.initialize(
        args.data,
        args.network,
        args.listen,
        args.url or "",
        passphrase_from_environment(Path(args.passphrase_file) if args.passphrase_file else None),
    )
    print(f"Initialized node '{result.network}' in {result.data_dir}")
    if result.kept_config:
        kept = configfile.load(result.data_dir)
        print(
            f"  kept the avisa.toml already there: listen {kept.node.listen},"
            f" url {kept.public_url} (--listen and --url are not used)"
        )
    print(f"  key id:       {result.keyid}")
    print(f"  fingerprint:  {result.fingerprint}")
    print(f"  admin token:  {result.data_dir / config_mod.TOKEN_NAME}")
    listen = configfile.load(result.data_dir).node.listen
    if _port_taken(listen):
        print(
            f"Note: {listen} is in use now (another node?). Before 'avisa run', set"
            f" node.listen and node.url in {result.data_dir / config_mod.CONFIG_NAME}"
            " to a free port."
        )
    print("Read the fingerprint to neighbouring operators over a separate channel.")
    print(f"Start the node with: avisa run --data {result.data_dir}")
    return 0


def _port_taken(listen: str) -> bool:
    """Whether something listens on ``listen`` now (as ``avisa run`` would bind it)."""
    host, _, port = listen.rpartition(":")
    if not port.isdigit() or int(port) == 0:
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), int(port)))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


_BIND_ERRORS = {
    errno.EADDRINUSE: "is already in use (another avisa node, or another program)",
    errno.EACCES: "needs privileges (ports below 1024)",
    errno.EADDRNOTAVAIL: "is not an address of this machine",
}


def cmd_run(args: argparse.Namespace) -> int:
    from relay.http.app import run_until_stopped
    from relay.storage import runlock

    log.configure(args.log_level)
    with runlock.hold(args.data):
        try:
            _run_interruptible(partial(run_until_stopped, args.data))
        except OSError as exc:
            if exc.errno not in _BIND_ERRORS:
                raise
            listen = configfile.load(args.data).node.listen
            raise ConfigError(
                f"{args.data / config_mod.CONFIG_NAME}: node.listen",
                f"{listen} {_BIND_ERRORS[exc.errno]}; set node.listen to a free HOST:PORT"
                " (e.g. 127.0.0.1:8471) and node.url to match (docs/operator-guide.md,"
                " 'A second node on one machine')",
            ) from None
    return 0


def _run_interruptible(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """``asyncio.run(main())``, with Ctrl-C held back while the loop is being built.

    A Ctrl-C that lands inside the construction of the event loop leaves a
    half-made loop whose finalizer complains; held back until ``main`` runs,
    it reaches ``asyncio.run``'s own handler, which cancels ``main`` (its
    ``finally`` blocks run) and raises ``KeyboardInterrupt`` for ``relay.entry``.
    """

    async def unblocked() -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        await main()

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        asyncio.run(unblocked())
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _print_fields(info: Mapping[str, object], as_json: bool, width: int) -> None:
    if as_json:
        print(json.dumps(info))
        return
    for name, value in info.items():
        shown = ("yes" if value else "no") if isinstance(value, bool) else value
        print(f"{name + ':':{width}} {shown}")


def cmd_keys_show(args: argparse.Namespace) -> int:
    config = configfile.load(args.data)
    public = nodekey.read_public(args.data / config_mod.KEY_NAME)
    info = {
        "network": config.node.network,
        "keyid": keyid_for(public),
        "public_key": nodekey._b64(public),
        "fingerprint": fingerprint(public),
    }
    _print_fields(info, args.json, 13)
    return 0


TOKEN_WAIT_S = 10.0


def cmd_token_add(args: argparse.Namespace) -> int:
    from relay.runtime.clock import system_clock

    conn = db.open_sync(args.data / config_mod.DB_NAME)
    try:
        token = db.transaction(
            conn,
            lambda c: trust.add_token(
                c, trust.parse_roles(args.role), args.label, system_clock(), args.person
            ),
        )
    finally:
        conn.close()
    _wait_until_accepted(args.data, token)
    print(token)
    return 0


def _wait_until_accepted(data_dir: Path, token: str) -> None:
    """A running node reloads tokens within seconds: return once it takes this one."""
    from relay.cli.client import ClientError, NodeClient

    try:
        client = NodeClient.for_data_dir(data_dir, token=token)
    except ClientError:
        return  # the node is not running: it reads the token when it starts
    deadline = time.monotonic() + TOKEN_WAIT_S
    while time.monotonic() < deadline:
        try:
            client.call("GET", "/api/v1/alerts?limit=1")
            return
        except ClientError as exc:
            if exc.errcode != "AVISA_UNAUTHORIZED":
                return  # not running, or another problem the token's user will see
        time.sleep(0.1)


def cmd_backup(args: argparse.Namespace) -> int:
    written = datadir.backup(args.data, args.out)
    print(f"backed up {len(written)} files to {args.out}")
    if not nodekey.is_encrypted(args.data / config_mod.KEY_NAME):
        print(
            "warning: node.key is not passphrase-protected; keep this backup encrypted and offline",
            file=sys.stderr,
        )
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    conn = db.open_sync(args.data / config_mod.DB_NAME)
    try:
        tokens = trust.list_tokens(conn)
    finally:
        conn.close()
    for info in tokens:
        person = f"  [{info.person}]" if info.person and info.person != info.label else ""
        print(
            f"{info.token_id}  {info.role:16}  {info.created_at:%Y-%m-%d %H:%M}Z  {info.label}"
            + person
        )
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    conn = db.open_sync(args.data / config_mod.DB_NAME)
    try:
        db.transaction(conn, lambda c: trust.revoke_token(c, args.token_id))
    finally:
        conn.close()
    print(f"revoked {args.token_id}; the running node stops accepting it within seconds")
    return 0


def cmd_policy_explain(args: argparse.Namespace) -> int:
    from relay.runtime.explain import explain

    result = explain(args.data, Path(args.envelope), args.from_peer)
    if args.json:
        print(json.dumps(result))
        return 0
    signatures = result.pop("signatures", [])
    endorsed = result.pop("endorsed_by", None)
    if result.get("stored_here") == "accepted":
        result = _already_accepted(result)
    _print_fields(result, False, 18)
    if endorsed is not None:
        print(f"{'endorsed by:':18} {', '.join(endorsed) or '(no one)'}")
    for number, line in enumerate(signatures, 1):
        print(f"{f'signature {number}:':18} {line}")
    return 0


def _already_accepted(result: dict[str, Any]) -> dict[str, Any]:
    """An alert accepted here: say so, and what was and would be decided, not "duplicate"."""
    accepted, as_new = result.pop("accepted_here"), result.pop("as_new")
    if accepted is None:
        how = "(its decision is no longer in the decision log)"
    else:
        peer = accepted["from_peer"]
        how = f"{accepted['at']}, {accepted['reason']}" + (f", from {peer}" if peer else "")
    head = {name: result.pop(name) for name in ("alert_id", "origin")}
    del result["decision"], result["reason"]
    return {
        **head,
        "decision": "none: already accepted here (a copy arriving now changes nothing)",
        "accepted here": how,
        "as if new": f"{as_new['decision']} ({as_new['reason']})",
        **result,
    }


def _register_node(commands: Any) -> None:
    init = commands.add_parser("init", help="create a node's data directory, key and token")
    data_arg(init)
    init.add_argument("--network", required=True, help="this network's id, e.g. ventura")
    init.add_argument(
        "--listen",
        default="127.0.0.1:8470",
        metavar="HOST:PORT",
        help="where this node accepts connections (node.listen; default 127.0.0.1:8470;"
        " a second node on one machine needs another port)",
    )
    init.add_argument(
        "--url",
        help="the address peers use to reach this node (node.url; default http://LISTEN)",
    )
    init.add_argument(
        "--passphrase-file",
        metavar="FILE",
        help="seal node.key with the passphrase in this file",
    )
    init.set_defaults(func=cmd_init)

    run = commands.add_parser("run", help="run the node until Ctrl-C or SIGTERM")
    data_arg(run)
    run.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning"],
        help="how much the node logs (default info: one line per decision)",
    )
    run.set_defaults(func=cmd_run)

    backup = commands.add_parser(
        "backup", help="copy the data directory (a consistent database snapshot) while it runs"
    )
    data_arg(backup)
    backup.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="NEW_DIR",
        help="a new (or empty) directory to copy into",
    )
    backup.set_defaults(func=cmd_backup)


def _register_keys(commands: Any) -> None:
    from relay.cli import keys as keys_cli

    keys = commands.add_parser("keys", help="this node's signing key")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    show = key_commands.add_parser("show", help="print network, key id and fingerprint")
    data_arg(show)
    show.add_argument("--json", action="store_true", help=JSON_HELP)
    show.set_defaults(func=cmd_keys_show)
    keys_cli.register_keys(key_commands)
    keys_cli.register_trust(commands)


def _register_tokens(commands: Any) -> None:
    token = commands.add_parser("token", help="operator API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    add = token_commands.add_parser("add", help="create a token and print it once")
    data_arg(add)
    add.add_argument(
        "--role",
        required=True,
        metavar="ROLE[,ROLE]",
        help=f"one or more of {', '.join(trust.ROLES)}, e.g. --role intake,verifier",
    )
    add.add_argument("--label", default="", help="who holds it (not shown to anyone else)")
    add.add_argument(
        "--person",
        help="the person the two-person rule counts (default: the label); see 'avisa desk link'",
    )
    add.set_defaults(func=cmd_token_add)
    listing = token_commands.add_parser(
        "list", help="tokens by id, role and label (never the token)"
    )
    data_arg(listing)
    listing.set_defaults(func=cmd_token_list)
    revoke = token_commands.add_parser("revoke", help="stop accepting a token")
    revoke.add_argument("token_id", metavar="TOKEN_ID", help="as 'avisa token list' shows it")
    data_arg(revoke)
    revoke.set_defaults(func=cmd_token_revoke)


def _register_policy(commands: Any) -> None:
    policy = commands.add_parser("policy", help="the trust policy")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    explain = policy_commands.add_parser(
        "explain", help="what this node would decide for an envelope file, and why (no changes)"
    )
    explain.add_argument(
        "envelope",
        metavar="ENVELOPE_FILE",
        help='a signed alert: the "envelope" of GET /api/v1/alerts/ID, or a file a peer sent',
    )
    data_arg(explain)
    explain.add_argument(
        "--from-peer",
        metavar="NETWORK",
        help="judge it as if this trusted peer had sent it (default: as if fetched directly)",
    )
    explain.add_argument("--json", action="store_true", help=JSON_HELP)
    explain.set_defaults(func=cmd_policy_explain)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("avisa")
    except metadata.PackageNotFoundError:
        return "(not installed)"


#: Adds a command to ``avisa``'s sub-parsers (``relay.demo.command.register``).
Register = Callable[[Any], None]


def build_parser(extra: Sequence[Register] = ()) -> argparse.ArgumentParser:
    from relay.cli import alert as cli_alert
    from relay.cli import cap as cli_cap
    from relay.cli import desk as cli_desk
    from relay.cli import outbox as cli_outbox
    from relay.cli import tip as cli_tip
    from relay.cli import trustlist as cli_trustlist

    parser = argparse.ArgumentParser(
        prog="avisa", description="Avisa: a federated relay for verified rapid-response alerts."
    )
    parser.add_argument(
        "--version", action="version", version=f"avisa {_version()}", help="print the version"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _register_node(commands)
    _register_keys(commands)
    _register_tokens(commands)
    cli_alert.register(commands)
    cli_tip.register(commands)
    cli_desk.register(commands)
    _register_policy(commands)
    cli_cap.register(commands)
    cli_outbox.register(commands)
    cli_trustlist.register(commands)
    for register in extra:
        register(commands)
    _remember_parsers(parser)
    return parser


def _remember_parsers(parser: argparse.ArgumentParser) -> None:
    """Each (sub)command's parser is in its own namespace as ``_parser``: the innermost
    one given wins, so an unknown option is reported with that command's usage."""
    parser.set_defaults(_parser=parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _remember_parsers(sub)


def main(argv: Sequence[str] | None = None, extra: Sequence[Register] = ()) -> int:
    """``avisa``; ``extra`` adds commands of the layers above the CLI (the demo)."""
    parser = build_parser(extra)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        args._parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        if "data" in vars(args):
            args.data = datadir.resolve(args.data)
        code: int = args.func(args)
    except AvisaError as exc:
        print(f"avisa: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
