"""``avisa trust deny|undeny|denied``: networks refused whatever a trust list says.

The operations are ``keys.store.deny_ops``; this module only parses and prints.
``avisa trust list`` says for each peer whether it is trusted locally or through
which list (``relay.cli.keys``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from keys.store import deny_ops
from relay.cli.datadir import data_arg
from relay.runtime.clock import system_clock


def cmd_deny(args: argparse.Namespace) -> int:
    if deny_ops.deny(args.data, args.network, args.reason, system_clock):
        print(f"Denied {args.network}: no trust list makes it a peer here any more.")
    else:
        print(f"{args.network} was already denied.")
    return 0


def cmd_undeny(args: argparse.Namespace) -> int:
    deny_ops.undeny(args.data, args.network)
    print(f"{args.network} is no longer denied: the lists this node follows apply again.")
    return 0


def cmd_denied(args: argparse.Namespace) -> int:
    rows = deny_ops.denied(args.data)
    if args.json:
        print(json.dumps({"denied": rows}))
        return 0
    if not rows:
        print("No network is denied.")
    for row in rows:
        print(f"{row['network']}  since {row['denied_at']}  ({row['reason']})")
    return 0


def register_deny(actions: Any) -> None:
    """Add ``deny``, ``undeny`` and ``denied`` to ``avisa trust``."""
    deny = actions.add_parser(
        "deny", help="refuse a network whatever the trust lists this node follows say"
    )
    deny.add_argument("network", metavar="NETWORK", help="e.g. santa-ana")
    deny.add_argument(
        "--reason", required=True, metavar="TEXT", help="why, for the other operators (shown)"
    )
    data_arg(deny)
    deny.set_defaults(func=cmd_deny)

    undeny = actions.add_parser("undeny", help="lift a deny: the lists apply to it again")
    undeny.add_argument("network", metavar="NETWORK", help="as 'avisa trust denied' shows it")
    data_arg(undeny)
    undeny.set_defaults(func=cmd_undeny)

    denied = actions.add_parser("denied", help="the networks denied here, since when and why")
    denied.add_argument("--json", action="store_true", help="one JSON object")
    data_arg(denied)
    denied.set_defaults(func=cmd_denied)
