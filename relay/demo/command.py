"""``avisa demo``'s command line, plugged into ``avisa`` by ``relay.entry``.

The demo sits above the CLI (it drives ``avisa`` commands), so the CLI never
imports it; the entry point hands this ``register`` to ``relay.cli.main.main``.
The demo itself is imported only when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def run(args: argparse.Namespace) -> int:
    from relay.demo.run import main

    return main(args)


def register(commands: Any) -> None:
    demo = commands.add_parser("demo", help="run a local three-network federation and a scenario")
    demo.add_argument(
        "--scenario-only",
        action="store_true",
        help="play the scenario and exit 0 only if every step happened",
    )
    demo.add_argument("--workdir", type=Path, help="keep the demo's nodes here")
    demo.add_argument(
        "--matrix",
        action="store_true",
        help="also start a local Synapse and bridge Ventura into a room",
    )
    demo.set_defaults(func=run)
