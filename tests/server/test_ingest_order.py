"""End to end: the demo's spans sent whole, or shuffled across many concurrent requests,
give every tenant the same usage (each LLM call counted once, tenants inherited)."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans

from tenantscope.demo import demo_batches, demo_tenants
from tenantscope.server.services import Services
from tests.conftest import RunningServer, free_port, make_settings, serve_app

PB = {"content-type": "application/x-protobuf"}
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def demo_spans() -> list[tuple[ResourceSpans, ScopeSpans, object]]:
    """Every span of a small demo run with the resource and scope it came with."""
    out = []
    for body in demo_batches(demo_tenants(n_extra=4), traces=150, days=1, now=NOW):
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    out.append((rs, ss, span))
    return out


def body_of(items: list[tuple[ResourceSpans, ScopeSpans, object]]) -> bytes:
    req = ExportTraceServiceRequest()
    for rs, ss, span in items:
        out_rs = req.resource_spans.add()
        out_rs.resource.CopyFrom(rs.resource)
        out_ss = out_rs.scope_spans.add()
        out_ss.scope.CopyFrom(ss.scope)
        out_ss.spans.add().CopyFrom(span)  # type: ignore[arg-type]
    return req.SerializeToString()


def usage_by_tenant(client: httpx.Client) -> dict[str, tuple[int, int, str]]:
    rows = client.get("/api/tenants", params={"limit": 100, "from": "0"}).json()["items"]
    return {
        r["tenant_id"]: (r["requests"], r["input_tokens"] + r["output_tokens"], r["cost_usd"])
        for r in rows
    }


@pytest.fixture
def second_server(tmp_path: Path) -> Iterator[RunningServer]:
    svc = Services.open(make_settings(tmp_path / "second", port=free_port(), duckdb_threads=2))
    try:
        with serve_app(svc) as running:
            yield running
    finally:
        svc.close()


def test_shuffled_concurrent_requests_count_like_whole_traces(
    server: RunningServer, second_server: RunningServer
) -> None:
    spans = demo_spans()
    # in order, a few large requests
    for i in range(0, len(spans), 400):
        resp = server.client.post("/v1/traces", content=body_of(spans[i : i + 400]), headers=PB)
        assert resp.status_code == 200
    expected = usage_by_tenant(server.client)
    assert len(expected) >= 5 and all(v[0] > 0 for k, v in expected.items() if k)
    assert "" not in expected  # every call found its tenant through its root span

    # shuffled, split into small requests, sent by 8 threads at once
    rng = random.Random(3)
    shuffled = spans[:]
    rng.shuffle(shuffled)
    chunks = []
    i = 0
    while i < len(shuffled):
        n = rng.randint(1, 40)
        chunks.append(body_of(shuffled[i : i + n]))
        i += n
    errors: list[str] = []

    def send(part: list[bytes]) -> None:
        with httpx.Client(
            base_url=second_server.url,
            timeout=60,
            headers={"authorization": f"Bearer {second_server.admin_key}"},
        ) as client:
            for body in part:
                resp = client.post("/v1/traces", content=body, headers=PB)
                if resp.status_code != 200:
                    errors.append(resp.text)

    threads = [threading.Thread(target=send, args=(chunks[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert usage_by_tenant(second_server.client) == expected
