"""SQL lives in the storage layer only (issue 31 item 3; docs/architecture.md, table owners).

Import-linter keeps ``sqlite3`` out of every module but storage's (a contract in
``pyproject.toml``). This reads the source itself, so that a module that never imports
``sqlite3`` still cannot run SQL on a connection it was handed: outside
``relay/storage``, ``keys/store`` and a bridge's ``store.py`` no module calls
``.execute``/``.executemany``/``.executescript`` with a string, and no string in code
reads as a SQL statement (no fragments passed around to be run elsewhere).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from relay.storage import db

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("relay", "keys", "bridges")
RUNS_SQL = frozenset({"execute", "executemany", "executescript"})
# A statement's opening words, in capitals as every query here is written: prose
# ("deleted from the outbox") and reason codes ("rollback") do not match.
SQL = re.compile(
    r"^\s*(SELECT\s.*\bFROM\b|SELECT\s+\d|INSERT\s+(OR\s+\w+\s+)?INTO\s|UPDATE\s+\w+\s+SET\s"
    r"|DELETE\s+FROM\s|CREATE\s+(TABLE|INDEX|UNIQUE\s+INDEX|TRIGGER|VIEW)\s|DROP\s+TABLE\s"
    r"|ALTER\s+TABLE\s|PRAGMA\s|BEGIN\b|COMMIT\b|ROLLBACK\b|SAVEPOINT\s|WITH\s+\w+\s+AS\s*\()",
    re.DOTALL,
)
# Modules whose SQL has yet to move into a storage module (a listed file with no SQL
# fails): none left.
NOT_YET_MOVED: frozenset[str] = frozenset()
# A bridge's storage room may hold more than ``store.py``: the text line's opt-out list
# and answer budget (tables sms_optout, sms_replies) are ``bridges/sms/optout.py``, the
# one owner of those tables (the same exception as in pyproject's import contract).
BRIDGE_STORAGE = frozenset({"bridges/sms/optout.py"})


def is_storage(relative: str) -> bool:
    return (
        relative.startswith(("relay/storage/", "keys/store/"))
        or relative == "bridges/store.py"
        or re.fullmatch(r"bridges/\w+/store\.py", relative) is not None
        or relative in BRIDGE_STORAGE
    )


def _sql_text(node: ast.expr) -> bool:
    """A string, f-string or concatenation of them (what a query is written as)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return _sql_text(node.left) or _sql_text(node.right)
    return False


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of docstring nodes (module, class, function): prose, never run."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def sql_lines(source: str) -> list[int]:
    """Lines of ``source`` that run SQL on a connection or hold a SQL statement's text."""
    tree = ast.parse(source)
    prose = _docstrings(tree)
    return sorted({node.lineno for node in ast.walk(tree) if _runs_sql(node, prose)})


def _runs_sql(node: ast.AST, prose: set[int]) -> bool:
    if isinstance(node, ast.Call):
        return (
            isinstance(node.func, ast.Attribute)
            and node.func.attr in RUNS_SQL
            and bool(node.args)
            and _sql_text(node.args[0])
        )
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in prose
        and SQL.match(node.value) is not None
    )


def modules() -> list[tuple[str, Path]]:
    return [
        (path.relative_to(ROOT).as_posix(), path)
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    ]


def test_no_sql_outside_storage() -> None:
    found = {
        relative: lines
        for relative, path in modules()
        if not is_storage(relative) and relative not in NOT_YET_MOVED
        for lines in [sql_lines(path.read_text())]
        if lines
    }
    assert found == {}, f"SQL outside the storage layer (move it into the table's owner): {found}"


def test_every_listed_exception_still_has_sql() -> None:
    """An exception whose SQL has moved must leave the list, or it would hide the next one."""
    stale = [name for name in sorted(NOT_YET_MOVED) if not sql_lines((ROOT / name).read_text())]
    assert stale == []


def test_storage_modules_are_seen_and_hold_sql() -> None:
    """The check reads the real tree: storage modules are found and do run SQL."""
    storage = [relative for relative, _ in modules() if is_storage(relative)]
    assert "relay/storage/fedstate.py" in storage
    assert "bridges/sms/store.py" in storage
    assert sql_lines((ROOT / "relay/storage/fedstate.py").read_text())


def test_the_check_catches_queries_and_fragments() -> None:
    source = '''"""SELECT * FROM alerts in a docstring is prose."""
def f(conn, table):
    conn.execute("SELECT 1 FROM alerts WHERE id = ?", (1,))
    conn.executemany(f"DELETE FROM {table} WHERE n = ?", [])
    where = " AND peer = ?"
    conn.execute("UPDATE outbox SET txn_id = NULL" + where)
    conn.execute(QUERY)
    words = {"update": "UPDATE", "deleted": "deleted from the outbox", "why": "rollback"}
    return "INSERT INTO tips (id) VALUES (?)"
'''
    assert sql_lines(source) == [3, 4, 6, 9]


def test_every_table_has_an_owner_in_the_architecture_doc(tmp_path: Path) -> None:
    """Each table a migrated database holds is named in docs/architecture.md's owner table."""
    conn = db.open_sync(tmp_path / "avisa.db")
    try:
        tables = {
            str(name)
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    finally:
        conn.close()
    text = (ROOT / "docs/architecture.md").read_text()
    section = text.split("## Who owns which table", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\| (.+?) \|", section, re.MULTILINE))
    owned = {table for cell in named for table in re.findall(r"`(\w+)`", cell)}
    bookkeeping = {"schema_migrations", "sqlite_sequence"}
    assert tables - bookkeeping - owned == set()
    assert owned - tables == set(), "the doc names a table no migration creates"
