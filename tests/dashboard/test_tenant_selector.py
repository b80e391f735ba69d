"""The global tenant selector over a real server: where it sends a choice, links keeping the
tenant across pages, every page filtered by it, and no selector for a tenant key."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest
from markupsafe import escape

from tenantscope.dashboard.tenant_picker import target_for
from tests.conftest import RunningServer
from tests.query.seed import HOSTILE, seed


@pytest.fixture
def dash(server: RunningServer) -> Iterator[RunningServer]:
    seed(server.services)
    yield server


def page(srv: RunningServer, path: str, client: httpx.Client | None = None) -> str:
    resp = (client or srv.client).get(path, headers={"accept": "text/html"})
    assert resp.status_code == 200, (path, resp.status_code, resp.text[:500])
    return resp.text


def nav_links(text: str) -> dict[str, str]:
    nav = re.search(r'<nav class="nav".*?</nav>', text, re.S)
    assert nav
    return {
        label: unescape(href)
        for href, label in re.findall(r'<li><a href="([^"]*)"[^>]*>([^<]+)</a>', nav.group(0))
    }


@pytest.mark.parametrize(
    ("next_url", "tenant", "target"),
    [
        (
            "/traces?range=24h&cursor=abc&user_id=u1&model=gpt-4o",
            "acme",
            "/traces?range=24h&model=gpt-4o&tenant_id=acme",
        ),
        ("/traces?range=24h&tenant_id=acme", "", "/traces?range=24h"),
        ("/traces?range=24h&tenant_id=acme", None, "/traces?range=24h"),
        ("/users?range=7d", "(no tenant)", "/users?range=7d&tenant_id="),
        ("/", "acme", "/tenant?tenant_id=acme"),
        ("/tenant?tenant_id=acme&range=30d", "", "/tenants?range=30d"),
        ("/tenant?tenant_id=acme", "globex", "/tenant?tenant_id=globex"),
        ("/traces/0123abcd?range=1h", "acme", "/traces?range=1h&tenant_id=acme"),
        ("/tenants?format=csv&q=x", "a/b c", "/tenants?q=x&tenant_id=a%2Fb+c"),
        ("//evil.example/x", "acme", "/tenant?tenant_id=acme"),  # no open redirect
        ("https://evil.example/", "", "/"),
        (None, "", "/"),
    ],
)
def test_where_a_choice_leads(next_url: str | None, tenant: str | None, target: str) -> None:
    assert target_for(next_url, tenant) == target


def test_select_tenant_redirects_to_the_page_for_the_tenant(dash: RunningServer) -> None:
    resp = dash.client.get(
        "/select-tenant",
        params={"tenant_id": "apex-legal", "next": "/traces?range=24h&cursor=zz"},
        follow_redirects=False,
    )
    assert resp.status_code == 303
    assert resp.headers["location"] == "/traces?range=24h&tenant_id=apex-legal"


def test_links_keep_the_tenant_across_pages(dash: RunningServer) -> None:
    text = page(dash, "/users?tenant_id=apex-legal&range=24h")
    links = nav_links(text)
    for label in ("Traces", "Users", "Sessions", "SLA", "Compare", "Prices", "Tenants"):
        assert dict(parse_qsl(urlsplit(links[label]).query)) == {
            "range": "24h",
            "tenant_id": "apex-legal",
        }, (label, links[label])
    # the configuration pages are not filtered by tenant: their links carry the range only,
    # and they have no selector
    assert links["Admin"] == "/admin/tenants?range=24h" and links["Audit"] == "/audit?range=24h"
    admin = page(dash, "/admin/tenants?range=24h")
    assert 'data-testid="tenant-picker"' not in admin
    assert "tenant_id" not in nav_links(admin)["Traces"]
    # the overview of one tenant is its page, linked as such
    assert links["Overview"] == "/tenant?range=24h&tenant_id=apex-legal"
    # the selector shows it, with a way back to every tenant
    assert 'name="tenant_id" value="apex-legal" list="tenant-suggestions"' in text
    back = re.search(r'data-testid="all-tenants" href="([^"]+)"', text)
    assert back
    resp = dash.client.get(unescape(back.group(1)), follow_redirects=False)
    assert resp.headers["location"] == "/users?range=24h"
    # every tenant: no tenant in the links, no way back to show
    plain = page(dash, "/users?range=24h")
    assert "tenant_id" not in nav_links(plain)["Traces"]
    assert 'data-testid="all-tenants"' not in plain
    # the tenant without an id travels as tenant_id= and shows as its label
    none = page(dash, "/traces?tenant_id=")
    assert nav_links(none)["Users"].endswith("tenant_id=")
    assert 'name="tenant_id" value="(no tenant)" list=' in none


def test_every_page_honours_the_tenant(dash: RunningServer) -> None:
    tenants = page(dash, "/tenants?tenant_id=stratex-consulting")
    assert re.findall(r'<tr data-tenant="([^"]*)"', tenants) == ["stratex-consulting"]
    traces = page(dash, "/traces?tenant_id=stratex-consulting")
    assert len(re.findall(r"<tr data-trace=", traces)) == 2  # its two calls in 7 days
    assert "apex-legal" not in re.sub(r'<nav class="nav".*?</nav>', "", traces, flags=re.S)
    sla = page(dash, "/sla?tenant_id=stratex-consulting")
    assert re.findall(r'<tr data-tenant="([^"]*)"', sla) == ["stratex-consulting"]
    prices = page(dash, "/prices?tenant_id=stratex-consulting")
    seen = re.search(r'data-testid="models-table".*?</table>', prices, re.S)
    assert seen and "gpt-4o-mini" in seen.group(0) and "claude" not in seen.group(0)
    assert 'data-testid="not-per-tenant"' in prices  # overrides are not per tenant: said
    compare = page(dash, "/compare?tenant_id=stratex-consulting")
    assert re.findall(r'<tr data-tenant="([^"]*)"', compare) == ["stratex-consulting"]
    overview = dash.client.get("/?tenant_id=stratex-consulting&range=24h", follow_redirects=False)
    assert overview.status_code == 303
    assert overview.headers["location"] == "/tenant?tenant_id=stratex-consulting&range=24h"
    # one trace is shown whole, saying whose it is when another tenant is selected
    trace_id = f"{1:032x}"  # apex-legal's first
    other = page(dash, f"/traces/{trace_id}?tenant_id=stratex-consulting")
    assert 'data-testid="other-tenant"' in other
    assert 'data-testid="other-tenant"' not in page(
        dash, f"/traces/{trace_id}?tenant_id=apex-legal"
    )
    # filter forms carry the tenant selected, no box of their own
    assert '<input type="hidden" name="tenant_id" value="stratex-consulting">' in traces
    assert traces.count('<input type="text" name="tenant_id"') == 1  # the selector's box


def test_the_selector_escapes_a_hostile_tenant(dash: RunningServer) -> None:
    text = page(dash, "/traces?tenant_id=" + quote(HOSTILE))
    assert f'value="{escape(HOSTILE)}" list="tenant-suggestions"' in text
    assert "<script>alert(" not in text


def test_no_selector_for_a_tenant_key(dash: RunningServer) -> None:
    token = dash.key("tenant", "apex-legal")
    with httpx.Client(base_url=dash.url, headers={"authorization": f"Bearer {token}"}) as c:
        for path in ("/tenant?tenant_id=apex-legal", "/traces", "/users?tenant_id=apex-legal"):
            text = page(dash, path, c)
            assert 'data-testid="tenant-picker"' not in text and "tenant-suggestions" not in text
        assert c.get("/select-tenant", params={"tenant_id": "x"}).status_code == 403
    reader = dash.key("reader")
    with httpx.Client(base_url=dash.url, headers={"authorization": f"Bearer {reader}"}) as c:
        assert 'data-testid="tenant-picker"' in page(dash, "/traces", c)


def test_provider_cards(dash: RunningServer) -> None:
    overview = page(dash, "/")
    card = re.search(r'data-testid="top-providers".*?</table>', overview, re.S)
    assert card
    assert re.findall(r'<td class="mono">([^<]+)</td>', card.group(0)) == ["anthropic", "openai"]
    assert "$0.0700" in card.group(0)
    tenant = page(dash, "/tenant?tenant_id=stratex-consulting")
    card = re.search(r'data-testid="breakdown-provider".*?</table>', tenant, re.S)
    assert card and "openai" in card.group(0) and "anthropic" not in card.group(0)


def test_compare_page(dash: RunningServer) -> None:
    text = page(dash, "/compare")
    assert re.findall(r'<tr data-tenant="([^"]*)"', text) == [
        "apex-legal",
        "stratex-consulting",
        "techstart-inc",
        str(escape(HOSTILE)),
    ]
    head = re.search(r"<thead>(.*?)</thead>", text, re.S)
    assert head and re.findall(r'data-key="([^"]*)"', head.group(1)) == ["qa", "summary", "email"]
    apex = re.search(r'<tr data-tenant="apex-legal">.*?</tr>', text, re.S)
    assert apex
    qa = re.search(r'<td class="cell" data-key="qa">(.*?)</td>', apex.group(0), re.S)
    assert qa and "$0.0700" in qa.group(1) and "2 req · 70%" in qa.group(1)
    assert re.search(r'<td class="empty" data-key="email">', apex.group(0))
    assert "<script>alert(" not in text and "Apex Legal" in text
    models = page(dash, "/compare?by=model&limit=10")
    head = re.search(r"<thead>(.*?)</thead>", models, re.S)
    assert head and "claude-3-5-sonnet" in head.group(1)
    assert nav_links(text)["Compare"].startswith("/compare")
