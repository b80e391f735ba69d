"""The real ``openai`` / ``anthropic`` clients against the local fake provider, traced into
the OTel SDK's real in-memory exporter through an explicitly passed TracerProvider."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tenantscope
from tenantscope.testing import FakeProvider


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider.running(retry_after_ms=1) as provider:
        yield provider


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp


@pytest.fixture(autouse=True)
def _uninstrumented() -> Iterator[None]:
    yield
    tenantscope.uninstrument_openai()
    tenantscope.uninstrument_anthropic()
