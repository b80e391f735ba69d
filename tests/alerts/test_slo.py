"""SLOs: error budget and burn rates per tenant over real stores, the workbook's
multiwindow burn-rate rules, and the API's access rules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tenantscope.alerts import slo as slos
from tenantscope.alerts.evaluator import Evaluator
from tenantscope.errors import InvalidFields
from tenantscope.query.scope import Scope
from tenantscope.server.services import Services
from tests.alerts.test_evaluator import NOW, calls
from tests.conftest import RunningServer, make_settings


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    s = Services.open(
        make_settings(tmp_path / "data", duckdb_threads=1, ingest_workers=0, alerts=False)
    )
    try:
        yield s
    finally:
        s.close()


def _slo(svc: Services, **given: object) -> tuple[int, list[int]]:
    data = {"name": "latency", "objective": "99", "target_ms": 2000, **given}
    slo, burns, contacts = slos.check_slo(data)
    added, rules = svc.config.alerts.add_slo(slo, slos.burn_rules(slo, burns, contacts))
    assert added.id is not None
    return added.id, [r.id for r in rules if r.id is not None]


def test_budget_and_burn_rates_are_exact_over_the_period_and_each_window(svc: Services) -> None:
    # 10 days ago: 980 good calls, 20 slow ones; in the last hour: 5 good, 5 slow
    svc.writer.write_sync(calls("apex", [500.0] * 980 + [3000.0] * 20, at=NOW - timedelta(days=10)))
    svc.writer.write_sync(calls("apex", [500.0] * 5 + [3000.0] * 5, at=NOW - timedelta(minutes=30)))
    slo_id, _ = _slo(svc)
    slo = svc.config.alerts.get_slo(slo_id)
    assert slo is not None
    (status,) = slos.status(svc.queries, svc.config, slo, Scope.all(), NOW)
    assert status.requests == 1010
    # 25 of 1010 bad against 1% allowed: 2.475 budgets spent
    assert status.budget_remaining_pct == Decimal("-147.52")
    assert status.good_pct == Decimal("97.525")
    # last hour: 5 bad of 10 = 50% against 1%: 50x; over 3 days the same calls
    assert status.burn_rates == {
        "1h": Decimal("50.000"),
        "6h": Decimal("50.000"),
        "3d": Decimal("50.000"),
    }


def test_tenants_without_a_target_are_not_covered_when_the_slo_uses_each_tenants_sla(
    svc: Services,
) -> None:
    svc.config.set_tenant("apex", sla_p95_ms=1000)
    svc.writer.write_sync(calls("apex", [500.0, 1500.0], at=NOW - timedelta(minutes=5)))
    svc.writer.write_sync(calls("starter", [9000.0], at=NOW - timedelta(minutes=5)))
    slo_id, _ = _slo(svc, target_ms=None)
    slo = svc.config.alerts.get_slo(slo_id)
    assert slo is not None
    found = slos.status(svc.queries, svc.config, slo, Scope.all(), NOW)
    assert [(s.tenant_id, s.good_pct) for s in found] == [("apex", Decimal("50.000"))]


def test_the_page_rule_fires_only_when_both_windows_burn(svc: Services) -> None:
    _, rule_ids = _slo(svc)
    fast_page = rule_ids[0]  # 14.4x over 1h and 5m
    # an hour of slow calls that stopped 20 minutes ago: the long window burns, the short not
    svc.writer.write_sync(calls("apex", [3000.0] * 20, at=NOW - timedelta(minutes=20)))
    svc.writer.write_sync(calls("apex", [300.0] * 20, at=NOW - timedelta(minutes=2)))
    ev = Evaluator(svc.queries, svc.config)
    ev.run_once(NOW)
    (inst,) = svc.config.alerts.instances(fast_page)
    assert inst.state == "ok" and inst.value == Decimal("0.000")
    # slow again now: both burn (long 25/45 = 55.6x, short 5/25 = 20x): the smaller is 20
    svc.writer.write_sync(calls("apex", [3000.0] * 5, at=NOW + timedelta(seconds=30)))
    ev.run_once(NOW + timedelta(minutes=1))
    (inst,) = svc.config.alerts.instances(fast_page)
    assert inst.state == "firing" and inst.value == Decimal("20.000")


def test_the_workbook_defaults_and_field_errors() -> None:
    slo, burns, _ = slos.check_slo({"name": "x", "objective": 99.9})
    rules = slos.burn_rules(slo, burns, [])
    assert [(r.threshold, r.window_s, r.short_window_s, r.severity) for r in rules] == [
        (Decimal("14.4"), 3600, 300, "critical"),
        (Decimal(6), 21600, 1800, "critical"),
        (Decimal(1), 259200, 21600, "warning"),
    ]
    with pytest.raises(InvalidFields) as e:
        slos.check_slo({"name": "", "objective": 100, "indicator": "vibes", "period_days": 12,
                        "burn_alerts": [{"factor": 2, "long": "5m", "short": "1h"}]})  # fmt: skip
    assert set(e.value.problems) == {
        "name",
        "objective",
        "indicator",
        "period_days",
        "burn_alerts.0",
    }


def test_slo_api_creates_rules_and_a_tenant_key_reads_its_own_status(server: RunningServer) -> None:
    svc = server.services
    svc.writer.write_sync(calls("apex", [500.0, 3000.0], at=NOW - timedelta(minutes=5)))
    svc.writer.write_sync(calls("globex", [500.0], at=NOW - timedelta(minutes=5)))
    created = server.client.post(
        "/api/slos", json={"name": "latency", "objective": "99.5", "target_ms": 2000}
    )
    assert created.status_code == 201, created.text
    assert [r["metric"] for r in created.json()["rules"]] == ["burn_rate"] * 3
    listed = server.client.get("/api/slos").json()
    assert {t["tenant_id"] for t in listed[0]["tenants"]} == {"apex", "globex"}
    token = server.key("tenant", "apex")
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {token}"}) as c:
        assert c.get("/api/slos").status_code == 403
        mine = c.get("/api/slo-status").json()
        assert [(s["tenant_id"], s["good_pct"]) for s in mine] == [("apex", "50.000")]
        assert c.get("/api/slo-status", params={"tenant_id": "globex"}).status_code == 404
    slo_id = created.json()["id"]
    assert server.client.delete(f"/api/slos/{slo_id}").status_code == 204
    assert server.client.get("/api/alerts/rules").json() == []


def test_the_sla_page_shows_each_tenants_budget_and_burn_rates(server: RunningServer) -> None:
    svc = server.services
    svc.writer.write_sync(calls("apex", [500.0] * 9 + [3000.0], at=NOW - timedelta(minutes=5)))
    svc.writer.write_sync(calls("globex", [500.0] * 10, at=NOW - timedelta(minutes=5)))
    created = server.client.post(
        "/api/slos",
        json={"name": "latency", "objective": "99", "target_ms": 2000, "burn_alerts": []},
    )
    assert created.status_code == 201 and created.json()["rules"] == []
    page = server.client.get("/sla")
    assert page.status_code == 200
    html = page.text
    assert 'data-testid="slo"' in html and "Error budget · latency" in html
    row = html[html.index('<tr data-tenant="apex">') :].split("</tr>")[0]
    # 1 bad of 10 against 1% allowed: 10x burning, the budget 900% overspent
    assert "-900.00%" in row and "10.00×" in row and "90.000%" in row
    token = server.key("tenant", "globex")
    mine = httpx.get(f"{server.url}/sla", headers={"authorization": f"Bearer {token}"}).text
    assert 'data-tenant="globex"' in mine and 'data-tenant="apex"' not in mine
