"""The dashboard in a real browser: Playwright drives Debian's chromium against a real server
(the app `tenantscope serve` runs, on a free port) holding demo traffic that went through the
real OTLP ingest path, and checks what a user sees against the JSON API.

Screenshots of the main pages go to ``$TENANTSCOPE_ARTIFACTS`` (default
``test-artifacts/screenshots/`` under the repository root)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlparse

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    Response,
)

from tenantscope.demo import configure_tenants, demo_batches, demo_tenants
from tests.conftest import RunningServer, seeded_server
from tests.dashboard.browser import TIMEOUT_MS, sign_in, skip_without_chromium

TRACES = 800

skip_without_chromium()

pytestmark = pytest.mark.slow

# "$1,234.56" (a dollar and up), "$0.0123" (cents), "$0.000812" (below a cent), "$0.00"
_MONEY = re.compile(r"\$(?P<n>\d{1,3}(?:,\d{3})*\.(?:\d{2}|\d{4}|\d{6}))")


# --- parsing what the page shows -----------------------------------------------------------
def money(text: str) -> Decimal:
    m = _MONEY.fullmatch(text.strip())
    assert m, f"not money as the dashboard formats it: {text!r}"
    return Decimal(m["n"].replace(",", ""))


def assert_money(shown: str, exact: str | Decimal) -> None:
    """``shown`` is ``exact`` with the dashboard's precision: 2 places from $1, 4 from a
    cent, 6 below, rounded to the nearest unit of the last place."""
    want = Decimal(exact)
    if shown.strip() == "<$0.000001":  # what rounds to zero at six places but is not zero
        assert 0 < want < Decimal("0.0000005"), f"{shown!r} for {want}"
        return
    value = money(shown)
    places = len(shown.strip().split(".")[1])
    if want == 0:
        assert shown.strip() == "$0.00"
        return
    expected = 2 if want >= 1 else 4 if want >= Decimal("0.01") else 6
    assert places == expected, f"{shown!r} for {want}: {places} places, expected {expected}"
    assert abs(value - want) <= Decimal(1).scaleb(-places) / 2, f"{shown!r} is not {want}"


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def integer(text: str) -> int:
    assert re.fullmatch(r"\d{1,3}(,\d{3})*", text.strip()), f"not a count: {text!r}"
    return int(text.replace(",", ""))


# --- the server and the browser ------------------------------------------------------------
@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A real server with ~800 demo traces of 23 configured tenants over the last 7 days,
    sent as OTLP protobuf to ``/v1/traces`` like ``tenantscope demo`` does."""
    tenants = demo_tenants(n_extra=20, seed=7)
    data = tmp_path_factory.mktemp("browser") / "data"
    with seeded_server(data, lambda svc: configure_tenants(svc.config, tenants)) as running:
        for body in demo_batches(tenants, days=7, traces=TRACES, seed=7, batch_spans=500):
            resp = running.client.post(
                "/v1/traces",
                content=body,
                headers={"content-type": "application/x-protobuf"},
            )
            assert resp.status_code == 200, resp.text
        yield running


