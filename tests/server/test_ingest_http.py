"""Ingest over HTTP against a real server: OTLP protobuf/JSON/gzip, partial success,
bad input, native events, and a real OpenTelemetry SDK exporter."""

from __future__ import annotations

import gzip
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from tests.conftest import RunningServer
from tests.ingest.test_otlp import request, span, to_otlp_json

NOW_NS = int((datetime.now(timezone.utc) - timedelta(minutes=5)).timestamp() * 1e9)
PB = {"content-type": "application/x-protobuf"}


def llm_span(i: int, tenant: str = "acme", tokens: int = 1000, **attrs: object) -> object:
    return span(
        trace_id=bytes([i % 256]) * 16,
        span_id=(i + 1).to_bytes(8, "big"),
        name="chat gpt-4o",
        start_ns=NOW_NS,
        end_ns=NOW_NS + 800_000_000,
        attributes={
            "tenant.id": tenant,
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": tokens,
            "gen_ai.usage.output_tokens": 100,
            **attrs,
        },
    )


def usage(srv: RunningServer, tenant: str) -> dict[str, object]:
    resp = srv.client.get(f"/api/tenants/{tenant}/usage")
    assert resp.status_code == 200, resp.text
    body: dict[str, object] = resp.json()
    return body


def test_protobuf_spans_are_stored_and_visible_per_tenant(server: RunningServer) -> None:
    body = request([llm_span(1), llm_span(2), llm_span(3, tenant="globex")]).SerializeToString()
    resp = server.client.post("/v1/traces", content=body, headers=PB)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/x-protobuf"
    parsed = ExportTraceServiceResponse.FromString(resp.content)
    assert parsed.partial_success.rejected_spans == 0
    u = usage(server, "acme")
    assert u["request_count"] == 2
    assert u["token_count"] == 2200
    # gpt-4o: $2.50 per 1M input, $10 per 1M output -> 2 * (0.0025 + 0.001)
    assert u["total_cost"] == "0.007000000"
    names = [t["tenant_id"] for t in server.client.get("/api/tenants").json()["items"]]
    assert names == ["acme", "globex"]


def test_a_stored_span_keeps_the_attributes_no_column_holds(server: RunningServer) -> None:
    one = llm_span(
        7,
        **{
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.response.id": "chatcmpl-7",
            "http.route": "/summarize",
        },
    )
    body = request([one]).SerializeToString()
    assert server.client.post("/v1/traces", content=body, headers=PB).status_code == 200
    detail = server.client.get("/api/traces/" + "07" * 16).json()
    (node,) = detail["roots"]
    assert (node["tenant_id"], node["provider"], node["model"], node["response_id"]) == (
        "acme", "openai", "gpt-4o-2024-08-06", "chatcmpl-7",
    )  # fmt: skip
    # the request model lost to a different response model, so it stays
    assert node["attributes"] == {"gen_ai.request.model": "gpt-4o", "http.route": "/summarize"}


def test_json_and_gzip_bodies(server: RunningServer) -> None:
    doc = to_otlp_json(request([llm_span(7, tenant="jsonco")]))
    resp = server.client.post("/v1/traces", json=doc)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {}
    gz = gzip.compress(request([llm_span(8, tenant="gzipco")]).SerializeToString())
    resp = server.client.post("/v1/traces", content=gz, headers={**PB, "content-encoding": "gzip"})
    assert resp.status_code == 200
    assert usage(server, "jsonco")["request_count"] == 1
    assert usage(server, "gzipco")["request_count"] == 1


def test_resending_the_same_spans_counts_them_once(server: RunningServer) -> None:
    body = request([llm_span(9, tenant="twice"), llm_span(10, tenant="twice")]).SerializeToString()
    for _ in range(3):
        assert server.client.post("/v1/traces", content=body, headers=PB).status_code == 200
    assert usage(server, "twice")["request_count"] == 2


