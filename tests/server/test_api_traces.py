"""The JSON API over a real server: traces whose root span never arrived, the customer
dimension, and the counting decisions of each span (tests/query/seed_traces.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, seeded_server
from tests.query.seed_traces import FIRST, HANDOFF, REASON, ROOTED, ROOTLESS, SECOND, seed_traces


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with seeded_server(tmp_path_factory.mktemp("traces") / "data", seed_traces) as srv:
        yield srv


def get(client: httpx.Client, path: str, **params: Any) -> Any:
    resp = client.get(path, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _spans(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n in nodes:
        out += [n, *_spans(n["children"])]
    return out


def test_trace_list_shows_a_trace_without_its_root_as_incomplete(api: RunningServer) -> None:
    items = {i["trace_id"]: i for i in get(api.client, "/api/traces", limit=100)["items"]}
    assert items[ROOTLESS]["incomplete"] is True and items[ROOTLESS]["name"] == "agent step"
    assert items[ROOTLESS]["requests"] == 2 and items[ROOTLESS]["cost_usd"] == "0.023000000"
    assert items[ROOTED]["incomplete"] is False
    # paging one at a time lists every trace once
    seen, cursor = [], None
    while True:
        page = get(api.client, "/api/traces", limit=1, **({"cursor": cursor} if cursor else {}))
        seen += [i["trace_id"] for i in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert sorted(seen) == sorted(items) and len(seen) == len(set(seen))


def test_trace_detail_has_orphans_on_top_and_the_counting_decisions(api: RunningServer) -> None:
    t = get(api.client, f"/api/traces/{ROOTLESS}")
    assert t["incomplete"] is True
    assert [r["span_id"] for r in t["roots"]] == [FIRST, SECOND]
    spans = {s["span_id"]: s for s in _spans(t["roots"])}
    assert len(spans) == t["spans"] == 4
    copy = spans["00000000000000b3"]
    assert copy["shadowed"] is True and copy["counted"] is False
    assert copy["shadow_reason"] == REASON  # verbatim, markup and all: JSON is data
    assert copy["usage_convention"] == "openllmetry" and copy["customer_id"] == "acme"
    assert spans[SECOND]["usage_convention"] == "figures:input<cache"
    assert spans["00000000000000b2"]["shadow_reason"] == ""
    assert get(api.client, f"/api/traces/{ROOTED}")["incomplete"] is False


def test_customer_filter_and_breakdown(api: RunningServer) -> None:
    found = get(api.client, "/api/traces", customer_id="acme")["items"]
    assert [i["trace_id"] for i in found] == [ROOTLESS, ROOTED]
    assert get(api.client, "/api/traces", customer_id="nobody")["items"] == []
    bd = get(api.client, "/api/breakdown", by="customer", tenant_id="lf-co")
    assert bd["by"] == "customer"
    assert [(i["key"], i["requests"], i["cost_usd"]) for i in bd["items"]] == [
        ("acme", 2, "0.030000000"),
        ("", 1, "0.004000000"),
        ("globex", 1, "0.003000000"),
    ]


def test_a_tenant_key_sees_its_own_part_of_a_shared_trace(api: RunningServer) -> None:
    key = api.key("tenant", "other-co")
    with httpx.Client(
        base_url=api.url, timeout=30, headers={"authorization": f"Bearer {key}"}
    ) as other:
        items = get(other, "/api/traces")["items"]
        assert [(i["trace_id"], i["incomplete"], i["tenant_id"]) for i in items] == [
            (HANDOFF, True, "other-co")
        ]
        t = get(other, f"/api/traces/{HANDOFF}")
        assert t["incomplete"] is True
        assert {s["tenant_id"] for s in _spans(t["roots"])} == {"other-co"}
        assert "POST /handoff" not in str(t)  # the other tenant's root stays hidden
        assert other.get(f"/api/traces/{ROOTLESS}").status_code == 404
        bd = get(other, "/api/breakdown", by="customer")
        assert [i["key"] for i in bd["items"]] == [""]


def test_openapi_documents_the_new_fields_and_values(api: RunningServer) -> None:
    spec = get(api.client, "/openapi.json")
    params = {p["name"]: p for p in spec["paths"]["/api/breakdown"]["get"]["parameters"]}
    assert "customer" in params["by"]["schema"]["enum"]
    assert "customer_id" in spec["paths"]["/api/breakdown"]["get"]["description"]
    trace_params = {p["name"] for p in spec["paths"]["/api/traces"]["get"]["parameters"]}
    assert "customer_id" in trace_params
    schemas = spec["components"]["schemas"]
    assert "incomplete" in schemas["TraceRow"]["properties"]
    assert "incomplete" in schemas["TraceDetail"]["properties"]
    span = schemas["SpanNode"]["properties"]
    assert {"customer_id", "usage_convention", "shadow_reason"} <= set(span)
    resp = api.client.get("/api/breakdown", params={"by": "customers"})
    assert resp.status_code == 400 and "by" in resp.json()["error"]["message"]
