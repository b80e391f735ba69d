"""The limit pages in Debian's chromium (Playwright) against a real server whose limiter
decided real checks: an admin opens Limits from the navigation, creates a limit through
the form (a wrong one first: every field named, nothing stored), sees it listed and
applied, grants a tenant a raise from its row and revokes it; the tenant page shows the
tenant's limits; a tenant key's portal shows its own limits and remaining allowance and
nothing of any other tenant, and no Limits page. Nothing in the pages fails (no console
errors, no page errors), and nothing from the data runs (a tenant id and a limit name
carry markup)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tenantscope.server.services import Services
from tenantscope.testing.server import free_port
from tests.conftest import RunningServer, make_settings, serve_app
from tests.dashboard.browser import TIMEOUT_MS, sign_in, skip_without_chromium
from tests.dashboard.test_admin_browser import Tab
from tests.dashboard.test_limits_pages import HOSTILE, HOSTILE_NAME, seed

skip_without_chromium()

pytestmark = pytest.mark.slow


@pytest.fixture
def site(tmp_path: Path) -> Iterator[RunningServer]:
    settings = make_settings(
        tmp_path / "data", port=free_port(), duckdb_threads=2, ingest_workers=0, alerts=False
    )
    svc = Services.open(settings)
    try:
        seed(svc)
        with serve_app(svc) as running:
            yield running
    finally:
        svc.close()


@pytest.fixture
def tab(browser: Browser, site: RunningServer) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    t = Tab(context.new_page(), site.url)
    try:
        yield t
    finally:
        context.close()
    assert not t.problems, "\n".join(t.problems)


def test_an_admin_manages_limits_and_approvals(
    tab: Tab, site: RunningServer, artifacts: Path
) -> None:
    page, store = tab.page, site.services.config.limits
    sign_in(page, site.url, site.admin_key)
    page.locator("nav.nav a", has_text="Limits").click()
    page.wait_for_url("**/limits*")
    acme = page.locator("[data-testid=limits-table] tbody[data-tenant=acme]")
    text = acme.inner_text()
    assert "Acme monthly budget" in text and "$0.4000" in text and "$1.24" in text
    assert "over pace" in text and "reached" in text
    assert acme.locator("tr[data-limit=L1] [data-testid=limit-blocked]").inner_text() == "1"
    hostile = page.locator("[data-testid=limits-table] tbody").filter(has_text=HOSTILE_NAME)
    assert HOSTILE in hostile.inner_text()  # the id and the name as text
    assert page.locator("[data-testid=budget-chart] .plot-container").count() == 1
    tab.inert()
    page.screenshot(path=str(artifacts / "limits.png"), full_page=True)

    # a new limit: wrong first, every wrong field named, nothing stored
    page.locator("[data-testid=new-limit]").click()
    page.wait_for_url("**/admin/limits/limit")
    form = page.locator("[data-testid=limit-form]")
    form.locator("input[name=name]").fill("globex budget")
    form.locator("select[name=kind]").select_option("budget")
    form.locator("input[name=tenant_id]").fill("globex")
    form.locator("input[name=timezone]").fill("Mars/Olympus")
    form.locator("[data-testid=save-limit]").click()
    assert "required for a budget" in page.locator("[data-testid=error-amount_usd]").inner_text()
    assert "IANA" in page.locator("[data-testid=error-timezone]").inner_text()
    assert page.locator("input[name=timezone]").input_value() == "Mars/Olympus"  # as typed
    assert len(store.list_limits()) == 4
    tab.inert()
    page.locator("input[name=amount_usd]").fill("3")
    page.locator("input[name=timezone]").fill("Europe/Berlin")
    page.locator("[data-testid=save-limit]").click()
    page.wait_for_url("**/limits?tenant_id=globex")
    assert tab.flash() == "Limit L5 “globex budget” created. The server applies it within seconds."
    row = page.locator("[data-testid=limits-table] tbody[data-tenant=globex] tr[data-limit=L5]")
    assert "$0.0500" in row.inner_text() and "$3.00" in row.inner_text()
    definition = page.locator("[data-testid=definitions-table] tr[data-definition=L5]")
    assert "monthly, Europe/Berlin" in definition.inner_text()
    tab.inert()

    # a raise for acme, from its budget's row
    page.goto(site.url + "/limits")
    page.locator(
        "[data-testid=limits-table] tbody[data-tenant=acme] tr[data-limit='tenant:budget']"
        " [data-testid=raise-limit]"
    ).click()
    page.wait_for_url("**/admin/limits/approval?*")
    form = page.locator("[data-testid=approval-form]")
    assert form.locator("select[name=limit]").input_value() == "tenant:budget"
    assert form.locator("input[name=tenant_id]").input_value() == "acme"
    form.locator("input[name=amount_usd]").fill("0.5")
    form.locator("input[name=expires_at]").fill("2025-03-18T00:00:00Z")
    form.locator("textarea[name=reason]").fill("quarter-end run")
    form.locator("[data-testid=grant-approval]").click()
    page.wait_for_url("**/limits?tenant_id=acme")
    assert tab.flash().startswith("Approval 1 granted: +0.5 USD on tenant:budget")
    approval = page.locator("[data-testid=approvals-table] tr[data-approval='1']")
    assert "quarter-end run" in approval.inner_text()
    assert "test admin" in approval.locator("[data-testid=approval-by]").inner_text()
    budget = page.locator("tbody[data-tenant=acme] tr[data-limit='tenant:budget']")
    assert "$1.50" in budget.locator("[data-testid=limit-cap]").inner_text()
    tab.inert()
    page.screenshot(path=str(artifacts / "limits-approval.png"), full_page=True)
    approval.locator("[data-testid=revoke-approval]").click()
    page.wait_for_url("**/limits")
    assert tab.flash() == "Approval 1 revoked: the limit is back to its own."
    assert "No approval in force." in page.locator("[data-testid=approvals-table]").inner_text()

    # the tenant page's section
    page.goto(site.url + "/tenant?tenant_id=acme&from=2025-03-01T00:00:00Z&to=2025-03-12T00:00:00Z")
    section = page.locator("[data-testid=tenant-limits]")
    assert "Acme monthly budget" in section.inner_text() and "starter rate" in section.inner_text()
    assert "1 call refused by a limit this month." in section.inner_text()
    tab.inert()


def test_a_tenant_portal_sees_its_own_limits_only(
    tab: Tab, site: RunningServer, artifacts: Path
) -> None:
    page = tab.page
    sign_in(page, site.url, site.key("tenant", "acme", name="acme portal"))
    assert page.locator("nav.nav a", has_text="Limits").count() == 0
    page.goto(site.url + "/tenant?tenant_id=acme&from=2025-03-01T00:00:00Z&to=2025-03-12T00:00:00Z")
    section = page.locator("[data-testid=tenant-limits]")
    rows = section.locator("tbody[data-tenant=acme] tr")
    assert rows.count() == 2
    budget = section.locator("tr[data-limit='tenant:budget']")
    assert budget.locator("[data-testid=limit-remaining]").inner_text() == "$0.6000"
    assert section.locator("[data-testid=raise-limit]").count() == 0
    content = page.content()
    for other in ("globex", "Globex-Corp", "enterprise rate", "evil"):
        assert other not in content, other
    tab.inert()
    page.screenshot(path=str(artifacts / "limits-portal.png"), full_page=True)
    # the Limits page is for those who see every tenant (asked without loading it in the
    # tab: a 403 load is a console error the tab would report)
    assert page.request.get(site.url + "/limits").status == 403