@dataclass
class Tab:
    """A browser tab on the site that records anything a user would call broken: console
    errors, uncaught exceptions, failed loads and requests leaving the server."""

    page: Page
    site: RunningServer
    artifacts: Path
    favicon_errors: list[str]
    problems: list[str] = field(default_factory=list)
    loaded: list[tuple[str, int]] = field(default_factory=list)

    def watch(self) -> None:
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        self.page.on("request", self._request)
        self.page.on("response", self._response)
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url}"))

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type != "error":
            return
        if urlparse(msg.location.get("url", "")).path == "/favicon.ico":
            # chromium asks for it once per browser, whichever test comes first: the
            # module collects it and test_no_favicon_error reports it
            self.favicon_errors.append(msg.text)
            return
        self.problems.append(f"console error on {self.page.url}: {msg.text}")

    def _request(self, req: Request) -> None:
        if not req.url.startswith((self.site.url + "/", "data:", "blob:", "about:")):
            self.problems.append(f"request leaving the server: {req.url}")

    def _response(self, resp: Response) -> None:
        self.loaded.append((resp.url, resp.status))
        if resp.status >= 400:
            self.problems.append(f"HTTP {resp.status} for {resp.url}")

    def open(self, path: str) -> None:
        resp = self.page.goto(self.site.url + path)
        assert resp is not None and resp.status == 200, f"{path}: {resp and resp.status}"

    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlparse(self.page.url).query).items()}

    def path(self) -> str:
        return urlparse(self.page.url).path

    def picked_range(self) -> dict[str, str]:
        """The from/to the page resolved its range to (the custom-range form shows them)."""
        form = self.page.locator("[data-testid=range] form")
        return {
            "from": form.locator("input[name=from]").input_value(),
            "to": form.locator("input[name=to]").input_value(),
        }

    def api(self, path: str, **params: Any) -> Any:
        resp = self.site.client.get(path, params={k: v for k, v in params.items() if v})
        assert resp.status_code == 200, resp.text
        return resp.json()

    def charts_drawn(self) -> int:
        """Waits until plotly has drawn every chart of the page; returns how many."""
        self.page.wait_for_function(
            "() => [...document.querySelectorAll('.chart')]"
            ".every(el => el.getAttribute('data-ready') === '1')"
        )
        return self.page.locator(".chart[data-ready='1']:has(svg.main-svg)").count()

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.artifacts / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def favicon_errors() -> list[str]:
    return []


@pytest.fixture
def tab(
    browser: Browser, site: RunningServer, artifacts: Path, favicon_errors: list[str]
) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    t = Tab(context.new_page(), site, artifacts, favicon_errors)
    t.watch()
    sign_in(t.page, site.url, site.admin_key)
    try:
        yield t
    finally:
        context.close()
    assert not t.problems, "\n".join(t.problems)


def tenant_rows(page: Page) -> list[dict[str, str]]:
    """The Tenants table as shown: id, display name, tier, cost text."""
    rows: list[dict[str, str]] = page.evaluate(
        """() => [...document.querySelectorAll(
                '[data-testid=tenants-table] tbody tr[data-tenant]')].map(tr => ({
            id: tr.dataset.tenant,
            name: tr.querySelector('td:first-child strong')?.textContent.trim() ?? '',
            tier: tr.querySelector('td:first-child .badge.tier')?.textContent.trim() ?? '',
            cost: tr.querySelector('td.cost').firstChild.textContent.trim(),
            traces: tr.querySelectorAll('td')[2].textContent.trim(),
        }))"""
    )
    return rows


def assert_same_as_api(rows: list[dict[str, str]], items: list[dict[str, Any]]) -> None:
    assert [r["id"] for r in rows] == [i["tenant_id"] for i in items]
    for row, item in zip(rows, items, strict=True):
        assert_money(row["cost"], item["cost_usd"])
        assert integer(row["traces"]) == item["traces"]


# --- scenarios -----------------------------------------------------------------------------
def test_tenants_page_matches_the_api(tab: Tab) -> None:
    tab.open("/")
    tab.page.locator("nav.nav").get_by_role("link", name="Tenants", exact=True).click()
    assert tab.path() == "/tenants"
    assert tab.query() == {"range": "7d"}  # the default range, carried by the link
    rows = tenant_rows(tab.page)
    api = tab.api("/api/tenants", sort="cost", order="desc", limit=50, **tab.picked_range())
    assert 15 <= len(rows) <= 23  # the tail of the 23 demo tenants is thin
    assert_same_as_api(rows, api["items"])
    apex = next(r for r in rows if r["id"] == "apex-legal")
    assert (apex["name"], apex["tier"]) == ("Apex Legal", "enterprise")
    # all the demo traces but the few that left the 7-day window while the test ran
    assert 0.97 * TRACES <= sum(integer(r["traces"]) for r in rows) <= TRACES
    tab.shot("tenants")


