"""/api/alerts over a real server: rules and contact points, 422s naming every wrong
field with nothing stored, who may read and write, secrets never returned, the audit."""

from __future__ import annotations

import httpx

from tests.conftest import RunningServer


def test_a_rule_is_created_read_changed_and_removed(server: RunningServer) -> None:
    c = server.client
    hook = c.post(
        "/api/alerts/contacts",
        json={
            "name": "ops",
            "kind": "webhook",
            "settings": {"url": "http://127.0.0.1:9/h", "secret": "s" * 20},
        },
    )
    assert hook.status_code == 201, hook.text
    assert hook.json()["settings"] == {"url": "http://127.0.0.1:9/h", "secret": "(set)"}
    body = {
        "name": "apex-legal p95 over 2 s",
        "metric": "latency_p95",
        "scope": "trace",
        "threshold": 2000,
        "window": "5m",
        "tenant_ids": ["apex-legal"],
        "contact_ids": [hook.json()["id"]],
    }
    created = c.post("/api/alerts/rules", json=body)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert (rule["comparator"], rule["threshold"], rule["window"], rule["interval"]) == (
        ">",
        "2000",
        "5m",
        "1m",
    )
    got = c.get(f"/api/alerts/rules/{rule['id']}").json()
    assert got["name"] == body["name"] and got["instances"] == []
    changed = c.patch(
        f"/api/alerts/rules/{rule['id']}", json={"threshold": "3000", "pending": "2m"}
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["threshold"], changed.json()["pending"], changed.json()["window"]) == (
        "3000",
        "2m",
        "5m",
    )
    assert [r["id"] for r in c.get("/api/alerts/rules").json()] == [rule["id"]]
    # a contact point a rule sends to cannot be removed
    refused = c.delete(f"/api/alerts/contacts/{hook.json()['id']}")
    assert refused.status_code == 409 and "apex-legal p95" in refused.text
    assert c.delete(f"/api/alerts/rules/{rule['id']}").status_code == 204
    assert c.get(f"/api/alerts/rules/{rule['id']}").status_code == 404
    assert c.delete(f"/api/alerts/contacts/{hook.json()['id']}").status_code == 204
    actions = [e["action"] for e in c.get("/api/audit").json()["items"]]
    for action in (
        "alert_rule.create",
        "alert_rule.update",
        "alert_rule.delete",
        "contact_point.create",
        "contact_point.delete",
    ):
        assert action in actions
    assert "s" * 20 not in c.get("/api/audit").text


def test_an_invalid_rule_gets_422_naming_every_wrong_field_and_nothing_is_stored(
    server: RunningServer,
) -> None:
    bad = {
        "name": "",
        "metric": "latency_p42",
        "comparator": "=>",
        "threshold": "lots",
        "window": "5 fortnights",
        "severity": "apocalyptic",
        "filters": {"colour": "red"},
        "contact_ids": [999],
        "surprise": 1,
    }
    resp = server.client.post("/api/alerts/rules", json=bad)
    assert resp.status_code == 422, resp.text
    fields = resp.json()["error"]["details"]["fields"]
    assert set(fields) == {
        "name",
        "metric",
        "comparator",
        "threshold",
        "window",
        "severity",
        "filters.colour",
        "surprise",
    }
    assert "latency_p95" in fields["metric"]
    # a missing contact point is named too (checked in the store's transaction)
    ok_but_contact = {"name": "x", "metric": "cost", "threshold": 1, "contact_ids": [999]}
    resp = server.client.post("/api/alerts/rules", json=ok_but_contact)
    assert resp.status_code == 422 and "contact_ids" in resp.json()["error"]["details"]["fields"]
    assert server.client.get("/api/alerts/rules").json() == []
    resp = server.client.post(
        "/api/alerts/contacts",
        json={"name": "m", "kind": "email", "settings": {"to": "not-an-address", "port": 99999}},
    )
    assert resp.status_code == 422
    assert {"settings.to", "settings.from_addr", "settings.host", "settings.port"} <= set(
        resp.json()["error"]["details"]["fields"]
    )
    assert server.client.get("/api/alerts/contacts").json() == []


def test_readers_read_admins_write_and_tenant_keys_see_nothing(server: RunningServer) -> None:
    created = server.client.post(
        "/api/alerts/rules", json={"name": "cost", "metric": "cost", "threshold": 5}
    )
    assert created.status_code == 201
    for role, read, write in (("reader", 200, 403), ("tenant", 403, 403), ("ingest", 403, 403)):
        token = server.key(role, "apex-legal" if role == "tenant" else None)
        headers = {"authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, headers=headers) as c:
            assert c.get("/api/alerts/rules").status_code == read, role
            assert c.get("/api/alerts/history").status_code == read, role
            assert (
                c.post(
                    "/api/alerts/rules", json={"name": "x", "metric": "cost", "threshold": 1}
                ).status_code
                == write
            )
            assert c.delete(f"/api/alerts/rules/{created.json()['id']}").status_code == write


def test_a_silence_is_set_and_lifted(server: RunningServer) -> None:
    rule = server.client.post(
        "/api/alerts/rules",
        json={"name": "each", "metric": "cost", "threshold": 5, "per_tenant": True},
    ).json()
    resp = server.client.post(
        f"/api/alerts/rules/{rule['id']}/silence", json={"until": "2099-01-01T00:00:00Z"}
    )
    assert resp.status_code == 200 and resp.json()["silenced_until"] == "2099-01-01T00:00:00Z"
    one = server.client.post(
        f"/api/alerts/rules/{rule['id']}/silence",
        json={"until": "2099-01-01T00:00:00Z", "tenant_id": "apex"},
    )
    assert [i["tenant_id"] for i in one.json()["instances"]] == ["apex"]
    lifted = server.client.post(f"/api/alerts/rules/{rule['id']}/silence", json={"until": None})
    assert lifted.json()["silenced_until"] is None
    bad = server.client.post(f"/api/alerts/rules/{rule['id']}/silence", json={"until": "soon"})
    assert bad.status_code == 422 and "until" in bad.json()["error"]["details"]["fields"]
