"""Validation limits shared by both ingest paths (OTLP spans and native JSON events).

Each limit turns input that cannot be meant seriously into a 4xx naming the field, instead
of a row that poisons every later sum. The small helpers below apply them the same way on
both paths; they raise :class:`~tenantscope.errors.ValidationFailed` whose message starts
with the field name, and whose ``details`` is ``{"field": <name>}``.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

import orjson

from tenantscope.errors import ValidationFailed
from tenantscope.records import INHERITED_FIELDS

# Tenant/workspace/user/session ids, feature, billable action, labels, environment, service,
# provider, model, operation, error type, trace/span ids of events: a longer value is rejected
# (a 10 kB tenant id is a client bug, not a tenant).
MAX_ID_LEN = 1024
# The idempotency key of a record.
MAX_EVENT_ID_LEN = 256
# Per token count per call. The largest context windows are ~10M tokens; 1e9 is absurd.
MAX_TOKENS = 1_000_000_000
# A reported cost per call above this is absurd (and would dwarf every real figure).
MAX_COST_USD = Decimal("100000")
# A start time later than received_at + this is rejected (clock skew is tolerated, not 2099).
MAX_FUTURE = timedelta(hours=24)
# A start time before this is rejected (e.g. seconds sent where nanoseconds are expected).
MIN_TIME = datetime(2000, 1, 1, tzinfo=timezone.utc)
# Longer error messages are truncated, not rejected: the call still happened and costs money.
MAX_ERROR_MESSAGE = 4096
# JSON size (UTF-8 bytes) of a record's attributes. Native events above it are rejected.
# OTLP spans above it first lose the attributes tenantscope does not read (largest first,
# usually captured prompt/completion content) so the call is still counted; only if the
# attributes tenantscope reads are themselves that large is the span rejected. Span events
# over this size keep their names and times but lose their attributes.
MAX_ATTRIBUTES_BYTES = 64 * 1024
# Nesting depth of attribute values (arrays / kvlists / JSON objects).
MAX_ATTRIBUTE_DEPTH = 32

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_DIGITS = re.compile("[0-9]{1,20}")


# Record fields that both ingest paths read as identifier-like strings (checked with
# check_id), and the token count fields.
ID_FIELDS: tuple[str, ...] = (
    *INHERITED_FIELDS,
    "environment",
    "service",
    "model",
    "operation",
    "response_id",
)
TOKEN_FIELDS: tuple[str, ...] = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def fail(field: str, message: str) -> NoReturn:
    raise ValidationFailed(f"{field}: {message}", details={"field": field})


def check_unicode(field: str, value: str) -> str:
    """Reject lone surrogates (possible through JSON escapes); they cannot be stored."""
    if _SURROGATE.search(value):
        fail(field, "contains invalid Unicode (a lone surrogate)")
    return value


def check_id(field: str, value: object, *, max_len: int = MAX_ID_LEN) -> str:
    """A short identifier-like string: str, <= max_len, valid Unicode, no control chars."""
    if not isinstance(value, str):
        fail(field, f"must be a string, got {_type_name(value)}")
    if len(value) > max_len:
        fail(field, f"is {len(value)} characters long; the limit is {max_len}")
    check_unicode(field, value)
    if _CONTROL.search(value):
        fail(field, "must not contain control characters")
    return value


def check_tokens(field: str, value: object) -> int:
    """A token count: an integer (integral floats accepted) in [0, MAX_TOKENS]."""
    if isinstance(value, bool):
        fail(field, "must be an integer, got a boolean")
    number: int
    if isinstance(value, int):
        number = value
    elif isinstance(value, (float, Decimal)) and _is_integral(value):
        # compared before int() so 1e999999 is not expanded into a million digits
        if value > MAX_TOKENS:
            fail(field, f"{_short(value)} is above the limit of {MAX_TOKENS} tokens per call")
        number = int(value)
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = int(value)
    else:
        fail(field, f"must be a non-negative integer, got {_short(value)}")
    if number < 0:
        fail(field, f"must not be negative, got {number}")
    if number > MAX_TOKENS:
        fail(field, f"{number} is above the limit of {MAX_TOKENS} tokens per call")
    return number


def check_cost(field: str, value: object) -> Decimal:
    """A cost in USD: a number or decimal string, finite, in [0, MAX_COST_USD].

    Floats go through ``str()`` (their shortest round-trip form) so 0.1 becomes
    Decimal("0.1"), not the binary expansion.
    """
    if isinstance(value, bool):
        fail(field, "must be a number, got a boolean")
    try:
        if isinstance(value, Decimal):
            cost = value
        elif isinstance(value, (int, float)):
            cost = Decimal(str(value))
        elif isinstance(value, str) and len(value) <= 64:
            cost = Decimal(value.strip())
        else:
            fail(field, f"must be a number or a decimal string, got {_short(value)}")
    except InvalidOperation:
        fail(field, f"is not a decimal number: {_short(value)}")
    if not cost.is_finite():
        fail(field, "must be finite")
    if cost < 0:
        fail(field, f"must not be negative, got {cost}")
    if cost > MAX_COST_USD:
        fail(field, f"{cost} USD is above the limit of {MAX_COST_USD} USD per call")
    return cost


def check_ms(field: str, value: object) -> float:
    """A non-negative finite duration in milliseconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        fail(field, f"must be a number, got {_short(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or number < 0:
        fail(field, f"must be a non-negative finite number, got {_short(value)}")
    return number


def check_time(field: str, value: datetime, *, received_at: datetime) -> datetime:
    if value < MIN_TIME:
        fail(field, f"{value.isoformat()} is before {MIN_TIME.date().isoformat()}")
    if value > received_at + MAX_FUTURE:
        fail(field, f"{value.isoformat()} is more than {MAX_FUTURE} in the future")
    return value


def truncate_message(value: str) -> str:
    return value if len(value) <= MAX_ERROR_MESSAGE else value[: MAX_ERROR_MESSAGE - 1] + "…"


def json_size(field: str, value: Any) -> int:
    """UTF-8 size of ``value`` as strict JSON; rejects what strict JSON cannot carry."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return len(text.encode("utf-8"))
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as exc:
        fail(field, f"is not JSON-serialisable: {exc}")


def json_within(field: str, value: Any, limit: int) -> bool:
    """Whether ``value`` fits ``limit`` bytes as JSON. orjson measures it in one C call (this
    runs for every ingested span); what orjson refuses (keys that are not strings, integers
    beyond 64 bits) is measured as strict JSON by ``json_size``, which rejects what strict
    JSON cannot carry. The decoders turn non-finite floats into strings before this."""
    try:
        return len(orjson.dumps(value)) <= limit
    except (TypeError, orjson.JSONEncodeError):
        return json_size(field, value) <= limit


def _is_integral(value: float | Decimal) -> bool:
    if isinstance(value, float):
        return math.isfinite(value) and value.is_integer()
    return value.is_finite() and value == value.to_integral_value()


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
