"""The dashboard's limit pages against a real server (real SQLite and DuckDB files, the
real limiter deciding real checks): what /limits shows of each tenant's budgets, rates,
projections, blocked calls, approvals and definitions; the admin forms (what they store
and audit, what they refuse: 422 with every wrong field named and nothing stored); the
tenant page's section (a tenant key: its own limits only); the tenants list's blocked
column; who may see what; hostile names and tenant ids shown as text.

The limiter runs on a fixed clock (10 days into March 2025), so periods, projections and
blocked calls are the same whatever day the tests run on."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from html import unescape
from pathlib import Path

import httpx
import pytest

from tenantscope.dashboard.limit_views import budget_chart, tenant_limits
from tenantscope.limits.definitions import check_approval, check_limit
from tenantscope.limits.figures import Call
from tenantscope.limits.periods import period
from tenantscope.query.params import TimeRange
from tenantscope.query.scope import Scope
from tenantscope.records import UsageRecord
from tenantscope.server.services import Services
from tenantscope.testing.server import free_port
from tests.conftest import RunningServer, make_settings, serve_app
from tests.dashboard.test_alerts_pages import CSRF, signed_in

NOW = datetime(2025, 3, 11, tzinfo=timezone.utc)  # 10 of March's 31 days have passed
MONTH = TimeRange(*period(NOW))
HOSTILE = 'evil"<img src=x onerror=alert(1)>'
HOSTILE_NAME = "<script>alert('limit')</script> cap"


def spend(
    tenant: str, usd: str, n: int = 1, feature: str = "", before: datetime = NOW
) -> list[UsageRecord]:
    """``n`` LLM calls of ``usd`` each, a day before the limiter's now (or ``before``)."""
    out = []
    for i in range(n):
        key = f"{tenant}-{feature}-{usd}-{i}"
        at = before - timedelta(days=1, minutes=i)
        out.append(
            UsageRecord(
                event_id=key,
                trace_id=hashlib.md5(key.encode()).hexdigest(),
                span_id=f"{i + 1:016x}",
                name="chat",
                kind="llm",
                tenant_id=tenant,
                feature=feature,
                provider="openai",
                model="gpt-4o",
                input_tokens=100,
                output_tokens=10,
                cost_usd=Decimal(usd),
                cost_source="reported",
                start_time=at,
                end_time=at + timedelta(milliseconds=500),
                duration_ms=500,
            )
        )
    return out


def seed(svc: Services) -> None:
    """acme (starter): a configured $1 budget with $0.40 spent, the starter rate limit of
    2 requests/min reached and one call refused; globex (enterprise): 60 requests/min and
    a per-feature budget; a tenant whose id carries markup, with a budget of its own."""
    cfg = svc.config
    cfg.set_tenant("acme", display_name="Acme", tier="starter", monthly_budget_usd=Decimal("1"))
    cfg.set_tenant("globex", display_name="Globex-Corp", tier="enterprise")
    limits = cfg.limits
    limits.add_limit(
        check_limit(
            {"name": "starter rate", "kind": "rate", "tier": "starter", "requests_per_minute": 2}
        )
    )
    limits.add_limit(
        check_limit(
            {
                "name": "enterprise rate",
                "kind": "rate",
                "tier": "enterprise",
                "requests_per_minute": 60,
                "tokens_per_minute": 100000,
            }
        )
    )
    limits.add_limit(
        check_limit(
            {
                "name": "globex-search-budget",
                "kind": "budget",
                "tenant_id": "globex",
                "per": "feature",
                "amount_usd": "2",
            }
        )
    )
    limits.add_limit(
        check_limit(
            {"name": HOSTILE_NAME, "kind": "budget", "tenant_id": HOSTILE, "amount_usd": "5"}
        )
    )
    svc.writer.write_sync(
        spend("acme", "0.10", 4) + spend("globex", "0.05", feature="search") + spend(HOSTILE, "1")
    )
    svc.limiter.clock = lambda: NOW
    for _ in range(3):  # the third call is refused by the starter rate: one blocked call
        decision = svc.limiter.check(
            Call(tenant_id="acme", model="gpt-4o", input_tokens=10, max_tokens=10)
        )
        if decision.reservation is not None:
            # as if the reservation expired: no hold stays on the budget, the call's place
            # in the minute does (a release would give that back too)
            with svc.limiter.lock:
                svc.limiter.ledger.release(decision.reservation.id)
    svc.limiter.flush_blocked()
    wait_for_blocks(svc, 1)


