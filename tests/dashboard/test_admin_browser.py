"""The admin forms in Debian's chromium (Playwright) against a real server: an admin signs
in, creates a tenant whose id and name carry markup, edits it, adds a price override,
creates a key (its label carrying markup too) and revokes it, all through the forms, then
finds each change on the audit page. No script from the data runs, no link from it is
drawn, and nothing in the page fails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.conftest import RunningServer
from tests.dashboard.browser import TIMEOUT_MS, sign_in, skip_without_chromium

skip_without_chromium()

pytestmark = pytest.mark.slow

TENANT = 'evil<script>window.__pwned = "id"</script>'
NAME = (
    '<img src=x onerror="window.__pwned = 1">'
    '<a href="https://evil.example/login">Session expired</a>'
)
LABEL = '<script>window.__pwned = "label"</script><a href="https://evil.example/">portal</a>'


class Tab:
    """A tab that records what a user would call broken: console errors (a blocked inline
    script is one, under the pages' CSP), uncaught exceptions, dialogs."""

    def __init__(self, page: Page, url: str) -> None:
        self.page, self.url = page, url
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))

    def _console(self, msg: Any) -> None:
        # the refused form's own 422 is the answer the test asks for, not a breakage
        if msg.type == "error" and "status of 422" not in msg.text:
            self.problems.append(f"console: {msg.text}")

    def inert(self) -> None:
        """Nothing from the data became markup on this page."""
        found: dict[str, Any] = self.page.evaluate(
            """() => ({
                pwned: window.__pwned === undefined ? null : String(window.__pwned),
                links: [...document.querySelectorAll('a[href*="evil.example"]')].length,
                imgs: [...document.querySelectorAll('img[src="x"]')].length,
                // chart data sits in JSON blocks, never run; any other inline script is data
                inline: [...document.querySelectorAll(
                    'script:not([src]):not([type="application/json"])')].length,
            })"""
        )
        assert found == {"pwned": None, "links": 0, "imgs": 0, "inline": 0}, self.page.url

    def flash(self) -> str:
        return self.page.locator("[data-testid=flash]").inner_text()


@pytest.fixture
def tab(browser: Browser, server: RunningServer) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    t = Tab(context.new_page(), server.url)
    try:
        yield t
    finally:
        context.close()
    assert not t.problems, "\n".join(t.problems)


def test_an_admin_configures_everything_through_the_forms(tab: Tab, server: RunningServer) -> None:
    page, config = tab.page, server.services.config
    sign_in(page, server.url, server.admin_key)

    # a tenant, from the tenants list
    page.goto(server.url + "/tenants")
    page.locator("[data-testid=new-tenant]").click()
    form = page.locator("[data-testid=tenant-form]")
    form.locator("input[name=tenant_id]").fill(TENANT)
    form.locator("input[name=display_name]").fill(NAME)
    form.locator("input[name=tier]").fill("gold")
    form.locator("input[name=sla_p95_ms]").fill("fast")  # wrong: the form says so
    form.locator("[data-testid=save-tenant]").click()
    assert "whole number" in page.locator("[data-testid=error-sla_p95_ms]").inner_text()
    assert page.locator("input[name=display_name]").input_value() == NAME  # kept as typed
    assert config.get_tenant(TENANT) is None
    tab.inert()
    page.locator("input[name=sla_p95_ms]").fill("2000")
    page.locator("[data-testid=save-tenant]").click()
    page.wait_for_url("**/tenant?tenant_id=*")
    assert tab.flash() == f"Configuration of tenant {TENANT} created."
    assert NAME in page.locator("h1").inner_text()  # the name as text, markup and all
    tab.inert()

    # edited from the tenant page
    page.locator("[data-testid=edit-tenant]").click()
    assert page.locator("input[name=tenant_id]").input_value() == TENANT
    page.locator("input[name=tier]").fill("platinum")
    page.locator("input[name=monthly_budget_usd]").fill("1500.50")
    page.locator("[data-testid=save-tenant]").click()
    page.wait_for_url("**/tenant?tenant_id=*")
    assert tab.flash() == f"Configuration of tenant {TENANT} saved."
    config_card = page.locator("[data-testid=tenant-config]").inner_text()
    assert "platinum" in config_card and "$1,500.50" in config_card
    tab.inert()

    # a price override
    page.goto(server.url + "/admin/prices")
    form = page.locator("[data-testid=override-form]")
    form.locator("input[name=model]").fill("gpt-4o")
    form.locator("input[name=effective_from]").fill("2026-01-01")
    form.locator("input[name=input_mtok]").fill("2.25")
    form.locator("input[name=output_mtok]").fill("9")
    form.locator("[data-testid=save-override]").click()
    page.wait_for_url("**/admin/prices")
    assert "for gpt-4o added" in tab.flash()
    assert "gpt-4o" in page.locator("[data-testid=admin-overrides]").inner_text()
    (override,) = config.list_price_overrides()
    assert str(override.input_mtok) == "2.25"

    # a key for the tenant: shown once, then revoked
    page.goto(server.url + "/admin/keys")
    form = page.locator("[data-testid=key-form]")
    form.locator("select[name=role]").select_option("tenant")
    form.locator("input[name=tenant_id]").fill(TENANT)
    form.locator("input[name=name]").fill(LABEL)
    form.locator("[data-testid=create-key]").click()
    token = page.locator("[data-testid=new-secret]").inner_text().strip()
    assert token.startswith("tst_")
    tab.inert()
    key_id = token.split("_")[1]
    page.goto(server.url + "/admin/keys")
    assert token not in page.content()
    row = page.locator(f"tr[data-key='{key_id}']")
    assert LABEL in row.inner_text()
    tab.inert()
    row.locator("[data-testid=revoke-key]").click()
    page.wait_for_url("**/admin/keys")
    assert tab.flash() == f"Key {key_id} revoked: it no longer works."
    assert "revoked" in page.locator(f"tr[data-key='{key_id}']").inner_text()
    key = config.get_api_key(key_id)
    assert key is not None and not key.active

    # the audit page lists each change, made by this session's key
    page.locator("nav.nav a", has_text="Audit").click()
    page.wait_for_url("**/audit*")
    rows = page.locator("[data-testid=audit-table] tbody tr")
    actions = [rows.nth(i).get_attribute("data-action") for i in range(rows.count())]
    assert actions[:5] == [
        "key.revoke",
        "key.create",
        "price_override.add",
        "tenant.update",
        "tenant.create",
    ]
    first = rows.nth(4).inner_text()
    assert "session · admin" in first and TENANT in first and NAME in first
    assert "tier: gold → platinum" in rows.nth(3).inner_text()
    assert LABEL in rows.nth(1).inner_text() and token not in page.content()
    tab.inert()
