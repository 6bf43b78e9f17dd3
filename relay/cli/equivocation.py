"""``avisa trust equivocation list|clear``: origins caught signing two heads.

When a node sees two validly signed checkpoints of one origin with the same
``seq`` and different heads, or a checkpoint its own chain of that origin
contradicts, it keeps both as evidence (``relay.storage.evidence``) and holds
that origin's new alerts for review (reason ``equivocation``). ``list`` shows
the evidence; ``clear NETWORK`` is the operator's decision once the origin's
operators have explained it (a restored backup that re-signed old numbers, a
key in the wrong hands): the evidence stays, marked cleared, and the origin's
new alerts are accepted again by the usual rules. A running node sees the
change at its next trust reload (the trust version is bumped).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from keys.store.own_ops import open_store
from relay.core.errors import BadInput
from relay.core.model import valid_network
from relay.core.times import rfc3339
from relay.runtime.clock import system_clock
from relay.storage import db, evidence, trust


def _data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, required=True, metavar="DIR", help="the node's data directory"
    )


def _as_dict(item: evidence.Evidence) -> dict[str, Any]:
    return {
        "network": item.network,
        "seq": item.seq,
        "kind": item.kind,
        "first": item.first.decode(),
        "second": item.second.decode() or None,
        "from_peer": item.from_peer,
        "seen_at": rfc3339(item.seen_at),
        "cleared_at": None if item.cleared_at is None else rfc3339(item.cleared_at),
    }


def cmd_list(args: argparse.Namespace) -> int:
    with open_store(args.data) as (_, conn):
        items = evidence.listing(conn, args.network)
    if args.json:
        print(json.dumps({"equivocations": [_as_dict(item) for item in items]}))
        return 0
    if not items:
        print("No equivocation seen.")
    for item in items:
        state = "held" if item.cleared_at is None else f"cleared {rfc3339(item.cleared_at)}"
        what = "two checkpoints" if item.kind == "checkpoints" else "a checkpoint against our chain"
        via = f" (from {item.from_peer})" if item.from_peer else ""
        print(f"{item.network}  seq {item.seq}  {what}{via}  {rfc3339(item.seen_at)}  {state}")
    return 0


def _clear(conn: Any, network: str) -> int:
    cleared = evidence.clear(conn, network, system_clock())
    if cleared:
        trust.bump_version(conn)
    return cleared


def cmd_clear(args: argparse.Namespace) -> int:
    if not valid_network(args.network):
        raise BadInput("AVISA_BAD_NETWORK", "not a network id like ventura or oc.resilience")
    with open_store(args.data) as (_, conn):
        cleared = db.transaction(conn, lambda c: _clear(c, args.network))
    if not cleared:
        print(f"Nothing to clear: no evidence against {args.network} waits for a decision.")
        return 1
    print(f"Cleared {cleared} piece(s) of evidence against {args.network}; its new alerts")
    print("are no longer held. Those already held wait for review (avisa held list).")
    return 0


def register(actions: Any) -> None:
    """Add ``avisa trust equivocation list|clear`` under ``avisa trust``."""
    parser = actions.add_parser(
        "equivocation", help="origins caught signing two heads: evidence, and clearing it"
    )
    verbs = parser.add_subparsers(dest="equivocation_command", required=True, metavar="ACTION")
    listing = verbs.add_parser("list", help="the evidence kept, newest first")
    listing.add_argument("network", nargs="?", metavar="NETWORK", help="only this origin")
    listing.add_argument("--json", action="store_true", help="one JSON object")
    _data(listing)
    listing.set_defaults(func=cmd_list)
    clearing = verbs.add_parser("clear", help="decide: stop holding the origin's new alerts")
    clearing.add_argument("network", metavar="NETWORK", help="the origin")
    _data(clearing)
    clearing.set_defaults(func=cmd_clear)