def wait_for_blocks(svc: Services, n: int) -> None:
    """The refused calls' records go through the writer like any span: wait until they
    are stored (bounded; the figure, not the time, is what is tested)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        blocks = svc.queries.windows.blocks(Scope.all(), MONTH)
        if sum(blocks.get("acme", {}).values()) >= n:
            return
        time.sleep(0.05)
    raise AssertionError("the blocked calls were not stored")


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    s = Services.open(
        make_settings(
            tmp_path / "data", port=free_port(), duckdb_threads=2, ingest_workers=0, alerts=False
        )
    )
    try:
        seed(s)
        yield s
    finally:
        s.close()


@pytest.fixture
def srv(svc: Services) -> Iterator[RunningServer]:
    with serve_app(svc) as running:
        yield running


@pytest.fixture
def admin(srv: RunningServer) -> Iterator[httpx.Client]:
    with signed_in(srv, srv.key("admin", name="ops laptop")) as client:
        yield client


def text(html: str) -> str:
    """The page as a person reads it: tags gone, entities decoded, spaces collapsed."""
    body = re.sub(r"<script.*?</script>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", body))).strip()


def section(html: str, testid: str) -> str:
    m = re.search(rf'<(\w+)[^>]*data-testid="{testid}".*?</\1>', html, re.S)
    assert m, testid
    return text(m.group(0))


def rows_of(html: str, tenant: str) -> str:
    """One tenant's rows of a limits table, as text."""
    m = re.search(rf'<tbody data-tenant="{re.escape(tenant)}">(.*?)</tbody>', html, re.S)
    assert m, tenant
    return text(m.group(1))


def test_the_limits_page_shows_each_tenant_against_its_limits(
    srv: RunningServer, admin: httpx.Client
) -> None:
    resp = admin.get("/limits")
    assert resp.status_code == 200, resp.text
    html = resp.text
    acme = rows_of(html, "acme")
    # the budget: $0.40 of $1 spent, 10/31 of March passed: $1.24 projected, over pace
    assert "Acme monthly budget tenant:budget budget · the tenant's configuration" in acme
    assert "$0.4000 $1.00 $0.6000 40.0% $1.24 over pace 124% of the limit" in acme
    assert "resets 2025-04-01 00:00" in acme  # the period's end
    # the starter rate: 2 of 2 requests in the last minute, and the refused call
    assert (
        "starter rate L1 rate · its tier's default tenant 2 requests/min 2 0 100.0% reached" in acme
    )
    assert re.search(
        r'data-limit="L1".*?data-testid="limit-blocked"><span class="badge fail">1<', html, re.S
    )
    assert "1 blocked this month" in acme
    globex = rows_of(html, "globex")
    assert "enterprise rate L2" in globex and "0 requests/min 60" in globex
    assert "0 tokens/min 100,000" in globex
    assert "globex-search-budget L3" in globex and "feature search $0.0500 $2.00" in globex
    # the projection is explained on the page
    assert "straight line" in section(html, "limits-intro")
    # the definitions, with where each comes from
    defs = section(html, "definitions-table")
    assert "starter rate L1 tier starter its tier's default 2 requests/min" in defs
    assert "Acme monthly budget tenant:budget tenant acme the tenant's configuration 1 USD" in defs
    assert (
        "globex-search-budget L3 tenant globex the tenant's own limit 2 USD per feature (each one)"
        in defs
    )
    # admins get the forms' buttons
    for testid in ("new-limit", "new-approval", "edit-limit", "delete-limit", "raise-limit"):
        assert f'data-testid="{testid}"' in html
    # the hostile tenant and limit name are text, in the table and in the chart
    assert HOSTILE not in html and HOSTILE_NAME not in html
    assert HOSTILE_NAME in text(html) and HOSTILE in text(html)
    chart = json.loads(
        re.search(
            r'<script type="application/json" id="limits-budgets">(.*?)</script>', html, re.S
        ).group(1)  # type: ignore[union-attr]
    )
    labels = chart["data"][0]["y"]
    assert 'evil"&lt;img src=x onerror=alert(1)&gt;' in labels and "acme" in labels


