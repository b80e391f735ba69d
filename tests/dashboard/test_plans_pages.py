"""The dashboard's plan pages against a real server (real SQLite and DuckDB files): what
/plans shows of each plan's terms (in words, money exact) and of the assignments; the
admin forms (what they store and audit, what they refuse: 422 with every wrong field
named and nothing stored; a plan still assigned is not removed: 409 naming the tenants);
the tenant page's plan section (admins and readers; a tenant key's portal shows none);
who may see what; a hostile plan name shown as text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from tenantscope.billing.plans import check_assignment, check_plan
from tenantscope.server.services import Services
from tenantscope.testing.server import free_port
from tests.conftest import RunningServer, make_settings, serve_app
from tests.dashboard.test_alerts_pages import CSRF, signed_in
from tests.dashboard.test_limits_pages import section, spend, text

HOSTILE_NAME = "<script>alert('plan')</script> gold"
PAST = "2025-01-01T00:00:00Z"
FUTURE = "2999-01-01T00:00:00Z"


def seed(svc: Services) -> None:
    """professional (per unit, units included), enterprise (cost + 20 %, USD included, a
    minimum), a plan with a hostile name and a fee of nine decimal places; acme on
    professional, globex on enterprise now and on professional from 2999."""
    cfg = svc.config
    cfg.set_tenant("acme", display_name="Acme", tier="starter")
    cfg.set_tenant("globex", display_name="Globex-Corp", tier="enterprise")
    store = cfg.plans
    pro = store.add_plan(
        check_plan(
            {
                "name": "professional",
                "base_fee_usd": "299",
                "included_units": 500,
                "included_action": "summary.generated",
                "overage": "per_unit",
                "unit_prices": {
                    "action:summary.generated": "0.40",
                    "feature:transcript_qa": "0.10",
                },
            }
        )
    )
    ent = store.add_plan(
        check_plan(
            {
                "name": "enterprise",
                "base_fee_usd": "500",
                "minimum_usd": "600",
                "included_usd": "50",
                "margin_pct": "20",
                "timezone": "Europe/Berlin",
                "anchor_day": 15,
            }
        )
    )
    store.add_plan(check_plan({"name": HOSTILE_NAME, "base_fee_usd": "1234567.123456789"}))
    plans = store.list_plans()
    for tenant, plan, at in (
        ("acme", pro, PAST),
        ("globex", ent, PAST),
        ("globex", pro, FUTURE),
    ):
        store.assign(
            check_assignment({"tenant_id": tenant, "plan_id": plan.id, "effective_from": at}, plans)
        )
    svc.writer.write_sync(spend("acme", "0.10", 2) + spend("globex", "0.05"))


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


def row(html: str, attr: str, value: object) -> str:
    return section(
        html.replace(f'data-{attr}="{value}"', f'data-testid="{attr}-{value}"'), f"{attr}-{value}"
    )


def test_the_plans_page_shows_each_plan_in_words_and_the_assignments(
    admin: httpx.Client,
) -> None:
    resp = admin.get("/plans")
    assert resp.status_code == 200, resp.text
    html = resp.text
    assert re.search(
        r"<a href=\"/plans[^\"]*\" class=\"active\" aria-current=\"page\">Plans</a>", html
    )
    pro = row(html, "plan", 1)
    assert "professional P1" in pro and "299 USD per period" in pro
    assert "500 units of summary.generated per period" in pro
    assert (
        "per unit: action:summary.generated 0.40 USD per unit,"
        " feature:transcript_qa 0.10 USD per unit" in pro
    )
    assert "monthly, UTC, from the 1st" in pro and "acme" in pro and "globex" in pro
    ent = row(html, "plan", 2)
    assert "500 USD per period 600 USD per period" in ent
    assert "50 USD of provider cost per period" in ent
    assert "provider cost + 20 %" in ent and "monthly, Europe/Berlin, from day 15" in ent
    # money exact: nine decimal places, no float rounding
    assert "1234567.123456789 USD per period" in row(html, "plan", 3)
    # the hostile name is text, never markup
    assert HOSTILE_NAME not in html and HOSTILE_NAME in text(html)
    table = section(html, "assignments-table")
    assert "acme professional P1 2025-01-01T00:00:00Z open-ended current" in table
    assert "enterprise P2 2025-01-01T00:00:00Z 2999-01-01T00:00:00Z current" in table
    assert "professional P1 2999-01-01T00:00:00Z open-ended —" in table
    # filtered to one tenant by the selector's parameter
    one = section(admin.get("/plans", params={"tenant_id": "acme"}).text, "assignments-table")
    assert "acme" in one and "globex" not in one


def test_readers_read_and_tenant_keys_are_refused(srv: RunningServer) -> None:
    with signed_in(srv, srv.key("reader")) as reader:
        resp = reader.get("/plans")
        assert resp.status_code == 200 and "professional" in resp.text
        assert 'data-testid="new-plan"' not in resp.text and "delete-plan" not in resp.text
        assert ">Plans</a>" in resp.text  # in the navigation
        assert reader.get("/admin/plans/plan").status_code == 403
        resp = reader.post("/admin/plans/plan", data={"csrf": CSRF, "name": "x"})
        assert resp.status_code == 403
    with signed_in(srv, srv.key("tenant", "acme")) as tenant:
        resp = tenant.get("/plans")
        assert resp.status_code == 403
        page = tenant.get("/tenant", params={"tenant_id": "acme"})
        assert page.status_code == 200 and ">Plans</a>" not in page.text


def _plan_form(**fields: str) -> dict[str, str]:
    base = {
        "csrf": CSRF,
        "id": "",
        "name": "",
        "description": "",
        "base_fee_usd": "0",
        "minimum_usd": "",
        "included_usd": "",
        "included_units": "",
        "included_action": "",
        "overage": "cost_plus",
        "margin_pct": "",
        "unit_prices": "",
        "timezone": "UTC",
        "anchor_day": "1",
    }
    return {**base, **fields}


def test_an_admin_creates_edits_assigns_and_removes_a_plan(
    svc: Services, admin: httpx.Client
) -> None:
    store = svc.config.plans
    form = admin.get("/admin/plans/plan")
    assert form.status_code == 200 and 'data-testid="plan-form"' in form.text
    # no CSRF token: refused before anything is read
    assert admin.post("/admin/plans/plan", data={"name": "x"}).status_code == 403
    # bad fields: the form again, each named, values as typed, nothing stored
    resp = admin.post(
        "/admin/plans/plan",
        data=_plan_form(
            name="startup",
            base_fee_usd="12.3456789999",
            overage="per_unit",
            margin_pct="5",
            anchor_day="31",
        ),
    )
    assert resp.status_code == 422
    for name in ("base_fee_usd", "margin_pct", "anchor_day"):
        assert f'data-testid="error-{name}"' in resp.text, name
    assert "only with overage cost_plus" in text(resp.text)
    assert 'value="12.3456789999"' in resp.text
    assert [p.name for p in store.list_plans()] == ["professional", "enterprise", HOSTILE_NAME]
    # a name another plan has
    resp = admin.post("/admin/plans/plan", data=_plan_form(name="Professional"))
    assert resp.status_code == 422 and 'data-testid="error-name"' in resp.text
    # created, then listed
    resp = admin.post(
        "/admin/plans/plan",
        data=_plan_form(name="startup", base_fee_usd="19.99", included_usd="5", margin_pct="50"),
    )
    assert resp.status_code == 303 and resp.headers["location"] == "/plans", resp.text
    created = store.list_plans()[-1]
    assert created.name == "startup" and str(created.base_fee_usd) == "19.99"
    page = admin.get("/plans").text
    assert "Plan P4 “startup” created." in text(page)
    assert "19.99 USD per period" in row(page, "plan", 4)
    assert "provider cost + 50 %" in row(page, "plan", 4)
    # edited: the form shows it, a save replaces it
    assert 'value="19.99"' in admin.get("/admin/plans/plan", params={"id": 4}).text
    resp = admin.post(
        "/admin/plans/plan",
        data=_plan_form(
            id="4",
            name="startup",
            base_fee_usd="25",
            overage="per_unit",
            unit_prices="feature:search=0.015",
        ),
    )
    assert resp.status_code == 303, resp.text
    saved = store.get_plan(4)
    assert saved is not None and str(saved.base_fee_usd) == "25"
    assert saved.margin_pct is None and str(saved.unit_prices["feature:search"]) == "0.015"
    # assigned: bad fields first, then from a date
    resp = admin.post(
        "/admin/plans/assign",
        data={"csrf": CSRF, "tenant_id": "", "plan_id": "99", "effective_from": "soon"},
    )
    assert resp.status_code == 422
    for name in ("tenant_id", "plan_id", "effective_from"):
        assert f'data-testid="error-{name}"' in resp.text, name
    assert len(store.list_assignments()) == 3
    resp = admin.post(
        "/admin/plans/assign",
        data={"csrf": CSRF, "tenant_id": "acme", "plan_id": "4", "effective_from": "2026-01-01"},
    )
    assert resp.status_code == 303 and resp.headers["location"] == "/plans?tenant_id=acme"
    added = [a for a in store.list_assignments("acme") if a.plan_id == 4]
    assert len(added) == 1
    assert added[0].effective_from == datetime(2026, 1, 1, tzinfo=timezone.utc)
    # still assigned: not removed, the tenants named
    resp = admin.post("/admin/plans/plan/delete", data={"csrf": CSRF, "plan_id": "4"})
    assert resp.status_code == 409
    message = section(resp.text, "plans-error")
    assert "Not removed" in message and "is assigned to acme" in message
    assert store.get_plan(4) is not None
    # unassigned, then removed
    resp = admin.post(
        "/admin/plans/unassign", data={"csrf": CSRF, "assignment_id": str(added[0].id)}
    )
    assert resp.status_code == 303 and len(store.list_assignments("acme")) == 1
    resp = admin.post(
        "/admin/plans/unassign", data={"csrf": CSRF, "assignment_id": str(added[0].id)}
    )
    assert resp.status_code == 404 and "There is no assignment" in text(resp.text)
    resp = admin.post("/admin/plans/plan/delete", data={"csrf": CSRF, "plan_id": "4"})
    assert resp.status_code == 303 and store.get_plan(4) is None
    resp = admin.post("/admin/plans/plan/delete", data={"csrf": CSRF, "plan_id": "4"})
    assert resp.status_code == 404 and "There is no plan '4'" in text(resp.text)
    # every change audited as the session's key
    entries = sorted(svc.config.list_audit(target="P4"), key=lambda e: e.id)
    assert [e.action for e in entries] == ["plan.create", "plan.update", "plan.delete"]
    moves = svc.config.list_audit(action="plan.assign") + svc.config.list_audit(
        action="plan.unassign"
    )
    mine = [e for e in moves if e.actor.kind == "session"]
    assert {e.action for e in mine} == {"plan.assign", "plan.unassign"}
    assert {(e.actor.kind, e.actor.name) for e in entries + mine} == {("session", "ops laptop")}


def test_the_tenant_page_shows_the_plan_to_admins_and_readers_only(
    srv: RunningServer, admin: httpx.Client
) -> None:
    html = admin.get("/tenant", params={"tenant_id": "globex"}).text
    plan = section(html, "tenant-plan")
    assert "enterprise P2 since 2025-01-01" in plan
    assert "Minimum 600 USD per period" in plan and "Beyond provider cost + 20 %" in plan
    with signed_in(srv, srv.key("reader")) as reader:
        html = reader.get("/tenant", params={"tenant_id": "acme"}).text
        assert "professional P1" in section(html, "tenant-plan")
        assert "Included 500 units of summary.generated per period" in section(html, "tenant-plan")
    # a tenant's portal: no plan section at all (its customer-facing view comes later)
    with signed_in(srv, srv.key("tenant", "acme")) as portal:
        resp = portal.get("/tenant", params={"tenant_id": "acme"})
        assert resp.status_code == 200
        assert 'data-testid="tenant-plan"' not in resp.text
        for word in ("professional", "summary.generated", "USD per period", "/plans"):
            assert word not in resp.text, word
