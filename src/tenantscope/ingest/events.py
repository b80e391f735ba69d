"""Native JSON usage events (``POST /v1/events``).

The body is a JSON list of event objects, or an object ``{"events": [...]}``; at most
``max_items`` (1,000) events per request. Each event becomes one UsageRecord with
``source = "event"``. Each invalid event is reported as an ItemError naming its index and
field and is not stored; the valid events of the same request are. An ``event_id`` is unique
within its tenant: repeated within one request (for the same tenant), the first valid
occurrence is stored and the others are answered as duplicates; across requests the store
makes the same guarantee. Another tenant's event with the same id is another event.

Event fields (all optional except ``event_id``; ``null`` means absent; any other field is an
error, so typos are caught):

=========================  ===================================================================
``event_id``               required. The idempotency key: a string of at most 256 characters.
                           Sending the same event again never counts it twice.
``tenant_id``              the customer the usage belongs to (``""``/absent: no tenant).
``workspace_id``,          attribution strings, at most 1,024 characters each, no control
``user_id``,               characters.
``session_id``,
``feature``,
``billable_action``,
``customer_visible_label``,
``customer_id``,
``environment``,
``service``
``provider``               e.g. ``openai``, ``anthropic`` (lowercased; OTel names such as
                           ``aws.bedrock`` are mapped as on the OTLP path).
``model``, ``operation``,  strings. ``name`` is the display name (default: operation or
``name``, ``response_id``  ``"usage event"``); ``response_id`` the provider's response id.
``input_tokens``           integers in [0, 1e9]. ``input_tokens`` INCLUDES cache reads and
``output_tokens``          writes (so it must be >= cache_read_tokens + cache_write_tokens);
``cache_read_tokens``      ``output_tokens`` INCLUDES reasoning tokens (so it must be >=
``cache_write_tokens``     ``reasoning_tokens``). This is the OTel GenAI / OpenAI convention;
``reasoning_tokens``       for Anthropic add the cache figures to the API's ``input_tokens``.
``cost_usd``               a cost you computed or were billed: a JSON number or a decimal
                           string (``"0.00045"``, kept exact), in [0, 100000]. Given ->
                           ``cost_source = "reported"`` and it wins over catalog prices.
``timestamp`` or           when the call started: RFC 3339 with an offset
``start_time``             (``2025-01-31T12:00:00.250Z``) or epoch seconds. Default: the time
                           the request was received. Not before 2000, at most 24 h ahead.
``end_time`` or            when it ended (same formats) or how long it took in ms.
``duration_ms``            Default: duration 0.
``ttft_ms``                time to first token in ms (>= 0).
``status``                 ``ok`` (default), ``error`` or ``cancelled``.
``error_type``,            what went wrong; the message is truncated to 4,096 characters.
``error_message``
``billable_state``         ``billable``, ``included`` or ``ignored``. Default: ``billable``
                           for ``ok``, ``ignored`` for errors and cancellations.
``trace_id``, ``span_id``, optional W3C ids (32 / 16 / 16 hex characters) to place the event in
``parent_span_id``         a trace; ``span_id`` and ``parent_span_id`` need ``trace_id``.
                           Absent: ``""``.
``attributes``             an object of anything else (JSON, at most 64 KiB).
=========================  ===================================================================

An event is an LLM call (``kind = "llm"``) when it gives a token count, a model or a cost;
otherwise it is a plain span.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, cast

from tenantscope import semconv
from tenantscope.errors import BadRequest, ValidationFailed
from tenantscope.ingest import limits
from tenantscope.ingest.limits import fail
from tenantscope.ingest.otlp import load_json
from tenantscope.records import BILLABLE_STATES, STATUSES, BillableState, Kind, Status, UsageRecord

MAX_ITEMS = 1000

_STRING_FIELDS = (*limits.ID_FIELDS, "name", "error_type")
_TOKEN_FIELDS = limits.TOKEN_FIELDS
FIELDS: frozenset[str] = frozenset(
    _STRING_FIELDS
    + _TOKEN_FIELDS
    + (
        "event_id",
        "provider",
        "cost_usd",
        "timestamp",
        "start_time",
        "end_time",
        "duration_ms",
        "ttft_ms",
        "status",
        "error_message",
        "billable_state",
        "trace_id",
        "span_id",
        "parent_span_id",
        "attributes",
    )
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)
_HEX = re.compile(r"[0-9a-fA-F]+")


@dataclass
class ItemError:
    index: int
    field: str
    message: str


@dataclass
class ParsedEvents:
    records: list[UsageRecord] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)


def parse_events(body: bytes, *, received_at: datetime, max_items: int = MAX_ITEMS) -> ParsedEvents:
    """Parse and validate a batch of native usage events. See the module docstring."""
    document = load_json(body, what="events body", exact_floats=True)
    items: Any
    if isinstance(document, list):
        items = document
    elif isinstance(document, dict) and set(document) == {"events"}:
        items = document["events"]
        if not isinstance(items, list):
            raise BadRequest("'events' must be a list of event objects")
    else:
        raise BadRequest('events body must be a JSON list of events or {"events": [...]}')
    if len(items) > max_items:
        raise BadRequest(f"{len(items)} events in one request; the limit is {max_items}")

    out = ParsedEvents()
    for index, item in enumerate(items):
        record, errors = _parse_item(item, received_at)
        out.errors.extend(ItemError(index, name, message) for name, message in errors)
        if record is not None:
            # repeats stay: the writer stores the first and answers the others as
            # duplicates, so every item is accounted for once
            out.records.append(record)
    return out


def _parse_item(
    item: Any, received_at: datetime
) -> tuple[UsageRecord | None, list[tuple[str, str]]]:
    if not isinstance(item, dict):
        return None, [("", f"an event must be a JSON object, got {_json_type(item)}")]
    errors: list[tuple[str, str]] = []
    for key in item:
        if key not in FIELDS:
            errors.append((key if _valid(key) else "?", _unknown(key)))
    values: dict[str, Any] = {}

    def take(name: str, check: Callable[[str, Any], Any], default: Any = None) -> Any:
        raw = item.get(name)
        if raw is None:
            return default
        try:
            value = check(name, raw)
        except ValidationFailed as exc:
            errors.append((_field_of(exc, name), _message_of(exc)))
            return default
        values[name] = value
        return value

    event_id = take("event_id", _event_id)
    if item.get("event_id") is None:
        errors.append(("event_id", "is required (the idempotency key of the event)"))
    strings = {name: take(name, limits.check_id, "") for name in _STRING_FIELDS}
    provider = take("provider", _provider, "")
    counts = {name: take(name, _tokens) for name in _TOKEN_FIELDS}
    tokens = {name: count or 0 for name, count in counts.items()}
    if tokens["input_tokens"] < tokens["cache_read_tokens"] + tokens["cache_write_tokens"]:
        errors.append(
            (
                "input_tokens",
                "must include cache_read_tokens and cache_write_tokens (send the total input)",
            )
        )
    if tokens["output_tokens"] < tokens["reasoning_tokens"]:
        errors.append(("output_tokens", "must include reasoning_tokens (send the total output)"))
    cost = take("cost_usd", limits.check_cost)

    start_time = _pick_one(item, "timestamp", "start_time", errors)
    start = take(start_time, _time, received_at) if start_time else received_at
    if isinstance(start, datetime):
        try:
            limits.check_time(start_time or "timestamp", start, received_at=received_at)
        except ValidationFailed as exc:
            errors.append((start_time or "timestamp", _message_of(exc)))
    end_field = _pick_one(item, "end_time", "duration_ms", errors)
    end = start
    if end_field == "end_time":
        end = take("end_time", _time, start)
        if end < start:
            errors.append(("end_time", "is before the start time"))
    elif end_field == "duration_ms":
        duration = take("duration_ms", limits.check_ms, 0.0)
        try:
            end = start + timedelta(milliseconds=duration)
        except OverflowError:
            errors.append(("duration_ms", "is out of range"))
    if end_field and isinstance(end, datetime) and end != start:
        try:
            limits.check_time(end_field, end, received_at=received_at)
        except (ValidationFailed, OverflowError) as exc:
            errors.append(
                (
                    end_field,
                    _message_of(exc) if isinstance(exc, ValidationFailed) else "is out of range",
                )
            )
    ttft = take("ttft_ms", limits.check_ms)
    status = cast(Status, take("status", _choice(STATUSES), "ok"))
    error_message = take("error_message", _error_message, "")
    billable = take("billable_state", _choice(BILLABLE_STATES))
    billable_state = cast(BillableState, billable or ("billable" if status == "ok" else "ignored"))
    trace_id = take("trace_id", _hex_id(32), "")
    span_id = take("span_id", _hex_id(16), "")
    parent_span_id = take("parent_span_id", _hex_id(16), "")
    if (span_id or parent_span_id) and not trace_id and item.get("trace_id") is None:
        errors.append(("trace_id", "is required when span_id or parent_span_id is given"))
    attributes = take("attributes", _attributes, {})

    if errors:
        return None, errors
    given_usage = any(count is not None for count in counts.values())
    kind: Kind = "llm" if given_usage or strings["model"] or cost is not None else "span"
    name = strings.pop("name") or strings["operation"] or "usage event"
    return (
        UsageRecord(
            event_id=event_id,
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent_span_id,
            name=name,
            kind=kind,
            provider=provider,
            cost_usd=cost,
            cost_source="reported" if cost is not None else "unknown",
            start_time=start,
            end_time=end,
            duration_ms=(end - start) / timedelta(milliseconds=1),
            ttft_ms=ttft,
            status=status,
            error_message=error_message,
            billable_state=billable_state,
            attributes=attributes,
            source="event",
            received_at=received_at,
            input_tokens=tokens["input_tokens"],
            output_tokens=tokens["output_tokens"],
            cache_read_tokens=tokens["cache_read_tokens"],
            cache_write_tokens=tokens["cache_write_tokens"],
            reasoning_tokens=tokens["reasoning_tokens"],
            tenant_id=strings["tenant_id"],
            workspace_id=strings["workspace_id"],
            user_id=strings["user_id"],
            session_id=strings["session_id"],
            feature=strings["feature"],
            billable_action=strings["billable_action"],
            customer_visible_label=strings["customer_visible_label"],
            customer_id=strings["customer_id"],
            environment=strings["environment"],
            service=strings["service"],
            model=strings["model"],
            operation=strings["operation"],
            response_id=strings["response_id"],
            error_type=strings["error_type"],
            usage_convention="event" if given_usage else "",
        ),
        [],
    )


def _event_id(name: str, value: Any) -> str:
    text = limits.check_id(name, value, max_len=limits.MAX_EVENT_ID_LEN)
    if not text.strip():
        fail(name, "must not be empty")
    return text


def _provider(name: str, value: Any) -> str:
    key = limits.check_id(name, value).strip().lower()
    return semconv.PROVIDER_ALIASES.get(key, key)


def _tokens(name: str, value: Any) -> int:
    if isinstance(value, str):
        fail(name, "must be a JSON integer, not a string")
    return limits.check_tokens(name, value)


def _error_message(name: str, value: Any) -> str:
    if not isinstance(value, str):
        fail(name, f"must be a string, got {_json_type(value)}")
    return limits.truncate_message(limits.check_unicode(name, value))


def _choice(allowed: tuple[str, ...]) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if value not in allowed:
            fail(name, f"must be one of {', '.join(allowed)}; got {_short(value)}")
        return cast(str, value)

    return check


def _hex_id(length: int) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if value == "":
            return ""
        if not isinstance(value, str) or len(value) != length or not _HEX.fullmatch(value):
            fail(name, f"must be {length} hex characters (a W3C trace context id)")
        if not value.strip("0"):
            fail(name, "must not be all zero")
        return value.lower()

    return check


def _time(name: str, value: Any) -> datetime:
    if isinstance(value, bool):
        fail(name, "must be an RFC 3339 string or epoch seconds, got a boolean")
    if isinstance(value, (int, float, Decimal)):
        try:
            seconds = float(value)
            if not math.isfinite(seconds):
                raise OverflowError
            return _EPOCH + timedelta(microseconds=round(seconds * 1e6))
        except OverflowError:
            fail(name, f"{_short(value)} is out of range (epoch seconds expected)")
    if isinstance(value, str):
        return _parse_rfc3339(name, value)
    fail(name, f"must be an RFC 3339 string or epoch seconds, got {_json_type(value)}")


def _parse_rfc3339(name: str, value: str) -> datetime:
    match = _RFC3339.fullmatch(value.strip())
    if match is None:
        fail(
            name,
            f"{_short(value)} is not an RFC 3339 time with an offset "
            "(e.g. 2025-01-31T12:00:00Z) or epoch seconds",
        )
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micros = int((fraction or "0").ljust(6, "0")[:6])
    if offset in ("Z", "z"):
        tz = timezone.utc
    else:
        sign = 1 if offset[0] == "+" else -1
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            fail(name, f"{_short(value)} has an invalid UTC offset")
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        local = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tz
        )
    except ValueError as exc:
        fail(name, f"{_short(value)} is not a valid time: {exc}")
    return local.astimezone(timezone.utc)


def _attributes(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        fail(name, f"must be a JSON object, got {_json_type(value)}")
    clean = _plain(name, value, 0)
    size = limits.json_size(name, clean)
    if size > limits.MAX_ATTRIBUTES_BYTES:
        fail(name, f"are {size} bytes as JSON; the limit is {limits.MAX_ATTRIBUTES_BYTES}")
    return cast(dict[str, Any], clean)


def _plain(name: str, value: Any, depth: int) -> Any:
    """JSON value with Decimals turned back into floats/ints and strings checked."""
    if depth > limits.MAX_ATTRIBUTE_DEPTH:
        fail(name, f"are nested deeper than {limits.MAX_ATTRIBUTE_DEPTH} levels")
    if isinstance(value, Decimal):
        number = float(value)
        if not math.isfinite(number):
            fail(name, f"contain a number out of range: {_short(value)}")
        return number
    if isinstance(value, str):
        return limits.check_unicode(name, value)
    if isinstance(value, list):
        return [_plain(name, item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {
            limits.check_unicode(name, key): _plain(name, item, depth + 1)
            for key, item in value.items()
        }
    return value


def _pick_one(item: dict[str, Any], first: str, second: str, errors: list[tuple[str, str]]) -> str:
    """Which of two alternative fields is given ("" for neither); both is an error."""
    has_first, has_second = item.get(first) is not None, item.get(second) is not None
    if has_first and has_second:
        errors.append((second, f"give either {first} or {second}, not both"))
        return ""
    return first if has_first else second if has_second else ""


def _unknown(key: str) -> str:
    close = difflib.get_close_matches(key, sorted(FIELDS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown field{hint}"


def _valid(key: str) -> bool:
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return len(key) <= 200


def _field_of(exc: ValidationFailed, default: str) -> str:
    details = exc.details
    if isinstance(details, dict) and isinstance(details.get("field"), str):
        return str(details["field"])
    return default


def _message_of(exc: ValidationFailed) -> str:
    field = _field_of(exc, "")
    prefix = f"{field}: "
    return exc.message[len(prefix) :] if field and exc.message.startswith(prefix) else exc.message


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