def test_the_budget_chart_escapes_tenant_ids() -> None:
    status = {
        "tenants": [
            {
                "tenant_id": "<b>x</b>",
                "limits": [
                    {
                        "id": "L1",
                        "name": "n",
                        "kind": "budget",
                        "per": "tenant",
                        "subject": "",
                        "measure": "usd_per_period",
                        "limit": "2",
                        "used": "1",
                        "held": "0",
                        "remaining": "1",
                        "used_pct": 50.0,
                        "mode": "block",
                        "source": "tenant",
                        "period_start": "2025-03-01T00:00:00Z",
                        "period_end": "2025-04-01T00:00:00Z",
                        "projected": "3.1",
                    }
                ],
                "blocked_this_month": 0,
                "blocked_by_limit": {},
            }
        ]
    }
    chart = budget_chart(tenant_limits(status, NOW))
    assert chart is not None
    assert chart["data"][0]["y"] == ["&lt;b&gt;x&lt;/b&gt;"]
    assert chart["data"][0]["x"] == [50.0] and chart["data"][1]["x"] == [155.0]
    assert budget_chart(tenant_limits({"tenants": []}, NOW)) is None


def test_the_page_filters_to_one_tenant(admin: httpx.Client) -> None:
    html = admin.get("/limits", params={"tenant_id": "acme"}).text
    assert 'data-tenant="acme"' in html and '<tbody data-tenant="globex">' not in html
    defs = section(html, "definitions-table")
    assert "starter rate" in defs and "Acme monthly budget" in defs
    assert "enterprise rate" not in defs and "globex-search-budget" not in defs
    # the global tenant selector sits on the page; links onwards keep the tenant
    assert 'data-testid="tenant-picker"' in html
    assert 'href="/traces?range=7d&amp;tenant_id=acme"' in html


def test_readers_read_and_tenant_keys_are_refused(srv: RunningServer) -> None:
    with signed_in(srv, srv.key("reader")) as reader:
        html = reader.get("/limits").text
        assert "starter rate" in html and ">Limits</a>" in html
        for testid in ("new-limit", "new-approval", "edit-limit", "delete-limit", "raise-limit"):
            assert f'data-testid="{testid}"' not in html
        assert reader.get("/admin/limits/limit").status_code == 403
        resp = reader.post("/admin/limits/limit", data={"csrf": CSRF, "name": "x"})
        assert resp.status_code == 403
    with signed_in(srv, srv.key("tenant", "acme")) as tenant:
        resp = tenant.get("/limits")
        assert resp.status_code == 403
        assert ">Limits</a>" not in tenant.get("/tenant", params={"tenant_id": "acme"}).text


def _limit_form(**fields: str) -> dict[str, str]:
    base = {
        "csrf": CSRF,
        "id": "",
        "name": "",
        "kind": "rate",
        "per": "tenant",
        "subject": "",
        "tenant_id": "",
        "tier": "",
        "requests_per_minute": "",
        "tokens_per_minute": "",
        "amount_usd": "",
        "basis": "provider_cost",
        "timezone": "UTC",
        "anchor_day": "1",
        "thresholds": "50,80,100",
        "mode": "block",
        "description": "",
        "enabled": "1",
    }
    return {**base, **fields}


