"""The tenant selector, the CSV downloads and the comparison page in a real browser (Debian's
chromium driven by Playwright) against a real server holding the known seed data."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Browser, Page

from tests.conftest import RunningServer, seeded_server
from tests.dashboard.browser import TIMEOUT_MS, sign_in, skip_without_chromium
from tests.query.seed import HOSTILE, seed

skip_without_chromium()

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with seeded_server(tmp_path_factory.mktemp("analytics") / "data", seed) as running:
        yield running


@pytest.fixture
def tab(browser: Browser, site: RunningServer) -> Iterator[Page]:
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda m: (
            problems.append(m.text) if m.type == "error" and "favicon" not in m.text else None
        ),
    )
    page.on("dialog", lambda d: problems.append(f"a dialog opened: {d.message}"))
    sign_in(page, site.url, site.admin_key)
    try:
        yield page
        assert problems == []
    finally:
        context.close()


def query(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query, keep_blank_values=True)


def test_the_selector_suggests_filters_and_keeps_the_tenant(tab: Page, site: RunningServer) -> None:
    tab.goto(site.url + "/traces?range=7d")
    box = tab.get_by_role("combobox", name="tenant")
    box.click()
    box.press_sequentially("strat")
    # suggestions from /api/tenant-suggestions fill the box's list
    tab.wait_for_selector(
        '#tenant-suggestions option[value="stratex-consulting"]', state="attached"
    )
    assert tab.locator("#tenant-suggestions option").count() == 1
    label = tab.locator("#tenant-suggestions option").get_attribute("label")
    assert label == "Stratex Consulting · professional"
    box.fill("stratex-consulting")
    box.press("Enter")
    tab.wait_for_url("**/traces?*tenant_id=stratex-consulting*")
    tenants = tab.locator("[data-testid=traces-table] tbody tr[data-trace] td:nth-child(2)")
    assert set(tenants.all_inner_texts()) == {"stratex-consulting"}
    # across the navigation
    tab.locator("nav.nav").get_by_role("link", name="Users", exact=True).click()
    tab.wait_for_url("**/users?*")
    assert query(tab)["tenant_id"] == ["stratex-consulting"] and query(tab)["range"] == ["7d"]
    assert tab.get_by_role("combobox", name="tenant").input_value() == "stratex-consulting"
    users = tab.get_by_test_id("users-table").locator("tbody tr td:first-child")
    assert users.all_inner_texts() == ["carol"]
    tab.locator("nav.nav").get_by_role("link", name="Compare", exact=True).click()
    tab.wait_for_url("**/compare?*")
    rows = tab.locator("[data-testid=compare-table] tbody tr[data-tenant]")
    assert rows.count() == 1 and rows.get_attribute("data-tenant") == "stratex-consulting"
    # and back to every tenant
    tab.get_by_test_id("all-tenants").click()
    tab.wait_for_url(lambda u: "tenant_id" not in u)
    assert urlparse(tab.url).path == "/compare"
    assert tab.locator("[data-testid=compare-table] tbody tr[data-tenant]").count() == 4
    assert tab.get_by_role("combobox", name="tenant").input_value() == ""


def test_a_hostile_suggestion_is_text(tab: Page, site: RunningServer) -> None:
    tab.goto(site.url + "/tenants")
    box = tab.get_by_role("combobox", name="tenant")
    box.click()
    box.press_sequentially("<scr")
    option = tab.locator("#tenant-suggestions option")
    tab.wait_for_selector("#tenant-suggestions option", state="attached")
    assert option.count() == 1 and option.get_attribute("value") == HOSTILE
    assert tab.locator("#tenant-suggestions script").count() == 0
    box.fill(HOSTILE)
    box.press("Enter")
    tab.wait_for_url("**/tenants?*tenant_id=*")
    assert query(tab)["tenant_id"] == [HOSTILE]
    assert tab.locator("tr[data-tenant]").count() == 1


def test_download_csv_of_a_filtered_table(tab: Page, site: RunningServer) -> None:
    tab.goto(site.url + "/traces?range=7d&tenant_id=apex-legal")
    with tab.expect_download() as info:
        tab.get_by_role("link", name="Download CSV").click()
    download = info.value
    assert download.suggested_filename.startswith("tenantscope-traces-")
    assert download.suggested_filename.endswith(".csv")
    with open(download.path(), encoding="utf-8") as f:
        rows = list(csv.DictReader(io.StringIO(f.read())))
    assert len(rows) == 4 and {r["tenant_id"] for r in rows} == {"apex-legal"}
    assert sorted(r["cost_usd"] for r in rows) == [
        "0.010000000",
        "0.020000000",
        "0.030000000",
        "0.040000000",
    ]


def test_compare_page_and_its_download(tab: Page, site: RunningServer) -> None:
    tab.goto(site.url + "/compare?range=7d")
    table = tab.get_by_test_id("compare-table")
    assert table.locator("thead th").all_inner_texts() == [
        "TENANT",
        "QA",
        "SUMMARY",
        "EMAIL",
        "TOTAL",
    ]
    apex = table.locator("tr[data-tenant=apex-legal]")
    assert apex.locator("td[data-key=qa]").inner_text().startswith("$0.0700")
    tab.locator("select[name=by]").select_option("model")
    tab.get_by_test_id("compare-form").get_by_role("button", name="Show").click()
    tab.wait_for_url("**/compare?*by=model*")
    assert "claude-3-5-sonnet" in table.locator("thead").inner_text().lower()
    with tab.expect_download() as info:
        tab.get_by_role("link", name="Download CSV").click()
    with open(info.value.path(), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {(r["tenant_id"], r["model"]) for r in rows} >= {("apex-legal", "claude-3-5-sonnet")}


def test_no_selector_in_a_tenants_portal(browser: Browser, site: RunningServer) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        sign_in(page, site.url, site.key("tenant", "apex-legal"))
        for path in ("/traces", "/users", "/sla"):
            page.goto(site.url + path)
            assert page.get_by_test_id("tenant-picker").count() == 0
        assert page.get_by_role("link", name="Download CSV").count() == 1
    finally:
        context.close()
