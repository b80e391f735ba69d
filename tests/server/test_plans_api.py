"""/api/plans over a real server: plans created, read, changed and removed; 422 naming
every wrong field with nothing stored; a tenant's history with the current assignment;
409 naming the tenants when an assigned plan is deleted; who may read and write; the
audit entries of each change."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx

from tests.conftest import RunningServer
from tests.storage.contract_plans import PRO

NOW = datetime.now(timezone.utc)


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_plan_is_created_read_changed_and_removed(server: RunningServer) -> None:
    c = server.client
    created = c.post("/api/plans", json=PRO)
    assert created.status_code == 201, created.text
    plan = created.json()
    assert plan["ref"] == f"P{plan['id']}"
    assert (plan["base_fee_usd"], plan["minimum_usd"], plan["margin_pct"]) == (
        "299.50",
        "350",
        None,
    )
    assert plan["unit_prices"] == {
        "action:summary.generated": "0.400000001",  # exact, as sent
        "feature:transcript_qa": "0.1",
    }
    assert (plan["timezone"], plan["anchor_day"]) == ("Europe/Berlin", 15)
    assert c.get(f"/api/plans/{plan['id']}").json() == plan
    changed = c.patch(f"/api/plans/{plan['id']}", json={"overage": "cost_plus", "margin_pct": "20"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["margin_pct"], changed.json()["unit_prices"]) == ("20", {})
    assert changed.json()["included_units"] == 500  # the rest stays
    assert [p["name"] for p in c.get("/api/plans").json()] == ["professional"]
    # names are unique
    again = c.post("/api/plans", json={"name": "Professional"})
    assert again.status_code == 422 and "name" in again.json()["error"]["details"]["fields"]
    assert c.delete(f"/api/plans/{plan['id']}").status_code == 204
    assert c.get(f"/api/plans/{plan['id']}").status_code == 404
    assert c.patch(f"/api/plans/{plan['id']}", json={"name": "x"}).status_code == 404
    assert c.delete(f"/api/plans/{plan['id']}").status_code == 404
    entries = c.get("/api/audit").json()["items"]
    mine = [(e["action"], e["target"]) for e in entries if e["action"].startswith("plan.")]
    ref = plan["ref"]
    assert mine == [("plan.delete", ref), ("plan.update", ref), ("plan.create", ref)]
    update = next(e for e in entries if e["action"] == "plan.update")
    assert update["actor"]["name"] == "test admin"
    assert update["before"]["margin_pct"] is None and update["after"]["margin_pct"] == "20"


def test_a_wrong_plan_gets_every_field_named_and_nothing_stored(server: RunningServer) -> None:
    c = server.client
    resp = c.post(
        "/api/plans",
        json={
            "base_fee_usd": 9.99,  # a binary float: not exact money
            "overage": "per_unit",
            "anchor_day": 31,
            "timezone": "Nowhere/Land",
            "plan_colour": "blue",
        },
    )
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_fields"
    assert sorted(error["details"]["fields"]) == [
        "anchor_day",
        "base_fee_usd",
        "name",
        "plan_colour",
        "timezone",
        "unit_prices",
    ]
    assert c.post("/api/plans", content=b"[1, 2]").status_code == 422
    assert c.post("/api/plans", content=b"{oops").status_code == 400
    assert c.get("/api/plans").json() == []
    assert not [e for e in c.get("/api/audit").json()["items"] if e["action"].startswith("plan")]


def test_assignments_history_current_and_a_refused_delete(server: RunningServer) -> None:
    c = server.client
    starter = c.post("/api/plans", json={"name": "starter", "base_fee_usd": "29"}).json()
    pro = c.post("/api/plans", json=PRO).json()
    past, future = NOW - timedelta(days=20), NOW + timedelta(days=20)
    first = c.post(
        "/api/plans/assignments",
        json={"tenant_id": "apex", "plan_id": starter["id"], "effective_from": _iso(past)},
    )
    assert first.status_code == 201, first.text
    assert first.json()["current"] is True and first.json()["plan_name"] == "starter"
    upgrade = c.post(
        "/api/plans/assignments",
        json={"tenant_id": "apex", "plan_id": pro["id"], "effective_from": _iso(future)},
    )
    assert upgrade.status_code == 201 and upgrade.json()["current"] is False
    c.post(
        "/api/plans/assignments",
        json={"tenant_id": "zeta", "plan_id": starter["id"], "effective_from": _iso(past)},
    )
    history = c.get("/api/plans/assignments", params={"tenant_id": "apex"}).json()
    assert [(h["plan_id"], h["current"], h["until"]) for h in history] == [
        (starter["id"], True, _iso(future)),
        (pro["id"], False, None),
    ]
    assert len(c.get("/api/plans/assignments").json()) == 3
    assert c.get("/api/plans/assignments", params={"tenant_id": "nobody"}).json() == []
    # the same tenant and moment again replaces that assignment
    replaced = c.post(
        "/api/plans/assignments",
        json={"tenant_id": "apex", "plan_id": pro["id"], "effective_from": _iso(past)},
    )
    assert replaced.json()["id"] == first.json()["id"] and replaced.json()["plan_id"] == pro["id"]
    # a wrong assignment: every field named, nothing stored
    bad = c.post("/api/plans/assignments", json={"plan_id": 999, "effective_from": "tomorrow"})
    assert bad.status_code == 422
    assert sorted(bad.json()["error"]["details"]["fields"]) == [
        "effective_from",
        "plan_id",
        "tenant_id",
    ]
    assert len(c.get("/api/plans/assignments").json()) == 3
    # a plan some tenant is (or was, or will be) on is not removed
    refused = c.delete(f"/api/plans/{starter['id']}")
    assert refused.status_code == 409, refused.text
    assert "zeta" in refused.json()["error"]["message"]
    refused = c.delete(f"/api/plans/{pro['id']}")
    assert refused.status_code == 409 and "apex" in refused.json()["error"]["message"]
    assert c.delete(f"/api/plans/assignments/{upgrade.json()['id']}").status_code == 204
    assert c.delete(f"/api/plans/assignments/{upgrade.json()['id']}").status_code == 404
    assert c.delete(f"/api/plans/assignments/{first.json()['id']}").status_code == 204
    assert c.delete(f"/api/plans/{pro['id']}").status_code == 204
    actions = [e["action"] for e in c.get("/api/audit", params={"target": "apex"}).json()["items"]]
    assert actions == [
        "plan.unassign",
        "plan.unassign",
        "plan.assign",
        "plan.assign",
        "plan.assign",
    ]


def test_readers_read_admins_write_tenant_keys_are_refused(server: RunningServer) -> None:
    plan = server.client.post("/api/plans", json={"name": "starter"}).json()
    reader = {"authorization": f"Bearer {server.key('reader')}"}
    tenant = {"authorization": f"Bearer {server.key('tenant', 'apex')}"}
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.get("/api/plans", headers=reader).status_code == 200
        assert c.get(f"/api/plans/{plan['id']}", headers=reader).status_code == 200
        assert c.get("/api/plans/assignments", headers=reader).status_code == 200
        assert c.post("/api/plans", json={"name": "x"}, headers=reader).status_code == 403
        assert c.delete(f"/api/plans/{plan['id']}", headers=reader).status_code == 403
        for path in ("/api/plans", f"/api/plans/{plan['id']}", "/api/plans/assignments"):
            assert c.get(path, headers=tenant).status_code == 403
        body = {"tenant_id": "apex", "plan_id": plan["id"], "effective_from": _iso(NOW)}
        assert c.post("/api/plans/assignments", json=body, headers=tenant).status_code == 403
        assert c.get("/api/plans").status_code == 401
    assert server.client.get("/api/plans/assignments").json() == []