def test_search_keeps_only_matching_tenants(tab: Tab) -> None:
    tab.open("/tenants")
    everyone = len(tenant_rows(tab.page))
    box = tab.page.get_by_role("searchbox", name="search tenants")
    box.fill("consult")
    box.press("Enter")
    tab.page.wait_for_url("**/tenants?*q=consult*")
    rows = tenant_rows(tab.page)
    assert 0 < len(rows) < everyone
    assert "stratex-consulting" in {r["id"] for r in rows}
    for r in rows:
        assert "consult" in r["id"] or "consult" in r["name"].lower(), r
    api = tab.api("/api/tenants", q="consult", limit=50, **tab.picked_range())
    assert_same_as_api(rows, api["items"])
    assert box.input_value() == "consult"  # the search stays in the box (and the URL)


def test_sort_by_cost_both_ways(tab: Tab) -> None:
    tab.open("/tenants?sort=tenant")
    header = tab.page.locator("[data-testid=tenants-table] thead a[data-sort=cost]")
    header.click()
    tab.page.wait_for_url("**/tenants?*sort=cost*")
    assert tab.query()["order"] == "desc"
    th = tab.page.locator("[data-testid=tenants-table] thead th[aria-sort]")
    assert th.get_attribute("aria-sort") == "descending" and "Cost" in (th.text_content() or "")
    rows = tenant_rows(tab.page)
    costs = [money(r["cost"]) for r in rows]
    assert costs == sorted(costs, reverse=True) and costs[0] > costs[-1]
    api = tab.api("/api/tenants", sort="cost", order="desc", limit=50, **tab.picked_range())
    assert_same_as_api(rows, api["items"])

    header.click()
    tab.page.wait_for_url("**/tenants?*order=asc*")
    assert tab.query()["sort"] == "cost"
    assert th.get_attribute("aria-sort") == "ascending"
    again = tenant_rows(tab.page)
    ascending = [money(r["cost"]) for r in again]
    assert ascending == sorted(ascending) and ascending[0] < ascending[-1]
    assert {r["id"] for r in again} == {r["id"] for r in rows}


def test_time_range_24h(tab: Tab) -> None:
    tab.open("/tenants")
    week = tenant_rows(tab.page)
    tab.page.locator("[data-testid=range] a.chip", has_text="24h").click()
    tab.page.wait_for_url("**/tenants?*range=24h*")
    assert tab.query()["range"] == "24h"
    chip = tab.page.locator("[data-testid=range] a.chip.on")
    assert chip.inner_text().strip() == "24h"
    picked = tab.picked_range()
    span = epoch(picked["to"]) - epoch(picked["from"])
    assert span == pytest.approx(24 * 3600, abs=1)
    rows = tenant_rows(tab.page)
    api = tab.api("/api/tenants", sort="cost", order="desc", limit=50, **picked)
    assert rows, "the demo has traffic in the last 24 hours"
    assert_same_as_api(rows, api["items"])
    day_traces = sum(integer(r["traces"]) for r in rows)
    assert day_traces < sum(integer(r["traces"]) for r in week)
    assert {r["id"] for r in rows} <= {r["id"] for r in week}
    # the range sticks when moving on: the navigation keeps it
    href = (
        tab.page.locator("nav.nav")
        .get_by_role("link", name="Traces", exact=True)
        .get_attribute("href")
    )
    assert href == "/traces?range=24h"


