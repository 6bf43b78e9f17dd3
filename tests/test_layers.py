"""The layers of DESIGN.md §1, checked by a machine (docs/architecture.md).

``lint-imports`` runs the contracts of ``pyproject.toml`` (each layer imports
only layers below it; the pure core does no I/O); the cycle check reads the
same import graph (``grimp``, lazy imports and ``TYPE_CHECKING`` imports
included) and asserts that no package of the map reaches itself again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
#: The packages of the map, most specific first (a module belongs to the first that holds it).
PACKAGES = (
    "relay.core",
    "relay.storage",
    "relay.runtime",
    "relay.federation",
    "relay.http",
    "relay.cli",
    "relay.demo",
    "keys.core",
    "keys.cards",
    "keys.store",
    "bridges.matrix",
    # Picks the adapters (bridges.matrix, later sms and cap), which build on bridges.base.
    "bridges.runner",
    "bridges",
)


def package_of(module: str) -> str | None:
    for package in PACKAGES:
        if module == package or module.startswith(package + "."):
            return package
    return None


def package_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph("relay", "keys", "bridges", cache_dir=None)
    edges: dict[str, set[str]] = {package: set() for package in PACKAGES}
    for module in graph.modules:
        source = package_of(module)
        if source is None:
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            target = package_of(imported)
            if target is not None and target != source:
                edges[source].add(target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A path that returns to its start, or None (depth-first, three colours)."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"],
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_import_cycle_between_packages() -> None:
    assert find_cycle(package_graph()) is None


def test_the_cycle_check_can_fail() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
