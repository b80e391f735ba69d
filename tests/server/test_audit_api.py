"""GET /api/audit against a real server: the JSON API's own key changes are recorded with
the calling key, filters and paging work, only admin keys may read it, and it is in the
OpenAPI document."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import httpx

from tenantscope.storage.base import CLI, PriceOverride
from tests.conftest import RunningServer


def _key_id(token: str) -> str:
    return token.split("_")[1]


def test_key_changes_through_the_api_are_audited_with_the_calling_key(
    server: RunningServer,
) -> None:
    made = server.client.post("/api/keys", json={"role": "reader", "name": "dash <b>ro</b>"})
    assert made.status_code == 201, made.text
    token, key_id = made.json()["token"], made.json()["key_id"]
    assert server.client.delete(f"/api/keys/{key_id}").status_code == 200
    resp = server.client.get("/api/audit", params={"target": key_id})
    assert resp.status_code == 200, resp.text
    revoked, created = resp.json()["items"]
    admin_id = _key_id(server.admin_key)
    for entry in (revoked, created):
        assert entry["actor"] == {
            "kind": "api",
            "key_id": admin_id,
            "name": "test admin",
            "role": "admin",
        }
        assert entry["target"] == key_id
        assert entry["at"].endswith("Z")
    assert created["action"] == "key.create" and created["before"] is None
    assert created["after"]["role"] == "reader" and created["after"]["name"] == "dash <b>ro</b>"
    assert revoked["action"] == "key.revoke"
    assert revoked["before"]["revoked_at"] is None and revoked["after"]["revoked_at"]
    secret = token.split("_", 2)[2]
    assert secret not in resp.text


def test_filters_and_paging(server: RunningServer) -> None:
    config = server.services.config
    for i in range(5):
        config.set_tenant(f"acme-{i % 2}", actor=CLI, tier=f"t{i}")
    config.add_price_override(
        PriceOverride(
            model="gpt-4o", effective_from=datetime.now(timezone.utc), input_mtok=Decimal(1)
        ),
        actor=CLI,
    )
    everything = server.client.get("/api/audit", params={"limit": 1000}).json()
    assert everything["next_cursor"] is None
    ids = [e["id"] for e in everything["items"]]
    assert ids == sorted(ids, reverse=True)
    paged: list[int] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = server.client.get("/api/audit", params=params).json()
        paged += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == ids
    by_target = server.client.get("/api/audit", params={"target": "acme-1"}).json()["items"]
    assert [e["after"]["tier"] for e in by_target] == ["t3", "t1"]
    by_action = server.client.get("/api/audit", params={"action": "price_override.add"}).json()
    assert [e["target"] for e in by_action["items"]] == ["gpt-4o"]
    assert by_action["items"][0]["actor"]["kind"] == "cli"
    later = (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()
    assert server.client.get("/api/audit", params={"since": later}).json()["items"] == []
    assert len(server.client.get("/api/audit", params={"since": "0"}).json()["items"]) == len(ids)


def test_bad_parameters_are_400s(server: RunningServer) -> None:
    for params in (
        {"cursor": "abc"},
        {"cursor": "-1"},
        {"cursor": "9" * 30},
        {"since": "yesterday"},
        {"since": "9999-12-31T23:59:59Z"},
        {"action": "key.delete"},
        {"limit": "0"},
        {"limit": "1001"},
        {"actor": "cli"},
    ):
        resp = server.client.get("/api/audit", params=params)
        assert resp.status_code == 400, (params, resp.text)
        assert resp.json()["error"]["message"]


def test_only_admin_keys_may_read_it(server: RunningServer) -> None:
    server.services.config.set_tenant("acme", actor=CLI, display_name="Acme")
    for role, tenant in (("reader", None), ("tenant", "acme"), ("ingest", None)):
        token = server.key(role, tenant)
        resp = httpx.get(
            server.url + "/api/audit", headers={"authorization": f"Bearer {token}"}, timeout=30
        )
        assert resp.status_code == 403, (role, resp.text)
        assert "Acme" not in resp.text
    assert httpx.get(server.url + "/api/audit", timeout=30).status_code == 401


def test_documented_in_the_openapi(server: RunningServer) -> None:
    spec = httpx.get(server.url + "/openapi.json", timeout=30).json()
    op = spec["paths"]["/api/audit"]["get"]
    assert {p["name"] for p in op["parameters"]} == {"action", "target", "since", "limit", "cursor"}
    assert "append-only" in op["description"].lower()
    assert "post" not in spec["paths"]["/api/audit"]
    assert not any(p.startswith("/api/audit/") for p in spec["paths"])
