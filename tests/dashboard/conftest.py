"""Browser fixtures: one Debian chromium per module (Playwright), the screenshot folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dashboard.browser import CHROMIUM, CHROMIUM_ARGS, REPO


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One chromium for the module. Playwright gives it a fresh, temporary profile
    (``--user-data-dir``) and removes it on close; each test gets its own context."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    out = Path(os.environ.get("TENANTSCOPE_ARTIFACTS") or REPO / "test-artifacts" / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out
