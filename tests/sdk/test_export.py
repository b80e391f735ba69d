"""Export: the wire format, retries, and a collector that is down or slow never hurting
the app (no exception, no blocking, bounded memory, drops counted and logged once)."""

from __future__ import annotations

import logging
import threading
import time

import pytest

import tenantscope
from tenantscope import semconv
from tests.conftest import free_port
from tests.sdk.collector import collector


def _fast(**given: object) -> dict[str, object]:
    return {"export_interval": 0.05, **given}


def test_wire_format_gzip_protobuf_with_bearer_key() -> None:
    with collector() as col:
        tenantscope.init(
            endpoint=col.url,
            api_key="ts_secret",
            headers={"X-Team": "ml"},
            service_name="meetingmind",
            environment="test",
            **_fast(),  # type: ignore[arg-type]
        )
        with tenantscope.context(tenant_id="apex-legal", user_id="u1"):
            with tenantscope.span("summarize", kind="llm") as s:
                s.record_usage(model="gpt-4o-mini", input_tokens=10, cost_usd="0.000001")
        assert tenantscope.flush(10) is True
    (got,) = col.received
    assert got.headers["Content-Type"] == "application/x-protobuf"
    assert got.headers["Content-Encoding"] == "gzip"
    assert got.headers["Authorization"] == "Bearer ts_secret"
    assert got.headers["X-Team"] == "ml"
    assert got.headers["User-Agent"].startswith("tenantscope-python/")
    ((name, attrs),) = got.spans()
    assert name == "summarize"
    assert attrs[semconv.TENANT_ID] == "apex-legal"
    assert attrs[semconv.GEN_AI_USAGE_COST] == "0.000001"
    resource_spans = got.request.resource_spans[0]
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    # the resource when this init created the provider; else stamped on the spans (an
    # earlier init in this process made the global provider, and a resource is fixed)
    for key, value in (("service.name", "meetingmind"), ("deployment.environment", "test")):
        assert resource.get(key) == value or attrs[key] == value
    assert tenantscope.stats().exported == 1


def test_transient_errors_are_retried_with_backoff() -> None:
    answers = {0: (503, {"Retry-After": "0"}, 0.0), 1: (429, {}, 0.0)}
    with collector(lambda n: answers.get(n, (200, {}, 0.0))) as col:
        tenantscope.init(endpoint=col.url, **_fast())  # type: ignore[arg-type]
        for i in range(5):
            with tenantscope.span(f"s{i}"):
                pass
        assert tenantscope.flush(20) is True
    assert col.attempts == 3
    assert sorted(col.span_names()) == [f"s{i}" for i in range(5)]
    stats = tenantscope.stats()
    assert stats.exported == 5 and stats.dropped == 0


def test_rejected_batch_is_not_retried_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with collector(lambda n: (400, {}, 0.0)) as col:
        tenantscope.init(endpoint=col.url, **_fast())  # type: ignore[arg-type]
        with caplog.at_level(logging.WARNING, logger="tenantscope"):
            for _ in range(3):
                with tenantscope.span("x"):
                    pass
                assert tenantscope.flush(10) is False
    assert col.attempts == 3  # one per batch, no retry of a 400
    stats = tenantscope.stats()
    assert stats.failed_exports == 3 and stats.dropped_export_failed == 3
    rejected = [r for r in caplog.records if "HTTP 400" in r.getMessage()]
    assert len(rejected) == 1


@pytest.mark.parametrize("spool", [True, False])
def test_a_refused_key_is_not_retried_and_keeps_spans_in_the_spool(
    caplog: pytest.LogCaptureFixture, spool: bool
) -> None:
    with collector(lambda n: (401, {}, 0.0)) as col:
        tenantscope.init(endpoint=col.url, spool=spool, **_fast())  # type: ignore[arg-type]
        with caplog.at_level(logging.WARNING, logger="tenantscope"):
            for _ in range(3):
                with tenantscope.span("x"):
                    pass
                assert tenantscope.flush(10) is False
    stats = tenantscope.stats()
    if spool:  # kept until a key is accepted (the spool's limits still apply)
        assert col.attempts == 1 and stats.spooled == 3 and stats.dropped == 0
    else:
        assert col.attempts == 3 and stats.dropped_export_failed == 3
    refused = [r for r in caplog.records if "refused the API key (HTTP 401" in r.getMessage()]
    assert len(refused) == 1


def test_collector_down_never_hurts_the_app(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens there
    tenantscope.init(
        endpoint=f"http://127.0.0.1:{port}",
        max_queue_size=100,
        max_export_batch_size=50,
        export_timeout=0.3,
        **_fast(),  # type: ignore[arg-type]
    )
    with caplog.at_level(logging.WARNING, logger="tenantscope"):
        with tenantscope.context(tenant_id="t"):
            for i in range(10_000):
                with tenantscope.span("work") as s:
                    s.record_usage(input_tokens=i, output_tokens=1)
        assert tenantscope.flush(0.2) is False  # returns, does not hang
    stats = tenantscope.stats()
    assert stats.queued == 10_000
    assert stats.exported == 0
    assert stats.dropped_queue_full > 0  # the queue stayed bounded
    full = [r for r in caplog.records if "queue is full" in r.getMessage()]
    assert len(full) == 1
    assert all(r.name == "tenantscope" for r in caplog.records)
    # shutting down with the collector still down returns too
    done = threading.Event()

    def stop() -> None:
        tenantscope.shutdown(0.2)
        done.set()

    threading.Thread(target=stop, daemon=True).start()
    assert done.wait(30)


@pytest.mark.parametrize("spool", [False, True])
def test_slow_collector_does_not_block(caplog: pytest.LogCaptureFixture, spool: bool) -> None:
    with collector(lambda n: (200, {}, 3.0)) as col:
        tenantscope.init(endpoint=col.url, export_timeout=0.3, spool=spool, **_fast())  # type: ignore[arg-type]
        with caplog.at_level(logging.WARNING, logger="tenantscope"):
            for _ in range(1000):
                with tenantscope.span("work"):
                    pass
            assert tenantscope.flush(0.2) is False
            assert tenantscope.flush(10) is False  # the batch timed out
        if spool:  # the last outcomes reach the export thread at its next round
            deadline = time.monotonic() + 10
            while tenantscope.stats().spooled < 1000 and time.monotonic() < deadline:
                time.sleep(0.05)
        stats = tenantscope.stats()
        if spool:  # kept on disk for later, not lost
            assert stats.spooled == 1000 and stats.dropped == 0
        else:
            assert stats.dropped_export_failed > 0
        assert sum("cannot export spans" in r.getMessage() for r in caplog.records) == 1
        tenantscope.shutdown(0.1)


def test_flush_before_init_and_after_shutdown() -> None:
    assert tenantscope.flush(0.1) is False
    tenantscope.init(endpoint=f"http://127.0.0.1:{free_port()}")
    tenantscope.shutdown(0.1)
    assert tenantscope.flush(0.1) is False
    with tenantscope.span("no sdk"):  # still fine: spans go to the default provider
        pass


def test_host_logging_configuration_is_untouched() -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    ours = logging.getLogger("tenantscope")
    tenantscope.init(endpoint=f"http://127.0.0.1:{free_port()}", export_timeout=0.1, **_fast())  # type: ignore[arg-type]
    with tenantscope.span("x"):
        pass
    tenantscope.flush(0.5)
    tenantscope.shutdown(0.1)
    assert (list(root.handlers), root.level) == before
    assert ours.handlers == [] and ours.level == logging.NOTSET and ours.propagate
