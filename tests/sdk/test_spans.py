"""Manual spans: kinds, usage attributes, exact cost, errors, decorators, init/disabled."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from decimal import Decimal

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import tenantscope
from tenantscope import semconv
from tenantscope.sdk import _runtime
from tenantscope.sdk._spans import exact_cost
from tests.sdk.conftest import by_name


def test_llm_span_with_usage(memory: InMemorySpanExporter) -> None:
    with tenantscope.context(tenant_id="apex-legal"):
        with tenantscope.span("summarize", kind="llm", attributes={"tier": "enterprise"}) as s:
            s.record_usage(
                model="gpt-4o-mini",
                provider="openai",
                input_tokens=1200,
                output_tokens=300,
                cache_read_tokens=200,
                reasoning_tokens=50,
                cost_usd=Decimal("0.000360000"),
                units=3,
            )
            s.add_event("sla-breach", {"actual_ms": 2400.5, "sla_ms": 2000})
            s.set_success()
    (span,) = memory.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert attrs == {
        "tier": "enterprise",
        semconv.SPAN_KIND: "llm",
        semconv.TENANT_ID: "apex-legal",
        semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini",
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.INPUT_INCLUDES_CACHE: True,
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 1200,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 300,
        semconv.GEN_AI_USAGE_CACHE_READ: 200,
        semconv.GEN_AI_USAGE_REASONING: 50,
        semconv.GEN_AI_USAGE_COST: "0.00036",
        "tenantscope.usage.units": 3,
        semconv.STATUS: "ok",
    }
    assert span.status.status_code is StatusCode.OK
    (event,) = span.events
    assert event.name == "sla-breach" and dict(event.attributes or {}) == {
        "actual_ms": 2400.5,
        "sla_ms": 2000,
    }
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "tenantscope"


def test_cache_separate_figures_are_summed(memory: InMemorySpanExporter) -> None:
    with tenantscope.span("anthropic call", kind="llm") as s:
        s.record_usage(
            provider="anthropic",
            input_tokens=100,
            cache_read_tokens=1000,
            cache_write_tokens=10,
            input_includes_cache=False,
        )
    attrs = memory.get_finished_spans()[0].attributes or {}
    assert attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1110
    assert attrs[semconv.INPUT_INCLUDES_CACHE] is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("0.000450000"), "0.00045"),
        ("0.000000001", "0.000000001"),
        (" 12.5 ", "12.5"),
        (0.1, "0.1"),  # repr, not the binary expansion 0.1000000000000000055...
        (1e-7, "0.0000001"),
        (3, "3"),
        (Decimal("1E-9"), "0.000000001"),
        (Decimal("0"), "0"),
        (-1, None),
        ("abc", None),
        (float("inf"), None),
        (Decimal("NaN"), None),
        (True, None),
        (None, None),
    ],
)
def test_exact_cost(value: object, expected: str | None) -> None:
    assert exact_cost(value) == expected


def test_bad_usage_values_are_skipped_and_logged_once(
    memory: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tenantscope"):
        for _ in range(3):
            with tenantscope.span("bad", kind="llm") as s:
                s.record_usage(input_tokens=-5, output_tokens=7, cost_usd="free")
    attrs = memory.get_finished_spans()[0].attributes or {}
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in attrs
    assert semconv.GEN_AI_USAGE_COST not in attrs
    assert attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 7
    messages = [r.getMessage() for r in caplog.records]
    assert sum("input_tokens" in m for m in messages) == 1
    assert sum("cost_usd" in m for m in messages) == 1


def test_exception_marks_error_and_propagates(memory: InMemorySpanExporter) -> None:
    class QuotaExceeded(Exception):
        pass

    with pytest.raises(QuotaExceeded):
        with tenantscope.span("call", kind="tool") as s:
            s.set_success()  # the exception after it still wins
            raise QuotaExceeded("over quota")
    (span,) = memory.get_finished_spans()
    attrs = span.attributes or {}
    assert attrs[semconv.ERROR_TYPE] == "QuotaExceeded"
    assert attrs[semconv.STATUS] == "error"
    assert attrs[semconv.SPAN_KIND] == "tool"
    assert attrs[semconv.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert any(e.name == "exception" for e in span.events)


def test_set_error_from_message_and_exception(memory: InMemorySpanExporter) -> None:
    with tenantscope.span("a") as s:
        s.set_error("upstream said no")
    with tenantscope.span("b") as s:
        s.set_error(TimeoutError("slow"), error_type="timeout")
    spans = by_name(memory)
    a, b = spans["a"], spans["b"]
    assert a.status.status_code is StatusCode.ERROR
    assert a.status.description == "upstream said no"
    assert (a.attributes or {})[semconv.ERROR_TYPE] == "_OTHER"
    assert (b.attributes or {})[semconv.ERROR_TYPE] == "timeout"
    assert (b.attributes or {})[semconv.STATUS] == "error"
    # no kind attribute on a generic span: the server decides from its content
    assert semconv.SPAN_KIND not in (a.attributes or {})


def test_decorators_sync_and_async_nest(memory: InMemorySpanExporter) -> None:
    @tenantscope.span("inner", kind="llm")
    def inner() -> str:
        tenantscope.current_span().record_usage(input_tokens=1, output_tokens=2)
        return "ok"

    @tenantscope.span("outer", kind="workflow")
    async def outer() -> str:
        await asyncio.sleep(0)
        return inner()

    @tenantscope.span("fails")
    async def fails() -> None:
        raise ValueError("nope")

    assert asyncio.run(outer()) == "ok"
    with pytest.raises(ValueError):
        asyncio.run(fails())
    spans = by_name(memory)
    assert spans["inner"].parent is not None
    assert spans["inner"].parent.span_id == spans["outer"].context.span_id
    assert (spans["inner"].attributes or {})[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 2
    assert (spans["fails"].attributes or {})[semconv.ERROR_TYPE] == "ValueError"


def test_cancelled_task_marks_span_cancelled(memory: InMemorySpanExporter) -> None:
    async def main() -> None:
        async def slow() -> None:
            async with tenantscope.span("stream", kind="llm"):
                await asyncio.sleep(10)

        task = asyncio.create_task(slow())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    attrs = memory.get_finished_spans()[0].attributes or {}
    assert attrs[semconv.STATUS] == "cancelled"
    assert attrs[semconv.ERROR_TYPE] == "cancelled"


def test_handle_never_raises(memory: InMemorySpanExporter) -> None:
    with tenantscope.span("odd") as s:
        s.add_event("e", {"obj": object(), "dec": Decimal("1.5"), "list": [1, 2], "none": None})
        s.set_attribute("bad", {"a": 1})
        s.record_usage(units=float("nan"))
    (span,) = memory.get_finished_spans()
    (event,) = span.events
    assert (event.attributes or {})["dec"] == "1.5"
    assert tuple((event.attributes or {})["list"]) == ("1", "2")  # type: ignore[arg-type]
    assert len(s.trace_id) == 32 and len(s.span_id) == 16


def test_init_twice_does_not_duplicate() -> None:
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    tenantscope.init(span_processor=SimpleSpanProcessor(first))
    tenantscope.init(span_processor=SimpleSpanProcessor(second))
    with tenantscope.context(tenant_id="t"):
        with tenantscope.span("once"):
            pass
    assert first.get_finished_spans() == ()
    (span,) = second.get_finished_spans()
    assert (span.attributes or {})[semconv.TENANT_ID] == "t"
    tenantscope.shutdown()
    assert _runtime.current() == _runtime.Runtime()
    with tenantscope.span("after shutdown"):
        pass
    assert len(second.get_finished_spans()) == 1


def test_disabled_mode_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = InMemorySpanExporter()
    monkeypatch.setenv("TENANTSCOPE_DISABLED", "1")
    config = tenantscope.init(span_processor=SimpleSpanProcessor(exporter))
    assert config.disabled and not _runtime.current().enabled
    with tenantscope.context(tenant_id="t"):
        with tenantscope.span("nothing", kind="llm") as s:
            s.record_usage(input_tokens=1, cost_usd=1)
            s.add_event("e")
            s.set_success()
        trace.get_tracer("x").start_span("foreign").end()
    assert exporter.get_finished_spans() == ()
    assert tenantscope.flush(0.1) is True
    assert tenantscope.stats().queued == 0


def test_runtime_is_replaced_by_init() -> None:
    tenantscope.init(
        span_processor=SimpleSpanProcessor(InMemorySpanExporter()),
        capture_content=True,
        inject_stream_usage=True,
    )
    runtime = _runtime.current()
    assert runtime.enabled and runtime.capture_content and runtime.inject_stream_usage
    assert isinstance(runtime.tracer_provider, TracerProvider)
    assert runtime.tracer_provider is trace.get_tracer_provider()


def test_explicit_provider_keeps_app_exporters(memory: InMemorySpanExporter) -> None:
    apps = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(apps))
    ours = InMemorySpanExporter()
    tenantscope.init(
        tracer_provider=provider,
        span_processor=SimpleSpanProcessor(ours),
        environment="staging",
        service_name="svc",
    )
    assert _runtime.current().tracer_provider is provider
    with tenantscope.context(tenant_id="t"):
        provider.get_tracer("app").start_span("app span").end()
    (theirs,) = apps.get_finished_spans()
    (mine,) = ours.get_finished_spans()
    assert (theirs.attributes or {})[semconv.TENANT_ID] == "t"
    # the app's resource is not ours to change: what it lacks is stamped on spans
    assert (mine.attributes or {})[semconv.SERVICE_NAME] == "svc"
    assert (mine.attributes or {})[semconv.DEPLOYMENT_ENVIRONMENT] == "staging"


APP_OWNS_GLOBAL = """
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import tenantscope

