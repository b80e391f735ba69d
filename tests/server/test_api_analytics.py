"""The comparison (``/api/breakdown?by=…&group_by=…``), the provider breakdown and the tenant
suggestions over a real server: shapes, exact money, validation, the caller's scope."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningServer
from tests.query.seed import HOSTILE, seed


@pytest.fixture
def api(server: RunningServer) -> Iterator[RunningServer]:
    seed(server.services)
    yield server


def as_key(srv: RunningServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=srv.url, headers={"authorization": f"Bearer {token}"})


def test_breakdown_by_provider(api: RunningServer) -> None:
    body = api.client.get("/api/breakdown", params={"by": "provider", "from": "0"}).json()
    assert [(i["key"], i["cost_usd"]) for i in body["items"]] == [
        ("anthropic", "0.070000000"),
        ("openai", "0.033500000001"),
    ]


def test_tenant_by_feature(api: RunningServer) -> None:
    resp = api.client.get(
        "/api/breakdown", params={"by": "feature", "group_by": "tenant", "from": "0"}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"by", "group_by", "groups", "keys", "items", "total_cost_usd"}
    assert body["keys"] == ["qa", "summary", "email"]
    assert [g["key"] for g in body["groups"]][:2] == ["apex-legal", "stratex-consulting"]
    first = body["items"][0]
    assert (first["group"], first["key"], first["requests"]) == ("apex-legal", "qa", 2)
    assert first["cost_usd"] == "0.070000000" and first["share_of_group_cost"] == 0.7
    assert isinstance(first["total_tokens"], int)
    assert body["total_cost_usd"] == "0.103500000001"
    limited = api.client.get(
        "/api/breakdown",
        params={"by": "feature", "group_by": "tenant", "limit": 1, "by_limit": 1, "from": "0"},
    ).json()
    assert [(i["group"], i["key"]) for i in limited["items"]] == [("apex-legal", "qa")]


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"by": "feature", "group_by": "feature"}, "group_by must be another dimension than by"),
        ({"by": "feature", "group_by": "planet"}, "group_by"),
        ({"by": "feature", "group_by": "tenant", "limit": 101}, "limit must be between 1 and 100"),
        ({"by": "feature", "group_by": "tenant", "by_limit": 101}, "by_limit"),
        ({"by": "feature", "by_limit": 5}, "by_limit applies with group_by only"),
    ],
)
def test_comparison_validation(api: RunningServer, params: dict[str, object], needle: str) -> None:
    resp = api.client.get("/api/breakdown", params=params)
    assert resp.status_code == 400, resp.text
    message = resp.json()["error"]["message"]
    assert needle in message, message
    if params.get("group_by") == "feature":
        assert "tenant" in message and "model" in message  # says what is allowed


def test_a_tenant_key_compares_its_own_features_only(api: RunningServer) -> None:
    with as_key(api, api.key("tenant", "stratex-consulting")) as c:
        body = c.get("/api/breakdown", params={"by": "feature", "group_by": "tenant"}).json()
        assert [g["key"] for g in body["groups"]] == ["stratex-consulting"]
        assert {i["group"] for i in body["items"]} == {"stratex-consulting"}
        assert "apex" not in str(body)
        foreign = c.get(
            "/api/breakdown",
            params={"by": "feature", "group_by": "tenant", "tenant_id": "apex-legal"},
        )
        assert foreign.status_code == 404


def test_tenant_suggestions(api: RunningServer) -> None:
    resp = api.client.get("/api/tenant-suggestions", params={"q": "strat"})
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    assert resp.json() == {
        "items": [
            {
                "tenant_id": "stratex-consulting",
                "display_name": "Stratex Consulting",
                "tier": "professional",
            }
        ],
        "next_cursor": None,
    }
    # a hostile id is JSON data (the selector's script sets it as text, never as markup)
    hostile = api.client.get("/api/tenant-suggestions", params={"q": "<script"}).json()
    assert [i["tenant_id"] for i in hostile["items"]] == [HOSTILE]
    assert len(api.client.get("/api/tenant-suggestions", params={"limit": 2}).json()["items"]) == 2
    assert api.client.get("/api/tenant-suggestions", params={"limit": 51}).status_code == 400
    with as_key(api, api.key("reader")) as c:
        assert c.get("/api/tenant-suggestions", params={"q": "apex"}).status_code == 200


def test_tenant_keys_get_no_suggestions(api: RunningServer) -> None:
    with as_key(api, api.key("tenant", "apex-legal")) as c:
        resp = c.get("/api/tenant-suggestions", params={"q": "a"})
        assert resp.status_code == 403
        assert "stratex" not in resp.text
