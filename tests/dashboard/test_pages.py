"""Every dashboard page over a real server: status, content against the known seed data,
escaping of hostile tenant ids, HTML errors, the empty state and the static assets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from markupsafe import escape

from tenantscope.query.params import TimeRange
from tenantscope.query.scope import Scope
from tests.conftest import RunningServer
from tests.query.seed import CALLS, HOSTILE, seed

PAGES = (
    "/",
    "/tenants",
    "/tenant?tenant_id=apex-legal",
    "/traces",
    "/users",
    "/sessions",
    "/sla",
    "/prices",
)


@pytest.fixture
def dash(server: RunningServer) -> Iterator[RunningServer]:
    seed(server.services)
    yield server


def page(srv: RunningServer, path: str, status: int = 200) -> str:
    resp = srv.client.get(path, headers={"accept": "text/html"})
    assert resp.status_code == status, (path, resp.status_code, resp.text[:500])
    assert resp.headers["content-type"].startswith("text/html")
    return resp.text


def rows(text: str, testid: str) -> list[str]:
    table = re.search(rf'data-testid="{testid}".*?<tbody>(.*?)</tbody>', text, re.S)
    assert table, f"no table {testid}"
    return re.findall(r"<tr[ >].*?</tr>", table.group(1), re.S)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_and_escapes_hostile_ids(dash: RunningServer, path: str) -> None:
    text = page(dash, path)
    assert "<script>alert(" not in text  # the hostile tenant id is data, never markup
    assert 'href="/static/app.css' in text
    assert 'aria-current="page"' in text  # the navigation marks where we are


def test_hostile_tenant_shows_escaped(dash: RunningServer) -> None:
    text = page(dash, "/tenants")
    assert str(escape(HOSTILE)) in text  # shown, as text
    detail = page(dash, "/tenant?tenant_id=" + quote(HOSTILE))
    assert "&lt;script&gt;" in detail and "<script>alert(" not in detail


def test_overview_figures(dash: RunningServer) -> None:
    text = page(dash, "/")
    total = sum(float(c.cost) for c in CALLS)
    assert f"${total:,.4f}" in text  # $0.1035: four places below a dollar
    assert "Apex Legal" in text and "gpt-4o" in text
    # the cost chart's spec is embedded as JSON for plotly, stacked by tenant
    spec = re.search(
        r'<script type="application/json" id="cost-by-tenant">(.*?)</script>', text, re.S
    )
    assert spec and '"stackgroup"' in spec.group(1) and "apex-legal" in spec.group(1)


def test_tenants_sorting_and_search(dash: RunningServer) -> None:
    text = page(dash, "/tenants?sort=cost&order=desc")
    order = re.findall(r'<tr data-tenant="([^"]*)"', text)
    assert order[:3] == ["apex-legal", "stratex-consulting", "techstart-inc"]
    text = page(dash, "/tenants?sort=cost&order=asc")
    assert re.findall(r'<tr data-tenant="([^"]*)"', text)[-1] == "apex-legal"
    found = page(dash, "/tenants?q=stratex")
    assert re.findall(r'<tr data-tenant="([^"]*)"', found) == ["stratex-consulting"]
    assert "Stratex Consulting" in found and "professional" in found
    # the View traces action opens Traces filtered to that tenant, keeping the range
    assert 'href="/traces?tenant_id=stratex-consulting&amp;range=7d"' in found
    none = page(dash, "/tenants?q=zzz-nobody")
    assert "No tenants match" in none
    page(dash, "/tenants?sort=bogus", 400)


def test_tenant_detail(dash: RunningServer) -> None:
    text = page(dash, "/tenant?tenant_id=apex-legal")
    assert '<span class="badge fail">FAIL</span>' in text  # 5 s call over a 2 s target
    assert "$0.1000" in text  # 0.01 + 0.02 + 0.03 + 0.04
    for testid in ("breakdown-model", "breakdown-feature", "breakdown-user", "tenant-users"):
        assert rows(text, testid)
    assert "$500.00" in text  # the monthly budget from its config
    page(dash, "/tenant?tenant_id=nobody-here", 404)


def test_traces_filters_and_detail(dash: RunningServer) -> None:
    text = page(dash, "/traces?tenant_id=apex-legal")
    traces = re.findall(r'<tr data-trace="([0-9a-f]+)"', text)
    assert len(traces) == 4
    errors = page(dash, "/traces?tenant_id=apex-legal&status=error")
    assert len(re.findall(r"<tr data-trace=", errors)) == 1
    page(dash, "/traces?status=exploded", 400)
    trace_id = re.findall(r'<tr data-trace="([0-9a-f]+)"', errors)[0]
    detail = page(dash, f"/traces/{trace_id}")
    spans = re.findall(r'<details class="wf-row status-(\w+)" data-span="([0-9a-f]+)"', detail)
    assert [s[0] for s in spans] == ["error", "error"]  # root and its LLM call
    assert "upstream 500" in detail  # the error message is shown
    assert 'href="/tenant?tenant_id=apex-legal' in detail  # back to the tenant
    page(dash, "/traces/" + "f" * 32, 404)


def test_users_sessions_sla_prices(dash: RunningServer) -> None:
    users = page(dash, "/users?tenant_id=apex-legal")
    assert len(rows(users, "users-table")) == 2 and "alice" in users
    sessions = page(dash, "/sessions?tenant_id=apex-legal")
    assert len(rows(sessions, "sessions-table")) == 2
    sla = page(dash, "/sla")
    tiers = re.findall(r'data-testid="sla-tier" data-tier="([^"]+)"', sla)
    assert tiers == ["enterprise", "professional"]  # techstart-inc has no target
    prices = page(dash, "/prices")
    assert "gpt-4o-mini" in prices and "No overrides" in prices


def test_prices_page_says_which_models_an_override_prices(dash: RunningServer) -> None:
    from tenantscope.storage.base import PriceOverride

    models = {
        m.model
        for m in dash.services.queries.models(Scope.all(), TimeRange.last(timedelta(days=30)))
    }
    family = sorted(m for m in models if m.startswith("gpt-4o-mini"))
    assert family
    rule = PriceOverride(
        model="gpt-4o-mini", effective_from=datetime(2020, 1, 1, tzinfo=timezone.utc)
    )
    added = dash.services.config.add_price_override(rule)
    try:
        covers = re.findall(r'data-testid="override-covers">([^<]*)<', page(dash, "/prices"))
        assert len(covers) == 1 and all(name in covers[0] for name in family)
    finally:
        assert added.id is not None
        dash.services.config.delete_price_override(added.id)


def test_errors_are_pages_for_browsers_json_for_the_api(dash: RunningServer) -> None:
    text = page(dash, "/tenants?range=5y", 400)
    assert "range must be one of" in text and 'data-testid="error"' in text
    missing = page(dash, "/no-such-page", 404)
    assert "no route /no-such-page" in missing
    api = dash.client.get("/api/tenants/nobody", headers={"accept": "text/html"})
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"


def test_custom_range_and_presets(dash: RunningServer) -> None:
    text = page(dash, "/tenants?range=1h")
    assert 'class="chip on" href="/tenants?range=1h"' in text
    # the stratex call 30 h ago is outside 24 h but inside a custom 2-day window
    day = page(dash, "/tenants?range=24h&q=stratex")
    two = page(dash, "/tenants?from=" + quote("2000-01-01T00:00:00Z") + "&q=stratex")
    cost_day = re.search(r'<td class="num cost">([^<]+)', day)
    cost_two = re.search(r'<td class="num cost">([^<]+)', two)
    assert cost_day and cost_two
    assert cost_day.group(1).strip() == "$0.0010"
    assert cost_two.group(1).strip() == "$0.0030"
    page(dash, "/tenants?from=2026-01-02&to=2026-01-01", 400)


@pytest.mark.parametrize(
    "path",
    [
        "/?to=9999-12-31T23:59:59Z",
        "/tenants?to=0001-01-02",
        "/sessions?from=0001-01-01T00:00:00Z",
        "/traces?from=0001-01-01T00:00:00%2B01:00",
        "/tenant?tenant_id=apex-legal&to=1e300",
        "/sla?from=1969-12-31",
    ],
)
def test_out_of_range_times_are_400_pages_naming_the_accepted_range(
    dash: RunningServer, path: str
) -> None:
    text = page(dash, path, 400)
    assert "between 1970-01-01T00:00:00Z and 2200-01-01T00:00:00Z" in text


def test_the_whole_accepted_range_is_a_page(dash: RunningServer) -> None:
    text = page(dash, "/tenants?from=0&to=" + quote("2200-01-01T00:00:00Z"))
    assert "Apex Legal" in text


def test_pages_take_the_api_names_and_refuse_unknown_ones(dash: RunningServer) -> None:
    """One vocabulary: a page filters by the API's parameter names; any other parameter
    is a 400 page naming it (``tenant=`` used to be ignored silently: every tenant)."""
    apex = page(dash, "/traces?tenant_id=apex-legal")
    assert len(re.findall(r"<tr data-trace=", apex)) == 4
    assert 'name="tenant_id" value="apex-legal"' in apex  # the form speaks the same names
    alice = page(dash, "/sessions?tenant_id=apex-legal&user_id=alice")
    assert len(rows(alice, "sessions-table")) == 1
    assert len(rows(page(dash, "/users?tenant_id=apex-legal"), "users-table")) == 2
    assert "Apex Legal" in page(dash, "/tenant?tenant_id=apex-legal")
    for path, name, hint in [
        ("/traces?tenant=apex-legal", "tenant", "(now tenant_id)"),
        ("/traces?user=alice&session=s1", "user", "(now user_id)"),
        ("/tenant?id=apex-legal", "id", "(now tenant_id)"),
        ("/users?tenant=apex-legal", "tenant", "(now tenant_id)"),
        ("/traces?tenant_ids=apex-legal", "tenant_ids", "(did you mean tenant_id?)"),
        ("/tenants?colour=red", "colour", ""),
        # the overview takes tenant_id (the tenant selector): the old name still points to it
        ("/?tenant=apex-legal", "tenant", "(now tenant_id)"),
        ("/?user_id=alice", "user_id", ""),
    ]:
        text = page(dash, path, 400)
        assert f"{escape(repr(name))} {hint}".strip() in text, (path, text[-900:])
        assert "takes: " in text


def test_empty_state(server: RunningServer) -> None:
    text = page(server, "/")
    assert 'data-testid="empty-state"' in text and "/v1/traces" in text
    assert "tenantscope.init" in text


def test_static_assets(server: RunningServer) -> None:
    css = server.client.get("/static/app.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    js = server.client.get("/static/vendor/plotly.min.js", headers={"accept-encoding": "gzip"})
    assert js.status_code == 200 and js.headers["content-encoding"] == "gzip"
    assert b"plotly" in js.content[:2000].lower()  # httpx decoded the gzip body
    etag = js.headers["etag"]
    again = server.client.get("/static/vendor/plotly.min.js", headers={"if-none-match": etag})
    assert again.status_code == 304
    raw = server.client.get("/static/app.js", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in raw.headers and b"Plotly" in raw.content
    assert server.client.get("/static/../../etc/passwd").status_code == 404
    assert server.client.get("/static/nope.js").status_code == 404


def test_dashboard_pages_are_not_in_the_openapi(server: RunningServer) -> None:
    paths = server.client.get("/openapi.json").json()["paths"]
    assert "/tenants" not in paths and "/api/tenants" in paths