def test_view_traces_of_apex_legal(tab: Tab) -> None:
    tab.open("/tenants")
    tab.page.locator("tr[data-tenant=apex-legal]").get_by_role("link", name="View traces").click()
    tab.page.wait_for_url("**/traces?*tenant_id=apex-legal*")
    assert tab.path() == "/traces"
    # the global tenant selector (a box with suggestions) shows the tenant filtered to
    assert tab.page.get_by_role("combobox", name="tenant").input_value() == "apex-legal"
    rows = tab.page.locator("[data-testid=traces-table] tbody tr[data-trace]")
    tenants = rows.locator("td:nth-child(2)").all_inner_texts()
    assert tenants and set(tenants) == {"apex-legal"}
    api = tab.api("/api/traces", tenant_id="apex-legal", limit=50, **tab.picked_range())
    shown = [rows.nth(i).get_attribute("data-trace") for i in range(rows.count())]
    assert shown == [t["trace_id"] for t in api["items"]]
    for i, item in enumerate(api["items"][:10]):
        assert_money(rows.nth(i).locator("td").nth(7).inner_text(), item["cost_usd"])
    assert tab.page.locator("a[rel=next]").count() == (1 if api["next_cursor"] else 0)
    tab.shot("traces")


def _a_rich_apex_trace(tab: Tab) -> dict[str, Any]:
    """The apex-legal trace with the most spans (at least three, LLM calls among them) on
    the first Traces page."""
    items = tab.api("/api/traces", tenant_id="apex-legal", limit=50)["items"]
    trace: dict[str, Any] = max(items, key=lambda t: (t["spans"], t["requests"], t["trace_id"]))
    assert trace["spans"] >= 3 and trace["requests"] >= 1, trace
    return trace


