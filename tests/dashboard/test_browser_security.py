"""What a browser does with hostile data and with the API reference: Debian's chromium,
driven by Playwright, against a real server.

- Plotly renders a subset of HTML in chart text, so a tenant id or name carrying ``<a
  href>`` must be drawn as text: no link from data in any chart (the overview legend, the
  SLA chart's axis), and the string shown as it was sent.
- ``/docs`` (Swagger UI) loads nothing from another origin and runs under the dashboard's
  Content-Security-Policy without a violation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode, urlparse

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page

from tenantscope.server.services import Services
from tests.conftest import RunningServer, seeded_server
from tests.dashboard.browser import TIMEOUT_MS, sign_in, skip_without_chromium

skip_without_chromium()

pytestmark = pytest.mark.slow

LINK = '<a href="https://evil.example/login">Session expired</a>'
NAMED = "named-co"
NAME = '<b>Named</b> <a href="https://evil.example/">Co</a>'
PLAIN = "plain-co"
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _configure(svc: Services) -> None:
    for tenant, name in ((LINK, ""), (NAMED, NAME), (PLAIN, "Plain Co")):
        svc.config.set_tenant(tenant, display_name=name, tier="pro", sla_p95_ms=400)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data = tmp_path_factory.mktemp("browser-security") / "data"
    with seeded_server(data, _configure) as running:
        events: list[dict[str, Any]] = []
        for n, tenant in enumerate((LINK, NAMED, PLAIN)):
            for i in range(4):
                events.append(
                    {
                        "event_id": f"sec-{n}-{i}",
                        "tenant_id": tenant,
                        "model": LINK if i == 0 else "gpt-4o",
                        "feature": "<b>feature</b>",
                        "user_id": f"<i>user</i>-{i}",
                        "input_tokens": 10,
                        "output_tokens": 5,
                        "cost_usd": f"0.0{n + 1}",
                        "duration_ms": 200 + 150 * i,
                        "timestamp": (NOW - timedelta(hours=2 + i * 5)).isoformat(),
                    }
                )
        resp = running.client.post("/v1/events", json=events)
        assert resp.status_code == 200 and resp.json()["accepted"] == len(events), resp.text
        yield running


@dataclass
class Watched:
    """A tab that records what a user would call broken: console errors (a CSP violation
    is one), uncaught exceptions, failed loads and requests leaving the server."""

    page: Page
    url: str
    problems: list[str] = field(default_factory=list)

    def watch(self) -> None:
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        self.page.on("request", self._request)
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url}"))

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error" and not msg.location.get("url", "").endswith("/favicon.ico"):
            self.problems.append(f"console error on {self.page.url}: {msg.text}")

    def _request(self, req: Any) -> None:
        if not req.url.startswith((self.url + "/", "data:", "blob:", "about:")):
            self.problems.append(f"request leaving the server: {req.url}")

    def open(self, path: str) -> None:
        resp = self.page.goto(self.url + path)
        assert resp is not None and resp.status == 200, f"{path}: {resp and resp.status}"

    def charts_drawn(self) -> int:
        self.page.wait_for_function(
            "() => [...document.querySelectorAll('.chart')]"
            ".every(el => el.getAttribute('data-ready') === '1')"
        )
        return self.page.locator(".chart[data-ready='1']:has(svg.main-svg)").count()

    def chart_links(self) -> list[str]:
        """Every link plotly drew inside a chart (it draws ``<a>`` as SVG ``a``)."""
        links: list[str] = self.page.evaluate(
            """() => [...document.querySelectorAll('.chart a, .chart [href], .chart [*|href]')]
                .map(a => a.outerHTML)"""
        )
        return links


@pytest.fixture
def tab(browser: Browser, site: RunningServer) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    t = Watched(context.new_page(), site.url)
    t.watch()
    try:
        yield t
    finally:
        context.close()
    assert not t.problems, "\n".join(t.problems)


def test_tenant_markup_is_text_in_the_overview_legend(tab: Watched, site: RunningServer) -> None:
    sign_in(tab.page, site.url, site.admin_key)
    tab.open("/")
    assert tab.charts_drawn() >= 1
    legend = tab.page.locator(".chart[data-chart=cost-by-tenant] g.legend")
    assert legend.count() == 1
    assert tab.chart_links() == []
    # the tenant id is shown as it was sent, markup and all
    names = legend.locator("text.legendtext").all_text_contents()
    assert LINK in names, names
    # hovering a point shows the same names as text, and still no link
    box = tab.page.locator(".chart[data-chart=cost-by-tenant] .nsewdrag").first.bounding_box()
    assert box is not None
    tab.page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.5)
    assert tab.chart_links() == []


def test_tenant_markup_is_text_on_the_sla_chart(tab: Watched, site: RunningServer) -> None:
    sign_in(tab.page, site.url, site.admin_key)
    tab.open("/sla")
    assert tab.charts_drawn() == 1
    assert tab.chart_links() == []
    ticks = tab.page.evaluate(
        "() => [...document.querySelectorAll('.chart .xtick text')].map(t => t.textContent)"
    )
    assert LINK in ticks and NAME in ticks and "Plain Co" in ticks
    for bar in range(tab.page.locator(".chart g.point").count()):
        tab.page.locator(".chart g.point").nth(bar).hover(force=True)
        assert tab.chart_links() == []


def test_tenant_page_charts_have_no_links(tab: Watched, site: RunningServer) -> None:
    sign_in(tab.page, site.url, site.admin_key)
    tab.open("/tenant?" + urlencode({"tenant_id": LINK}))
    assert tab.charts_drawn() == 2
    assert tab.chart_links() == []
    # the page's own links stay on this server: none goes where the data said
    hrefs: list[str] = tab.page.evaluate("() => [...document.links].map(a => a.href)")
    assert hrefs and {urlparse(h).netloc for h in hrefs} == {urlparse(site.url).netloc}


def test_api_reference_runs_offline_under_the_csp(tab: Watched, site: RunningServer) -> None:
    resp = tab.page.goto(site.url + "/docs")
    assert resp is not None and resp.status == 200
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    # Swagger UI drew the API from /openapi.json: its operations are there
    tab.page.locator(".swagger-ui .opblock").first.wait_for()
    summaries = tab.page.locator(".swagger-ui .opblock-summary-path").all_inner_texts()
    assert any("/api/tenants" in s for s in summaries), summaries
    # opening an operation works (the UI's scripts run under the policy)
    tab.page.locator(".swagger-ui .opblock-summary").first.click()
    tab.page.locator(".swagger-ui .opblock-body").first.wait_for()