def test_partial_success_names_rejected_spans(server: RunningServer) -> None:
    bad = llm_span(11, tenant="partial", tokens=10**15)
    doc = to_otlp_json(request([llm_span(12, tenant="partial"), bad]))
    resp = server.client.post("/v1/traces", json=doc)
    assert resp.status_code == 200
    ps = resp.json()["partialSuccess"]
    assert ps["rejectedSpans"] == 1
    assert "input_tokens" in ps["errorMessage"]
    assert usage(server, "partial")["request_count"] == 1


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"\xff\x00garbage", PB, 400),
        (b"{not json", {"content-type": "application/json"}, 400),
        (b"[1, 2]", {"content-type": "application/json"}, 400),
        (b"hello", {"content-type": "text/plain"}, 415),
        (b"\x1f\x8b\x08garbage", {**PB, "content-encoding": "gzip"}, 400),
        (b"x", {**PB, "content-encoding": "br"}, 400),
        (gzip.compress(b"\0" * (17 * 1024 * 1024)), {**PB, "content-encoding": "gzip"}, 413),
    ],
)
def test_bad_otlp_bodies_get_a_clear_4xx_and_the_server_keeps_serving(
    server: RunningServer, body: bytes, headers: dict[str, str], status: int
) -> None:
    resp = server.client.post("/v1/traces", content=body, headers=headers)
    assert resp.status_code == status
    err = resp.json()["error"]
    assert err["code"] and len(err["message"]) > 10
    assert server.client.get("/healthz").status_code == 200
    assert server.services.events.count() == 0


def test_oversize_raw_body_is_413(server: RunningServer) -> None:
    resp = server.client.post("/v1/traces", content=b"\0" * (17 * 1024 * 1024), headers=PB)
    assert resp.status_code == 413


def event(i: int, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "event_id": f"evt-{i}",
        "tenant_id": "events-co",
        "user_id": "u1",
        "feature": "report",
        "billable_action": "report_generated",
        "customer_visible_label": "AI report",
        "provider": "anthropic",
        "model": "claude-3-5-haiku",
        "input_tokens": 2000,
        "output_tokens": 500,
        "timestamp": (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat(),
    }
    base.update(kw)
    return base


def test_events_batch_stores_valid_items_and_names_bad_ones(server: RunningServer) -> None:
    batch = [event(1), event(2, input_tokens=-5), event(3, tenant_id="x" * 10_000), event(4)]
    first, fourth = batch[0], batch[3]
    resp = server.client.post("/v1/events", json=batch)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["accepted"] == 2 and out["rejected"] == 2
    assert {(e["index"], e["field"]) for e in out["errors"]} == {
        (1, "input_tokens"),
        (2, "tenant_id"),
    }
    # idempotent: the same batch again adds nothing
    again = server.client.post("/v1/events", json={"events": [first, fourth]}).json()
    assert again["accepted"] == 0 and again["duplicates"] == 2
    # a sloppy retry that re-computed its timestamp a little later is still recognised
    sloppy = server.client.post("/v1/events", json=[{**first, "timestamp": None}]).json()
    assert sloppy["duplicates"] == 1
    u = usage(server, "events-co")
    assert u["request_count"] == 2 and u["token_count"] == 5000
    # events appear as one-span traces
    traces = server.client.get("/api/traces", params={"tenant_id": "events-co"}).json()
    assert len(traces["items"]) == 2


def test_events_reported_cost_wins(server: RunningServer) -> None:
    resp = server.client.post("/v1/events", json=[event(10, tenant_id="rep", cost_usd="0.25")])
    assert resp.json()["accepted"] == 1
    assert usage(server, "rep")["total_cost"] == "0.250000000"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        json.dumps([event(i) for i in range(1001)]).encode(),
        json.dumps([event(1, input_tokens="many")]).encode(),
        b'{"evnts": []}',
        "\udcff".encode("utf-8", "surrogatepass"),
    ],
)
def test_bad_event_batches_are_400_and_store_nothing(server: RunningServer, body: bytes) -> None:
    resp = server.client.post(
        "/v1/events", content=body, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["message"]
    assert server.services.events.count() == 0


def test_a_real_opentelemetry_exporter_can_send_to_us(server: RunningServer) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "otel-app"}))
    provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(
                endpoint=f"{server.url}/v1/traces",
                headers={"authorization": f"Bearer {server.admin_key}"},
            )
        )
    )
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai")
    with tracer.start_as_current_span("POST /chat") as root:
        root.set_attribute("tenant.id", "otel-tenant")
        with tracer.start_as_current_span("chat gpt-4o-mini") as child:
            child.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            child.set_attribute("gen_ai.usage.input_tokens", 300)
            child.set_attribute("gen_ai.usage.output_tokens", 40)
    provider.shutdown()
    deadline = time.monotonic() + 10
    while usage(server, "otel-tenant")["request_count"] != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    trace = server.client.get("/api/traces", params={"tenant_id": "otel-tenant"}).json()
    detail = server.client.get(f"/api/traces/{trace['items'][0]['trace_id']}").json()
    child = detail["roots"][0]["children"][0]
    assert child["provider"] == "openai"  # from the instrumentation scope name
    assert child["tenant_id"] == "otel-tenant"  # inherited from the root
    assert child["service"] == "otel-app"