def test_an_admin_creates_edits_and_removes_a_limit(
    svc: Services, srv: RunningServer, admin: httpx.Client
) -> None:
    form = admin.get("/admin/limits/limit", params={"tenant_id": "acme"})
    assert form.status_code == 200 and 'name="tenant_id" value="acme"' in form.text
    before = len(svc.config.limits.list_limits())
    # no CSRF token: refused before anything is read
    bad = _limit_form(name="x", requests_per_minute="5")
    del bad["csrf"]
    assert admin.post("/admin/limits/limit", data=bad).status_code == 403
    # wrong fields: each named, the values kept as typed, nothing stored
    resp = admin.post(
        "/admin/limits/limit",
        data=_limit_form(
            name="acme cap",
            kind="budget",
            requests_per_minute="lots",
            timezone="Mars/Olympus",
            tenant_id="acme",
            tier="starter",
        ),
    )
    assert resp.status_code == 422
    for field in ("amount_usd", "requests_per_minute", "timezone", "tier"):
        assert f'data-testid="error-{field}"' in resp.text, field
    assert 'value="Mars/Olympus"' in resp.text and "Nothing was saved: 4 fields" in resp.text
    assert len(svc.config.limits.list_limits()) == before
    # a good one: stored, audited as this session's key, confirmed once on /limits
    resp = admin.post(
        "/admin/limits/limit",
        data=_limit_form(
            name="acme cap",
            kind="budget",
            amount_usd="0.5",
            tenant_id="acme",
            thresholds="80,100",
            mode="soft",
        ),
    )
    assert resp.status_code == 303 and resp.headers["location"] == "/limits?tenant_id=acme"
    page = admin.get(resp.headers["location"]).text
    assert "Limit L5 “acme cap” created." in text(page)
    added = svc.config.limits.get_limit(5)
    assert added is not None and added.amount_usd == Decimal("0.5") and added.mode == "soft"
    assert added.thresholds == [80, 100] and added.tenant_id == "acme"
    # the tenant's own budget replaces its configuration's in the slot: $0.40 of $0.50
    assert "acme cap L5 budget · the tenant's own limit · warnings only" in rows_of(page, "acme")
    assert "$0.4000 $0.5000 $0.1000 80.0%" in rows_of(page, "acme")
    # edit
    edit = admin.get("/admin/limits/limit", params={"id": 5}).text
    assert 'value="acme cap"' in edit and 'value="0.5"' in edit
    resp = admin.post(
        "/admin/limits/limit",
        data=_limit_form(
            id="5", name="acme cap", kind="budget", amount_usd="0.8", tenant_id="acme", mode="soft"
        ),
    )
    assert resp.status_code == 303
    assert svc.config.limits.get_limit(5).amount_usd == Decimal("0.8")  # type: ignore[union-attr]
    # remove; a limit that is not there: said on the page, nothing changed
    resp = admin.post("/admin/limits/limit/delete", data={"csrf": CSRF, "limit_id": "5"})
    assert resp.status_code == 303 and svc.config.limits.get_limit(5) is None
    resp = admin.post("/admin/limits/limit/delete", data={"csrf": CSRF, "limit_id": "5"})
    assert resp.status_code == 404 and "There is no limit '5'" in text(resp.text)
    entries = sorted((e for e in svc.config.list_audit() if e.target == "L5"), key=lambda e: e.id)
    assert [e.action for e in entries] == ["limit.create", "limit.update", "limit.delete"]
    assert {(e.actor.kind, e.actor.name) for e in entries} == {("session", "ops laptop")}


def test_an_admin_grants_and_revokes_an_approval(svc: Services, admin: httpx.Client) -> None:
    form = admin.get(
        "/admin/limits/approval", params={"limit": "tenant:budget", "tenant_id": "acme"}
    )
    assert form.status_code == 200
    assert '<option value="tenant:budget" selected>' in form.text
    # wrong: a budget raised by requests, an end in the past, no tenant
    resp = admin.post(
        "/admin/limits/approval",
        data={
            "csrf": CSRF,
            "limit": "tenant:budget",
            "tenant_id": "",
            "requests_per_minute": "5",
            "expires_at": "2020-01-01T00:00:00Z",
            "reason": "batch",
        },
    )
    assert resp.status_code == 422
    for field in ("tenant_id", "amount_usd", "requests_per_minute", "expires_at"):
        assert f'data-testid="error-{field}"' in resp.text, field
    assert svc.config.limits.list_approvals() == []
    # a good one: +$0.50 on acme's configured budget for a week of the limiter's time
    resp = admin.post(
        "/admin/limits/approval",
        data={
            "csrf": CSRF,
            "limit": "tenant:budget",
            "tenant_id": "acme",
            "amount_usd": "0.5",
            "expires_at": "2025-03-18T00:00:00Z",
            "reason": "quarter-end <batch> run",
        },
    )
    assert resp.status_code == 303, resp.text
    page = admin.get(resp.headers["location"]).text
    assert "Approval 1 granted: +0.5 USD on tenant:budget for tenant acme" in text(page)
    approvals = section(page, "approvals-table")
    assert (
        "tenant:budget the tenant's configured monthly budget acme +0.5 USD ops laptop" in approvals
    )
    assert "2025-03-18 00:00:00 quarter-end <batch> run" in approvals
    # the budget is raised by it: $0.40 of $1.50
    assert "$0.4000 $1.50 $1.10" in rows_of(page, "acme")
    (a,) = svc.config.limits.list_approvals()
    assert a.granted_by == "ops laptop" and a.amount_usd == Decimal("0.5")
    # the tenant page lists it for an admin
    tenant_page = admin.get("/tenant", params={"tenant_id": "acme"}).text
    assert "+0.5 USD ops laptop" in section(tenant_page, "tenant-approvals")
    # revoke: back to the tenant's own $1
    resp = admin.post("/admin/limits/approval/revoke", data={"csrf": CSRF, "approval_id": "1"})
    assert resp.status_code == 303
    page = admin.get("/limits").text
    assert "No approval in force." in section(page, "approvals-table")
    assert "$0.4000 $1.00 $0.6000" in rows_of(page, "acme")
    assert (
        admin.post(
            "/admin/limits/approval/revoke", data={"csrf": CSRF, "approval_id": "9"}
        ).status_code
        == 404
    )
    actions = [e.action for e in svc.config.list_audit()]
    assert "limit_approval.create" in actions and "limit_approval.revoke" in actions