def _flatten(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n in nodes:
        out.append(n)
        out.extend(_flatten(n["children"]))
    return out


def test_trace_waterfall_matches_the_api(tab: Tab) -> None:
    pick = _a_rich_apex_trace(tab)
    tab.open("/traces?tenant_id=apex-legal")
    tab.page.locator(f"tr[data-trace='{pick['trace_id']}'] td:first-child a").click()
    tab.page.wait_for_url(f"**/traces/{pick['trace_id']}*")
    detail = tab.api(f"/api/traces/{pick['trace_id']}")
    spans = _flatten(detail["roots"])

    rows = tab.page.locator("[data-testid=waterfall] details.wf-row")
    assert rows.count() == detail["spans"] == len(spans) >= 3
    # depth first, parents before children, as the API's tree
    assert [rows.nth(i).get_attribute("data-span") for i in range(rows.count())] == [
        s["span_id"] for s in spans
    ]
    assert integer(tab.page.get_by_test_id("trace-tokens").inner_text()) == detail["total_tokens"]
    assert_money(tab.page.get_by_test_id("trace-cost").inner_text(), detail["cost_usd"])

    total = detail["duration_ms"]
    for i, span in enumerate(spans):
        bar = rows.nth(i).locator(".wf-bar")
        track = rows.nth(i).locator(".wf-track").bounding_box()
        box = bar.bounding_box()
        assert box and track and box["width"] > 0
        assert (
            box["x"] >= track["x"] - 1
            and box["x"] + box["width"] <= track["x"] + track["width"] + 1
        ), f"bar of {span['name']} leaves its track"
        # where and how long, as a share of the trace: offset and duration from the API
        offset = (epoch(span["start_time"]) - epoch(detail["start_time"])) * 1000 / total
        left = (box["x"] - track["x"]) / track["width"]
        assert left == pytest.approx(offset, abs=0.01), span["name"]
        width = max(min(span["duration_ms"] / total, 1.0), 0.003)
        assert box["width"] / track["width"] == pytest.approx(width, abs=0.01), span["name"]
    root_box = rows.nth(0).locator(".wf-bar").bounding_box()
    root_track = rows.nth(0).locator(".wf-track").bounding_box()
    assert root_box and root_track and root_box["width"] >= 0.98 * root_track["width"]
    back = tab.page.locator(".crumbs").get_by_role("link", name="apex-legal", exact=True)
    assert back.get_attribute("href") == "/tenant?tenant_id=apex-legal&range=7d"
    tab.shot("trace")


def test_expand_a_span_shows_its_attributes(tab: Tab) -> None:
    pick = _a_rich_apex_trace(tab)
    detail = tab.api(f"/api/traces/{pick['trace_id']}")
    calls = [s for s in _flatten(detail["roots"]) if s["kind"] == "llm" and s["counted"]]
    llm = max(calls, key=lambda s: Decimal(s["cost_usd"] or 0))
    tab.open(f"/traces/{pick['trace_id']}")
    row = tab.page.locator(f"details.wf-row[data-span='{llm['span_id']}']")
    panel = row.locator(".wf-detail")
    assert not panel.is_visible() and row.get_attribute("open") is None
    row.locator("summary").click()
    assert panel.is_visible() and row.get_attribute("open") is not None
    assert llm["span_id"] in panel.inner_text()
    fields = panel.locator("dl.kv").inner_text()
    assert llm["model"] in fields
    if llm["response_id"]:  # a column now, no longer among the attributes
        assert llm["response_id"] in fields and "gen_ai.response.id" not in llm["attributes"]
    keys = panel.locator("table.attrs th").all_inner_texts()
    assert keys == sorted(llm["attributes"])  # every attribute, sorted by name
    assert any(k.startswith("gen_ai.") for k in keys)
    cost = panel.locator("dl.kv dt", has_text=re.compile("^Cost$")).locator(
        "xpath=following-sibling::dd[1]"
    )
    assert_money(cost.inner_text().split()[0], llm["cost_usd"])
    assert f"({llm['cost_source']}" in cost.inner_text()
    # a summary click toggles it closed again
    row.locator("summary").click()
    assert not panel.is_visible()


def test_overview_chart_drawn_by_local_plotly(tab: Tab) -> None:
    tab.open("/")
    assert tab.charts_drawn() >= 1
    chart = tab.page.locator(".chart[data-chart=cost-by-tenant]")
    assert chart.get_attribute("data-ready") == "1"
    assert chart.locator("g.trace").count() >= 2  # stacked, one area per top tenant
    plotly = [s for u, s in tab.loaded if "/static/vendor/plotly.min.js" in u]
    assert plotly and set(plotly) == {200}, tab.loaded
    assert tab.page.evaluate("() => typeof window.Plotly.newPlot") == "function"
    cards = tab.page.get_by_test_id("cards").locator(".stat-label").all_inner_texts()
    assert [c.lower() for c in cards] == [
        "total cost",
        "requests",
        "tokens",
        "active tenants",
        "error rate",
        "p95 latency",
    ]
    top = tab.page.get_by_test_id("top-tenants").locator("tbody tr")
    api = tab.api("/api/tenants", sort="cost", limit=8, **tab.picked_range())["items"]
    assert top.count() == len(api) == 8
    assert_money(top.nth(0).locator("td").nth(2).inner_text(), api[0]["cost_usd"])
    tab.shot("overview")


def test_tenant_detail_of_apex_legal(tab: Tab) -> None:
    tab.open("/tenants")
    tab.page.locator("tr[data-tenant=apex-legal] a.tenant").click()
    tab.page.wait_for_url("**/tenant?*tenant_id=apex-legal*")
    assert "Apex Legal" in tab.page.locator("h1.page-title").inner_text()
    api = tab.api("/api/tenants/apex-legal", **tab.picked_range())
    assert_money(tab.page.get_by_test_id("tenant-cost").inner_text(), api["totals"]["cost_usd"])
    config = tab.page.get_by_test_id("tenant-config").inner_text()
    assert "enterprise" in config and "2.00 s" in config and "$120.00" in config
    assert tab.charts_drawn() == 2
    assert tab.page.get_by_test_id("breakdown-model").locator("tbody tr").count() >= 2
    assert tab.page.get_by_test_id("tenant-users").locator("tbody tr a").count() >= 1
    tab.shot("tenant")


def test_sla_page_pass_fail_by_tier(tab: Tab) -> None:
    tab.open("/sla")
    tiers = tab.page.get_by_test_id("sla-tier")
    names = [tiers.nth(i).get_attribute("data-tier") for i in range(tiers.count())]
    assert names == ["enterprise", "professional"]  # starter has no target: not shown
    api = tab.api("/api/sla", **tab.picked_range())["items"]
    by_id = {r["tenant_id"]: r for r in api}
    shown = 0
    for i, tier in enumerate(names):
        for row in tiers.nth(i).locator("tbody tr[data-tenant]").all():
            item = by_id[row.get_attribute("data-tenant") or ""]
            assert item["tier"] == tier
            verdict = row.locator("td").last.inner_text().strip()
            assert verdict == ("PASS" if item["compliant"] else "FAIL"), item
            shown += 1
    assert shown == sum(1 for r in api if r["target_p95_ms"] is not None)
    apex = tiers.nth(0).locator("tr[data-tenant=apex-legal]")
    assert apex.count() == 1
    assert apex.locator("td").nth(5).inner_text() == "2.00 s"  # its target p95
    assert tab.charts_drawn() == 2  # one latency chart per tier
    tab.shot("sla")


def test_users_page(tab: Tab) -> None:
    tab.open("/")
    tab.page.locator("nav.nav").get_by_role("link", name="Users", exact=True).click()
    tab.page.wait_for_url("**/users*")
    rows = tab.page.get_by_test_id("users-table").locator("tbody tr")
    api = tab.api("/api/users", sort="cost", limit=50, **tab.picked_range())["items"]
    assert rows.count() == len(api) > 0
    assert rows.locator("td:first-child").all_inner_texts() == [u["id"] for u in api]
    assert_money(rows.nth(0).locator("td").nth(5).inner_text(), api[0]["cost_usd"])
    tab.shot("users")


def test_sessions_page(tab: Tab) -> None:
    tab.open("/sessions?tenant_id=apex-legal")
    rows = tab.page.get_by_test_id("sessions-table").locator("tbody tr")
    assert rows.count() > 0
    assert set(rows.locator("td:nth-child(2)").all_inner_texts()) == {"apex-legal"}
    tab.shot("sessions")
    first = rows.nth(0).locator("td:first-child a")
    session = first.inner_text()
    first.click()
    tab.page.wait_for_url("**/traces?*session_id=*")
    assert tab.query()["session_id"] == session and tab.query()["tenant_id"] == "apex-legal"
    traces = tab.page.locator("[data-testid=traces-table] tbody tr[data-trace]")
    api = tab.api("/api/traces", tenant_id="apex-legal", session_id=session, **tab.picked_range())
    assert traces.count() == len(api["items"]) >= 1


def test_prices_page(tab: Tab) -> None:
    tab.open("/")
    tab.page.locator("nav.nav").get_by_role("link", name="Prices", exact=True).click()
    tab.page.wait_for_url("**/prices*")
    models = tab.page.get_by_test_id("models-table").locator("tbody tr td:nth-child(2)")
    seen = set(models.all_inner_texts())
    assert {"gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022", "gemini-2.0-flash"} <= seen
    overrides = tab.page.get_by_test_id("overrides-table").inner_text()
    assert "No overrides" in overrides
    tab.shot("prices")


def test_phone_width_has_no_horizontal_overflow(tab: Tab) -> None:
    tab.page.set_viewport_size({"width": 390, "height": 844})
    tab.open("/tenants")
    widths = tab.page.evaluate(
        "() => ({body: document.body.scrollWidth, doc: document.documentElement.scrollWidth,"
        " view: window.innerWidth})"
    )
    assert widths["view"] == 390
    assert widths["body"] <= widths["view"] + 1, widths
    assert widths["doc"] <= widths["view"] + 1, widths
    # the wide table scrolls inside its wrapper instead of widening the page
    wrap = tab.page.locator(".table-wrap").first
    assert wrap.evaluate("el => el.clientWidth") <= 390
    assert tab.page.get_by_role("searchbox", name="search tenants").is_visible()
    tab.shot("tenants-phone")


def test_phone_width_every_main_page(tab: Tab) -> None:
    """Every main page fits a phone's width; wide tables scroll inside their wrapper."""
    trace_id = _a_rich_apex_trace(tab)["trace_id"]
    tab.page.set_viewport_size({"width": 390, "height": 844})
    overflow = {}
    for path in (
        "/",
        "/tenants",
        "/tenant?tenant_id=apex-legal",
        "/traces",
        f"/traces/{trace_id}",
        "/users",
        "/sessions",
        "/sla",
        "/prices",
    ):
        tab.open(path)
        extra = tab.page.evaluate("() => document.body.scrollWidth - window.innerWidth")
        if extra > 1:
            overflow[path] = extra
    assert not overflow, f"pages wider than the phone (px too wide): {overflow}"


# Each figure table on the page: its card's content box, the right edges of its Cost column
# and of its last column, and whether the card scrolls sideways.
_TABLES_IN_CARDS = """() => [...document.querySelectorAll('.card table.table')].map(t => {
    const card = t.closest('.card');
    const box = card.getBoundingClientRect();
    const right = box.right - parseFloat(getComputedStyle(card).paddingRight);
    const heads = [...t.querySelectorAll('thead th')];
    const cost = heads.find(h => h.textContent.trim() === 'Cost');
    return {
        table: t.dataset.testid,
        content_right: right,
        cost_right: cost ? cost.getBoundingClientRect().right : null,
        last_right: heads.length ? heads[heads.length - 1].getBoundingClientRect().right : null,
        scrolls: card.scrollWidth > card.clientWidth + 1,
    };
})"""


@pytest.mark.parametrize("width", [1440, 1920])
def test_tenant_page_tables_fit_their_cards(tab: Tab, width: int) -> None:
    """On a desktop screen the breakdown tables show every column: the Cost (and Share)
    column's right edge is inside its card, and no card scrolls sideways."""
    tab.page.set_viewport_size({"width": width, "height": 1000})
    tab.open("/tenant?tenant_id=apex-legal")
    tables = tab.page.evaluate(_TABLES_IN_CARDS)
    with_cost = [t for t in tables if t["cost_right"] is not None]
    assert {"breakdown-model", "breakdown-feature", "breakdown-user"} <= {
        t["table"] for t in with_cost
    }
    for t in tables:
        assert not t["scrolls"], t
        assert t["last_right"] is None or t["last_right"] <= t["content_right"] + 0.5, t
    for t in with_cost:
        assert t["cost_right"] <= t["content_right"] + 0.5, t
    tab.shot(f"tenant-{width}")


# Each chart: how many of its x-axis labels overlap its legend.
_LABELS_ON_LEGEND = """() => [...document.querySelectorAll('.chart')].map(el => {
    const legend = el.querySelector('g.legend');
    if (!legend) return 0;
    const l = legend.getBoundingClientRect();
    return [...el.querySelectorAll('g.xtick text')].filter(t => {
        const r = t.getBoundingClientRect();
        return r.left < l.right && l.left < r.right && r.top < l.bottom && l.top < r.bottom;
    }).length;
})"""


@pytest.mark.parametrize("width", [900, 1440, 1920])
def test_sla_chart_labels_clear_of_the_legend(tab: Tab, width: int) -> None:
    """Tenant names under the latency bars (turned when there is little room) never run
    into the chart's legend."""
    tab.page.set_viewport_size({"width": width, "height": 1000})
    tab.open("/sla")
    assert tab.charts_drawn() == 2
    assert tab.page.evaluate(_LABELS_ON_LEGEND) == [0, 0]
    tab.shot(f"sla-{width}")


def test_no_favicon_error(tab: Tab) -> None:
    """Browsers fetch the page's icon (``/favicon.ico`` unless a ``<link rel=icon>`` says
    otherwise) with the first page of a site; a 404 there is a console error. Chromium
    asks once per browser, so the console part relies on the errors the module collected."""
    tab.open("/")
    links = tab.page.locator("link[rel~=icon]")
    href = (links.first.get_attribute("href") if links.count() else None) or "/favicon.ico"
    if not href.startswith("data:"):
        resp = tab.page.request.get(urljoin(tab.page.url, href))
        assert resp.ok, f"the page icon {href} answers HTTP {resp.status}"
    assert not tab.favicon_errors
