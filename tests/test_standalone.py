"""Issue 27: the repository stands alone: a clone with nothing beside it.

Every relative link in its Markdown files names a file inside the repository
that exists, and no source or test reads a path outside it (the CAP fixtures
are vendored in ``tests/cap/fixtures``).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {".venv", ".git", "build", "node_modules"}
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _files(pattern: str) -> list[Path]:
    """The repository's own files: no virtualenv, caches or hidden directories."""
    return [
        path
        for path in ROOT.rglob(pattern)
        if not any(part in SKIP or part.startswith(".") for part in path.relative_to(ROOT).parts)
    ]


def test_every_relative_link_in_the_docs_stays_inside_and_resolves() -> None:
    broken = []
    for doc in _files("*.md"):
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor in the same page
            path = (doc.parent / target.split("#", 1)[0]).resolve()
            if not path.is_relative_to(ROOT) or not path.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert broken == []


def test_no_code_reads_a_path_beside_the_repository() -> None:
    outside = [
        str(path.relative_to(ROOT))
        for path in _files("*.py")
        if path != Path(__file__).resolve()
        and re.search(r"""["']shared["']|/shared/|\.\./shared""", path.read_text(encoding="utf-8"))
    ]
    assert outside == []


def test_the_cap_fixtures_carry_their_licence_and_origin() -> None:
    fixtures = ROOT / "tests" / "cap" / "fixtures"
    assert "Apache License" in (fixtures / "LICENSE-cap-library").read_text()
    readme = (fixtures / "README.md").read_text()
    assert "google/cap-library" in readme and "OASIS" in readme
    for path in fixtures.iterdir():
        if path.suffix in (".cap", ".atom", ".xsd"):
            assert f"`{path.name}`" in readme, path.name
