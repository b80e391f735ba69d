"""End to end against a real tenantscope server: spans exported by the SDK come back
through ``tenantscope.usage`` with exact tokens and cost, counted once."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from opentelemetry import trace

import tenantscope
from tenantscope import semconv
from tenantscope.usage import TenantUsage, UsageQueryError, get_tenant_usage, list_traces
from tests.conftest import RunningServer, free_port

NOW = datetime.now(timezone.utc)
# collected at import, used minutes later in a long run: the range reaches well past it
START, END = NOW - timedelta(hours=1), NOW + timedelta(days=1)


@pytest.fixture
def sdk(server: RunningServer) -> Iterator[RunningServer]:
    """The SDK exporting to the real server; stopped before the server is."""
    tenantscope.init(
        endpoint=server.url, api_key=server.admin_key, export_interval=0.05, service_name="e2e"
    )
    yield server
    tenantscope.shutdown()


def test_usage_of_a_tenant_is_exact(sdk: RunningServer) -> None:
    with tenantscope.context(tenant_id="apex-legal", session_id="s1", user_id="u1"):
        for cost in ("0.000450000", "0.000000001"):
            with tenantscope.span("summarize", kind="llm") as s:
                s.record_usage(
                    model="gpt-4o-mini",
                    provider="openai",
                    input_tokens=1200,
                    output_tokens=300,
                    cost_usd=Decimal(cost),
                )
    with tenantscope.context(tenant_id="apex-legal", session_id="s2"):
        with tenantscope.span("float cost", kind="llm") as s:
            s.record_usage(model="gpt-4o-mini", input_tokens=1, output_tokens=1, cost_usd=0.1)
    with tenantscope.context(tenant_id="other"):
        with tenantscope.span("not apex", kind="llm") as s:
            s.record_usage(model="gpt-4o-mini", input_tokens=5, output_tokens=5, cost_usd=7)
    assert tenantscope.flush(20) is True

    usage = tenantscope.usage.get_tenant_usage("apex-legal", START, END)
    assert usage == TenantUsage(
        tenant_id="apex-legal",
        token_count=2 * 1500 + 2,
        request_count=3,
        session_count=2,
        total_cost=Decimal("0.100450001"),
        start=usage.start,
        end=usage.end,
    )
    assert isinstance(usage.total_cost, Decimal)
    # string and epoch-second times work too; a tenant without usage gets zeros
    same = get_tenant_usage("apex-legal", START.isoformat(), END.timestamp())
    assert same.total_cost == usage.total_cost
    nobody = get_tenant_usage("nobody", START, END)
    assert (nobody.token_count, nobody.request_count, nobody.total_cost) == (0, 0, Decimal(0))


def test_wrapper_with_usage_around_an_instrumented_call_counts_once(
    sdk: RunningServer,
) -> None:
    instrumented = trace.get_tracer("opentelemetry.instrumentation.openai")
    with tenantscope.context(tenant_id="cookbook"):
        # the seeds' cookbook: set_usage on a wrapper around an auto-traced OpenAI call
        with tenantscope.span("meeting-summarization", kind="workflow") as wrapper:
            with instrumented.start_as_current_span("chat gpt-4o-mini") as child:
                child.set_attributes(
                    {
                        semconv.GEN_AI_OPERATION_NAME: "chat",
                        semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                        semconv.GEN_AI_USAGE_INPUT_TOKENS: 100,
                        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 20,
                        semconv.GEN_AI_USAGE_COST: "0.002",
                    }
                )
            wrapper.record_usage(
                model="gpt-4o-mini", input_tokens=100, output_tokens=20, cost_usd="0.5"
            )
    assert tenantscope.flush(20) is True
    usage = get_tenant_usage("cookbook", START, END)
    assert usage.total_cost == Decimal("0.002")
    assert usage.token_count == 120
    assert usage.request_count == 1


def test_list_traces_pages_with_typed_rows(sdk: RunningServer) -> None:
    for i in range(3):
        with tenantscope.context(tenant_id="pager", user_id=f"u{i}", session_id="sess"):
            with tenantscope.span(f"request {i}", kind="llm") as s:
                s.record_usage(
                    model="gpt-4o-mini", input_tokens=i + 1, output_tokens=1, cost_usd="0.01"
                )
    assert tenantscope.flush(20) is True

    first = list_traces("pager", start_time=START, end_time=END, limit=2)
    assert len(first) == 2 and first.next_cursor
    rest = list_traces(
        tenant_id="pager", start_time=START, end_time=END, limit=2, cursor=first.next_cursor
    )
    assert len(rest) == 1 and rest.next_cursor is None
    rows = [*first, *rest]
    assert {r.name for r in rows} == {"request 0", "request 1", "request 2"}
    assert all(r.tenant_id == "pager" and r.cost_usd == Decimal("0.01") for r in rows)
    assert all(r.requests == 1 and r.models == ("gpt-4o-mini",) for r in rows)
    assert {r.user_id for r in list_traces(user_id="u1", start_time=START, end_time=END)} == {"u1"}


def test_hostile_tenant_ids_travel_safely(sdk: RunningServer) -> None:
    tenant = "acme/eu west?x=1#frag"
    with tenantscope.context(tenant_id=tenant):
        with tenantscope.span("x", kind="llm") as s:
            s.record_usage(input_tokens=3, output_tokens=4, cost_usd="0.3")
    assert tenantscope.flush(20) is True
    usage = get_tenant_usage(tenant, START, END)
    assert usage.tenant_id == tenant and usage.token_count == 7


def test_server_errors_become_a_clear_exception(server: RunningServer) -> None:
    with pytest.raises(UsageQueryError) as info:
        get_tenant_usage("t", "yesterday", END, endpoint=server.url, api_key=server.admin_key)
    assert info.value.status == 400 and info.value.code == "bad_request"
    assert "from" in info.value.message
    with pytest.raises(UsageQueryError) as info:
        list_traces(limit=0, endpoint=server.url, api_key=server.admin_key)
    assert 400 <= info.value.status < 500
    with pytest.raises(UsageQueryError) as info:
        get_tenant_usage("t", endpoint=f"http://127.0.0.1:{free_port()}", timeout=2)
    assert info.value.status == 0 and info.value.code == "unreachable"


def test_endpoint_and_key_from_environment(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENANTSCOPE_ENDPOINT", server.url)
    monkeypatch.setenv("TENANTSCOPE_API_KEY", server.admin_key)
    assert get_tenant_usage("nobody").request_count == 0
    monkeypatch.setenv("TENANTSCOPE_API_KEY", "tsr_0000_not-a-key")
    with pytest.raises(UsageQueryError) as info:
        get_tenant_usage("nobody")
    assert info.value.status == 401


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_worker_exports_its_spans(sdk: RunningServer) -> None:
    with tenantscope.context(tenant_id="parent"):
        with tenantscope.span("before fork", kind="llm") as s:
            s.record_usage(input_tokens=1, output_tokens=1, cost_usd="1")
    pid = os.fork()
    if pid == 0:  # the child: a gunicorn/uvicorn worker would be here
        code = 1
        try:
            with tenantscope.context(tenant_id="forked-child"):
                for _ in range(3):
                    with tenantscope.span("in child", kind="llm") as s:
                        s.record_usage(input_tokens=10, output_tokens=5, cost_usd="0.25")
            code = 0 if tenantscope.flush(20) else 2
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert tenantscope.flush(20) is True
    child = get_tenant_usage("forked-child", START, END)
    assert (child.request_count, child.token_count, child.total_cost) == (3, 45, Decimal("0.75"))
    parent = get_tenant_usage("parent", START, END)
    assert parent.request_count == 1  # the parent's queued span was not re-sent by the child
