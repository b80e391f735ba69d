"""A tenant's portal in a real browser: Debian's chromium, driven by Playwright, signs in
through the form with a tenant key and walks every page it can reach, checking that no
other tenant's name, id, users, sessions, traces, models or tiers show anywhere, that the
pages it may not see answer 403/404, and that signing out ends the session. An admin
signing in sees every tenant.

Screenshots ``portal-*.png`` go where tests/dashboard/test_browser.py puts its own."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

from tests.conftest import RunningServer, seeded_server
from tests.dashboard.browser import TIMEOUT_MS, sign_in, skip_without_chromium
from tests.server.test_access_matrix import ACME, GLOBEX, INITECH, TENANTS, seed_tenants

skip_without_chromium()

pytestmark = pytest.mark.slow
OTHERS = (GLOBEX, INITECH)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with seeded_server(tmp_path_factory.mktemp("portal") / "data", seed_tenants) as running:
        yield running


@dataclass
class Portal:
    page: Page
    url: str
    artifacts: Path
    problems: list[str] = field(default_factory=list)

    def watch(self) -> None:
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        self.page.on("request", self._request)

    def _console(self, msg: ConsoleMessage) -> None:
        # the 403/404 pages this test asks for are logged by chromium as failed loads
        if msg.type == "error" and "status of 40" not in msg.text:
            if urlparse(msg.location.get("url", "")).path != "/favicon.ico":
                self.problems.append(f"console error on {self.page.url}: {msg.text}")

    def _request(self, req: object) -> None:
        url = str(getattr(req, "url", ""))
        if not url.startswith((self.url + "/", "data:", "blob:", "about:")):
            self.problems.append(f"request leaving the server: {url}")

    def visit(self, path: str, status: int = 200) -> None:
        resp = self.page.goto(self.url + path)
        assert resp is not None and resp.status == status, f"{path}: {resp and resp.status}"
        if status == 200:
            self.page.wait_for_load_state("load")

    def path(self) -> str:
        parsed = urlparse(self.page.url)
        return parsed.path + (f"?{parsed.query}" if parsed.query else "")

    def foreign_strings(self, allowed: tuple[str, ...] = ()) -> list[str]:
        """Other tenants' strings in the page: its markup (links, hidden fields, chart
        data) and what is shown."""
        html = self.page.content()
        text = self.page.inner_text("body")
        return [
            f"{t.tenant_id}: {s!r}"
            for t in OTHERS
            for s in t.strings()
            if s not in allowed and (s in html or s in text)
        ]

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.artifacts / f"portal-{name}.png"), full_page=True)


def _context(browser: Browser) -> BrowserContext:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    return context


@pytest.fixture
def portal(browser: Browser, site: RunningServer, artifacts: Path) -> Iterator[Portal]:
    context = _context(browser)
    p = Portal(context.new_page(), site.url, artifacts)
    p.watch()
    try:
        yield p
    finally:
        context.close()
    assert not p.problems, "\n".join(p.problems)


def test_tenant_portal(portal: Portal, site: RunningServer) -> None:
    page = portal.page
    sign_in(page, site.url, site.key("tenant", ACME.tenant_id, name="acme portal"))
    # lands on its own tenant page
    assert urlparse(page.url).path == "/tenant"
    assert f"id={ACME.tenant_id}" in urlparse(page.url).query
    page.wait_for_load_state("load")
    assert ACME.name in page.inner_text("body")
    assert page.locator("[data-testid=cards]").count() == 1
    portal.shot("tenant-home")
    # its navigation: its own pages only
    nav = page.locator("nav.nav")
    labels = [t.strip() for t in nav.locator("ul a").all_inner_texts()]
    assert labels == ["Overview", "Traces", "Users", "Sessions", "SLA", "Insights"]
    hrefs = nav.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert not [h for h in hrefs if urlparse(h).path in ("/tenants", "/prices", "/")], hrefs
    assert "tenant" in nav.inner_text() and ACME.tenant_id in nav.inner_text()
    assert portal.foreign_strings() == []

    # every page of the portal, by its own links, shows acme only
    for label, name in (("Traces", "traces"), ("Users", "users"), ("Sessions", "sessions")):
        nav.get_by_role("link", name=label, exact=True).click()
        page.wait_for_load_state("load")
        assert urlparse(page.url).path == f"/{name}"
        assert portal.foreign_strings() == [], name
        portal.shot(name)
    # the traces table: exactly acme's traces
    portal.visit("/traces?range=7d")
    shown = page.locator("[data-testid=traces-table] tr[data-trace]").evaluate_all(
        "rows => rows.map(r => r.dataset.trace)"
    )
    assert sorted(shown) == sorted(ACME.trace_ids())
    page.locator("[data-testid=traces-table] tr[data-trace] a").first.click()
    page.wait_for_load_state("load")
    assert urlparse(page.url).path.startswith("/traces/acacacac")
    assert portal.foreign_strings() == []
    portal.shot("trace")

    # asking for another tenant in the URL: nothing of it
    portal.visit(f"/traces?tenant_id={GLOBEX.tenant_id}&range=7d")
    assert page.locator("[data-testid=traces-table] tr[data-trace]").count() == 0
    # only the id the URL itself carried is echoed back (the filter box)
    assert portal.foreign_strings(allowed=(GLOBEX.tenant_id,)) == []
    for path in (f"/users?tenant_id={GLOBEX.tenant_id}", f"/sessions?tenant_id={GLOBEX.tenant_id}"):
        portal.visit(path)
        assert portal.foreign_strings(allowed=(GLOBEX.tenant_id,)) == []
        assert GLOBEX.users[0] not in page.content()

    # SLA: its own row only
    nav.get_by_role("link", name="SLA", exact=True).click()
    page.wait_for_load_state("load")
    rows = page.locator("tr[data-tenant]").evaluate_all("rs => rs.map(r => r.dataset.tenant)")
    assert rows == [ACME.tenant_id]
    assert ACME.tier in page.content()
    assert portal.foreign_strings() == []
    portal.shot("sla")

    # the pages about every tenant are refused; another tenant's page does not exist
    for path in ("/tenants", "/prices"):
        portal.visit(path, 403)
        assert portal.foreign_strings() == []
    portal.shot("forbidden")
    portal.visit(f"/tenant?tenant_id={GLOBEX.tenant_id}", 404)
    not_found = page.inner_text("body")
    portal.visit("/tenant?tenant_id=no-such-tenant-at-all", 404)
    assert not_found.replace(GLOBEX.tenant_id, "X") == page.inner_text("body").replace(
        "no-such-tenant-at-all", "X"
    )  # the same answer as for a tenant that does not exist
    portal.visit(f"/traces/{GLOBEX.trace_ids()[0]}", 404)
    assert portal.foreign_strings(allowed=(GLOBEX.short_trace,)) == []
    portal.shot("not-found")
    # the overview of everything is its own page
    portal.visit("/")
    assert urlparse(page.url).path == "/tenant" and ACME.tenant_id in page.url

    # signing out: back to the sign-in page, and the pages want a key again
    portal.visit("/traces")
    page.locator("[data-testid=signout] button[type=submit]").click()
    page.wait_for_url(lambda u: urlparse(u).path == "/login")
    assert not [c for c in page.context.cookies() if c["name"] == "ts_session"]
    portal.shot("signed-out")
    for path in ("/traces", f"/tenant?tenant_id={ACME.tenant_id}", "/sla"):
        page.goto(site.url + path)
        assert urlparse(page.url).path == "/login", path
        assert page.locator("[data-testid=login]").count() == 1


def test_tenant_session_cookie_is_not_readable_by_scripts(
    portal: Portal, site: RunningServer
) -> None:
    sign_in(portal.page, site.url, site.key("tenant", ACME.tenant_id))
    cookies = {c["name"]: c for c in portal.page.context.cookies()}
    session = cookies["ts_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert "ts_session" not in portal.page.evaluate("document.cookie")


def test_admin_sees_every_tenant(portal: Portal, site: RunningServer) -> None:
    page = portal.page
    sign_in(page, site.url, site.admin_key)
    assert urlparse(page.url).path == "/"
    labels = [t.strip() for t in page.locator("nav.nav ul a").all_inner_texts()]
    assert "Tenants" in labels and "Prices" in labels
    portal.visit("/tenants?range=7d")
    ids = page.locator("[data-testid=tenants-table] tr[data-tenant]").evaluate_all(
        "rows => rows.map(r => r.dataset.tenant)"
    )
    assert sorted(ids) == sorted(t.tenant_id for t in TENANTS)
    portal.shot("admin-tenants")
    portal.visit("/traces?range=7d")
    shown = page.locator("[data-testid=traces-table] tr[data-trace]").count()
    assert shown == sum(len(t.trace_ids()) for t in TENANTS)
    portal.visit(f"/tenant?tenant_id={GLOBEX.tenant_id}")
    assert GLOBEX.name in page.inner_text("body")
