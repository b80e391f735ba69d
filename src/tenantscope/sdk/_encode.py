"""Finished spans straight to OTLP protobuf bytes (an ``ExportTraceServiceRequest``).

Why this exists: speed. OpenTelemetry's ``encode_spans(spans).SerializeToString()`` builds
a Python protobuf message object per span, per attribute (``KeyValue`` + ``AnyValue``), per
event and per status before serialising them, and hashes the span's ``Resource`` (a JSON
dump of its attributes) for every span: ~40 us per LLM span of ~13 attributes here, paid
by the host app's process. Writing the wire format directly, with the few repeated pieces
cached (attribute keys, string attributes such as the tenant or the model, the resource
and scope blocks of a batch), is several times cheaper.

The output is byte for byte what ``encode_spans(spans).SerializeToString()`` gives (fields
in field-number order, proto3 defaults omitted, the same grouping by resource then scope in
first-seen order, the same always-present ``resource``, ``scope`` and ``status``
sub-messages); tests/sdk/test_encode.py checks it on generated spans. Field numbers are
those of opentelemetry-proto (trace/v1/trace.proto, common/v1/common.proto,
resource/v1/resource.proto, collector/trace/v1/trace_service.proto).

Values outside the supported subset (mappings, ints outside int64, non-str keys, strings
that are not valid UTF-8...) raise :class:`Unsupported` or another exception: the caller
then uses OpenTelemetry's encoder for that batch (which, e.g., drops such an attribute).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, SpanContext, SpanKind

__all__ = ["Unsupported", "encode_request"]


class Unsupported(Exception):
    """A span holds something this encoder does not write (use the generic encoder)."""


_BYTE = [bytes((i,)) for i in range(128)]
_DOUBLE = struct.Struct("<d").pack
_TIMES = struct.Struct("<BQBQ").pack  # Span fields 7 and 8, both fixed64
_FIXED64 = struct.Struct("<Q").pack
_FIXED32 = struct.Struct("<I").pack
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

# tag bytes: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32)
_REQ_RESOURCE_SPANS = b"\x0a"  # ExportTraceServiceRequest.resource_spans = 1
_RS_RESOURCE = b"\x0a"  # ResourceSpans.resource = 1
_RS_SCOPE_SPANS = b"\x12"  # ResourceSpans.scope_spans = 2
_RS_SCHEMA_URL = b"\x1a"  # ResourceSpans.schema_url = 3
_RES_ATTRIBUTES = b"\x0a"  # Resource.attributes = 1
_SS_SCOPE = b"\x0a"  # ScopeSpans.scope = 1
_SS_SPANS = b"\x12"  # ScopeSpans.spans = 2
_SS_SCHEMA_URL = b"\x1a"  # ScopeSpans.schema_url = 3
_SCOPE_NAME = b"\x0a"  # InstrumentationScope.name = 1
_SCOPE_VERSION = b"\x12"  # InstrumentationScope.version = 2
_SCOPE_ATTRIBUTES = b"\x1a"  # InstrumentationScope.attributes = 3
_SPAN_TRACE_ID = b"\x0a\x10"  # Span.trace_id = 1 (16 bytes)
_SPAN_SPAN_ID = b"\x12\x08"  # Span.span_id = 2 (8 bytes)
_SPAN_TRACE_STATE = b"\x1a"  # Span.trace_state = 3
_SPAN_PARENT_ID = b"\x22\x08"  # Span.parent_span_id = 4 (8 bytes)
_SPAN_NAME = b"\x2a"  # Span.name = 5
_SPAN_KIND = 0x30  # Span.kind = 6 (enum, varint)
_SPAN_START, _SPAN_END = 0x39, 0x41  # Span.start/end_time_unix_nano = 7, 8 (fixed64)
_SPAN_ATTRIBUTES = b"\x4a"  # Span.attributes = 9
_SPAN_DROPPED_ATTRIBUTES = b"\x50"  # Span.dropped_attributes_count = 10
_SPAN_EVENTS = b"\x5a"  # Span.events = 11
_SPAN_DROPPED_EVENTS = b"\x60"  # Span.dropped_events_count = 12
_SPAN_LINKS = b"\x6a"  # Span.links = 13
_SPAN_DROPPED_LINKS = b"\x70"  # Span.dropped_links_count = 14
_SPAN_STATUS = b"\x7a"  # Span.status = 15
_SPAN_FLAGS = b"\x85\x01"  # Span.flags = 16 (fixed32)
_EVENT_TIME = b"\x09"  # Span.Event.time_unix_nano = 1 (fixed64)
_EVENT_NAME = b"\x12"  # Span.Event.name = 2
_EVENT_ATTRIBUTES = b"\x1a"  # Span.Event.attributes = 3
_EVENT_DROPPED_ATTRIBUTES = b"\x20"  # Span.Event.dropped_attributes_count = 4
_LINK_TRACE_ID = b"\x0a\x10"  # Span.Link.trace_id = 1
_LINK_SPAN_ID = b"\x12\x08"  # Span.Link.span_id = 2
_LINK_ATTRIBUTES = b"\x22"  # Span.Link.attributes = 4
_LINK_DROPPED_ATTRIBUTES = b"\x28"  # Span.Link.dropped_attributes_count = 5
_LINK_FLAGS = b"\x35"  # Span.Link.flags = 6 (fixed32)
_STATUS_MESSAGE = b"\x12"  # Status.message = 2
_STATUS_CODE = b"\x18"  # Status.code = 3 (enum, varint)
_KV_KEY = b"\x0a"  # KeyValue.key = 1
_KV_VALUE = b"\x12"  # KeyValue.value = 2
_ANY_STRING = b"\x0a"  # AnyValue.string_value = 1
_ANY_TRUE, _ANY_FALSE = b"\x10\x01", b"\x10\x00"  # AnyValue.bool_value = 2
_ANY_INT = b"\x18"  # AnyValue.int_value = 3 (int64, varint)
_ANY_DOUBLE = b"\x21"  # AnyValue.double_value = 4 (fixed64)
_ANY_ARRAY = b"\x2a"  # AnyValue.array_value = 5
_ANY_BYTES = b"\x3a"  # AnyValue.bytes_value = 7
_ARRAY_VALUES = b"\x0a"  # ArrayValue.values = 1
_EMPTY_ANY = b"\x12\x00"  # KeyValue.value set to an empty AnyValue (a None value)
_KV_TRUE, _KV_FALSE = _KV_VALUE + b"\x02" + _ANY_TRUE, _KV_VALUE + b"\x02" + _ANY_FALSE

# SpanFlags: the context's is_remote is known (0x100), and it is remote (0x200)
_FLAGS_LOCAL_PARENT = _SPAN_FLAGS + _FIXED32(0x100)
_FLAGS_REMOTE_PARENT = _SPAN_FLAGS + _FIXED32(0x300)
# Span.SpanKind is the API's SpanKind value + 1 (0 is SPAN_KIND_UNSPECIFIED)
_KIND = {kind: kind.value + 1 for kind in SpanKind}

# Repeated pieces, cached across batches (cleared when large: span attributes repeat a lot,
# e.g. the tenant, the model and the operation, but some are unique per call)
_CACHE_MAX = 4096
_key_fields: dict[str, bytes] = {}  # key -> KeyValue.key field
_str_pairs: dict[tuple[str, str], bytes] = {}  # (key, str value) -> length + KeyValue body
# (key, tuple of str) -> length + KeyValue body; only tuples of str, as (True,) == (1,)
_tuple_pairs: dict[tuple[str, tuple[Any, ...]], bytes] = {}


def _varint(n: int) -> bytes:
    if n < 128:
        return _BYTE[n]
    out = bytearray()
    while n > 127:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, body: bytes) -> bytes:
    """A length-delimited field."""
    n = len(body)
    return tag + (_BYTE[n] if n < 128 else _varint(n)) + body


def _key_field(key: str) -> bytes:
    field = _key_fields.get(key)
    if field is None:
        if type(key) is not str:
            raise Unsupported(f"attribute key of type {type(key).__name__}")
        field = _field(_KV_KEY, key.encode()) if key else b""  # proto3: "" is not written
        if len(_key_fields) >= _CACHE_MAX:
            _key_fields.clear()
        _key_fields[key] = field
    return field


def _str_pair(key: str, value: str) -> bytes:
    body = _key_field(key) + _field(_KV_VALUE, _field(_ANY_STRING, value.encode()))
    pair = _varint(len(body)) + body
    if len(_str_pairs) >= _CACHE_MAX:
        _str_pairs.clear()
    _str_pairs[key, value] = pair
    return pair


def _tuple_pair(key: str, value: tuple[Any, ...]) -> bytes:
    body = _key_field(key) + _field(_KV_VALUE, _any_value(value))
    pair = _varint(len(body)) + body
    if all(type(item) is str for item in value):
        if len(_tuple_pairs) >= _CACHE_MAX:
            _tuple_pairs.clear()
        _tuple_pairs[key, value] = pair
    return pair


def _any_value(value: Any) -> bytes:
    """An AnyValue body, with the type tests in OpenTelemetry's order (bool before int,
    str and bytes before sequences)."""
    if type(value) is tuple:  # the SDK stores sequences as tuples
        return _field(_ANY_ARRAY, b"".join([_array_item(v) for v in value]))
    if value is None:
        return b""
    if isinstance(value, bool):
        return _ANY_TRUE if value else _ANY_FALSE
    if isinstance(value, str):
        return _field(_ANY_STRING, value.encode())
    if isinstance(value, int):
        if value >= 0:
            if value > _INT64_MAX:
                raise Unsupported("int outside int64")
            return _ANY_INT + _varint(value)
        if value < _INT64_MIN:
            raise Unsupported("int outside int64")
        return _ANY_INT + _varint(value + 2**64)  # two's complement, 10 bytes
    if isinstance(value, float):
        return _ANY_DOUBLE + _DOUBLE(value)
    if isinstance(value, bytes):
        return _field(_ANY_BYTES, value)
    if isinstance(value, Sequence):
        return _field(_ANY_ARRAY, b"".join([_array_item(v) for v in value]))
    raise Unsupported(f"attribute value of type {type(value).__name__}")


def _array_item(value: Any) -> bytes:
    """One ArrayValue.values field."""
    if type(value) is str:
        body = value.encode()
        n = len(body)
        if n < 126:  # the AnyValue fits a one-byte length too
            return _ARRAY_VALUES + _BYTE[n + 2] + _ANY_STRING + _BYTE[n] + body
    return _field(_ARRAY_VALUES, _any_value(value))


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> list[bytes]:
    """Repeated KeyValue fields, each as tag, length and body."""
    out: list[bytes] = []
    if not attributes:
        return out
    pairs, tuples = _str_pairs, _tuple_pairs
    for key, value in attributes.items():
        kind = type(value)
        if kind is str:
            pair = pairs.get((key, value))
            if pair is None:
                pair = _str_pair(key, value)
            out.append(tag)
            out.append(pair)
        elif kind is int and 0 <= value < 128:  # token counts and the like
            out.append(_field(tag, _key_field(key) + b"\x12\x02\x18" + _BYTE[value]))
        elif kind is tuple:
            try:
                pair = tuples.get((key, value))
            except TypeError:  # an unhashable item: not cached
                pair = None
            if pair is None:
                pair = _tuple_pair(key, value)
            out.append(tag)
            out.append(pair)
        elif kind is bool:
            out.append(_field(tag, _key_field(key) + (_KV_TRUE if value else _KV_FALSE)))
        elif value is None:
            out.append(_field(tag, _key_field(key) + _EMPTY_ANY))
        else:
            out.append(_field(tag, _key_field(key) + _field(_KV_VALUE, _any_value(value))))
    return out


def _events(events: Sequence[Event]) -> list[bytes]:
    out: list[bytes] = []
    for event in events:
        parts: list[bytes] = []
        if event.timestamp:
            parts.append(_EVENT_TIME + _FIXED64(event.timestamp))
        if event.name:
            parts.append(_field(_EVENT_NAME, event.name.encode()))
        parts += _attributes(_EVENT_ATTRIBUTES, event.attributes)
        if event.dropped_attributes:
            parts.append(_EVENT_DROPPED_ATTRIBUTES + _varint(event.dropped_attributes))
        out.append(_field(_SPAN_EVENTS, b"".join(parts)))
    return out


def _links(links: Sequence[Link]) -> list[bytes]:
    # as OpenTelemetry's encoder: no trace_state on links
    out: list[bytes] = []
    for link in links:
        context = link.context
        parts = [
            _LINK_TRACE_ID + context.trace_id.to_bytes(16, "big"),
            _LINK_SPAN_ID + context.span_id.to_bytes(8, "big"),
            *_attributes(_LINK_ATTRIBUTES, link.attributes),
        ]
        if link.dropped_attributes:
            parts.append(_LINK_DROPPED_ATTRIBUTES + _varint(link.dropped_attributes))
        parts.append(_LINK_FLAGS + _FIXED32(0x300 if context.is_remote else 0x100))
        out.append(_field(_SPAN_LINKS, b"".join(parts)))
    return out


_plain_types: dict[type[ReadableSpan], bool] = {}


def _is_plain(cls: type[ReadableSpan]) -> bool:
    return cls.events is ReadableSpan.events and cls.links is ReadableSpan.links


def _span(span: ReadableSpan) -> bytes:
    """One ScopeSpans.spans field."""
    context = span.get_span_context()
    if context is None:
        raise Unsupported("span without a context")
    parts = [
        _SPAN_TRACE_ID + context.trace_id.to_bytes(16, "big"),
        _SPAN_SPAN_ID + context.span_id.to_bytes(8, "big"),
    ]
    trace_state = context.trace_state
    if trace_state:
        state = ",".join([f"{key}={value}" for key, value in trace_state.items()])
        parts.append(_field(_SPAN_TRACE_STATE, state.encode()))
    parent: SpanContext | None = span.parent
    if parent is not None:
        parts.append(_SPAN_PARENT_ID + parent.span_id.to_bytes(8, "big"))
    if span.name:
        parts.append(_field(_SPAN_NAME, span.name.encode()))
    kind = _KIND[span.kind]
    start, end = span.start_time, span.end_time
    if start and end:
        parts.append(_BYTE[_SPAN_KIND] + _BYTE[kind] + _TIMES(_SPAN_START, start, _SPAN_END, end))
    else:
        parts.append(_BYTE[_SPAN_KIND] + _BYTE[kind])
        if start:
            parts.append(_BYTE[_SPAN_START] + _FIXED64(start))
        if end:
            parts.append(_BYTE[_SPAN_END] + _FIXED64(end))
    parts += _attributes(_SPAN_ATTRIBUTES, span.attributes)
    if span.dropped_attributes:
        parts.append(_SPAN_DROPPED_ATTRIBUTES + _varint(span.dropped_attributes))
    # span.events and span.links copy a BoundedList under its lock: when the class keeps
    # ReadableSpan's properties, look at the stored lists first (mostly empty)
    plain = _plain_types.get(type(span))
    if plain is None:
        plain = _plain_types[type(span)] = _is_plain(type(span))
    if span._events if plain else span.events:
        parts += _events(span.events)
    if span.dropped_events:
        parts.append(_SPAN_DROPPED_EVENTS + _varint(span.dropped_events))
    if span._links if plain else span.links:
        parts += _links(span.links)
    if span.dropped_links:
        parts.append(_SPAN_DROPPED_LINKS + _varint(span.dropped_links))
    status = span.status
    if status is not None:
        code = status.status_code.value
        message = status.description
        if message:
            body = _field(_STATUS_MESSAGE, message.encode())
            parts.append(
                _field(_SPAN_STATUS, body + _STATUS_CODE + _varint(code) if code else body)
            )
        else:
            parts.append(_SPAN_STATUS + (b"\x02\x18" + _BYTE[code] if code else b"\x00"))
    parts.append(
        _FLAGS_REMOTE_PARENT if parent is not None and parent.is_remote else _FLAGS_LOCAL_PARENT
    )
    return _field(_SS_SPANS, b"".join(parts))


def _resource_head(resource: Any) -> bytes:
    return _field(_RS_RESOURCE, b"".join(_attributes(_RES_ATTRIBUTES, resource.attributes)))


def _scope_head(scope: Any) -> bytes:
    if scope is None:
        return _SS_SCOPE + b"\x00"
    parts: list[bytes] = []
    if scope.name:
        parts.append(_field(_SCOPE_NAME, scope.name.encode()))
    if scope.version:
        parts.append(_field(_SCOPE_VERSION, scope.version.encode()))
    parts += _attributes(_SCOPE_ATTRIBUTES, scope.attributes)
    return _field(_SS_SCOPE, b"".join(parts))


class _Group:
    __slots__ = ("key", "spans", "scopes")

    def __init__(self, key: Any) -> None:
        self.key = key  # a Resource, or an InstrumentationScope or None
        self.spans: list[bytes] = []  # encoded spans (scope groups only)
        self.scopes: dict[Any, _Group] = {}  # scope groups by scope (resource groups only)


def encode_request(spans: Sequence[ReadableSpan]) -> bytes:
    """An ``ExportTraceServiceRequest`` holding ``spans``, serialised.

    Raises :class:`Unsupported` (or another exception) when a span holds a value this
    encoder does not write; nothing is cached from a batch that fails halfway that could
    change a later batch's output.
    """
    # Grouped as OpenTelemetry's encoder does (dicts keyed by Resource, then by scope, in
    # first-seen order); the id() maps avoid hashing a Resource (a JSON dump) per span.
    resources: dict[Any, _Group] = {}
    by_resource_id: dict[int, _Group] = {}
    by_scope_id: dict[tuple[int, int], _Group] = {}
    for span in spans:
        resource = span.resource
        scope = span.instrumentation_scope
        ids = (id(resource), id(scope))
        group = by_scope_id.get(ids)
        if group is None:
            rgroup = by_resource_id.get(ids[0])
            if rgroup is None:
                rgroup = resources.get(resource)
                if rgroup is None:
                    rgroup = resources[resource] = _Group(resource)
                by_resource_id[ids[0]] = rgroup
            group = rgroup.scopes.get(scope)
            if group is None:
                group = rgroup.scopes[scope] = _Group(scope)
            by_scope_id[ids] = group
        group.spans.append(_span(span))
    out: list[bytes] = []
    for rgroup in resources.values():
        resource = rgroup.key
        parts = [_resource_head(resource)]
        for group in rgroup.scopes.values():
            scope = group.key
            scope_parts = [_scope_head(scope), *group.spans]
            schema_url = scope.schema_url if scope is not None else None
            if schema_url:
                scope_parts.append(_field(_SS_SCHEMA_URL, schema_url.encode()))
            parts.append(_field(_RS_SCOPE_SPANS, b"".join(scope_parts)))
        if resource.schema_url:
            parts.append(_field(_RS_SCHEMA_URL, resource.schema_url.encode()))
        out.append(_field(_REQ_RESOURCE_SPANS, b"".join(parts)))
    return b"".join(out)
