"""The tenant context: contextvars isolation per task and thread, stamped on every span."""

from __future__ import annotations

import asyncio
import random
import threading
from concurrent.futures import ThreadPoolExecutor

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tenantscope
from tenantscope import semconv
from tests.sdk.conftest import by_name


def test_context_manager_nests_and_restores() -> None:
    assert tenantscope.get_context() == {}
    with tenantscope.context(tenant_id="apex-legal", user_id="u1", feature="summary"):
        with tenantscope.context(session_id="s1", user_id="u2"):
            assert tenantscope.get_context() == {
                "tenant_id": "apex-legal",
                "user_id": "u2",
                "session_id": "s1",
                "feature": "summary",
            }
        assert tenantscope.get_context() == {
            "tenant_id": "apex-legal",
            "user_id": "u1",
            "feature": "summary",
        }
        with tenantscope.context(feature=""):  # "" clears, None keeps
            assert "feature" not in tenantscope.get_context()
    assert tenantscope.get_context() == {}


def test_context_is_restored_after_an_exception() -> None:
    try:
        with tenantscope.context(tenant_id="t"):
            raise RuntimeError("x")
    except RuntimeError:
        pass
    assert tenantscope.get_context() == {}


def test_setters_and_non_string_ids() -> None:
    def work() -> dict[str, str]:
        tenantscope.set_tenant_id("t1")
        tenantscope.set_user_id(42)  # type: ignore[arg-type]  # ints are common
        tenantscope.set_session_id("s")
        tenantscope.set_workspace_id("w")
        tenantscope.set_feature("f")
        tenantscope.set_session_id(None)
        return tenantscope.get_context()

    # a thread starts from an empty context and what it sets stays there
    with ThreadPoolExecutor(1) as pool:
        got = pool.submit(work).result()
    assert got == {"tenant_id": "t1", "user_id": "42", "workspace_id": "w", "feature": "f"}
    assert tenantscope.get_context() == {}


def test_decorator_on_sync_and_async_functions() -> None:
    @tenantscope.context(tenant_id="deco", feature="sync")
    def sync_work(x: int) -> tuple[int, dict[str, str]]:
        return x + 1, tenantscope.get_context()

    @tenantscope.context(tenant_id="deco", feature="async")
    async def async_work(x: int) -> tuple[int, dict[str, str]]:
        await asyncio.sleep(0)
        return x * 2, tenantscope.get_context()

    assert sync_work(1) == (2, {"tenant_id": "deco", "feature": "sync"})
    assert asyncio.run(async_work(3)) == (6, {"tenant_id": "deco", "feature": "async"})
    assert sync_work.__name__ == "sync_work" and async_work.__name__ == "async_work"
    assert tenantscope.get_context() == {}


