"""Decoders on hostile input either return or raise a TenantscopeError, never anything else."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenantscope.errors import TenantscopeError, ValidationFailed
from tenantscope.ingest.events import parse_events
from tenantscope.ingest.normalize import normalize_span
from tenantscope.ingest.otlp import DecodedTraces, decode_traces

from .test_otlp import PARENT_ID, START_NS, request, span, to_otlp_json

RECEIVED = datetime(2025, 1, 1, 0, 1, tzinfo=timezone.utc)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONTENT_TYPES = st.sampled_from(["application/x-protobuf", "application/json", "text/plain"])
ENCODINGS = st.sampled_from([None, "identity", "gzip", "deflate"])

_SEED = request(
    [
        span(
            parent_span_id=PARENT_ID,
            attributes={
                "tenant.id": "t",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.system": "anthropic",
                "gen_ai.usage.cost": "0.01",
                "list": [1, "a", {"k": 2.5}],
            },
            status_code=2,
            events=[("exception", START_NS, {"exception.type": "E"})],
        )
    ],
    resource={"service.name": "svc"},
)
SEED_PB = _SEED.SerializeToString()
SEED_JSON = json.dumps(to_otlp_json(_SEED)).encode()

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def _decode(body: bytes, content_type: str, encoding: str | None) -> None:
    try:
        result = decode_traces(body, content_type, encoding, max_bytes=1 << 16)
    except TenantscopeError:
        return
    assert isinstance(result, DecodedTraces)
    for raw in result.spans:
        try:
            normalize_span(raw, received_at=RECEIVED, infer_provider=lambda _: None)
        except ValidationFailed:
            pass


@FUZZ
@given(body=st.binary(max_size=512), content_type=CONTENT_TYPES, encoding=ENCODINGS)
def test_decode_traces_on_arbitrary_bytes(
    body: bytes, content_type: str, encoding: str | None
) -> None:
    _decode(body, content_type, encoding)


@FUZZ
@given(body=st.binary(max_size=512), content_type=CONTENT_TYPES)
def test_decode_traces_on_arbitrary_gzipped_bytes(body: bytes, content_type: str) -> None:
    _decode(gzip.compress(body), content_type, "gzip")


@FUZZ
@given(data=st.data(), json_body=st.booleans())
def test_decode_traces_on_mutated_valid_bodies(data: st.DataObject, json_body: bool) -> None:
    seed = bytearray(SEED_JSON if json_body else SEED_PB)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(seed) - 1))
        seed[position] = data.draw(st.integers(0, 255))
    content_type = "application/json" if json_body else "application/x-protobuf"
    _decode(bytes(seed), content_type, None)


def _otlp_json_span(value: Any, attributes: list[Any]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": attributes[:1]},
                "scopeSpans": [
                    {
                        "scope": {"name": "x"},
                        "spans": [
                            {
                                "traceId": "0af7651916cd43dd8448eb211c80319c",
                                "spanId": "b7ad6b7169203331",
                                "startTimeUnixNano": value,
                                "endTimeUnixNano": str(START_NS),
                                "attributes": attributes,
                                "status": value,
                                "events": [{"name": value, "attributes": attributes}],
                            }
                        ],
                    }
                ],
            }
        ]
    }


any_value = st.fixed_dictionaries(
    {},
    optional={
        "stringValue": json_values,
        "intValue": json_values,
        "doubleValue": json_values,
        "boolValue": json_values,
        "bytesValue": json_values,
        "arrayValue": st.fixed_dictionaries({"values": st.lists(json_values, max_size=3)}),
        "kvlistValue": json_values,
    },
)
attribute_names = st.sampled_from(
    [
        "tenant.id",
        "user.id",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.cost",
        "netra.usage",
        "gen_ai.system",
        "tenantscope.ttft_ms",
        "gen_ai.server.time_to_first_token",
        "tenantscope.event_id",
        "error.type",
        "x",
    ]
)


@FUZZ
@given(
    value=json_values,
    attributes=st.lists(
        st.fixed_dictionaries({"key": attribute_names, "value": any_value | json_values}),
        max_size=6,
    ),
)
def test_decode_traces_on_structured_json(value: Any, attributes: list[Any]) -> None:
    body = json.dumps(_otlp_json_span(value, attributes)).encode()
    _decode(body, "application/json", None)


@FUZZ
@given(
    attributes=st.dictionaries(attribute_names, json_values, max_size=6),
    status_code=st.integers(0, 3),
    start_offset=st.integers(-(2**62), 2**62),
)
def test_normalize_span_on_arbitrary_attribute_values(
    attributes: dict[str, Any], status_code: int, start_offset: int
) -> None:
    from tenantscope.ingest.spans import RawSpan

    start = max(1, START_NS + start_offset)
    raw = RawSpan(
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
        parent_span_id="",
        name="n",
        start_ns=start,
        end_ns=start + 10,
        attributes=attributes,
        status_code=status_code,
    )
    try:
        record = normalize_span(raw, received_at=RECEIVED)
    except ValidationFailed:
        return
    assert record.input_tokens >= record.cache_read_tokens + record.cache_write_tokens
    assert record.output_tokens >= record.reasoning_tokens


@FUZZ
@given(body=st.binary(max_size=512))
def test_parse_events_on_arbitrary_bytes(body: bytes) -> None:
    try:
        parse_events(body, received_at=RECEIVED)
    except TenantscopeError:
        pass


event_fields = st.sampled_from(
    [
        "event_id",
        "tenant_id",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cost_usd",
        "timestamp",
        "start_time",
        "end_time",
        "duration_ms",
        "ttft_ms",
        "status",
        "billable_state",
        "trace_id",
        "span_id",
        "attributes",
        "error_message",
        "unknown",
    ]
)


@settings(FUZZ, max_examples=300)
@given(
    body=st.lists(st.dictionaries(event_fields, json_values, max_size=8), max_size=5) | json_values
)
def test_parse_events_on_structured_json(body: Any) -> None:
    try:
        parsed = parse_events(json.dumps(body).encode(), received_at=RECEIVED)
    except TenantscopeError:
        return
    for record in parsed.records:
        json.dumps(record.attributes, allow_nan=False)
        assert record.input_tokens >= 0 and record.start_time.tzinfo is not None
