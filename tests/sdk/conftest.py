"""SDK test helpers: an SDK wired to an in-memory exporter, and a clean state per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tenantscope


@pytest.fixture(autouse=True)
def _sdk_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No TENANTSCOPE_*/OTEL_* leaking in from the machine (but a spool of the test's
    own: another test's spooled spans must never reach this one's collector); the SDK
    stopped afterwards."""
    import os

    for name in list(os.environ):
        if name.startswith(("TENANTSCOPE_", "OTEL_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TENANTSCOPE_SPOOL_DIR", str(tmp_path / "spool"))
    yield
    tenantscope.shutdown()


@pytest.fixture
def memory() -> Iterator[InMemorySpanExporter]:
    """The SDK initialised with every ended span kept in memory (a real exporter)."""
    exporter = InMemorySpanExporter()
    tenantscope.init(span_processor=SimpleSpanProcessor(exporter))
    yield exporter
    tenantscope.shutdown()


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {s.name: s for s in exporter.get_finished_spans()}
