"""A trace that crosses tenants (issue 11, item 7): a record never shadows, nor exposes,
another tenant's record. Through a real server."""

from __future__ import annotations

import httpx

from tests.conftest import RunningServer
from tests.ingest.test_otlp import request
from tests.server.test_ingest_http import PB, llm_span


def test_another_tenants_call_under_a_call_shadows_nothing_and_stays_hidden(
    server: RunningServer,
) -> None:
    # tenant B's call span, and under it a call of tenant A (e.g. B's agent calls A's tool)
    outer = llm_span(7, "tenant-b", tokens=1000)
    inner = llm_span(7, "tenant-a", tokens=40)
    inner.span_id = (99).to_bytes(8, "big")
    inner.parent_span_id = outer.span_id
    resp = server.client.post(
        "/v1/traces", content=request([outer, inner]).SerializeToString(), headers=PB
    )
    assert resp.status_code == 200, resp.text
    for tenant, tokens in (("tenant-b", 1100), ("tenant-a", 140)):
        usage = server.client.get(f"/api/tenants/{tenant}/usage").json()
        assert (usage["request_count"], usage["token_count"]) == (1, tokens), tenant
    trace_id = outer.trace_id.hex()
    key = server.key("tenant", "tenant-a")
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}) as a:
        body = a.get(f"/api/traces/{trace_id}").json()
    (root,) = body["roots"]
    assert root["tenant_id"] == "tenant-a" and root["counted"]
    # B's span is neither shown nor named (not even as the parent of A's span)
    assert root["parent_span_id"] == "" and outer.span_id.hex() not in str(body)
    assert body["incomplete"] is True  # to A, its span's parent is not there
