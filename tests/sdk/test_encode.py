"""The fast OTLP encoder writes exactly what OpenTelemetry's ``encode_spans`` writes, and the
exporter falls back to ``encode_spans`` for what it does not handle."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

import tenantscope
from tenantscope.sdk import _export, _stats
from tenantscope.sdk._encode import Unsupported, encode_request

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_same_as_otel(spans: Sequence[ReadableSpan]) -> None:
    ours = encode_request(spans)
    theirs = encode_spans(spans)
    assert ExportTraceServiceRequest.FromString(ours) == theirs
    assert ours == theirs.SerializeToString()  # even the bytes (fields in number order)


# -- strategies ------------------------------------------------------------------------------
_INT64 = st.integers(-(2**63), 2**63 - 1)
_SCALARS: list[st.SearchStrategy[Any]] = [
    st.text(max_size=40),
    st.booleans(),
    _INT64 | st.integers(0, 127),  # also the small-int fast path
    st.floats(),  # nan, inf, -0.0 included
    st.binary(max_size=16),
]
_SCALAR = st.one_of(_SCALARS)
_ARRAY = st.one_of(
    [st.lists(s, max_size=5).map(tuple) for s in _SCALARS]  # homogeneous, as the SDK keeps them
    + [st.lists(_SCALAR | st.none(), max_size=4)]  # mixed, with None items, as a list
    + [st.lists(st.lists(st.integers(0, 300), max_size=3).map(tuple), max_size=2).map(tuple)]
)
_KEYS = st.text(max_size=20) | st.sampled_from(["tenant.id", "gen_ai.request.model", ""])
_ATTRIBUTES = st.dictionaries(_KEYS, _SCALAR | _ARRAY | st.none(), max_size=8)
_TIME = st.integers(0, 2**64 - 1)
_TRACE_STATES = st.sampled_from(
    [TraceState(), TraceState([("vendor", "v1")]), TraceState([("a", "1"), ("b@x", "y z")])]
)


@st.composite
def _bounded(draw: st.DrawFn) -> BoundedAttributes | dict[str, Any] | None:
    """Plain dicts, the SDK's BoundedAttributes (cleaned values, maybe dropped keys), None."""
    attributes = draw(_ATTRIBUTES)
    form = draw(st.sampled_from(["dict", "bounded", "none"]))
    if form == "dict":
        return attributes
    if form == "none":
        return None
    return BoundedAttributes(maxlen=draw(st.integers(0, 6)), attributes=attributes)


def _context(draw: st.DrawFn, *, remote: bool | None = None) -> SpanContext:
    return SpanContext(
        trace_id=draw(st.integers(0, 2**128 - 1)),
        span_id=draw(st.integers(0, 2**64 - 1)),
        is_remote=draw(st.booleans()) if remote is None else remote,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=draw(_TRACE_STATES),
    )


@st.composite
def _events(draw: st.DrawFn) -> Sequence[Event]:
    events = [
        Event(draw(st.text(max_size=20)), draw(_bounded()), timestamp=draw(_TIME))
        for _ in range(draw(st.integers(0, 3)))
    ]
    if draw(st.booleans()):
        bounded: BoundedList[Event] = BoundedList(draw(st.integers(0, 2)))
        bounded.extend(events)  # may drop some: dropped_events_count
        return bounded
    return events


@st.composite
def _status(draw: st.DrawFn) -> Status:
    code = draw(st.sampled_from(list(StatusCode)))
    description = draw(st.none() | st.text(max_size=30)) if code is StatusCode.ERROR else None
    return Status(code, description)