def test_events_accept_gzip_and_refuse_other_content_types(server: RunningServer) -> None:
    body = gzip.compress(json.dumps([event(20, tenant_id="gz-events")]).encode())
    resp = server.client.post(
        "/v1/events",
        content=body,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert resp.status_code == 200 and resp.json()["accepted"] == 1
    resp = server.client.post(
        "/v1/events", content=b"a=b", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert resp.status_code == 415


def test_decoding_in_the_server_process_gives_the_same_records(tmp_path: Path) -> None:
    """``TENANTSCOPE_INGEST_WORKERS=0`` decodes in a thread instead of worker processes."""
    from tenantscope.ingest.pool import DecodePool

    body = request([llm_span(30, tenant="inproc"), llm_span(31, tenant="inproc")])
    raw = body.SerializeToString()
    import asyncio

    async def both() -> tuple[object, object]:
        inline, pooled = DecodePool(0), DecodePool(1)
        try:
            a = await inline.decode(raw, PB["content-type"], None, 1 << 20)
            b = await pooled.decode(raw, PB["content-type"], None, 1 << 20)
        finally:
            inline.close()
            pooled.close()
        return a, b

    a, b = asyncio.run(both())
    records, rejected, errors = a  # type: ignore[misc]
    pooled_records = b[0]  # type: ignore[index]
    # the same records, but for the moment each was received
    aligned = zip(records, pooled_records, strict=True)
    assert [r.replace(received_at=p.received_at) for r, p in aligned] == pooled_records
    assert len(records) == 2 and rejected == 0 and errors == []
    assert {r.tenant_id for r in records} == {"inproc"}


def test_a_killed_decode_worker_is_replaced_and_no_request_fails() -> None:
    import asyncio
    import os
    import signal

    from tenantscope.ingest.pool import DecodePool

    raw = request([llm_span(40, tenant="survivor")]).SerializeToString()

    async def run() -> None:
        pool = DecodePool(1)
        try:
            first = await pool.decode(raw, PB["content-type"], None, 1 << 20)
            assert len(first[0]) == 1
            executor = pool._executor
            assert executor is not None
            for pid in list(executor._processes):  # the worker process(es)
                os.kill(pid, signal.SIGKILL)
            again = await pool.decode(raw, PB["content-type"], None, 1 << 20)
            assert [r.tenant_id for r in again[0]] == ["survivor"]
            third = await pool.decode(raw, PB["content-type"], None, 1 << 20)
            assert len(third[0]) == 1
            assert pool.restarts == 1
        finally:
            pool.close()

    asyncio.run(run())
