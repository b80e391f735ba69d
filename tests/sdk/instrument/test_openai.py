"""OpenAI instrumentation: the real ``openai`` client against the fake provider."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import openai
import pytest
from openai.resources.chat.completions.completions import AsyncCompletions, Completions
from openai.resources.embeddings import Embeddings
from openai.resources.responses.responses import Responses
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import tenantscope
from tenantscope import semconv
from tenantscope.sdk._instrument._common import MAX_CONTENT_CHARS
from tenantscope.testing import FakeProvider
from tests.sdk.instrument._helpers import USAGE, attrs, only_span

MESSAGES: list[Any] = [{"role": "user", "content": "Summarise the meeting."}]
HEADERS = {"x-fake-usage": USAGE}


@pytest.fixture
def client(fake: FakeProvider) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=2)


@pytest.fixture
def aclient(fake: FakeProvider) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=2)


@pytest.fixture
def traced(provider: TracerProvider) -> None:
    tenantscope.instrument_openai(tracer_provider=provider)


def _chat_usage_attrs(a: dict[str, object]) -> None:
    assert a[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1000  # includes the 300 cached
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 200  # includes the 50 reasoning
    assert a[semconv.GEN_AI_USAGE_CACHE_READ] == 300
    assert a[semconv.GEN_AI_USAGE_REASONING] == 50
    assert a[semconv.INPUT_INCLUDES_CACHE] is True


@pytest.mark.usefixtures("traced")
def test_chat_completion_sync(client: openai.OpenAI, exporter: InMemorySpanExporter) -> None:
    result = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        max_tokens=300,
        temperature=0.3,
        extra_headers=HEADERS,
    )
    assert type(result).__name__ == "ChatCompletion"
    span = only_span(exporter)
    a = attrs(span)
    assert span.name == "chat gpt-4o-mini"
    assert span.kind == SpanKind.CLIENT
    assert span.status.status_code == StatusCode.UNSET
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "tenantscope.instrumentation.openai"
    assert a[semconv.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert a[semconv.SPAN_KIND] == "llm"
    assert a[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert a[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini-2024-07-18"
    assert a[semconv.GEN_AI_RESPONSE_ID] == result.id
    assert a["gen_ai.request.max_tokens"] == 300
    assert a["gen_ai.request.temperature"] == 0.3
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    _chat_usage_attrs(a)
    assert semconv.TTFT_MS not in a
    assert "gen_ai.input.messages" not in a  # content capture is off by default


@pytest.mark.usefixtures("traced")
def test_chat_completion_async(aclient: openai.AsyncOpenAI, exporter: InMemorySpanExporter) -> None:
    async def call() -> str:
        result = await aclient.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=HEADERS
        )
        return result.id

    response_id = asyncio.run(call())
    a = attrs(only_span(exporter))
    assert a[semconv.GEN_AI_RESPONSE_ID] == response_id
    _chat_usage_attrs(a)


@pytest.mark.usefixtures("traced")
def test_span_is_a_child_of_the_current_span(
    client: openai.OpenAI, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    with provider.get_tracer("app").start_as_current_span("handler") as parent:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    child = spans["chat gpt-4o-mini"]
    assert child.parent is not None
    assert child.parent.span_id == parent.get_span_context().span_id
    assert child.context is not None
    assert child.context.trace_id == parent.get_span_context().trace_id


@pytest.mark.usefixtures("traced")
def test_stream_with_usage_chunk(
    client: openai.OpenAI, exporter: InMemorySpanExporter, fake: FakeProvider
) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={**HEADERS, "x-fake-chunks": "5"},
    )
    assert isinstance(stream, openai.Stream)
    with stream:
        chunks = list(stream)
    # role chunk, 5 content chunks, finish chunk, usage chunk: exactly what the API sent
    assert len(chunks) == 8
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    span = only_span(exporter)
    a = attrs(span)
    _chat_usage_attrs(a)
    assert a[semconv.GEN_AI_RESPONSE_ID] == chunks[0].id
    assert a[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini-2024-07-18"
    ttft = a[semconv.TTFT_MS]
    assert isinstance(ttft, float) and 0 < ttft
    assert span.end_time is not None and span.start_time is not None
    assert ttft <= (span.end_time - span.start_time) / 1e6
    assert semconv.STATUS not in a
    assert span.status.status_code == StatusCode.UNSET


@pytest.mark.usefixtures("traced")
def test_stream_usage_is_not_injected_by_default(
    client: openai.OpenAI, exporter: InMemorySpanExporter, fake: FakeProvider
) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers={"x-fake-chunks": "3"}
    )
    chunks = list(stream)
    assert len(chunks) == 5  # no usage chunk: the app's stream is untouched
    assert "stream_options" not in fake.requests[-1].body
    a = attrs(only_span(exporter))
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in a  # unknown, not zero
    assert a[semconv.GEN_AI_RESPONSE_ID] == chunks[0].id


def test_stream_usage_injected_when_enabled(
    client: openai.OpenAI,
    exporter: InMemorySpanExporter,
    provider: TracerProvider,
    fake: FakeProvider,
) -> None:
    tenantscope.instrument_openai(tracer_provider=provider, inject_stream_usage=True)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=HEADERS
        )
    )
    assert fake.requests[-1].body["stream_options"] == {"include_usage": True}
    assert chunks[-1].usage is not None
    _chat_usage_attrs(attrs(only_span(exporter)))
    # an app that said no keeps its choice
    exporter.clear()
    list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": False},
        )
    )
    assert fake.requests[-1].body["stream_options"] == {"include_usage": False}


def test_inject_setting_follows_init(
    client: openai.OpenAI, exporter: InMemorySpanExporter, fake: FakeProvider
) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    tenantscope.init(span_processor=SimpleSpanProcessor(exporter), inject_stream_usage=True)
    tenantscope.instrument_openai()
    list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert fake.requests[-1].body["stream_options"] == {"include_usage": True}


@pytest.mark.usefixtures("traced")
def test_stream_closed_early_is_cancelled_with_usage_so_far(
    client: openai.OpenAI, exporter: InMemorySpanExporter
) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=HEADERS
    )
    first = next(iter(stream))
    stream.close()
    span = only_span(exporter)
    a = attrs(span)
    assert a[semconv.STATUS] == "cancelled"
    assert a[semconv.GEN_AI_RESPONSE_ID] == first.id  # what was seen so far
    assert span.status.status_code == StatusCode.UNSET


@pytest.mark.usefixtures("traced")
def test_stream_dropped_after_break_is_cancelled(
    client: openai.OpenAI, exporter: InMemorySpanExporter
) -> None:
    def read_two() -> None:
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        for i, _ in enumerate(stream):
            if i == 1:
                break

    read_two()
    gc.collect()
    assert attrs(only_span(exporter))[semconv.STATUS] == "cancelled"


@pytest.mark.usefixtures("traced")
def test_async_stream_and_early_close(
    aclient: openai.AsyncOpenAI, exporter: InMemorySpanExporter
) -> None:
    async def run() -> int:
        stream = await aclient.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=HEADERS,
        )
        assert isinstance(stream, openai.AsyncStream)
        n = 0
        async with stream:
            async for _ in stream:
                n += 1
        early = await aclient.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
        await early.__anext__()
        await early.close()
        return n

    assert asyncio.run(run()) > 3
    done, cancelled = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)
    _chat_usage_attrs(attrs(done))
    assert semconv.TTFT_MS in attrs(done)
    assert attrs(cancelled)[semconv.STATUS] == "cancelled"


@pytest.mark.usefixtures("traced")
def test_stream_helper(client: openai.OpenAI, exporter: InMemorySpanExporter) -> None:
    with client.chat.completions.stream(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream_options={"include_usage": True},
        extra_headers=HEADERS,
    ) as stream:
        final = stream.get_final_completion()
    a = attrs(only_span(exporter))
    assert a[semconv.GEN_AI_RESPONSE_ID] == final.id
    _chat_usage_attrs(a)


@pytest.mark.usefixtures("traced")
def test_stream_helper_left_early_is_cancelled(
    client: openai.OpenAI, exporter: InMemorySpanExporter
) -> None:
    with client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        for _ in stream:
            break
        assert exporter.get_finished_spans() == ()
    # ended when the helper closed, while ``stream`` is still referenced (not at collection)
    assert attrs(only_span(exporter))[semconv.STATUS] == "cancelled"
    assert stream is not None


@pytest.mark.usefixtures("traced")
def test_http_error(client: openai.OpenAI, exporter: InMemorySpanExporter) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-fake-behavior": "error-400"}
        )
    span = only_span(exporter)
    assert span.status.status_code == StatusCode.ERROR
    assert attrs(span)[semconv.ERROR_TYPE] == "400"
    assert [e.name for e in span.events] == ["exception"]


@pytest.mark.usefixtures("traced")
def test_rate_limited_after_retries_is_one_error_span(
    client: openai.OpenAI, exporter: InMemorySpanExporter, fake: FakeProvider
) -> None:
    before = len(fake.requests)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-fake-behavior": "error-429"}
        )
    assert len(fake.requests) - before == 3  # the first attempt and the client's two retries
    span = only_span(exporter)
    assert attrs(span)[semconv.ERROR_TYPE] == "429"
    assert span.status.status_code == StatusCode.ERROR


@pytest.mark.usefixtures("traced")
def test_rate_limit_then_success_is_one_ok_span(
    client: openai.OpenAI, exporter: InMemorySpanExporter
) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        extra_headers={**HEADERS, "x-fake-behavior": "rate-limit-once"},
    )
    span = only_span(exporter)
    assert span.status.status_code == StatusCode.UNSET
    _chat_usage_attrs(attrs(span))


@pytest.mark.usefixtures("traced")
def test_connection_error(exporter: InMemorySpanExporter) -> None:
    from tests.conftest import free_port

    dead = openai.OpenAI(base_url=f"http://127.0.0.1:{free_port()}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        dead.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert attrs(only_span(exporter))[semconv.ERROR_TYPE] == "APIConnectionError"


@pytest.mark.usefixtures("traced")
def test_error_mid_stream(client: openai.OpenAI, exporter: InMemorySpanExporter) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-fake-behavior": "stream-error"},
    )
    seen = []
    with pytest.raises(openai.APIError, match="The server had an error"):
        for chunk in stream:
            seen.append(chunk)
    assert len(seen) == 2
    span = only_span(exporter)
    assert span.status.status_code == StatusCode.ERROR
    assert attrs(span)[semconv.ERROR_TYPE] == "APIError"


@pytest.mark.usefixtures("traced")
def test_stream_cut_short_by_the_provider(
    client: openai.OpenAI, exporter: InMemorySpanExporter
) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            extra_headers={"x-fake-behavior": "stream-cut", "x-fake-chunks": "3"},
        )
    )
    assert len(chunks) == 4  # the app sees no error
    span = only_span(exporter)
    assert attrs(span)[semconv.ERROR_TYPE] == "stream_incomplete"
    assert span.status.status_code == StatusCode.ERROR


@pytest.mark.usefixtures("traced")
def test_responses_api(client: openai.OpenAI, exporter: InMemorySpanExporter) -> None:
    response = client.responses.create(model="gpt-4o-mini", input="Hello", extra_headers=HEADERS)
    a = attrs(only_span(exporter))
    assert a[semconv.GEN_AI_RESPONSE_ID] == response.id
    assert a[semconv.GEN_AI_OPERATION_NAME] == "chat"
    _chat_usage_attrs(a)
    exporter.clear()

    stream = client.responses.create(
        model="gpt-4o-mini", input="Hello", stream=True, extra_headers=HEADERS
    )
    events = list(stream)
    assert events[-1].type == "response.completed"
    a = attrs(only_span(exporter))
    assert a[semconv.GEN_AI_RESPONSE_ID] == events[0].response.id  # type: ignore[union-attr]
    assert semconv.TTFT_MS in a
    _chat_usage_attrs(a)


@pytest.mark.usefixtures("traced")
def test_responses_api_async_stream_closed_early(
    aclient: openai.AsyncOpenAI, exporter: InMemorySpanExporter
) -> None:
    async def run() -> None:
        stream = await aclient.responses.create(model="gpt-4o-mini", input="Hi", stream=True)
        async for event in stream:
            if event.type == "response.output_text.delta":
                break
        await stream.close()

    asyncio.run(run())
    a = attrs(only_span(exporter))
    assert a[semconv.STATUS] == "cancelled"
    assert str(a[semconv.GEN_AI_RESPONSE_ID]).startswith("resp_")


@pytest.mark.usefixtures("traced")
def test_embeddings_sync_and_async(
    client: openai.OpenAI, aclient: openai.AsyncOpenAI, exporter: InMemorySpanExporter
) -> None:
    result = client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], extra_headers={"x-fake-usage": "input=42"}
    )
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
    asyncio.run(aclient.embeddings.create(model="text-embedding-3-small", input="c"))
    first, second = exporter.get_finished_spans()
    assert first.name == "embeddings text-embedding-3-small"
    assert attrs(first)[semconv.GEN_AI_OPERATION_NAME] == "embeddings"
    assert attrs(first)[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 42
    assert isinstance(attrs(second)[semconv.GEN_AI_USAGE_INPUT_TOKENS], int)


@pytest.mark.usefixtures("traced")
def test_with_raw_response(client: openai.OpenAI, exporter: InMemorySpanExporter) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers=HEADERS
    )
    assert raw.http_response.status_code == 200
    completion = raw.parse()
    a = attrs(only_span(exporter))
    assert a[semconv.GEN_AI_RESPONSE_ID] == completion.id
    _chat_usage_attrs(a)


def test_content_capture(
    client: openai.OpenAI, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    tenantscope.instrument_openai(tracer_provider=provider, capture_content=True)
    long_prompt = "word " * 5000
    result = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": long_prompt}]
    )
    a = attrs(only_span(exporter))
    prompt = a["gen_ai.input.messages"]
    assert isinstance(prompt, str) and len(prompt) == MAX_CONTENT_CHARS and prompt.endswith("…")
    output = json.loads(str(a["gen_ai.output.messages"]))
    assert output[0]["parts"][0]["content"] == result.choices[0].message.content

    exporter.clear()
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    a = attrs(only_span(exporter))
    assert json.loads(str(a["gen_ai.input.messages"]))[0]["parts"][0]["content"] == "hi"
    assert json.loads(str(a["gen_ai.output.messages"]))[0]["parts"][0]["content"] == text


def test_uninstrument_restores_the_originals(provider: TracerProvider) -> None:
    from openai.lib.streaming.chat import ChatCompletionStream

    owners = (
        Completions,
        AsyncCompletions,
        Responses,
        Embeddings,
        openai.Stream,
        openai.AsyncStream,
        ChatCompletionStream,
    )
    names = ("create", "parse", "close")
    before = {(o, n): o.__dict__.get(n) for o in owners for n in names}
    tenantscope.instrument_openai(tracer_provider=provider)
    assert Completions.__dict__["create"] is not before[(Completions, "create")]
    tenantscope.instrument_openai(tracer_provider=provider)  # again: still one layer
    tenantscope.uninstrument_openai()
    assert {(o, n): o.__dict__.get(n) for o in owners for n in names} == before
    tenantscope.uninstrument_openai()  # no-op


def test_uninstrumented_calls_make_no_span(
    client: openai.OpenAI, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    tenantscope.instrument_openai(tracer_provider=provider)
    tenantscope.uninstrument_openai()
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert exporter.get_finished_spans() == ()


class _BrokenTracerProvider(TracerProvider):
    """A tracer provider whose tracers fail: the app's calls must not notice."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        raise RuntimeError("broken tracer provider")


def test_instrumentation_failures_never_reach_the_app(client: openai.OpenAI) -> None:
    tenantscope.instrument_openai(tracer_provider=_BrokenTracerProvider())
    result = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert result.choices[0].message.content
    assert (
        len(
            list(
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            )
        )
        > 2
    )


def test_runtime_tracer_and_tenant_context(
    client: openai.OpenAI, exporter: InMemorySpanExporter
) -> None:
    """Without an explicit provider the spans go where ``tenantscope.init`` sends them,
    stamped with the current tenant."""
    tenantscope.init(span_processor=SimpleSpanProcessor(exporter))
    tenantscope.instrument_openai()
    with tenantscope.context(tenant_id="apex-legal", user_id="u-1"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    a = attrs(only_span(exporter))
    assert a[semconv.TENANT_ID] == "apex-legal"
    assert a[semconv.USER_ID] == "u-1"


def test_disabled_sdk_makes_no_span(client: openai.OpenAI, exporter: InMemorySpanExporter) -> None:
    tenantscope.init(span_processor=SimpleSpanProcessor(exporter), disabled=True)
    tenantscope.instrument_openai()
    result = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert result.id
    assert exporter.get_finished_spans() == ()
