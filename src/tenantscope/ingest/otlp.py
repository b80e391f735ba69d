"""Decode OTLP/HTTP trace export bodies (protobuf or JSON, optionally gzip) into RawSpans.

What is a request failure and what is a per-span rejection:

- Wrong content type -> UnsupportedMediaType (415); unknown content encoding, broken gzip,
  unparseable protobuf, invalid JSON, non-UTF-8 JSON or a JSON document of the wrong shape
  above the span level -> BadRequest (400); a body over ``max_bytes`` before or after
  decompression -> PayloadTooLarge (413). Decompression is bounded: a gzip bomb is stopped
  after ``max_bytes + 1`` bytes of output.
- A single bad span (ids of the wrong length or all zero, missing start time, end before
  start, attribute values nested deeper than ``limits.MAX_ATTRIBUTE_DEPTH``, and in JSON a
  span that is not an object or has fields of the wrong type) is left out and counted in
  ``DecodedTraces.rejected``; the rest of the request is kept (OTLP ``partial_success``).

OTLP/JSON follows the OTLP specification: lowerCamelCase field names (snake_case accepted
too), trace and span ids as hex strings (not base64), enums as integers (the enum names are
accepted too), 64-bit integers as numbers or decimal strings, ``bytesValue`` as base64.

Attribute values are flattened to plain JSON-compatible Python values: string, int, float,
bool, None (an empty AnyValue), list (arrayValue), dict (kvlistValue), and bytes as a
lowercase hex string (as ids are). Non-finite doubles become the strings "NaN", "Infinity"
and "-Infinity" so attributes stay strict JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tenantscope.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from tenantscope.ingest.limits import MAX_ATTRIBUTE_DEPTH
from tenantscope.ingest.spans import RawSpan

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# How many per-span rejection messages are kept for the partial_success message.
MAX_ERRORS = 10

_HEX = re.compile(r"[0-9a-fA-F]*")
_UINT64_MAX = 2**64 - 1
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


@dataclass
class DecodedTraces:
    spans: list[RawSpan] = field(default_factory=list)
    rejected: int = 0
    # short messages for the first MAX_ERRORS rejected spans
    errors: list[str] = field(default_factory=list)

    def reject(self, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(message)


class _Rejected(Exception):
    """One span cannot be decoded; the message says why."""


def decode_traces(
    body: bytes, content_type: str | None, content_encoding: str | None, *, max_bytes: int
) -> DecodedTraces:
    """Decode an OTLP/HTTP ``/v1/traces`` request body. See the module docstring."""
    media = media_type(content_type)
    if media not in (PROTOBUF, JSON):
        raise UnsupportedMediaType(
            f"unsupported content type {content_type!r} for OTLP traces; "
            f"send {PROTOBUF!r} or {JSON!r}"
        )
    data = decompress_body(body, content_encoding, max_bytes=max_bytes)
    if media == PROTOBUF:
        return _decode_protobuf(data)
    return _decode_json(data)


def media_type(content_type: str | None) -> str:
    """The lowercased media type without parameters (``; charset=utf-8``)."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def decompress_body(body: bytes, content_encoding: str | None, *, max_bytes: int) -> bytes:
    """Undo ``Content-Encoding`` (gzip or identity), never producing more than ``max_bytes``.

    Usable for any request body (e.g. native events), not only OTLP.
    """
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"request body is {len(body)} bytes; the limit is {max_bytes}")
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        return body
    if encoding in ("gzip", "x-gzip"):
        return _gunzip(body, max_bytes)
    raise BadRequest(f"unsupported content encoding {content_encoding!r}; send gzip or identity")


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    out = bytearray()
    data = body
    try:
        # A gzip body may hold several members back to back (as gzip.decompress allows).
        while True:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            while not inflater.eof:
                chunk = inflater.decompress(data, max_bytes + 1 - len(out))
                out += chunk
                if len(out) > max_bytes:
                    raise PayloadTooLarge(
                        f"decompressed request body is larger than the limit of {max_bytes} bytes"
                    )
                data = inflater.unconsumed_tail
                if not chunk and not data:
                    raise BadRequest("gzip body is truncated")
            data = inflater.unused_data
            if not data.strip(b"\x00"):
                return bytes(out)
    except zlib.error as exc:
        raise BadRequest(f"body is not valid gzip: {exc}") from None


# --- protobuf ---------------------------------------------------------------------------