@st.composite
def _batches(draw: st.DrawFn) -> list[ReadableSpan]:
    resource_attributes = st.dictionaries(
        _KEYS, st.text(max_size=10) | st.integers(-5, 5) | st.booleans() | st.floats(), max_size=4
    )
    resources = [
        Resource(draw(resource_attributes), draw(st.sampled_from([None, "", "https://s/1"])))
        for _ in range(draw(st.integers(1, 3)))
    ]
    resources.append(Resource(dict(resources[0].attributes)))  # equal, not the same object
    scopes: list[InstrumentationScope | None] = [None]
    for _ in range(draw(st.integers(0, 3))):
        scopes.append(
            InstrumentationScope(
                draw(st.text(max_size=15)),
                draw(st.none() | st.text(max_size=8)),
                draw(st.none() | st.just("https://opentelemetry.io/schemas/1.26.0")),
                draw(st.none() | _ATTRIBUTES),
            )
        )
    if scopes[-1] is not None:  # equal, not the same object
        last = scopes[-1]
        scopes.append(
            InstrumentationScope(last.name, last.version, last.schema_url, last.attributes)
        )
    spans = []
    for _ in range(draw(st.integers(0, 6))):
        parent: SpanContext | None = None
        if draw(st.booleans()):
            parent = _context(draw)
        links = [Link(_context(draw), draw(st.none() | _ATTRIBUTES))]
        spans.append(
            ReadableSpan(
                name=draw(st.text(max_size=30)),
                context=_context(draw, remote=False),
                parent=parent,
                resource=draw(st.sampled_from(resources)),
                attributes=draw(_bounded()),
                events=draw(_events()),
                links=links[: draw(st.integers(0, 1))],
                kind=draw(st.sampled_from(list(SpanKind))),
                status=draw(_status()),
                start_time=draw(st.none() | _TIME),
                end_time=draw(st.none() | _TIME),
                instrumentation_scope=draw(st.sampled_from(scopes)),
            )
        )
    return spans


# -- the property ----------------------------------------------------------------------------
@FAST
@given(_batches())
def test_generated_batches_encode_exactly_as_opentelemetry(spans: list[ReadableSpan]) -> None:
    assert_same_as_otel(spans)


@FAST
@given(st.lists(_ATTRIBUTES, min_size=1, max_size=4))
def test_attribute_caches_never_change_a_later_batch(batches: list[dict[str, Any]]) -> None:
    # the same keys and values across batches hit the caches; a value equal in Python but
    # not on the wire (True == 1 == 1.0, ("1",) vs (1,)) must not reuse a cached encoding
    for attributes in batches:
        assert_same_as_otel([_span(attributes)])


def test_values_equal_in_python_keep_their_own_wire_types() -> None:
    for value in ("1", 1, True, 1.0, ("1",), (1,), (True,), (1.0,), ["1"], 0, False, 0.0, -0.0):
        assert_same_as_otel([_span({"a": value}), _span({"a": value, "b": value})])


@pytest.mark.parametrize("n", [0, 1, 120, 123, 124, 125, 126, 127, 128, 129, 16383, 16384])
def test_lengths_around_varint_boundaries(n: int) -> None:
    text = "x" * n
    assert_same_as_otel(
        [_span({text: text, "list": (text,), "nested": ((text,),), "int": n, "neg": -n})]
    )


def test_spans_from_the_sdk_encode_exactly_as_opentelemetry(memory: InMemorySpanExporter) -> None:
    with tenantscope.context(tenant_id="apex-légal", user_id="u1", session_id="s1"):
        with tenantscope.span("request") as outer:
            outer.set_attribute("tags", ["a", "b"])
            with tenantscope.span("summarize", kind="llm") as s:
                s.record_usage(
                    model="gpt-4o-mini", provider="openai", input_tokens=1200, output_tokens=3
                )
                s.add_event("sla-breach", {"ttft_ms": 812.5, "tier": "pro"})
        with pytest.raises(ValueError), tenantscope.span("failing"):
            raise ValueError("boom ✗")
    spans = memory.get_finished_spans()
    assert len(spans) == 3
    assert_same_as_otel(spans)


