"""``avisa cap status``: the CAP export's settings and each CAP source's counters.

The export's settings come from ``avisa.toml``; the sources' state from the
running node (``GET /api/v1/bridges``), since only the running importer
knows when it last polled and what it filed or refused.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from relay.cli.client import NodeClient
from relay.storage import configfile


def _sources(bridges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        source for bridge in bridges if bridge.get("type") == "cap" for source in bridge["sources"]
    ]


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items()) or "none"


def cmd_status(args: argparse.Namespace) -> int:
    config = configfile.load(args.data)
    cap = config.bridges.cap
    certainties = (
        cap.certainties if cap.certainties is not None else config.policy.bridge_certainties
    )
    sources = _sources(NodeClient.for_data_dir(args.data).call("GET", "/api/v1/bridges")["bridges"])
    if args.json:
        export = {
            "public": cap.public,
            "certainties": list(certainties),
            "max_entries": cap.max_entries,
        }
        print(json.dumps({"export": export, "sources": sources}))
        return 0
    access = "public" if cap.public else "needs a token"
    print(
        f"export: /cap/v1/feed.atom ({access}); certainties {', '.join(certainties)};"
        f" at most {cap.max_entries} entries"
    )
    if not sources:
        print("sources: none configured ([[bridges.cap.sources]])")
    for source in sources:
        print(f"source {source['name']} (every {source['every']})")
        print(
            f"  polls {source['polls']}, not modified {source['not_modified']},"
            f" last success {source['last_success'] or 'never'}"
        )
        print(f"  filed {source['filed']}, updated {source['updated']}, closed {source['closed']}")
        print(f"  skipped: {_counts(source['skipped'])}; refused: {_counts(source['refused'])}")
        if source["failures"]:
            print(
                f"  failing: {source['failures']} in a row, last error {source['last_error']},"
                f" next try after {source['backoff_until']}"
            )
    return 0


def register(commands: Any) -> None:
    from relay.cli.main import data_arg

    cap = commands.add_parser(
        "cap", help="the CAP 1.2 / Atom feed and the CAP sources read as tips"
    )
    actions = cap.add_subparsers(dest="cap_command", required=True, metavar="ACTION")
    status = actions.add_parser(
        "status", help="the export's settings; each source's polls, tips filed, refusals, errors"
    )
    data_arg(status)
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(func=cmd_status)
