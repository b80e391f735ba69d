"""A customer arrives from the SaaS's own app, in a real browser (Debian's chromium via
Playwright): the app's page (another site: ``localhost`` against the dashboard's
``127.0.0.1``) links to ``/login/jwt`` with a token its identity provider signed; the
link signs the customer in to its own tenant's portal (the SameSite=Lax cookie is set on
that cross-site navigation and sent on the redirect), and signing out ends it."""

from __future__ import annotations

from collections.abc import Iterator
from html import escape
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser

from tests.conftest import RunningServer, seeded_server
from tests.dashboard.browser import TIMEOUT_MS, skip_without_chromium
from tests.server.test_access_matrix import ACME, GLOBEX, INITECH, seed_tenants
from tests.server.test_jwt import AUD, SECRET, http_server, make_token

skip_without_chromium()

pytestmark = pytest.mark.slow
ISSUER = "https://saas.example"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = {"jwt_secret": SECRET, "jwt_issuer": ISSUER, "jwt_audience": AUD}
    data = tmp_path_factory.mktemp("jwt-browser") / "data"
    with seeded_server(data, seed_tenants, **settings) as running:
        yield running


@pytest.fixture(scope="module")
def saas(site: RunningServer) -> Iterator[str]:
    """The SaaS's own page with a "Usage" link for its signed-in customer (acme)."""

    def app_page() -> tuple[str, bytes]:
        token = make_token(SECRET, "HS256", ISSUER, tenant_id=ACME.tenant_id)
        query = urlencode({"token": token, "next": f"/tenant?tenant_id={ACME.tenant_id}"})
        href = escape(f"{site.url}/login/jwt?{query}")
        return "text/html", f'<!doctype html><a id="usage" href="{href}">Usage</a>'.encode()

    with http_server(app_page) as port:
        yield f"http://localhost:{port}"


def test_a_link_from_the_saas_opens_the_customers_portal(
    browser: Browser, site: RunningServer, saas: str, artifacts: Path
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(saas + "/app")
        page.locator("#usage").click()
        page.wait_for_url(f"{site.url}/tenant?tenant_id={ACME.tenant_id}")
        assert ACME.name in page.content()
        assert f"tenant · {ACME.tenant_id}" in page.inner_text("body")
        html = page.content()
        leaked = [s for t in (GLOBEX, INITECH) for s in t.strings() if s in html]
        assert leaked == []
        page.screenshot(path=str(artifacts / "portal-jwt.png"), full_page=True)
        # the token is in no cookie, and the session cookie is not readable by scripts
        cookies = {c["name"]: c for c in context.cookies(site.url)}
        assert cookies["ts_session"]["httpOnly"] and cookies["ts_session"]["sameSite"] == "Lax"
        # another tenant's page: as missing
        resp = page.goto(f"{site.url}/tenant?tenant_id={GLOBEX.tenant_id}")
        assert resp is not None and resp.status == 404
        # signing out ends the session
        page.goto(f"{site.url}/tenant?tenant_id={ACME.tenant_id}")
        page.locator("[data-testid=signout] button").click()
        page.wait_for_url(f"{site.url}/login")
        page.goto(f"{site.url}/tenant?tenant_id={ACME.tenant_id}")
        assert "/login?next=" in page.url
    finally:
        context.close()