app_exporter = InMemorySpanExporter()
provider = TracerProvider(resource=Resource.create({"service.name": "app"}))
provider.add_span_processor(SimpleSpanProcessor(app_exporter))
trace.set_tracer_provider(provider)

first, ours = InMemorySpanExporter(), InMemorySpanExporter()
tenantscope.init(span_processor=SimpleSpanProcessor(first), service_name="ignored-by-resource")
tenantscope.init(span_processor=SimpleSpanProcessor(ours))  # twice: still one switch
assert trace.get_tracer_provider() is provider
with tenantscope.context(tenant_id="t"):
    trace.get_tracer("app").start_span("app").end()
    with tenantscope.span("sdk"):
        pass
assert [s.name for s in app_exporter.get_finished_spans()] == ["app", "sdk"]
assert [s.name for s in ours.get_finished_spans()] == ["app", "sdk"]
assert all(s.resource.attributes["service.name"] == "app" for s in ours.get_finished_spans())
assert all(s.attributes["tenant.id"] == "t" for s in ours.get_finished_spans())
assert first.get_finished_spans() == ()
print("ok")
"""


def test_app_global_provider_is_extended_not_replaced() -> None:
    res = subprocess.run(
        [sys.executable, "-c", APP_OWNS_GLOBAL], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
    assert res.stderr == ""  # no print, no warning on stderr