def test_the_tenant_page_shows_its_limits_and_a_tenant_key_only_its_own(
    svc: Services, srv: RunningServer, admin: httpx.Client
) -> None:
    svc.config.limits.add_approval(
        check_approval(
            {
                "limit": "L2",
                "tenant_id": "globex",
                "requests_per_minute": 10,
                "expires_at": "2025-03-20T00:00:00Z",
                "reason": "globex launch",
            },
            svc.config.limits.list_limits(),
            now=NOW,
            granted_by="ops",
        )
    )
    params = {"tenant_id": "acme", "from": "2025-03-01T00:00:00Z", "to": "2025-03-12T00:00:00Z"}
    html = admin.get("/tenant", params=params).text
    rows = section(html, "tenant-limits-table")
    assert "Acme monthly budget" in rows and "$0.4000 $1.00 $0.6000 40.0% $1.24" in rows
    assert "starter rate L1" in rows and "100.0% reached" in rows
    assert "1 call refused by a limit this month." in text(html)
    assert 'data-testid="all-limits"' in html
    with signed_in(srv, srv.key("tenant", "acme")) as portal:
        resp = portal.get("/tenant", params=params)
        assert resp.status_code == 200
        own = resp.text
        assert "$0.4000 $1.00 $0.6000 40.0%" in section(own, "tenant-limits-table")
        assert "starter rate L1" in section(own, "tenant-limits-table")
        # nothing of any other tenant: their limits, approvals, names
        for other in (
            "globex",
            "Globex-Corp",
            "enterprise rate",
            "globex launch",
            "evil",
            HOSTILE_NAME,
        ):
            assert other not in own, other
        assert 'data-testid="tenant-approvals"' not in own and 'data-testid="all-limits"' not in own
        # another tenant's page: as missing as a tenant that does not exist
        assert portal.get("/tenant", params={**params, "tenant_id": "globex"}).status_code == 404
    # globex's section: its per-feature budget and its approval (for an admin)
    html = admin.get("/tenant", params={**params, "tenant_id": "globex"}).text
    assert "feature search $0.0500 $2.00" in section(html, "tenant-limits-table")
    assert "0 requests/min 70" in section(html, "tenant-limits-table")  # 60 + 10 approved
    assert "globex launch" in section(html, "tenant-approvals")


def test_the_tenants_list_counts_blocked_calls_in_its_range(admin: httpx.Client) -> None:
    html = admin.get(
        "/tenants", params={"from": "2025-03-01T00:00:00Z", "to": "2025-03-12T00:00:00Z"}
    ).text
    row = re.search(r'<tr data-tenant="acme">.*?</tr>', html, re.S)
    assert row is not None
    assert re.search(
        r'data-testid="tenant-blocked"><a class="badge fail" [^>]*title="refused by L1: 1;',
        row.group(0),
    )
    # the count leads to the blocked calls themselves
    assert "/traces?tenant_id=acme&amp;status=blocked&amp;from=" in row.group(0)
    calls = admin.get(
        "/traces",
        params={
            "tenant_id": "acme",
            "status": "blocked",
            "from": "2025-03-01T00:00:00Z",
            "to": "2025-03-12T00:00:00Z",
        },
    ).text
    assert text(calls).count("blocked by limit") == 1
    other = re.search(r'<tr data-tenant="globex">.*?</tr>', html, re.S)
    assert (
        other is not None
        and 'data-testid="tenant-blocked"><span class="muted">0<' in other.group(0)
    )
    # a range without them: none
    html = admin.get(
        "/tenants", params={"from": "2025-03-01T00:00:00Z", "to": "2025-03-09T00:00:00Z"}
    ).text
    assert 'class="badge fail"' not in html
