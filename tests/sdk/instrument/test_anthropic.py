"""Anthropic instrumentation: the real ``anthropic`` client against the fake provider."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import pytest
from anthropic import _base_client
from anthropic.resources.messages.messages import AsyncMessages, Messages
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import tenantscope
from tenantscope import semconv
from tenantscope.testing import FakeProvider
from tests.sdk.instrument._helpers import USAGE, attrs, only_span

MODEL = "claude-haiku-4-5"
MESSAGES: list[Any] = [{"role": "user", "content": "Summarise the meeting."}]
HEADERS = {"x-fake-usage": USAGE}


@pytest.fixture
def client(fake: FakeProvider, provider: TracerProvider) -> anthropic.Anthropic:
    # the client's own spans go to the same provider, as they would in an app whose global
    # provider is tenantscope's
    return anthropic.Anthropic(
        base_url=fake.base_url,
        api_key="test",
        max_retries=2,
        open_telemetry={"tracer_provider": provider},
    )


@pytest.fixture
def aclient(fake: FakeProvider, provider: TracerProvider) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=fake.base_url,
        api_key="test",
        max_retries=2,
        open_telemetry={"tracer_provider": provider},
    )


@pytest.fixture
def traced(provider: TracerProvider) -> None:
    tenantscope.instrument_anthropic(tracer_provider=provider)


def _usage_attrs(a: dict[str, object]) -> None:
    # Anthropic sent input_tokens=600 (without cache): the span says 1000 and says so
    assert a[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1000
    assert a[semconv.INPUT_INCLUDES_CACHE] is True
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 200
    assert a[semconv.GEN_AI_USAGE_CACHE_READ] == 300
    assert a[semconv.GEN_AI_USAGE_CACHE_WRITE] == 100


@pytest.mark.usefixtures("traced")
def test_create_sync(client: anthropic.Anthropic, exporter: InMemorySpanExporter) -> None:
    message = client.messages.create(
        model=MODEL, max_tokens=256, messages=MESSAGES, extra_headers=HEADERS
    )
    assert message.usage.input_tokens == 600
    span = only_span(exporter)  # the client's own span for this call was skipped
    a = attrs(span)
    assert span.name == f"chat {MODEL}"
    assert span.kind == SpanKind.CLIENT
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "tenantscope.instrumentation.anthropic"
    assert a[semconv.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert a[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert a[semconv.SPAN_KIND] == "llm"
    assert a[semconv.GEN_AI_REQUEST_MODEL] == MODEL
    assert a[semconv.GEN_AI_RESPONSE_MODEL] == "claude-haiku-4-5-20251001"
    assert a[semconv.GEN_AI_RESPONSE_ID] == message.id
    assert a["gen_ai.request.max_tokens"] == 256
    assert a["gen_ai.response.finish_reasons"] == ("end_turn",)
    _usage_attrs(a)


def test_the_clients_own_span_without_instrumentation(
    client: anthropic.Anthropic, exporter: InMemorySpanExporter
) -> None:
    """What our instrumentation replaces: anthropic 2.x's own client span, whose input
    already includes the cache (so a test of the skip above can fail)."""
    client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, extra_headers=HEADERS)
    span = only_span(exporter)
    assert span.name == "anthropic.messages.create"
    assert attrs(span)[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1000


@pytest.mark.usefixtures("traced")
def test_create_async(aclient: anthropic.AsyncAnthropic, exporter: InMemorySpanExporter) -> None:
    async def call() -> str:
        message = await aclient.messages.create(
            model=MODEL, max_tokens=256, messages=MESSAGES, extra_headers=HEADERS
        )
        return message.id

    message_id = asyncio.run(call())
    a = attrs(only_span(exporter))
    assert a[semconv.GEN_AI_RESPONSE_ID] == message_id
    _usage_attrs(a)


@pytest.mark.usefixtures("traced")
def test_create_stream(client: anthropic.Anthropic, exporter: InMemorySpanExporter) -> None:
    stream = client.messages.create(
        model=MODEL,
        max_tokens=256,
        messages=MESSAGES,
        stream=True,
        extra_headers={**HEADERS, "x-fake-chunks": "4"},
    )
    assert isinstance(stream, anthropic.Stream)
    events = [e.type for e in stream]
    assert events == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 4,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    span = only_span(exporter)
    a = attrs(span)
    _usage_attrs(a)
    assert str(a[semconv.GEN_AI_RESPONSE_ID]).startswith("msg_")
    assert isinstance(a[semconv.TTFT_MS], float)
    assert span.status.status_code == StatusCode.UNSET


@pytest.mark.usefixtures("traced")
def test_stream_helper_sync(client: anthropic.Anthropic, exporter: InMemorySpanExporter) -> None:
    with client.messages.stream(
        model=MODEL, max_tokens=256, messages=MESSAGES, extra_headers=HEADERS
    ) as stream:
        text = stream.get_final_text()
        final = stream.get_final_message()
    assert text
    a = attrs(only_span(exporter))
    assert a[semconv.GEN_AI_RESPONSE_ID] == final.id
    _usage_attrs(a)


@pytest.mark.usefixtures("traced")
def test_stream_helper_left_early_is_cancelled(
    client: anthropic.Anthropic, exporter: InMemorySpanExporter
) -> None:
    with client.messages.stream(
        model=MODEL, max_tokens=256, messages=MESSAGES, extra_headers=HEADERS
    ) as stream:
        for _ in stream.text_stream:
            break
    a = attrs(only_span(exporter))
    assert a[semconv.STATUS] == "cancelled"
    # the usage seen so far: message_start's input side
    assert a[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1000
    assert a[semconv.GEN_AI_USAGE_CACHE_READ] == 300


@pytest.mark.usefixtures("traced")
def test_async_stream_helper_and_stream_create(
    aclient: anthropic.AsyncAnthropic, exporter: InMemorySpanExporter
) -> None:
    async def run() -> None:
        async with aclient.messages.stream(
            model=MODEL, max_tokens=256, messages=MESSAGES, extra_headers=HEADERS
        ) as stream:
            await stream.get_final_message()
        raw = await aclient.messages.create(
            model=MODEL, max_tokens=256, messages=MESSAGES, stream=True
        )
        await raw.__anext__()
        await raw.close()

    asyncio.run(run())
    done, cancelled = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)
    _usage_attrs(attrs(done))
    assert attrs(cancelled)[semconv.STATUS] == "cancelled"


@pytest.mark.usefixtures("traced")
def test_errors_and_rate_limits(
    client: anthropic.Anthropic, exporter: InMemorySpanExporter, fake: FakeProvider
) -> None:
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(
            model=MODEL,
            max_tokens=8,
            messages=MESSAGES,
            extra_headers={"x-fake-behavior": "error-400"},
        )
    before = len(fake.requests)
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(
            model=MODEL,
            max_tokens=8,
            messages=MESSAGES,
            extra_headers={"x-fake-behavior": "error-429"},
        )
    assert len(fake.requests) - before == 3
    client.messages.create(
        model=MODEL,
        max_tokens=8,
        messages=MESSAGES,
        extra_headers={"x-fake-behavior": "rate-limit-once"},
    )
    bad, limited, retried = exporter.get_finished_spans()
    assert attrs(bad)[semconv.ERROR_TYPE] == "400"
    assert attrs(limited)[semconv.ERROR_TYPE] == "429"
    assert limited.status.status_code == StatusCode.ERROR
    assert retried.status.status_code == StatusCode.UNSET


@pytest.mark.usefixtures("traced")
def test_error_event_mid_stream(
    client: anthropic.Anthropic, exporter: InMemorySpanExporter
) -> None:
    stream = client.messages.create(
        model=MODEL,
        max_tokens=8,
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-fake-behavior": "stream-error"},
    )
    with pytest.raises(anthropic.APIStatusError):
        list(stream)
    span = only_span(exporter)
    assert span.status.status_code == StatusCode.ERROR
    assert semconv.ERROR_TYPE in attrs(span)


def test_content_capture(
    client: anthropic.Anthropic, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    tenantscope.instrument_anthropic(tracer_provider=provider, capture_content=True)
    message = client.messages.create(
        model=MODEL, max_tokens=64, system="Be brief.", messages=MESSAGES
    )
    a = attrs(only_span(exporter))
    assert a["gen_ai.system_instructions"] == "Be brief."
    assert json.loads(str(a["gen_ai.input.messages"]))[0]["parts"][0]["content"] == (
        "Summarise the meeting."
    )
    output = json.loads(str(a["gen_ai.output.messages"]))[0]
    assert output["parts"][0]["content"] == message.content[0].text  # type: ignore[union-attr]


def test_uninstrument_restores_the_originals(provider: TracerProvider) -> None:
    owners = (Messages, AsyncMessages, anthropic.Stream, _base_client.BaseClient)
    names = ("create", "parse", "stream", "close", "_tracer")
    before = {(o, n): o.__dict__.get(n) for o in owners for n in names}
    tenantscope.instrument_anthropic(tracer_provider=provider)
    assert Messages.__dict__["create"] is not before[(Messages, "create")]
    tenantscope.uninstrument_anthropic()
    assert {(o, n): o.__dict__.get(n) for o in owners for n in names} == before


def test_instrument_all_names_the_installed_libraries(provider: TracerProvider) -> None:
    assert tenantscope.instrument_all(tracer_provider=provider) == ["openai", "anthropic"]