def test_processor_stamps_every_span_inside(memory: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("some.other.instrumentation")
    with tenantscope.context(
        tenant_id="apex-legal",
        user_id="u1",
        session_id="s1",
        workspace_id="w1",
        feature="summary",
        billable_action="summarize",
    ):
        with tracer.start_as_current_span("foreign"):
            pass
        with tracer.start_as_current_span("explicit", attributes={semconv.TENANT_ID: "mine"}):
            pass
    with tracer.start_as_current_span("outside"):
        pass
    spans = by_name(memory)
    attrs = dict(spans["foreign"].attributes or {})
    assert attrs[semconv.TENANT_ID] == "apex-legal"
    assert attrs[semconv.USER_ID] == "u1"
    assert attrs[semconv.SESSION_ID] == "s1"
    assert attrs[semconv.WORKSPACE_ID] == "w1"
    assert attrs[semconv.FEATURE] == "summary"
    assert attrs[semconv.BILLABLE_ACTION] == "summarize"
    # an attribute the span was started with wins over the context
    assert (spans["explicit"].attributes or {})[semconv.TENANT_ID] == "mine"
    assert semconv.TENANT_ID not in (spans["outside"].attributes or {})


def test_customer_id_is_a_context_field_stamped_on_every_span(
    memory: InMemorySpanExporter,
) -> None:
    tracer = trace.get_tracer("some.other.instrumentation")
    with tenantscope.context(tenant_id="acme", customer_id="end-customer-1"):
        assert tenantscope.get_context() == {"tenant_id": "acme", "customer_id": "end-customer-1"}
        with tenantscope.span("mine"):
            with tracer.start_as_current_span("foreign"):
                pass
        tenantscope.set_customer_id("end-customer-2")
        with tenantscope.span("after-setter"):
            pass
        tenantscope.set_customer_id(None)
        assert tenantscope.get_context() == {"tenant_id": "acme"}
    assert tenantscope.get_context() == {}
    spans = by_name(memory)
    for name in ("mine", "foreign"):
        attrs = dict(spans[name].attributes or {})
        assert attrs[semconv.CUSTOMER_ID] == "end-customer-1"
        assert attrs[semconv.TENANT_ID] == "acme"
    assert (spans["after-setter"].attributes or {})[semconv.CUSTOMER_ID] == "end-customer-2"
    assert semconv.CUSTOMER_ID == "tenantscope.customer_id"


def test_many_asyncio_tasks_each_see_only_their_tenant(memory: InMemorySpanExporter) -> None:
    async def request(i: int) -> None:
        tenant = f"tenant-{i}"
        if i % 2:
            tenantscope.set_tenant_id(tenant)
            tenantscope.set_user_id(f"user-{i}")
            ctx = None
        else:
            ctx = tenantscope.context(tenant_id=tenant, user_id=f"user-{i}")
            ctx.__enter__()
        for step in range(3):
            # yield between spans so the tasks interleave
            await asyncio.sleep(random.random() / 1000)
            with tenantscope.span(f"{tenant}/{step}") as s:
                s.set_attribute("expected", tenant)
                await asyncio.sleep(0)
        if ctx is not None:
            ctx.__exit__(None, None, None)

    async def main() -> None:
        await asyncio.gather(*(request(i) for i in range(200)))

    asyncio.run(main())
    spans = memory.get_finished_spans()
    assert len(spans) == 600
    for s in spans:
        attrs = s.attributes or {}
        assert attrs[semconv.TENANT_ID] == attrs["expected"]
        assert attrs[semconv.USER_ID] == "user-" + str(attrs["expected"]).split("-")[1]
    assert tenantscope.get_context() == {}


def test_many_threads_each_see_only_their_tenant(memory: InMemorySpanExporter) -> None:
    barrier = threading.Barrier(16)

    def worker(i: int) -> None:
        barrier.wait()
        for n in range(50):
            # a pooled thread serves many requests: each one sets its own tenant
            tenant = f"t{i}-{n}"
            with tenantscope.context(tenant_id=tenant):
                with tenantscope.span("op") as s:
                    s.set_attribute("expected", tenant)
        tenantscope.set_tenant_id(f"leftover-{i}")  # stays in this thread only

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans = memory.get_finished_spans()
    assert len(spans) == 16 * 50
    assert all(
        (s.attributes or {})[semconv.TENANT_ID] == (s.attributes or {})["expected"] for s in spans
    )
    assert tenantscope.get_context() == {}


def test_child_tasks_inherit_but_do_not_leak_back() -> None:
    async def child() -> dict[str, str]:
        inherited = tenantscope.get_context()
        tenantscope.set_tenant_id("changed-in-child")
        return inherited

    async def parent() -> tuple[dict[str, str], dict[str, str]]:
        tenantscope.set_tenant_id("parent")
        inherited = await asyncio.create_task(child())
        return inherited, tenantscope.get_context()

    inherited, after = asyncio.run(parent())
    assert inherited == {"tenant_id": "parent"}
    assert after == {"tenant_id": "parent"}
