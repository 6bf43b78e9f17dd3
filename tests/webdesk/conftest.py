"""Fixtures for the web desk's browser tests: one headless Chromium per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.webdesk.browser import SCREENSHOTS, Browser, fresh_profile, missing

_used: list[bool] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say where the screenshots are, even under -q, when a browser test ran."""
    if _used:
        terminalreporter.write_line(f"web desk screenshots: {SCREENSHOTS}")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    problem = missing()
    if problem:
        pytest.fail(problem)
    started = Browser(fresh_profile(tmp_path))
    _used.append(True)
    try:
        yield started
    finally:
        started.quit()