def test_instrumented_calls_encode_exactly_as_opentelemetry_with_the_context_once(
    memory: InMemorySpanExporter,
) -> None:
    # the instrumentation hands the tenant context to the span at its start when the span
    # goes to init's provider (the processor then has nothing to stamp); a provider the
    # SDK's processor is not attached to gets no context, as before
    import anthropic
    import openai
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from tenantscope.testing import FakeProvider

    messages: Any = [{"role": "user", "content": "hi"}]
    with FakeProvider.running() as fake:
        oai = openai.OpenAI(base_url=fake.openai_base_url, api_key="t", max_retries=0)
        claude = anthropic.Anthropic(base_url=fake.base_url, api_key="t", max_retries=0)
        try:
            tenantscope.instrument_all()
            with tenantscope.context(tenant_id="apex-legal", user_id="u1"):
                oai.chat.completions.create(model="gpt-4o-mini", messages=messages)
                claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=messages)
            spans = memory.get_finished_spans()
            assert len(spans) == 2
            for span in spans:
                assert span.attributes is not None
                assert span.attributes["tenant.id"] == "apex-legal"
                assert span.attributes["user.id"] == "u1"
                assert "gen_ai.usage.input_tokens" in span.attributes
            assert_same_as_otel(spans)

            other = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(other))
            tenantscope.instrument_openai(tracer_provider=provider)
            with tenantscope.context(tenant_id="apex-legal"):
                oai.chat.completions.create(model="gpt-4o-mini", messages=messages)
            (span,) = other.get_finished_spans()
            assert span.attributes is not None and "tenant.id" not in span.attributes
        finally:
            tenantscope.uninstrument_openai()
            tenantscope.uninstrument_anthropic()


# -- the fallback ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        {"nested": {"k": 1}},  # a mapping (kvlist_value)
        2**63,  # outside int64: OpenTelemetry drops the attribute
        -(2**63) - 1,
        "lone \ud800 surrogate",  # not UTF-8 encodable: dropped too
    ],
    ids=["mapping", "int-too-large", "int-too-small", "surrogate"],
)
def test_unsupported_values_fall_back_to_opentelemetry(value: Any) -> None:
    spans = [_span({"tenant.id": "t1", "v": value})]
    with pytest.raises((Unsupported, UnicodeError)):
        encode_request(spans)
    errors = _stats.internal.internal_errors
    body = _export._encode(spans)
    assert body == encode_spans(spans).SerializeToString()
    decoded = ExportTraceServiceRequest.FromString(body)
    keys = [a.key for a in decoded.resource_spans[0].scope_spans[0].spans[0].attributes]
    assert keys[0] == "tenant.id"
    assert _stats.internal.internal_errors == errors  # an expected case, not an error


def test_an_unexpected_encoder_failure_falls_back_and_is_counted_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a scope name given as bytes: protobuf accepts it for a string field, ours does not
    scope = InstrumentationScope(b"lib", "1.0")  # type: ignore[arg-type]
    spans = [_span({"a": 1}, scope=scope), _span({"b": "x"}, scope=scope)]
    errors = _stats.internal.internal_errors
    with caplog.at_level(logging.WARNING, logger="tenantscope"):
        for _ in range(2):
            assert _export._encode(spans) == encode_spans(spans).SerializeToString()
    assert _stats.internal.internal_errors == errors + 2
    logged = [r for r in caplog.records if "span encoder" in r.getMessage()]
    assert len(logged) <= 1  # once per process (an earlier test may have logged it)


def test_empty_batch() -> None:
    assert encode_request([]) == b"" == encode_spans([]).SerializeToString()


_RESOURCE = Resource({"service.name": "svc"})
_SCOPE = InstrumentationScope("tenantscope.test", "0.1")


def _span(attributes: dict[str, Any], scope: InstrumentationScope | None = _SCOPE) -> ReadableSpan:
    return ReadableSpan(
        name="s",
        context=SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(1)),
        resource=_RESOURCE,
        attributes=attributes,
        start_time=1,
        end_time=2,
        instrumentation_scope=scope,
    )
