"""The alert pages in Debian's chromium (Playwright) against a real server: an admin opens
/alerts while a rule fires for a tenant whose id carries markup, follows the rule's link,
and opens the contact point form, whose kind select shows only that kind's settings.
Nothing in the pages fails (no console errors, no page errors), and nothing from the
data runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tenantscope.alerts.contacts import check_contact
from tenantscope.alerts.rules import check_rule
from tenantscope.server.services import Services
from tenantscope.testing.server import free_port
from tests.conftest import RunningServer, make_settings, serve_app
from tests.dashboard.browser import TIMEOUT_MS, sign_in, skip_without_chromium
from tests.dashboard.test_admin_browser import Tab
from tests.dashboard.test_alerts_pages import calls, evaluate_now

skip_without_chromium()

pytestmark = pytest.mark.slow

TENANT = '<img src=x onerror="window.__pwned = 1">apex'
RULE = '<script>window.__pwned = "rule"</script> p95 over 2 s'


@pytest.fixture
def firing(tmp_path: Path) -> Iterator[RunningServer]:
    """A server whose per-tenant p95 rule fires for TENANT (and not for techstart); its
    own evaluator is off, the test evaluates once."""
    settings = make_settings(
        tmp_path / "data", port=free_port(), duckdb_threads=2, ingest_workers=0, alerts=False
    )
    svc = Services.open(settings)
    try:
        yield from _serve_firing(svc)
    finally:
        svc.close()


def _serve_firing(svc: Services) -> Iterator[RunningServer]:
    alerts = svc.config.alerts
    hook = alerts.add_contact(
        check_contact("ops hook", "webhook", {"url": "http://127.0.0.1:9/hook"})
    )
    alerts.add_rule(
        check_rule(
            {
                "name": RULE,
                "metric": "latency_p95",
                "scope": "trace",
                "comparator": ">",
                "threshold": 2000,
                "per_tenant": True,
                "contact_ids": [hook.id],
            }
        )
    )
    at = datetime.now(timezone.utc) - timedelta(minutes=1)
    svc.writer.write_sync(calls(TENANT, [2500] * 10, at))
    svc.writer.write_sync(calls("techstart", [300] * 10, at))
    evaluate_now(svc)
    with serve_app(svc) as running:
        yield running


@pytest.fixture
def tab(browser: Browser, firing: RunningServer) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    t = Tab(context.new_page(), firing.url)
    try:
        yield t
    finally:
        context.close()
    assert not t.problems, "\n".join(t.problems)


def test_the_alerts_page_shows_a_firing_rule(
    tab: Tab, firing: RunningServer, artifacts: Path
) -> None:
    page = tab.page
    sign_in(page, firing.url, firing.admin_key)
    page.locator("nav.nav a", has_text="Alerts").click()
    page.wait_for_url("**/alerts*")
    row = page.locator("[data-testid=firing-table] tbody tr")
    assert row.count() == 1
    text = row.inner_text()
    assert RULE in text and TENANT in text and "2,500 ms" in text
    assert (
        "p95 latency (traces) > 2,000 ms over 5m"
        in page.locator("[data-testid=rules-table]").inner_text()
    )
    assert "untested" in page.locator("[data-testid=contacts-table]").inner_text()
    tab.inert()
    page.screenshot(path=str(artifacts / "alerts.png"), full_page=True)

    # the rule's page, from the firing row
    row.locator("a", has_text="p95 over 2 s").click()
    page.wait_for_url("**/alerts/rule?id=*")
    assert page.locator("[data-testid=rule-name]").inner_text() == RULE
    states = page.locator("[data-testid=instances-table] tbody tr")
    assert [states.nth(i).get_attribute("data-state") for i in range(states.count())] == [
        "firing",
        "ok",
    ]
    tab.inert()
    page.screenshot(path=str(artifacts / "alert-rule.png"), full_page=True)

    # the contact point form: the chosen kind's settings only
    page.goto(firing.url + "/alerts")
    page.locator("[data-testid=new-contact]").click()
    page.wait_for_url("**/admin/alerts/contact")
    fieldsets = page.locator("fieldset[data-kind]")
    assert fieldsets.count() == 3

    def shown() -> list[str | None]:
        return [
            fieldsets.nth(i).get_attribute("data-kind")
            for i in range(fieldsets.count())
            if fieldsets.nth(i).is_visible()
        ]

    assert shown() == ["slack"]
    page.locator("select[name=kind]").select_option("email")
    assert shown() == ["email"]
    tab.inert()
