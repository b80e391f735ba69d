"""End to end: instrumented ``openai`` / ``anthropic`` calls made inside a tenant context,
exported over OTLP by the SDK to a real tenantscope server, counted once with exact
tokens and cost."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import openai
from opentelemetry.sdk.trace import TracerProvider

import tenantscope
from tenantscope.testing import FakeProvider
from tests.conftest import RunningServer

MESSAGES: list[Any] = [{"role": "user", "content": "Summarise the meeting."}]
OPENAI_USAGE = {"x-fake-usage": "input=1000,output=200,cache_read=300,reasoning=50"}
ANTHROPIC_USAGE = {"x-fake-usage": "input=1000,output=200,cache_read=300,cache_write=100"}

# gpt-4o-mini: 700 uncached x 0.15 + 300 cached x 0.075 + 200 output x 0.60 (per 1M)
GPT_4O_MINI_CALL = Decimal("0.000105") + Decimal("0.0000225") + Decimal("0.00012")
# claude-haiku-4-5: 600 uncached x 1 + 300 cache read x 0.10 + 100 cache write x 1.25
#                   + 200 output x 5 (per 1M)
HAIKU_CALL = Decimal("0.0006") + Decimal("0.00003") + Decimal("0.000125") + Decimal("0.001")


def test_calls_in_a_tenant_context_are_counted_once_with_exact_cost(
    server: RunningServer, fake: FakeProvider
) -> None:
    # Our own provider, not the global one: the server runs in this process and FastAPI
    # traces its requests with the global provider (exporting those would feed back).
    provider = TracerProvider()
    tenantscope.init(
        endpoint=server.url,
        api_key=server.admin_key,
        service_name="meetingmind",
        export_interval=0.05,
        tracer_provider=provider,
    )
    assert tenantscope.instrument_all() == ["openai", "anthropic"]
    oai = openai.OpenAI(base_url=fake.openai_base_url, api_key="test")
    # anthropic's own spans go to the provider tenantscope exports from (as they do when it
    # is the global provider): they must not count a second time
    claude = anthropic.Anthropic(
        base_url=fake.base_url,
        api_key="test",
        open_telemetry={"tracer_provider": provider},
    )

    with tenantscope.context(tenant_id="apex-legal", session_id="meeting-1"):
        oai.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=OPENAI_USAGE
        )
        list(
            oai.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
                extra_headers=OPENAI_USAGE,
            )
        )
        claude.messages.create(
            model="claude-haiku-4-5",
            max_tokens=256,
            messages=MESSAGES,
            extra_headers=ANTHROPIC_USAGE,
        )
        with claude.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=256,
            messages=MESSAGES,
            extra_headers=ANTHROPIC_USAGE,
        ) as stream:
            stream.until_done()
        # the seeds' pattern: usage recorded by hand on a wrapper around an auto-traced call
        with tenantscope.span("meeting-summarization") as wrapper:
            oai.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_headers=OPENAI_USAGE
            )
            wrapper.record_usage(
                model="gpt-4o-mini", input_tokens=1000, output_tokens=200, cost_usd="0.25"
            )
    with tenantscope.context(tenant_id="techstart-inc"):
        oai.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=OPENAI_USAGE
        )
    assert tenantscope.flush(timeout=10)

    usage = tenantscope.usage.get_tenant_usage(
        "apex-legal", endpoint=server.url, api_key=server.admin_key
    )
    assert usage.request_count == 5
    assert usage.token_count == 5 * 1200
    assert usage.session_count == 1
    assert usage.total_cost == 3 * GPT_4O_MINI_CALL + 2 * HAIKU_CALL

    other = server.client.get("/api/tenants/techstart-inc/usage").json()
    assert other["request_count"] == 1
    assert Decimal(other["total_cost"]) == GPT_4O_MINI_CALL
