"""SDK limit enforcement end to end: the real ``openai`` / ``anthropic`` clients against the
local fake provider, the SDK asking a real tenantscope server (on a free port) whose
limits are configured through its API (``POST /api/limits``), and the records it stores."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider

import tenantscope
from tenantscope.testing import FakeProvider
from tests.conftest import RunningServer

MESSAGES: list[Any] = [{"role": "user", "content": "Summarise the meeting."}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider.running() as provider:
        yield provider


@pytest.fixture(autouse=True)
def _instrumented() -> Iterator[None]:
    tenantscope.instrument_all()
    yield
    tenantscope.uninstrument_openai()
    tenantscope.uninstrument_anthropic()


def start(server: RunningServer, **settings: Any) -> None:
    # our own provider: the server runs in this process and FastAPI traces its requests
    # with the global one (exporting those would feed back)
    settings.setdefault("api_key", server.admin_key)
    # no spool: a batch the loaded server answers late is retried, not spooled (flush()
    # says False for a batch that went through the spool meanwhile)
    settings.setdefault("spool", False)
    settings.setdefault("limits_timeout", 5.0)  # slow on a loaded machine is not an outage
    tenantscope.init(
        endpoint=server.url,
        export_interval=0.05,
        enforce_limits=True,
        tracer_provider=TracerProvider(),
        **settings,
    )


def add_limit(server: RunningServer, **fields: Any) -> dict[str, Any]:
    resp = server.client.post("/api/limits", json=fields)
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


def usage(server: RunningServer, tenant: str) -> dict[str, Any]:
    # generous: on a loaded 2-core machine the server may take a while to store them
    assert tenantscope.flush(timeout=60), tenantscope.stats()
    resp = server.client.get(f"/api/tenants/{tenant}/usage")
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def oai(fake: FakeProvider) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0)


def test_starter_tier_refuses_the_11th_call_while_enterprise_makes_60(
    server: RunningServer, fake: FakeProvider
) -> None:
    config = server.services.config
    config.set_tenant("techstart-inc", tier="starter")
    config.set_tenant("apex-legal", tier="enterprise")
    add_limit(server, name="starter rate", kind="rate", tier="starter", requests_per_minute=10)
    add_limit(
        server, name="enterprise rate", kind="rate", tier="enterprise", requests_per_minute=60
    )
    start(server)
    client = oai(fake)
    before = len(fake.requests)
    with tenantscope.context(tenant_id="techstart-inc"):
        for _ in range(10):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=50)
        with pytest.raises(tenantscope.TenantLimitExceeded) as info:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=50)
    with tenantscope.context(tenant_id="apex-legal"):
        for _ in range(60):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=50)
    exc = info.value
    assert exc.reason == "denied"
    assert exc.limit is not None and exc.limit["name"] == "starter rate"
    assert exc.limit["measure"] == "requests_per_minute"
    assert exc.remaining == "0"
    assert exc.retry_after is not None and 1 <= exc.retry_after <= 60
    assert "starter rate" in str(exc) and "retry in" in str(exc)
    assert len(fake.requests) - before == 70  # the refused call never reached the provider
    assert usage(server, "techstart-inc")["request_count"] == 10
    assert usage(server, "apex-legal")["request_count"] == 60
    stats = tenantscope.stats()
    assert (stats.limit_checks, stats.limit_denied, stats.limit_unreachable) == (71, 1, 0)


def test_a_stream_without_max_tokens_is_cut_at_the_budget(
    server: RunningServer, fake: FakeProvider
) -> None:
    # gpt-4o-mini output is $0.60 per 1M tokens: the first hold (the server's default of
    # 1,024 output tokens, ~$0.0006) fits in $0.001, a second step does not
    add_limit(server, name="acme monthly", kind="budget", tenant_id="acme", amount_usd="0.001")
    start(server)
    received = 0
    with tenantscope.context(tenant_id="acme"):
        stream = oai(fake).chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            extra_headers={"x-fake-chunks": "5000"},
        )
        with pytest.raises(tenantscope.TenantLimitExceeded) as info:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    received += 1
    assert info.value.reason == "cut"
    assert info.value.limit is not None and info.value.limit["name"] == "acme monthly"
    assert 1000 <= received < 5000
    assert tenantscope.stats().limit_streams_cut == 1

    assert tenantscope.flush(timeout=60), tenantscope.stats()
    traces = server.client.get("/api/traces", params={"tenant_id": "acme"}).json()["items"]
    (trace,) = traces
    detail = server.client.get(f"/api/traces/{trace['trace_id']}").json()
    (span,) = _flatten(detail["roots"])
    assert span["status"] == "cancelled"
    assert span["error_type"] == "tenant_limit_exceeded"
    assert span["output_tokens"] >= 1024  # the usage seen until the cut
    assert span["input_tokens"] > 0
    assert span["attributes"]["tenantscope.limit.cut"] is True
    assert "acme monthly" in span["error_message"]
    # the spend stays within the cap: the stream was stopped where its hold ended
    spent = Decimal(usage(server, "acme")["total_cost"])
    assert spent <= Decimal("0.001")


def _flatten(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for s in spans:
        out.append(s)
        out.extend(_flatten(s.get("children") or []))
    return out


def test_guard_check_settle_and_release(server: RunningServer) -> None:
    add_limit(server, name="guarded monthly", kind="budget", tenant_id="guarded", amount_usd="0.01")
    start(server)
    with tenantscope.guard(tenant_id="guarded", model="gpt-4o-mini", estimate="0.008") as g:
        assert g.reservation_id is not None and g.reservation_id.startswith("r_")
        g.settle(input_tokens=900, output_tokens=100, cost_usd="0.0042")
    assert g.settled is not None and g.settled["settled"] is True
    trace_id = g.settled["event_id"].split(":")[0]
    detail = server.client.get(f"/api/traces/{trace_id}").json()
    (span,) = detail["roots"]
    assert span["attributes"]["tenantscope.reservation_id"] == g.reservation_id
    # 0.0042 spent + 0.005 held fits in 0.01; nothing reported: released, nothing recorded
    with tenantscope.guard(tenant_id="guarded", estimate="0.005") as released:
        assert released.reservation_id is not None
    # fits only because the release dropped the previous hold
    with tenantscope.guard(tenant_id="guarded", estimate={"cost_usd": "0.005"}) as third:
        third.settle(input_tokens=10, output_tokens=5, cost_usd="0.001")
    with pytest.raises(tenantscope.TenantLimitExceeded) as info:
        with tenantscope.guard(tenant_id="guarded", estimate="0.005"):
            pytest.fail("a refused guard's block must not run")
    assert info.value.limit is not None and info.value.limit["name"] == "guarded monthly"
    got = usage(server, "guarded")
    assert got["request_count"] == 2
    assert Decimal(got["total_cost"]) == Decimal("0.0052")


def test_an_instrumented_call_in_a_guard_settles_the_guards_reservation(
    server: RunningServer, fake: FakeProvider
) -> None:
    add_limit(server, name="one call", kind="rate", tenant_id="inner", requests_per_minute=1)
    start(server)
    with tenantscope.context(tenant_id="inner"):
        with tenantscope.guard(estimate=5000):
            # no second check: it would be refused by a limit of one a minute
            oai(fake).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert tenantscope.stats().limit_checks == 1
    assert usage(server, "inner")["request_count"] == 1


def test_async_clients_against_the_server(server: RunningServer, fake: FakeProvider) -> None:
    add_limit(server, name="async rate", kind="rate", tenant_id="aio", requests_per_minute=3)
    start(server)
    aoai = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0)
    aclaude = anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="test", max_retries=0)

    async def main() -> list[object]:
        with tenantscope.context(tenant_id="aio"):
            calls = [
                aoai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
                aclaude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES),
                aoai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
                aclaude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES),
                aoai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
            ]
            return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(main())
    refused = [r for r in results if isinstance(r, tenantscope.TenantLimitExceeded)]
    assert len(refused) == 2
    assert not [r for r in results if isinstance(r, BaseException) and r not in refused]
    assert usage(server, "aio")["request_count"] == 3


def test_a_refused_key_follows_the_policy(
    server: RunningServer, fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    start(server, api_key="tsi_not_a_key")
    with caplog.at_level(logging.WARNING, logger="tenantscope"):
        with tenantscope.context(tenant_id="acme"):
            oai(fake).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert tenantscope.stats().limit_unreachable == 1
    assert any("refused the API key" in r.getMessage() for r in caplog.records)
    start(server, api_key="tsi_not_a_key", limits_policy="closed")
    with tenantscope.context(tenant_id="acme"):
        with pytest.raises(tenantscope.TenantLimitExceeded) as info:
            oai(fake).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.reason == "unreachable"


def test_a_tenant_bound_ingest_key_decides_the_tenant(
    server: RunningServer, fake: FakeProvider
) -> None:
    add_limit(server, name="bound rate", kind="rate", tenant_id="bound", requests_per_minute=1)
    start(server, api_key=server.key("ingest", tenant_id="bound"))
    client = oai(fake)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # no context
    with pytest.raises(tenantscope.TenantLimitExceeded):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
