"""OTLP decoding; also holds the builders of real OTLP bodies the other ingest tests use."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status as SdkStatus
from opentelemetry.trace import StatusCode

from tenantscope.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from tenantscope.ingest.otlp import MAX_ERRORS, DecodedTraces, decode_traces, decompress_body

# --- builders for real OTLP bodies (also used by the other ingest tests) ----------------

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
SPAN_ID = bytes.fromhex("b7ad6b7169203331")
PARENT_ID = bytes.fromhex("00f067aa0ba902b7")
START_NS = 1_735_689_600_000_000_000  # 2025-01-01T00:00:00Z
END_NS = START_NS + 1_500_000_000


def any_value(value: Any) -> AnyValue:
    if value is None:
        return AnyValue()
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=key_values(value)))
    raise TypeError(value)


def key_values(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


def span(
    *,
    trace_id: bytes = TRACE_ID,
    span_id: bytes = SPAN_ID,
    parent_span_id: bytes = b"",
    name: str = "chat gpt-4o",
    start_ns: int = START_NS,
    end_ns: int = END_NS,
    attributes: dict[str, Any] | None = None,
    status_code: int = 0,
    status_message: str = "",
    events: list[tuple[str, int, dict[str, Any]]] = (),  # type: ignore[assignment]
) -> Span:
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        name=name,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=end_ns,
        attributes=key_values(attributes or {}),
        status=Status(code=status_code, message=status_message),  # type: ignore[arg-type]
        events=[
            Span.Event(name=n, time_unix_nano=t, attributes=key_values(a)) for n, t, a in events
        ],
    )


def request(
    spans: list[Span],
    *,
    resource: dict[str, Any] | None = None,
    scope: str = "tests",
) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=key_values(resource or {})),
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name=scope), spans=spans)],
            )
        ]
    )


def to_otlp_json(message: ExportTraceServiceRequest) -> dict[str, Any]:
    """OTLP/JSON per the spec: protobuf JSON mapping with hex ids and integer enums."""
    document: dict[str, Any] = json_format.MessageToDict(message, use_integers_for_enums=True)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for item in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in item:
                        item[key] = base64.b64decode(item[key]).hex()
    return document


PB = "application/x-protobuf"
JS = "application/json"
MAX = 1 << 20


def _pb(message: Any, **kwargs: Any) -> DecodedTraces:
    return decode_traces(message.SerializeToString(), PB, None, max_bytes=MAX, **kwargs)


def _js(document: Any) -> DecodedTraces:
    return decode_traces(json.dumps(document).encode(), JS, None, max_bytes=MAX)


RICH_ATTRIBUTES: dict[str, Any] = {
    "s": "text",
    "i": -42,
    "f": 1.25,
    "b": True,
    "list": ["a", 1, 2.5, False],
    "kv": {"inner": {"deep": 1}, "x": "y"},
    "bytes": b"\x01\xab",
    "empty": None,
}


def _rich_request() -> Any:
    return request(
        [
            span(
                parent_span_id=PARENT_ID,
                attributes=RICH_ATTRIBUTES,
                status_code=2,
                status_message="boom",
                events=[("exception", START_NS + 5, {"exception.type": "RateLimitError"})],
            )
        ],
        resource={"service.name": "api", "deployment.environment": "prod"},
        scope="opentelemetry.instrumentation.openai",
    )


def test_protobuf_span_is_decoded_field_by_field() -> None:
    decoded = _pb(_rich_request())
    assert decoded.rejected == 0 and decoded.errors == []
    [raw] = decoded.spans
    assert raw.trace_id == TRACE_ID.hex()
    assert raw.span_id == SPAN_ID.hex()
    assert raw.parent_span_id == PARENT_ID.hex()
    assert raw.name == "chat gpt-4o"
    assert (raw.start_ns, raw.end_ns) == (START_NS, END_NS)
    assert raw.attributes == {
        "s": "text",
        "i": -42,
        "f": 1.25,
        "b": True,
        "list": ["a", 1, 2.5, False],
        "kv": {"inner": {"deep": 1}, "x": "y"},
        "bytes": "01ab",
        "empty": None,
    }
    assert raw.resource == {"service.name": "api", "deployment.environment": "prod"}
    assert raw.scope_name == "opentelemetry.instrumentation.openai"
    assert (raw.status_code, raw.status_message) == (2, "boom")
    assert raw.events == [
        {
            "name": "exception",
            "time_ns": START_NS + 5,
            "attributes": {"exception.type": "RateLimitError"},
        }
    ]


def test_otlp_json_with_hex_ids_decodes_like_protobuf() -> None:
    message = _rich_request()
    document = to_otlp_json(message)
    # the spec's JSON: int64 as strings, enums as integers, ids as hex
    raw_span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert raw_span["traceId"] == TRACE_ID.hex() and raw_span["status"]["code"] == 2
    assert _js(document) == _pb(message)


def test_json_accepts_int64_as_numbers_and_uppercase_hex() -> None:
    document = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "w"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "s"},
                        "spans": [
                            {
                                "traceId": TRACE_ID.hex().upper(),
                                "spanId": SPAN_ID.hex(),
                                "parentSpanId": "",
                                "name": "n",
                                "startTimeUnixNano": START_NS,
                                "endTimeUnixNano": str(END_NS),
                                "attributes": [
                                    {"key": "n", "value": {"intValue": 7}},
                                    {"key": "d", "value": {"doubleValue": "NaN"}},
                                    {"key": "e", "value": {}},
                                ],
                                "status": {"code": "STATUS_CODE_ERROR", "message": "m"},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    [raw] = _js(document).spans
    assert raw.trace_id == TRACE_ID.hex()
    assert raw.parent_span_id == ""
    assert raw.attributes == {"n": 7, "d": "NaN", "e": None}
    assert (raw.start_ns, raw.end_ns, raw.status_code) == (START_NS, END_NS, 2)
    assert raw.resource == {"service.name": "w"}


def test_spans_from_the_real_sdk_exporter_encoding() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=SdkResource.create({"service.name": "meetings"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = provider.get_tracer("app")
    llm = provider.get_tracer("opentelemetry.instrumentation.openai", "0.1")
    with app.start_as_current_span("summarize") as wrapper:
        wrapper.set_attribute("tenant.id", "apex-legal")
        with llm.start_as_current_span("chat gpt-4o-mini") as call:
            call.set_attribute("gen_ai.usage.input_tokens", 1200)
            call.set_attribute("gen_ai.response.model", "gpt-4o-mini")
            call.set_attribute("tags", ["a", "b"])
            call.add_event("first-token", {"at": 0.3})
            call.set_status(SdkStatus(StatusCode.ERROR, "rate limited"))
    finished = exporter.get_finished_spans()
    body = encode_spans(finished).SerializeToString()

    decoded = decode_traces(body, "application/x-protobuf", "identity", max_bytes=MAX)
    assert decoded.rejected == 0
    by_name = {s.name: s for s in decoded.spans}
    root, child = by_name["summarize"], by_name["chat gpt-4o-mini"]
    assert root.parent_span_id == ""
    assert child.parent_span_id == root.span_id
    assert child.trace_id == root.trace_id == format(finished[0].context.trace_id, "032x")
    assert child.scope_name == "opentelemetry.instrumentation.openai"
    assert root.scope_name == "app"
    assert child.resource["service.name"] == "meetings"
    assert child.attributes["tags"] == ["a", "b"]
    assert child.status_code == 2 and child.status_message == "rate limited"
    assert child.events[0]["name"] == "first-token"
    assert child.events[0]["attributes"] == {"at": 0.3}
    assert root.attributes == {"tenant.id": "apex-legal"}


@pytest.mark.parametrize(
    "content_type",
    ["application/x-protobuf", "Application/X-Protobuf", "application/x-protobuf; proto=x"],
)
def test_protobuf_content_type_variants(content_type: str) -> None:
    body = request([span()]).SerializeToString()
    assert len(decode_traces(body, content_type, None, max_bytes=MAX).spans) == 1


def test_json_content_type_with_charset() -> None:
    body = json.dumps(to_otlp_json(request([span()]))).encode()
    decoded = decode_traces(body, "application/json; charset=utf-8", None, max_bytes=MAX)
    assert len(decoded.spans) == 1


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/protobuf"])
def test_other_content_types_are_415_naming_both_accepted_types(
    content_type: str | None,
) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        decode_traces(b"{}", content_type, None, max_bytes=MAX)
    assert "application/x-protobuf" in info.value.message
    assert "application/json" in info.value.message
    assert info.value.status == 415


@pytest.mark.parametrize("encoding", ["gzip", "GZIP", "x-gzip"])
def test_gzip_bodies(encoding: str) -> None:
    body = gzip.compress(request([span()]).SerializeToString())
    assert len(decode_traces(body, PB, encoding, max_bytes=MAX).spans) == 1


def test_gzip_with_several_members() -> None:
    raw = json.dumps(to_otlp_json(request([span()]))).encode()
    body = gzip.compress(raw[:10]) + gzip.compress(raw[10:])
    assert len(decode_traces(body, JS, "gzip", max_bytes=MAX).spans) == 1


def test_gzip_bomb_is_stopped_at_the_limit() -> None:
    bomb = gzip.compress(b"\x00" * (64 << 20), compresslevel=9)  # 64 MiB of zeros, ~64 kB
    assert len(bomb) < 100_000
    with pytest.raises(PayloadTooLarge) as info:
        decode_traces(bomb, PB, "gzip", max_bytes=MAX)
    assert info.value.status == 413


def test_decompressed_size_exactly_at_the_limit_is_accepted() -> None:
    assert decompress_body(gzip.compress(b"x" * 1000), "gzip", max_bytes=1000) == b"x" * 1000
    with pytest.raises(PayloadTooLarge):
        decompress_body(gzip.compress(b"x" * 1001), "gzip", max_bytes=1000)


def test_raw_body_over_the_limit_is_413() -> None:
    body = request([span(name="x" * 2000)]).SerializeToString()
    with pytest.raises(PayloadTooLarge):
        decode_traces(body, PB, None, max_bytes=1000)


@pytest.mark.parametrize(
    ("body", "encoding", "fragment"),
    [
        (b"anything", "br", "content encoding"),
        (b"not gzip at all", "gzip", "gzip"),
        (gzip.compress(b"x" * 1000)[:20], "gzip", "truncated"),
        (gzip.compress(b"{}") + b"trailing junk", "gzip", "gzip"),
        (b"", "gzip", "truncated"),
    ],
)
def test_bad_encodings_are_400(body: bytes, encoding: str, fragment: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_traces(body, JS, encoding, max_bytes=MAX)
    assert fragment in info.value.message
    assert info.value.status == 400


def test_garbage_protobuf_is_400_with_a_clear_message() -> None:
    with pytest.raises(BadRequest) as info:
        decode_traces(b"\x0a\x05\x0a\x03\x0a\x01\xff", PB, None, max_bytes=MAX)
    assert info.value.message.startswith(
        "body is not a valid OTLP ExportTraceServiceRequest protobuf"
    )


def test_protobuf_with_invalid_utf8_string_is_400() -> None:
    # resource_spans(1) { scope_spans(2) { spans(2) { name(5): b"\xff" } } }
    body = b"\x0a\x07\x12\x05\x12\x03\x2a\x01\xff"
    with pytest.raises(BadRequest):
        decode_traces(body, PB, None, max_bytes=MAX)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"[]", "must be an object"),
        (b'{"resourceSpans": {}}', "must be a list"),
        (b'{"resourceSpans": [1]}', "must be an object"),
        (b'{"resourceSpans": [{"scopeSpans": [[]]}]}', "must be an object"),
        (b'{"resourceSpans": NaN}', "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON"),
    ],
)
def test_bad_json_is_400_saying_what_is_wrong(body: bytes, fragment: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_traces(body, JS, None, max_bytes=1 << 21)
    assert fragment in info.value.message


def test_empty_requests_have_no_spans() -> None:
    assert decode_traces(b"", PB, None, max_bytes=MAX) == DecodedTraces([], 0, [])
    assert decode_traces(b"{}", JS, None, max_bytes=MAX) == DecodedTraces([], 0, [])


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"trace_id": TRACE_ID[:15]}, "trace_id must be 16 bytes"),
        ({"trace_id": b""}, "trace_id must be 16 bytes"),
        ({"trace_id": bytes(16)}, "trace_id must not be all zero"),
        ({"span_id": SPAN_ID[:4]}, "span_id must be 8 bytes"),
        ({"span_id": bytes(8)}, "span_id must not be all zero"),
        ({"parent_span_id": b"\x01\x02\x03"}, "parent_span_id must be 0 or 8 bytes"),
        ({"start_ns": 0}, "start_time_unix_nano is missing"),
        ({"end_ns": START_NS - 1}, "before start"),
    ],
)
def test_bad_spans_are_rejected_one_by_one(changes: dict[str, Any], fragment: str) -> None:
    good = span(span_id=b"\x11" * 8, name="good")
    bad = span(name="bad", **changes)
    decoded = _pb(request([good, bad]))
    assert [s.name for s in decoded.spans] == ["good"]
    assert decoded.rejected == 1
    assert len(decoded.errors) == 1
    assert fragment in decoded.errors[0]
    assert "'bad'" in decoded.errors[0]


def test_all_zero_parent_means_root() -> None:
    [raw] = _pb(request([span(parent_span_id=bytes(8))])).spans
    assert raw.parent_span_id == ""


def test_error_messages_are_capped_but_all_rejections_counted() -> None:
    bad = [span(trace_id=b"short", name=f"s{i}") for i in range(25)]
    decoded = _pb(request(bad))
    assert decoded.rejected == 25
    assert len(decoded.errors) == MAX_ERRORS


def test_deeply_nested_attribute_rejects_only_that_span() -> None:
    value: Any = "leaf"
    for _ in range(40):
        value = [value]
    decoded = _pb(request([span(attributes={"deep": value}), span(span_id=b"\x22" * 8)]))
    assert decoded.rejected == 1 and len(decoded.spans) == 1
    assert "nested" in decoded.errors[0]


def _json_doc(spans: list[Any]) -> dict[str, Any]:
    return {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}


def _json_span(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "traceId": TRACE_ID.hex(),
        "spanId": SPAN_ID.hex(),
        "name": "s",
        "startTimeUnixNano": str(START_NS),
        "endTimeUnixNano": str(END_NS),
    }
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (_json_span(traceId="CvdlGRbNQ92ESOshHIAxnA=="), "hex, not base64"),
        (_json_span(spanId="t61rcWkgMzE="), "spanId must be 16 hex"),
        (_json_span(spanId="zz" * 8), "spanId must be 16 hex"),
        (_json_span(traceId=12), "traceId must be a hex string"),
        (_json_span(parentSpanId="abc"), "parentSpanId"),
        (_json_span(startTimeUnixNano="soon"), "startTimeUnixNano"),
        (_json_span(startTimeUnixNano=None), "missing"),
        (_json_span(name=5), "name must be a string"),
        (_json_span(attributes={"k": "v"}), "attributes must be a list"),
        (_json_span(attributes=[{"key": "k", "value": {"intValue": "1.5"}}]), "intValue"),
        (_json_span(attributes=[{"key": "k", "value": {"intValue": 2**64}}]), "int64"),
        (_json_span(attributes=[{"key": "k", "value": {"boolValue": "yes"}}]), "boolValue"),
        (_json_span(attributes=[{"key": "k", "value": {"bytesValue": "!!"}}]), "base64"),
        (_json_span(attributes=[{"key": "k", "value": "plain"}]), "AnyValue"),
        (_json_span(attributes=[{"key": "k\ud800", "value": {}}]), "key"),
        (_json_span(attributes=[{"key": "k", "value": {"stringValue": "\udc00"}}]), "surrogate"),
        (_json_span(status={"code": 7}), "status.code"),
        (_json_span(events=[1]), "event"),
        ("not an object", "must be an object"),
    ],
)
def test_bad_json_spans_are_rejected_one_by_one(bad: Any, fragment: str) -> None:
    good = _json_span(spanId="11" * 8, name="good")
    decoded = _js(_json_doc([good, bad]))
    assert [s.name for s in decoded.spans] == ["good"]
    assert decoded.rejected == 1
    assert fragment in decoded.errors[0], decoded.errors


def test_json_bytes_value_is_hex_like_protobuf() -> None:
    attrs = [{"key": "b", "value": {"bytesValue": "AAH/"}}]
    [raw] = _js(_json_doc([_json_span(attributes=attrs)])).spans
    assert raw.attributes == {"b": "0001ff"}


def test_snake_case_json_field_names_are_accepted() -> None:
    document = {
        "resource_spans": [
            {
                "scope_spans": [
                    {
                        "spans": [
                            {
                                "trace_id": TRACE_ID.hex(),
                                "span_id": SPAN_ID.hex(),
                                "start_time_unix_nano": START_NS,
                                "end_time_unix_nano": END_NS,
                            }
                        ]
                    }
                ]
            }
        ]
    }
    assert len(_js(document).spans) == 1


def test_bad_resource_attributes_reject_the_spans_of_that_resource() -> None:
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "k", "value": {"intValue": "x"}}]},
                "scopeSpans": [{"spans": [_json_span(), _json_span(spanId="22" * 8)]}],
            },
            {"scopeSpans": [{"spans": [_json_span(spanId="33" * 8)]}]},
        ]
    }
    decoded = _js(document)
    assert decoded.rejected == 2
    assert [s.span_id for s in decoded.spans] == ["33" * 8]
    assert decoded.errors[0].startswith("resource attributes")