def _decode_protobuf(data: bytes) -> DecodedTraces:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    try:
        request = ExportTraceServiceRequest.FromString(data)
    except Exception as exc:  # DecodeError, and whatever else a hostile body can provoke
        raise BadRequest(
            f"body is not a valid OTLP ExportTraceServiceRequest protobuf: {exc}"
        ) from None
    out = DecodedTraces()
    for resource_spans in request.resource_spans:
        try:
            resource = _pb_attributes(resource_spans.resource.attributes, 0)
        except _Rejected as exc:
            for scope_spans in resource_spans.scope_spans:
                for _ in scope_spans.spans:
                    out.reject(f"resource attributes: {exc}")
            continue
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name
            scope_version = scope_spans.scope.version
            for span in scope_spans.spans:
                try:
                    out.spans.append(_pb_span(span, resource, scope_name, scope_version))
                except _Rejected as exc:
                    out.reject(f"span {_label(span.name)}: {exc}")
    return out


def _pb_span(span: Any, resource: dict[str, Any], scope_name: str, scope_version: str) -> RawSpan:
    trace_id = _id_from_bytes("trace_id", span.trace_id, 16)
    span_id = _id_from_bytes("span_id", span.span_id, 8)
    parent = _parent_from_bytes(span.parent_span_id)
    start_ns, end_ns = _check_times(span.start_time_unix_nano, span.end_time_unix_nano)
    events = [
        {
            "name": event.name,
            "time_ns": event.time_unix_nano,
            "attributes": _pb_attributes(event.attributes, 0),
        }
        for event in span.events
    ]
    return RawSpan(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=span.name,
        start_ns=start_ns,
        end_ns=end_ns,
        attributes=_pb_attributes(span.attributes, 0),
        resource=resource,
        scope_name=scope_name,
        scope_version=scope_version,
        status_code=int(span.status.code),
        status_message=span.status.message,
        events=events,
    )


_SCALAR_KINDS = frozenset({"string_value", "bool_value", "int_value"})


