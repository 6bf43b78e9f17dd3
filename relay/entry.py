"""``avisa``: the command line with every command, including ``avisa demo``.

The composition root of the command line: ``relay.cli`` holds the commands of
a node, ``relay.demo`` plugs its own in here, so no layer imports one above it.
"""

from __future__ import annotations

from collections.abc import Sequence

from relay.cli.main import main as cli_main
from relay.demo.command import register as register_demo


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(argv, extra=(register_demo,))
