"""A process-wide default tenant (``init(tenant_id=)`` / ``TENANTSCOPE_TENANT_ID``): spans
started outside any tenant context get it; the context, and a tenant a span is started
with, win."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tenantscope
from tenantscope import semconv
from tenantscope.sdk._config import load_config
from tests.sdk.conftest import by_name


def tenant_of(exporter: InMemorySpanExporter, name: str) -> object:
    return (by_name(exporter)[name].attributes or {}).get(semconv.TENANT_ID)


def spans_in_and_out_of_context(exporter: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("some.other.instrumentation")
    with tenantscope.span("outside"):
        with tracer.start_as_current_span("foreign-child"):
            pass
    with tenantscope.context(tenant_id="apex-legal"):
        with tenantscope.span("in-context"):
            pass
        with tenantscope.context(tenant_id=""):  # cleared: back to the default
            with tenantscope.span("cleared"):
                pass
    with tenantscope.span("explicit", attributes={semconv.TENANT_ID: "mine"}):
        pass
    with tenantscope.span("netra-named", attributes={"netra.tenant_id": "theirs"}):
        pass
    # a thread starts with an empty context: the default is process-wide
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: tenantscope.span("in-thread").__enter__().span.end()).result()


def check(exporter: InMemorySpanExporter, default: str) -> None:
    assert tenant_of(exporter, "outside") == default
    assert tenant_of(exporter, "foreign-child") == default
    assert tenant_of(exporter, "in-context") == "apex-legal"
    assert tenant_of(exporter, "cleared") == default
    assert tenant_of(exporter, "explicit") == "mine"
    assert tenant_of(exporter, "netra-named") is None  # its own tenant name is kept
    assert tenant_of(exporter, "in-thread") == default
    assert tenantscope.get_context() == {}  # the default is not part of the context


def test_default_tenant_from_the_argument() -> None:
    exporter = InMemorySpanExporter()
    config = tenantscope.init(tenant_id="acme", span_processor=SimpleSpanProcessor(exporter))
    assert config.tenant_id == "acme"
    spans_in_and_out_of_context(exporter)
    check(exporter, "acme")


def test_default_tenant_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANTSCOPE_TENANT_ID", "globex")
    exporter = InMemorySpanExporter()
    tenantscope.init(span_processor=SimpleSpanProcessor(exporter))
    spans_in_and_out_of_context(exporter)
    check(exporter, "globex")


def test_argument_beats_environment_and_no_default_stamps_nothing(
    memory: InMemorySpanExporter,
) -> None:
    env = {"TENANTSCOPE_TENANT_ID": "from-env"}
    assert load_config({"tenant_id": "from-arg"}, env).tenant_id == "from-arg"
    assert load_config({}, env).tenant_id == "from-env"
    assert load_config({}, {}).tenant_id is None
    with tenantscope.span("no-default"):
        pass
    assert tenant_of(memory, "no-default") is None
