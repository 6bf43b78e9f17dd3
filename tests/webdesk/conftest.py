"""Fixtures for the web desk's browser tests: one headless Chromium per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.webdesk.browser import SCREENSHOTS, Browser, fresh_profile, missing


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    problem = missing()
    if problem:
        pytest.fail(problem)
    started = Browser(fresh_profile(tmp_path))
    try:
        yield started
    finally:
        started.quit()
        print(f"\nweb desk screenshots: {SCREENSHOTS}")