def _pb_attributes(key_values: Iterable[Any], depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in key_values:
        value = kv.value
        kind = value.WhichOneof("value")
        # strings, ints and bools (nearly all attributes) need no conversion
        out[kv.key] = getattr(value, kind) if kind in _SCALAR_KINDS else _pb_value(value, depth)
    return out


def _pb_value(value: Any, depth: int) -> Any:
    if depth >= MAX_ATTRIBUTE_DEPTH:
        raise _Rejected(f"attribute value nested deeper than {MAX_ATTRIBUTE_DEPTH} levels")
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return _double(value.double_value)
    if kind == "bytes_value":
        return bytes(value.bytes_value).hex()
    if kind == "array_value":
        return [_pb_value(item, depth + 1) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _pb_attributes(value.kvlist_value.values, depth + 1)
    # unset, or string_value_strindex (only meaningful inside OTLP profiles)
    return None


def _id_from_bytes(name: str, raw: bytes, size: int) -> str:
    if len(raw) != size:
        raise _Rejected(f"{name} must be {size} bytes, got {len(raw)}")
    if not any(raw):
        raise _Rejected(f"{name} must not be all zero")
    return bytes(raw).hex()


def _parent_from_bytes(raw: bytes) -> str:
    # An all-zero parent is what some SDKs send for "no parent": treat it as a root span.
    if not raw or not any(raw):
        return ""
    if len(raw) != 8:
        raise _Rejected(f"parent_span_id must be 0 or 8 bytes, got {len(raw)}")
    return bytes(raw).hex()


def _check_times(start_ns: int, end_ns: int) -> tuple[int, int]:
    if start_ns <= 0:
        raise _Rejected("start_time_unix_nano is missing")
    if end_ns < start_ns:
        raise _Rejected("end_time_unix_nano is before start_time_unix_nano")
    return start_ns, end_ns


def _double(number: float) -> float | str:
    if math.isfinite(number):
        return number
    if math.isnan(number):
        return "NaN"
    return "Infinity" if number > 0 else "-Infinity"


def _label(name: object) -> str:
    text = name if isinstance(name, str) else ""
    return repr(text if len(text) <= 60 else text[:57] + "...")


# --- JSON -------------------------------------------------------------------------------


def _decode_json(data: bytes) -> DecodedTraces:
    document = load_json(data, what="OTLP/JSON body")
    if not isinstance(document, dict):
        raise BadRequest("OTLP/JSON body must be an object with a 'resourceSpans' list")
    out = DecodedTraces()
    for resource_spans in _json_list(document, "resourceSpans", "resource_spans", "request"):
        if not isinstance(resource_spans, dict):
            raise BadRequest("OTLP/JSON: each item of 'resourceSpans' must be an object")
        resource_obj = _json_obj(resource_spans, "resource", "resource", "resourceSpans")
        all_scope_spans = _json_list(resource_spans, "scopeSpans", "scope_spans", "resourceSpans")
        for scope_spans in all_scope_spans:
            if not isinstance(scope_spans, dict):
                raise BadRequest("OTLP/JSON: each item of 'scopeSpans' must be an object")
        try:
            resource = _json_attributes(resource_obj.get("attributes"), 0)
        except _Rejected as exc:
            for scope_spans in all_scope_spans:
                for _ in _json_list(scope_spans, "spans", "spans", "scopeSpans"):
                    out.reject(f"resource attributes: {exc}")
            continue
        for scope_spans in all_scope_spans:
            scope = _json_obj(scope_spans, "scope", "scope", "scopeSpans")
            scope_name = scope.get("name", "")
            if not isinstance(scope_name, str) or _has_surrogate(scope_name):
                raise BadRequest("OTLP/JSON: 'scope.name' must be a valid string")
            scope_version = scope.get("version", "")
            if not isinstance(scope_version, str) or _has_surrogate(scope_version):
                raise BadRequest("OTLP/JSON: 'scope.version' must be a valid string")
            for span in _json_list(scope_spans, "spans", "spans", "scopeSpans"):
                name = span.get("name") if isinstance(span, dict) else None
                try:
                    out.spans.append(_json_span(span, resource, scope_name, scope_version))
                except _Rejected as exc:
                    out.reject(f"span {_label(name)}: {exc}")
    return out


def load_json(data: bytes, *, what: str, exact_floats: bool = False) -> Any:
    """Parse strict UTF-8 JSON (no NaN/Infinity literals) or raise BadRequest naming ``what``.

    With ``exact_floats`` JSON numbers with a fraction or exponent become Decimals.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"{what} is not valid UTF-8: {exc}") from None
    try:
        if exact_floats:
            return json.loads(text, parse_constant=_reject_constant, parse_float=Decimal)
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise BadRequest(f"{what} is nested too deeply") from None
    except ValueError as exc:
        raise BadRequest(f"{what} is not valid JSON: {exc}") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _json_list(obj: dict[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = obj.get(camel, obj.get(snake))
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"OTLP/JSON: '{camel}' in {where} must be a list")
    return value


def _json_obj(obj: dict[str, Any], camel: str, snake: str, where: str) -> dict[str, Any]:
    value = obj.get(camel, obj.get(snake))
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"OTLP/JSON: '{camel}' in {where} must be an object")
    return value


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    return obj.get(camel, obj.get(snake))


def _json_span(span: Any, resource: dict[str, Any], scope_name: str, scope_version: str) -> RawSpan:
    if not isinstance(span, dict):
        raise _Rejected("a span must be an object")
    trace_id = _id_from_hex("traceId", _get(span, "traceId", "trace_id"), 16)
    span_id = _id_from_hex("spanId", _get(span, "spanId", "span_id"), 8)
    parent = _get(span, "parentSpanId", "parent_span_id")
    parent_span_id = "" if parent in (None, "") else _id_from_hex("parentSpanId", parent, 8)
    if parent_span_id == "0" * 16:
        parent_span_id = ""
    name = _json_str("name", span.get("name"))
    start_ns = _json_uint(
        "startTimeUnixNano", _get(span, "startTimeUnixNano", "start_time_unix_nano")
    )
    end_ns = _json_uint("endTimeUnixNano", _get(span, "endTimeUnixNano", "end_time_unix_nano"))
    start_ns, end_ns = _check_times(start_ns, end_ns)
    status = span.get("status")
    if status is None:
        status = {}
    if not isinstance(status, dict):
        raise _Rejected("status must be an object")
    events_in = span.get("events")
    if events_in is None:
        events_in = []
    if not isinstance(events_in, list):
        raise _Rejected("events must be a list")
    events = []
    for event in events_in:
        if not isinstance(event, dict):
            raise _Rejected("each event must be an object")
        events.append(
            {
                "name": _json_str("events.name", event.get("name")),
                "time_ns": _json_uint(
                    "events.timeUnixNano", _get(event, "timeUnixNano", "time_unix_nano")
                ),
                "attributes": _json_attributes(event.get("attributes"), 0),
            }
        )
    return RawSpan(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        name=name,
        start_ns=start_ns,
        end_ns=end_ns,
        attributes=_json_attributes(span.get("attributes"), 0),
        resource=resource,
        scope_name=scope_name,
        scope_version=scope_version,
        status_code=_json_status_code(status.get("code")),
        status_message=_json_str("status.message", status.get("message")),
        events=events,
    )


def _id_from_hex(name: str, value: Any, size: int) -> str:
    if not isinstance(value, str):
        raise _Rejected(f"{name} must be a hex string of {size * 2} characters")
    if len(value) != size * 2 or not _HEX.fullmatch(value):
        raise _Rejected(
            f"{name} must be {size * 2} hex characters ({size} bytes; OTLP/JSON ids are hex, "
            f"not base64), got {len(value)} characters"
        )
    if not value.strip("0"):
        raise _Rejected(f"{name} must not be all zero")
    return value.lower()


def _json_str(name: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Rejected(f"{name} must be a string")
    if _has_surrogate(value):
        raise _Rejected(f"{name} contains invalid Unicode (a lone surrogate)")
    return value


def _json_uint(name: str, value: Any) -> int:
    if value is None:
        return 0
    number: int
    if isinstance(value, bool):
        raise _Rejected(f"{name} must be an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        number = int(value)
    else:
        raise _Rejected(f"{name} must be an unsigned integer or a decimal string")
    if not 0 <= number <= _UINT64_MAX:
        raise _Rejected(f"{name} is out of range")
    return number


def _json_int64(value: Any) -> int:
    if isinstance(value, bool):
        raise _Rejected("intValue must be an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,19}", value):
        number = int(value)
    else:
        raise _Rejected("intValue must be an integer or a decimal string")
    if not -(2**63) <= number < 2**63:
        raise _Rejected("intValue is out of the int64 range")
    return number


def _json_double(value: Any) -> float | str:
    if isinstance(value, bool):
        raise _Rejected("doubleValue must be a number")
    if isinstance(value, (int, float)):
        try:
            return _double(float(value))
        except OverflowError:
            raise _Rejected("doubleValue is out of range") from None
    if value in ("NaN", "Infinity", "-Infinity"):
        return str(value)
    if isinstance(value, str):
        try:
            return _double(float(value))
        except ValueError:
            pass
    raise _Rejected("doubleValue must be a number")


def _json_status_code(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str) and value in _STATUS_NAMES:
        return _STATUS_NAMES[value]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2:
        return value
    raise _Rejected("status.code must be 0, 1 or 2")


def _json_attributes(value: Any, depth: int) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise _Rejected("attributes must be a list of {key, value} objects")
    out: dict[str, Any] = {}
    for item in value:
        if not isinstance(item, dict):
            raise _Rejected("attributes must be a list of {key, value} objects")
        key = item.get("key")
        if not isinstance(key, str) or _has_surrogate(key):
            raise _Rejected("attribute key must be a valid string")
        out[key] = _json_value(item.get("value"), depth)
    return out


def _json_value(value: Any, depth: int) -> Any:
    if depth >= MAX_ATTRIBUTE_DEPTH:
        raise _Rejected(f"attribute value nested deeper than {MAX_ATTRIBUTE_DEPTH} levels")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Rejected("attribute value must be an AnyValue object")
    if "stringValue" in value or "string_value" in value:
        return _json_str("stringValue", _get(value, "stringValue", "string_value"))
    if "boolValue" in value or "bool_value" in value:
        flag = _get(value, "boolValue", "bool_value")
        if not isinstance(flag, bool):
            raise _Rejected("boolValue must be true or false")
        return flag
    if "intValue" in value or "int_value" in value:
        return _json_int64(_get(value, "intValue", "int_value"))
    if "doubleValue" in value or "double_value" in value:
        return _json_double(_get(value, "doubleValue", "double_value"))
    if "bytesValue" in value or "bytes_value" in value:
        return _json_bytes(_get(value, "bytesValue", "bytes_value"))
    if "arrayValue" in value or "array_value" in value:
        array = _get(value, "arrayValue", "array_value")
        items = array.get("values") if isinstance(array, dict) else None
        if items is None and isinstance(array, dict):
            return []
        if not isinstance(items, list):
            raise _Rejected("arrayValue must be an object with a 'values' list")
        return [_json_value(item, depth + 1) for item in items]
    if "kvlistValue" in value or "kvlist_value" in value:
        kvlist = _get(value, "kvlistValue", "kvlist_value")
        if not isinstance(kvlist, dict):
            raise _Rejected("kvlistValue must be an object with a 'values' list")
        return _json_attributes(kvlist.get("values"), depth + 1)
    return None


def _json_bytes(value: Any) -> str:
    if not isinstance(value, str):
        raise _Rejected("bytesValue must be a base64 string")
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        raise _Rejected("bytesValue must be a base64 string") from None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
