"""What the browser tests share: Debian's chromium and its flags, signing in through the
real form (the fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# No internet here: without these, chromium stalls on lookups (updates, sync, QUIC probes).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 15_000


def skip_without_chromium() -> None:
    """Module-level: the browser tests need Debian's chromium (CI installs it)."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)",
            allow_module_level=True,
        )


def sign_in(page: object, url: str, key: str) -> None:
    """Through the real sign-in form, as a person would."""
    page.goto(url + "/login")  # type: ignore[attr-defined]
    page.locator("input[name=key]").fill(key)  # type: ignore[attr-defined]
    page.locator("[data-testid=login] button[type=submit]").click()  # type: ignore[attr-defined]
    page.wait_for_url(lambda u: "/login" not in u)  # type: ignore[attr-defined]
