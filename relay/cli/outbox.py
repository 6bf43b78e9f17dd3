"""``avisa outbox list|release``: what the sender quarantined, and putting it back.

The sender quarantines an item a peer refused with a 4xx even when sent alone
(``relay.federation.sender``): the queue moves on, and the item waits in
``quarantine`` until it expires. Once the cause is fixed (the peer upgraded, a
policy was changed on their side), ``release`` puts it back in the peer's queue;
a running node sends it within 30 seconds (its sender re-checks an idle queue
that often). An alert that expired, was cancelled, replaced or held since
cannot be released; it stays listed until its quarantine record expires.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from keys.store.own_ops import open_store
from relay.core.errors import BadInput
from relay.core.times import rfc3339
from relay.runtime.clock import system_clock
from relay.storage import db, outbox


def _data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, required=True, metavar="DIR", help="the node's data directory"
    )


def cmd_list(args: argparse.Namespace) -> int:
    with open_store(args.data) as (_, conn):
        items = outbox.quarantine_listing(conn, system_clock(), args.peer)
    if args.json:
        print(
            json.dumps(
                {
                    "quarantined": [
                        {
                            "peer": item.peer,
                            "alert_id": item.alert_id,
                            "at": rfc3339(item.at),
                            "reason": item.reason,
                            "state": item.state,
                        }
                        for item in items
                    ]
                }
            )
        )
        return 0
    if not items:
        print("Nothing is quarantined.")
    for item in items:
        print(f"{item.peer}  {item.alert_id}  {rfc3339(item.at)}  {item.reason}  ({item.state})")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    with open_store(args.data) as (_, conn):
        if args.all:
            ids = [i.alert_id for i in outbox.quarantine_listing(conn, system_clock(), args.peer)]
        elif args.alert_id:
            ids = [args.alert_id]
        else:
            raise BadInput("AVISA_BAD_REQUEST", "name an ALERT_ID, or give --all")
        now = system_clock()
        results = db.transaction(
            conn, lambda c: [(i, outbox.release_quarantined(c, args.peer, i, now)) for i in ids]
        )
    for alert_id, result in results:
        print(f"{alert_id}: {_explain(result, args.peer)}")
    if not args.all and results[0][1] != "queued":
        return 1
    return 0


def _explain(result: str, peer: str) -> str:
    return {
        "queued": f"back in the queue for {peer}",
        "unknown": f"not quarantined for {peer}",
        "gone": "no longer stored (purged): not released",
    }.get(result, f"{result}: not released")


def register(commands: Any) -> None:
    """``avisa outbox list|release``."""
    box = commands.add_parser("outbox", help="items the sender quarantined for a peer")
    actions = box.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="quarantined items, newest first, and their state")
    _data(listing)
    listing.add_argument("--peer", help="only this peer's")
    listing.add_argument("--json", action="store_true", help="one JSON object")
    listing.set_defaults(func=cmd_list)
    release = actions.add_parser(
        "release", help="put a quarantined item (or all of a peer's) back in its queue"
    )
    _data(release)
    release.add_argument("peer", metavar="PEER", help="the peer network it was meant for")
    release.add_argument(
        "alert_id", metavar="ALERT_ID", nargs="?", help="the alert id (avisa outbox list)"
    )
    release.add_argument("--all", action="store_true", help="every item quarantined for PEER")
    release.set_defaults(func=cmd_release)
