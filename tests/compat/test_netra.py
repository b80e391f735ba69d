"""The Netra facade: the seeds' cookbook runs unchanged (only its imports differ) against a
real tenantscope server, with the real ``openai`` client and the local fake provider, and
every call is counted once at the catalog price."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import tenantscope
from tenantscope import semconv
from tenantscope.compat.netra import InstrumentSet, Netra, SpanType, UsageModel
from tenantscope.compat.netra._netra import _libraries
from tenantscope.sdk import current_config
from tenantscope.testing import FakeProvider
from tenantscope.testing.server import free_port
from tests.compat import meetingmind_netra as cookbook
from tests.conftest import RunningServer
from tests.sdk.conftest import by_name

# what the fake provider answers for each tenant's call (x-fake-usage), and the catalog
# price of that call (genai-prices, per 1M tokens: gpt-4 30/60, gpt-4-turbo 10/30,
# gpt-3.5-turbo 0.5/1.5)
CALLS: dict[str, tuple[str, int, int, Decimal]] = {
    "apex-legal": ("john.smith@apexlegal.com", 1200, 300, Decimal("0.036") + Decimal("0.018")),
    "stratex-consulting": ("cfo@stratex.com", 900, 250, Decimal("0.009") + Decimal("0.0075")),
    "techstart-inc": ("dev@techstart.io", 500, 120, Decimal("0.00025") + Decimal("0.00018")),
}
TRANSCRIPT = "John: Let's discuss our approach for the Smith case.\nSarah: I'll draft it."


def run_cookbook(server: RunningServer, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> Any:
    # Step 2 of the cookbook: the environment (pointed at tenantscope and the fake provider)
    monkeypatch.setenv("NETRA_API_KEY", server.admin_key)
    monkeypatch.setenv("NETRA_OTLP_ENDPOINT", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)
    cookbook.step_3_initialize_netra()
    summarizer = cookbook.MultiTenantMeetingSummarizer()
    client = summarizer.openai_client
    results: dict[str, list[dict[str, Any]]] = {}
    for tenant_id, (user_id, prompt, completion, _) in CALLS.items():
        calls = 2 if tenant_id == "apex-legal" else 1
        for n in range(calls):
            headers = {"x-fake-usage": f"input={prompt},output={completion}"}
            if tenant_id == "apex-legal" and n == 1:
                headers["x-fake-delay-ms"] = "2100"  # over apex's 2 s SLA: an sla-breach event
            # fixed usage per call, through the client's own default headers
            summarizer.openai_client = client.with_options(default_headers=headers)
            results.setdefault(tenant_id, []).append(
                summarizer.summarize_meeting(tenant_id, TRANSCRIPT, user_id=user_id)
            )
    Netra.shutdown()  # exports what is queued; Netra.usage still knows the server
    return summarizer, results


def test_the_cookbook_runs_unchanged_and_counts_each_call_once(
    server: RunningServer, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    summarizer, results = run_cookbook(server, fake, monkeypatch)
    assert [r["sla_compliant"] for r in results["apex-legal"]] == [True, False]
    assert summarizer.tenant_usage["apex-legal"]["count"] == 2

    # Step 9, as published: the figures come back through Netra.usage
    end_time = datetime.now(timezone.utc)
    start_time = end_time - timedelta(days=1)
    for tenant_id, (_, prompt, completion, call_cost) in CALLS.items():
        calls = len(results[tenant_id])
        usage = cookbook.get_tenant_usage_data(
            tenant_id=tenant_id,
            start_time=start_time.isoformat(),
            end_time=end_time.isoformat(),
        )
        assert usage == {
            "tenant_id": tenant_id,
            "token_count": calls * (prompt + completion),
            "request_count": calls,
            "session_count": calls,  # the cookbook starts a session per meeting
            "total_cost": calls * call_cost,  # the catalog's price, exact
        }
        # the wrapper's own figure (the cookbook prices at gpt-4o-mini rates) is not added
        local = summarizer.tenant_usage[tenant_id]["total_cost"]
        assert usage["total_cost"] != Decimal(repr(local))


def test_the_wrapper_keeps_its_figure_for_reference_only(
    server: RunningServer, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, results = run_cookbook(server, fake, monkeypatch)
    traces = server.client.get("/api/traces", params={"tenant_id": "apex-legal"}).json()["items"]
    assert len(traces) == 2
    breaches = 0
    for item in traces:
        detail = server.client.get(f"/api/traces/{item['trace_id']}").json()
        (wrapper,) = detail["roots"]
        (call,) = wrapper["children"]
        assert wrapper["name"] == "meeting-summarization"
        assert (wrapper["shadowed"], wrapper["counted"]) == (True, False)
        assert wrapper["cost_source"] == "reported"
        assert wrapper["attributes"]["tier"] == "enterprise"
        assert json.loads(wrapper["attributes"]["netra.usage"])[0]["usage_type"] == "chat"
        assert (call["counted"], call["model"], call["cost_source"]) == (True, "gpt-4", "catalog")
        assert Decimal(call["cost_usd"]) == CALLS["apex-legal"][3]
        assert call["tenant_id"] == wrapper["tenant_id"] == "apex-legal"
        assert call["user_id"] == "john.smith@apexlegal.com"
        assert detail["requests"] == 1
        breaches += sum(e["name"] == "sla-breach" for e in wrapper["events"])
    assert breaches == 1
    # the cookbook's float cost, as the API shows money (nine decimal places)
    reported = sorted(
        Decimal(repr(r["cost"])).quantize(Decimal("1e-9")) for r in results["apex-legal"]
    )
    shown = sorted(
        Decimal(server.client.get(f"/api/traces/{t['trace_id']}").json()["roots"][0]["cost_usd"])
        for t in traces
    )
    assert shown == reported


@pytest.fixture
def memory() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    tenantscope.init(span_processor=SimpleSpanProcessor(exporter))
    return exporter


def attrs(exporter: InMemorySpanExporter, name: str) -> dict[str, Any]:
    return dict(by_name(exporter)[name].attributes or {})


def test_span_wrapper_methods(memory: InMemorySpanExporter) -> None:
    Netra.set_tenant_id("apex-legal")
    Netra.set_user_id("u-1")
    Netra.set_session_id("s-1")
    Netra.set_tenant_id("")  # ignored, as netra does: the tenant stays
    assert tenantscope.get_context() == {
        "tenant_id": "apex-legal",
        "user_id": "u-1",
        "session_id": "s-1",
    }
    wrapper = Netra.start_span("gen", attributes={"input.length": 42}, as_type=SpanType.GENERATION)
    wrapper.set_attribute("before", "start")  # given to the span when it starts
    with wrapper as span:
        assert span is wrapper and span.span is not None
        span.set_usage(
            [
                UsageModel(model="m", usage_type="chat", units_used=10, cost_in_usd=0.1),
                UsageModel(model="m", usage_type="chat", units_used=5, cost_in_usd=Decimal("0.2")),
            ]
        ).set_prompt("p").set_negative_prompt("n").set_model("m").set_llm_system("openai")
        span.add_event("sla-breach", {"actual_ms": 2100.5, "sla_ms": 2000}).set_success()
    assert wrapper.span is None
    with Netra.start_span("tool", as_type=SpanType.TOOL) as span:
        span.set_usage([UsageModel(model="a", usage_type="x"), UsageModel("b", "y", 1, "0.5")])
        span.set_error("upstream refused")
    with pytest.raises(KeyError), Netra.start_span("plain"):
        raise KeyError("boom")

    gen = attrs(memory, "gen")
    assert gen[semconv.TENANT_ID] == "apex-legal" and gen[semconv.SESSION_ID] == "s-1"
    assert gen[semconv.SPAN_KIND] == "llm"
    assert (gen["input.length"], gen["before"]) == (42, "start")
    assert gen[semconv.GEN_AI_USAGE_COST] == "0.3"  # 0.1 + 0.2 exactly
    assert gen[semconv.GEN_AI_REQUEST_MODEL] == "m"
    assert gen["tenantscope.usage.units"] == 15
    assert json.loads(gen["netra.usage"]) == [
        {"model": "m", "usage_type": "chat", "units_used": 10, "cost_in_usd": 0.1},
        {"model": "m", "usage_type": "chat", "units_used": 5, "cost_in_usd": "0.2"},
    ]
    assert (gen["netra.prompt"], gen["netra.negative_prompt"]) == ("p", "n")
    assert (gen["netra.model"], gen["netra.llm_system"]) == ("m", "openai")
    (event,) = by_name(memory)["gen"].events
    assert event.name == "sla-breach" and dict(event.attributes or {})["sla_ms"] == 2000
    assert by_name(memory)["gen"].status.status_code == StatusCode.OK

    tool = attrs(memory, "tool")
    assert tool[semconv.SPAN_KIND] == "tool"
    assert semconv.GEN_AI_REQUEST_MODEL not in tool  # two models: none is the span's
    assert tool[semconv.GEN_AI_USAGE_COST] == "0.5" and tool["tenantscope.usage.units"] == 1
    assert tool[semconv.STATUS] == "error"
    assert by_name(memory)["tool"].status.description == "upstream refused"

    plain = attrs(memory, "plain")
    assert semconv.SPAN_KIND not in plain  # SPAN is the generic kind
    assert plain[semconv.ERROR_TYPE] == "KeyError"


def test_init_maps_netra_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETRA_OTLP_ENDPOINT", "http://netra-env:4318")
    monkeypatch.setenv("NETRA_APP_NAME", "from-env")
    monkeypatch.setenv("NETRA_ENV", "staging")
    monkeypatch.setenv("NETRA_TRACE_CONTENT", "true")
    monkeypatch.setenv("NETRA_API_KEY", "key-from-env")
    Netra.init(headers="x-api-key=tsi_header,x-team=a%20b")
    config = current_config()
    assert config is not None
    assert config.endpoint == "http://netra-env:4318"
    assert config.api_key == "tsi_header"  # the header wins over NETRA_API_KEY
    assert dict(config.headers) == {"x-team": "a b"}
    assert (config.service_name, config.environment) == ("from-env", "staging")
    assert config.capture_content is True

    Netra.init(
        app_name="meetingmind",
        headers={"X-API-Key": "tsi_mapping"},
        environment="production",
        trace_content=False,
        endpoint="http://127.0.0.1:9",
    )
    config = current_config()
    assert config is not None
    assert (config.endpoint, config.api_key) == ("http://127.0.0.1:9", "tsi_mapping")
    assert (config.service_name, config.environment) == ("meetingmind", "production")
    assert config.capture_content is False and dict(config.headers) == {}

    monkeypatch.delenv("NETRA_OTLP_ENDPOINT")
    monkeypatch.setenv("TENANTSCOPE_ENDPOINT", "http://tenantscope-env:4318")
    Netra.init()
    config = current_config()
    assert config is not None
    assert (config.endpoint, config.api_key) == ("http://tenantscope-env:4318", "key-from-env")


def test_init_options(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(TypeError, match="no_such_option"):
        Netra.init(no_such_option=True)
    with caplog.at_level(logging.WARNING, logger="tenantscope"):
        Netra.init(debug_mode=True, disable_batch=True, endpoint="http://127.0.0.1:9")
    assert "debug_mode, disable_batch not supported" in caplog.text
    assert current_config() is not None


def test_instrument_sets() -> None:
    assert _libraries(None, None) == ["openai", "anthropic"]
    assert _libraries({InstrumentSet.ALL}, None) == ["openai", "anthropic"]
    assert _libraries({InstrumentSet.OPENAI}, None) == ["openai"]
    assert _libraries(None, {InstrumentSet.OPENAI}) == ["anthropic"]
    assert _libraries({InstrumentSet.ANTHROPIC}, {InstrumentSet.ALL}) == []


def test_usage_query_failures_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    Netra.init(headers="x-api-key=k", endpoint=f"http://127.0.0.1:{free_port()}")
    with caplog.at_level(logging.ERROR, logger="tenantscope"):
        assert Netra.usage.get_tenant_usage(tenant_id="apex-legal") is None
        assert Netra.usage.get_tenant_usage(tenant_id="") is None
    assert "cannot reach the tenantscope server" in caplog.text
    assert "tenant_id is required" in caplog.text
