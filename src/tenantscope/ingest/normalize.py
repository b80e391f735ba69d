"""Turn one decoded OTLP span into a UsageRecord.

Lookup. For each record field the names in ``semconv.ACCEPT`` are tried in order and the
first non-empty value wins, looking at the span's attributes, then (for
``semconv.BAGGAGE_FIELDS``) the same names prefixed with ``baggage.`` (baggage copied onto
spans, e.g. ``baggage.tenant.id``), then (for ``semconv.RESOURCE_FIELDS``) the resource
attributes. Identifier-like values must be strings; integers (not booleans) are accepted and
written in decimal, since instrumentations often set ``user.id`` as an int.

Kind. A span is ``llm`` when it carries the usage of a model call: any token count
attribute (even 0: a failed call that reported no tokens is still a call), a reported cost,
or a model together with a ``gen_ai.operation.name`` that is a model call (not
``invoke_agent``/``create_agent``/``execute_tool``). Otherwise it is ``span`` (wrappers,
tools, HTTP handlers) and its token fields are all zero. An explicit
``tenantscope.span.kind`` of ``llm`` or ``span`` overrides this.

Token convention of a record: ``input_tokens`` includes cache reads and cache writes;
``output_tokens`` includes reasoning tokens.

- Input. OpenAI and the OTel GenAI convention already report input including cached tokens,
  so the figure is kept. Anthropic's API (``semconv.CACHE_ADDITIVE_PROVIDERS``) reports
  ``input_tokens`` without the cache, so input = reported + cache_read + cache_write —
  unless the span sets ``tenantscope.usage.input_includes_cache`` true (our SDK does when it
  already summed them) or comes from a scope in ``semconv.CACHE_INCLUSIVE_SCOPES``
  (anthropic 2.x's own spans). For any other provider, an input smaller than cache_read +
  cache_write cannot include them, so it is read as additive too and the sum is taken.
- Output. Kept as reported (OpenAI includes reasoning); if it is smaller than the reasoning
  count it cannot include it, so reasoning is added.

Cost. ``gen_ai.usage.cost`` (a number or numeric string, converted through ``str()`` so a
float 0.1 is Decimal("0.1")) or else ``netra.usage`` (a JSON string, or a list of objects /
JSON strings, each with ``cost_in_usd``; summed) gives ``cost_source = "reported"``.
Otherwise ``cost_usd`` is None and ``cost_source`` is ``"unknown"`` until pricing runs.

Status. ``tenantscope.status`` (ok|error|cancelled) wins; else ``error.type == "cancelled"``
means cancelled; else OTLP status code 2 or any other ``error.type`` means error. Error
type comes from ``error.type`` or the ``exception.type`` of an ``exception`` span event;
error message from the status message or the exception event's ``exception.message``
(truncated to ``limits.MAX_ERROR_MESSAGE``). ``billable_state`` is
``tenantscope.billable_state`` when valid, else ``ignored`` for error/cancelled and
``billable`` otherwise.

Attributes. A record keeps the rest of the span's attributes: the accepted name that won a
field a column holds is left out, and so are ``tenantscope.span.kind``/``status``/
``billable_state`` and ``error.type`` when they say what the record says. Names that lost to
another (a ``gen_ai.request.model`` beside the response model), ``netra.usage`` (it carries
more than a cost), empty values and anything ignored stay. Resource attributes fill columns
only.

Validation (``errors.ValidationFailed``, message starting with the field name): ids over
``limits.MAX_ID_LEN`` or with control characters, event ids over ``MAX_EVENT_ID_LEN``,
negative or absurd token counts and costs, start times before ``MIN_TIME`` or more than
``MAX_FUTURE`` after ``received_at``, end before start. Attributes whose JSON exceeds
``MAX_ATTRIBUTES_BYTES`` first lose the attributes tenantscope does not read, largest first
(listed under ``tenantscope.dropped_attributes``); span events over the limit lose their
attributes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, cast

from tenantscope import semconv
from tenantscope.ingest import limits
from tenantscope.ingest.limits import fail
from tenantscope.ingest.spans import RawSpan
from tenantscope.records import (
    BILLABLE_STATES,
    STATUSES,
    BillableState,
    Kind,
    Status,
    UsageRecord,
)

DROPPED_ATTRIBUTES = "tenantscope.dropped_attributes"
# gen_ai.operation.name values that describe orchestration, not a model call.
NON_CALL_OPERATIONS = frozenset({"invoke_agent", "create_agent", "execute_tool"})

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TOKEN_FIELDS = limits.TOKEN_FIELDS
_ID_FIELDS = limits.ID_FIELDS
_READ_ATTRIBUTES = frozenset(
    [name for names in semconv.ACCEPT.values() for name in names]
    + [semconv.BAGGAGE_PREFIX + name for f in semconv.BAGGAGE_FIELDS for name in semconv.ACCEPT[f]]
    + [
        semconv.SPAN_KIND,
        semconv.INPUT_INCLUDES_CACHE,
        semconv.ERROR_TYPE,
        semconv.GEN_AI_OPERATION_NAME,
        semconv.STATUS,
    ]
)


def normalize_span(
    span: RawSpan,
    *,
    received_at: datetime,
    infer_provider: Callable[[str], str | None] | None = None,
) -> UsageRecord:
    """Normalise one span; raises ValidationFailed naming the field. See the module docstring."""
    lookup = _Lookup(span)
    ids = dict.fromkeys(_ID_FIELDS, "")
    for name in _ID_FIELD_SET.intersection(lookup.fields()):  # most are absent
        ids[name] = lookup.text(name)

    event_id = lookup.raw("event_id")
    if event_id is None:
        # of two ids the decoder checked (hex, 16 and 8 bytes): short and clean
        event_id = f"{span.trace_id}:{span.span_id}"
    else:
        event_id = limits.check_id("event_id", event_id, max_len=limits.MAX_EVENT_ID_LEN)

    start_time = _from_ns(span.start_ns, "start_time")
    end_time = _from_ns(span.end_ns, "end_time")
    limits.check_time("start_time", start_time, received_at=received_at)
    if end_time < start_time:
        fail("end_time", "is before start_time")
    limits.check_time("end_time", end_time, received_at=received_at)

    details = _usage_details(lookup) if lookup.has_any(_LANGFUSE_FIELDS) else None
    has_tokens = details is not None or lookup.has_any(_TOKEN_FIELD_SET)
    cost = _reported_cost(lookup)
    kind = _kind(span.attributes, has_tokens, cost, ids["model"], ids["operation"])
    if kind == "span" and _is_generation(lookup, ids["model"]):
        kind = "llm"
    provider = _provider(lookup, span.scope_name, ids["model"], infer_provider)
    tokens: dict[str, int] = {}
    convention = ""
    # the scope's convention matters only for usage figures and a reported cost
    listed = (
        semconv.convention_for(span.scope_name, span.scope_version)
        if kind == "llm" and (has_tokens or cost is not None)
        else None
    )
    if kind == "llm" and has_tokens:
        if details is not None:
            tokens, convention = details, "langfuse"
        else:
            counts = {name: lookup.tokens(name) for name in _TOKEN_FIELDS}
            tokens, convention = _normalize_tokens(counts, lookup, span, provider, listed)
    rest = lookup.rest
    if cost is not None and listed is not None and listed.cost_is_estimate:
        # the library's own guess, not what the app was charged: the catalog prices it
        rest = _with_reported_cost(rest, lookup)
        cost = None
    elif cost is not None and not cost and any(tokens.values()):
        # instrumentations write 0 when they have no price: pricing decides (see the
        # pricer), the figure stays among the attributes for reference
        rest = _with_reported_cost(rest, lookup)

    status, error_type, error_message = _outcome(span)
    billable = span.attributes.get(semconv.BILLABLE_STATE)
    billable_state: BillableState
    if isinstance(billable, str) and billable in BILLABLE_STATES:
        billable_state = cast(BillableState, billable)
    else:
        billable_state = "billable" if status == "ok" else "ignored"

    if error_type:
        error_type = _error_type(error_type)
    if error_message:
        error_message = limits.truncate_message(
            limits.check_unicode("error_message", error_message)
        )
    if not _LOGIC_KEYS.isdisjoint(rest):
        said = {
            semconv.SPAN_KIND: kind,
            semconv.STATUS: status,
            semconv.BILLABLE_STATE: billable_state,
            semconv.ERROR_TYPE: error_type,
        }
        rest = {k: v for k, v in rest.items() if said.get(k, _ABSENT) != v}

    return UsageRecord(
        event_id=event_id,
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        name=_name(span.name),
        kind=kind,
        provider=provider,
        input_tokens=tokens.get("input_tokens", 0),
        output_tokens=tokens.get("output_tokens", 0),
        cache_read_tokens=tokens.get("cache_read_tokens", 0),
        cache_write_tokens=tokens.get("cache_write_tokens", 0),
        reasoning_tokens=tokens.get("reasoning_tokens", 0),
        cost_usd=cost,
        cost_source="reported" if cost is not None else "unknown",
        start_time=start_time,
        end_time=end_time,
        duration_ms=(span.end_ns - span.start_ns) / 1e6,
        ttft_ms=_ttft(lookup),
        status=status,
        error_type=error_type,
        error_message=error_message,
        billable_state=billable_state,
        usage_convention=convention,
        attributes=_bounded_attributes(rest),
        events=_events(span.events),
        source="otlp",
        received_at=received_at,
        tenant_id=ids["tenant_id"],
        workspace_id=ids["workspace_id"],
        user_id=ids["user_id"],
        session_id=ids["session_id"],
        feature=ids["feature"],
        billable_action=ids["billable_action"],
        customer_visible_label=ids["customer_visible_label"],
        customer_id=ids["customer_id"],
        environment=ids["environment"],
        service=ids["service"],
        model=ids["model"],
        operation=ids["operation"],
        response_id=ids["response_id"],
    )


def _key_ranks(fields: Iterable[str], prefix: str, offset: int) -> dict[str, list[tuple[str, int]]]:
    out: dict[str, list[tuple[str, int]]] = {}
    for field in fields:
        for i, name in enumerate(semconv.ACCEPT[field]):
            out.setdefault(prefix + name, []).append((field, offset + i))
    return out


# attribute key -> the fields it can fill and its rank there (lower wins): span attributes
# first, then baggage copies, then resource attributes, each in ACCEPT order.
_SPAN_KEYS = _key_ranks(semconv.ACCEPT, "", 0)
for _key, _ranks in _key_ranks(semconv.BAGGAGE_FIELDS, semconv.BAGGAGE_PREFIX, 1000).items():
    _SPAN_KEYS.setdefault(_key, []).extend(_ranks)
_RESOURCE_KEYS = _key_ranks(semconv.RESOURCE_FIELDS, "", 2000)
# Names whose winning value a record column holds (tokens as reported, before the cache
# convention, which the record's cache figures undo) are not stored again. ``netra.usage``
# carries more than its cost, and an invalid billable state is ignored: both stay.
_NOT_HELD = frozenset(
    {
        "reported_cost_list",
        "billable_state",
        # read, but no column holds them whole: they stay to explain the record
        "total_tokens",
        "usage_details",
        "cost_details",
        "observation_type",
    }
)
_HELD_KEYS = frozenset(
    key for key, ranks in _SPAN_KEYS.items() if any(f not in _NOT_HELD for f, _ in ranks)
)
# Langfuse 5 writes metadata values as JSON ('"apex-legal"' for the string apex-legal)
_JSON_TEXT_KEYS = frozenset(
    key
    for key in _SPAN_KEYS
    if key.startswith(("langfuse.trace.metadata.", "langfuse.observation.metadata."))
)


def _json_text(value: Any) -> Any:
    """A JSON string literal's text; anything else as it is."""
    if type(value) is str and len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return decoded if isinstance(decoded, str) else value
    return value


# attributes steering a record column, left out when they say what the record says
_LOGIC_KEYS = frozenset(
    {semconv.SPAN_KIND, semconv.STATUS, semconv.BILLABLE_STATE, semconv.ERROR_TYPE}
)
_ABSENT = object()


class _Lookup:
    """First non-empty value over span attributes, baggage copies and resource attributes.

    One pass over the span's (few) attributes instead of probing every accepted name of
    every field: this runs for each ingested span. The resource's part is worked out once
    for all the spans sharing the resource (the decoder hands them one dict)."""

    __slots__ = ("_found", "rest")

    def __init__(self, span: RawSpan) -> None:
        found = _resource_found(span.resource).copy()
        # the same pass sorts out what the record keeps: every attribute but the winners
        # of the fields a column holds (a displaced winner goes back in)
        rest: dict[str, Any] = {}
        displaced: list[tuple[str, Any]] = []
        for key, value in span.attributes.items():
            ranks = _SPAN_KEYS.get(key)
            if ranks is None or value is None or (type(value) is str and not value.strip()):
                rest[key] = value
                continue
            if key in _JSON_TEXT_KEYS:
                value = _json_text(value)
            held = key in _HELD_KEYS
            won = False
            for field, rank in ranks:
                best = found.get(field)
                # span and baggage ranks are all below the resource's
                if best is None or rank < best[0]:
                    if best is not None and best[2] in _HELD_KEYS:
                        displaced.append((best[2], best[1]))
                    found[field] = (rank, value, key)
                    won = True
            if not (held and won):
                rest[key] = value
        for key, value in displaced:
            rest[key] = value
        self._found = found
        self.rest = rest

    def fields(self) -> Iterable[str]:
        return self._found.keys()

    def has_any(self, fields: frozenset[str]) -> bool:
        return not fields.isdisjoint(self._found)

    def raw(self, field: str) -> Any:
        hit = self._found.get(field)
        return None if hit is None else hit[1]

    def source(self, field: str) -> str:
        """The span attribute that gave ``field`` ("" for the resource or none)."""
        hit = self._found.get(field)
        return "" if hit is None else hit[2]

    def text(self, field: str) -> str:
        hit = self._found.get(field)
        if hit is None:
            return ""
        value = hit[1]
        if type(value) is str and value in _VALID_IDS:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        checked = limits.check_id(field, value)
        if len(_VALID_IDS) >= _VALID_IDS_MAX:
            _VALID_IDS.clear()
        _VALID_IDS.add(checked)
        return checked

    def tokens(self, field: str) -> int | None:
        value = self.raw(field)
        return None if value is None else limits.check_tokens(field, value)


# Ids repeat (tenants, users, models, services): one that passed ``check_id`` (whose
# verdict depends on the value alone at the default length) is not checked again.
_VALID_IDS: set[str] = set()
_VALID_IDS_MAX = 50_000
_TOKEN_FIELD_SET = frozenset(_TOKEN_FIELDS)
_ID_FIELD_SET = frozenset(_ID_FIELDS)
# field -> (rank, value, the span attribute it came from; "" for the resource)
_NO_FOUND: dict[str, tuple[int, Any, str]] = {}
# the last resource seen and what it fills (spans of one resource come together); one
# tuple swapped whole, as decoding threads may share it
_last_resource: list[tuple[object, dict[str, tuple[int, Any, str]]]] = [(None, _NO_FOUND)]


def _resource_found(resource: dict[str, Any]) -> dict[str, tuple[int, Any, str]]:
    if not resource:
        return _NO_FOUND
    last, found = _last_resource[0]
    if last is resource:
        return found
    found = {}
    for key, value in resource.items():
        ranks = _RESOURCE_KEYS.get(key)
        if ranks is None or _is_empty(value):
            continue
        for field, rank in ranks:
            best = found.get(field)
            if best is None or rank < best[0]:
                found[field] = (rank, value, "")
    _last_resource[0] = (resource, found)
    return found


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _from_ns(ns: int, field: str) -> datetime:
    if ns <= 0:
        fail(field, "is missing")
    try:
        return _EPOCH + timedelta(microseconds=ns // 1000)
    except OverflowError:
        fail(field, f"{ns} ns is out of range")


def _kind(
    attributes: dict[str, Any],
    has_tokens: bool,
    cost: Decimal | None,
    model: str,
    operation: str,
) -> Kind:
    explicit = attributes.get(semconv.SPAN_KIND)
    if explicit == "llm" or explicit == "span":
        return cast(Kind, explicit)
    if has_tokens or cost is not None:
        return "llm"
    if model and operation and operation not in NON_CALL_OPERATIONS:
        return "llm"
    return "span"


def _provider(
    lookup: _Lookup,
    scope_name: str,
    model: str,
    infer_provider: Callable[[str], str | None] | None,
) -> str:
    value = lookup.text("provider")
    if value:
        key = value.strip().lower()
        return semconv.PROVIDER_ALIASES.get(key, key)
    scope = scope_name.lower()
    for fragment, provider in semconv.SCOPE_PROVIDERS:
        if fragment in scope:
            return provider
    if model and infer_provider is not None:
        return infer_provider(model) or ""
    return ""


def _normalize_tokens(
    counts: dict[str, int | None],
    lookup: _Lookup,
    span: RawSpan,
    provider: str,
    listed: semconv.Convention | None,
) -> tuple[dict[str, int], str]:
    """Token figures in the record's convention, and the name of the rule that read them
    (``semconv.CONVENTIONS`` / ``semconv.USAGE_RULES``)."""
    values = {name: count or 0 for name, count in counts.items()}
    cache = values["cache_read_tokens"] + values["cache_write_tokens"]
    inp = values["input_tokens"]
    if _truthy(span.attributes.get(semconv.INPUT_INCLUDES_CACHE)):
        includes, rule = True, "attribute"
    elif listed is not None:
        rule = listed.name
        if listed.input_includes_cache is None:  # as the provider's API reports it
            includes = provider not in semconv.CACHE_ADDITIVE_PROVIDERS
        else:
            includes = listed.input_includes_cache
    else:
        total = lookup.raw("total_tokens")
        total = None if total is None else limits.check_tokens("total_tokens", total)
        if cache and total is not None and total == inp + cache + values["output_tokens"]:
            includes, rule = False, "figures:total"
        else:
            includes, rule = True, "otel"
    if includes and inp < cache:
        # a listed library cannot have included more cache than its whole input
        includes, rule = False, "figures:input<cache"
    if not includes:
        values["input_tokens"] = inp + cache
    if values["output_tokens"] < values["reasoning_tokens"]:
        values["output_tokens"] += values["reasoning_tokens"]
    _check_totals(values)
    return values, rule


def _check_totals(values: dict[str, int]) -> None:
    for name in ("input_tokens", "output_tokens"):
        if values[name] > limits.MAX_TOKENS:
            fail(name, f"{values[name]} is above the limit of {limits.MAX_TOKENS} tokens per call")


# Langfuse usage-detail keys, by what they count (first present wins). Langfuse v3's OpenAI
# integration sends the provider's usage object as it came (prompt_tokens, nested details);
# usage given by hand uses Langfuse's own keys, each priced apart (input without its cache).
_LANGFUSE_INPUT = ("input", "prompt_tokens", "input_tokens")
_LANGFUSE_OUTPUT = ("output", "completion_tokens", "output_tokens")
_LANGFUSE_TOTAL = ("total", "total_tokens")
_LANGFUSE_CACHE_READ = (
    "input_cached_tokens",
    "cache_read_input_tokens",
    "input_cache_read",
    "cached_tokens",
    "prompt_tokens_details.cached_tokens",
    "input_tokens_details.cached_tokens",
)
_LANGFUSE_CACHE_WRITE = ("cache_creation_input_tokens", "input_cache_creation", "input_cache_write")
_LANGFUSE_REASONING = (
    "output_reasoning_tokens",
    "output_reasoning",
    "reasoning_tokens",
    "completion_tokens_details.reasoning_tokens",
    "output_tokens_details.reasoning_tokens",
)
_LANGFUSE_FIELDS = frozenset({"usage_details", "cost_details", "observation_type"})


def _usage_details(lookup: _Lookup) -> dict[str, int] | None:
    """Token figures from Langfuse's ``usage_details`` JSON (None: none given)."""
    raw = _parse_json_text(lookup.raw("usage_details"))
    if not isinstance(raw, dict) or not raw:
        return None
    units: dict[str, int] = {}
    for key, value in raw.items():
        # one level of nesting (the provider's ``*_details`` objects); other values
        # (null, text) say nothing countable
        items = value.items() if isinstance(value, dict) else [("", value)]
        for sub, count in items:
            if isinstance(count, int) and not isinstance(count, bool):
                name = f"{key}.{sub}" if sub else str(key)
                units[name] = limits.check_tokens(f"langfuse usage_details.{name}", count)

    def first(names: tuple[str, ...]) -> tuple[str, int]:
        return next(((n, units[n]) for n in names if n in units), ("", 0))

    in_key, inp = first(_LANGFUSE_INPUT)
    out = first(_LANGFUSE_OUTPUT)[1]
    read = first(_LANGFUSE_CACHE_READ)[1]
    write = first(_LANGFUSE_CACHE_WRITE)[1]
    reasoning = first(_LANGFUSE_REASONING)[1]
    total_key, total = first(_LANGFUSE_TOTAL)
    if total_key:
        inclusive = total == inp + out  # else the cache and reasoning are counted apart
    else:
        # the provider's own object: OpenAI's prompt/input tokens include the cache,
        # Anthropic's input_tokens (beside cache_read_input_tokens) do not
        inclusive = in_key == "prompt_tokens" or (
            in_key == "input_tokens" and "input_tokens_details.cached_tokens" in units
        )
    if not inclusive or inp < read + write:
        inp += read + write
    if out < reasoning or (not inclusive and in_key == "input"):
        out += reasoning
    values = {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_read_tokens": read,
        "cache_write_tokens": write,
        "reasoning_tokens": reasoning,
    }
    _check_totals(values)
    return values


def _is_generation(lookup: _Lookup, model: str) -> bool:
    kind = lookup.raw("observation_type")
    return bool(model) and isinstance(kind, str) and kind.lower() == "generation"


def _with_reported_cost(rest: dict[str, Any], lookup: _Lookup) -> dict[str, Any]:
    key = lookup.source("reported_cost")
    if key and key not in rest:
        rest = {**rest, key: lookup.raw("reported_cost")}
    return rest


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return value is True or value == 1


def _reported_cost(lookup: _Lookup) -> Decimal | None:
    value = lookup.raw("reported_cost")
    if value is not None:
        return limits.check_cost("gen_ai.usage.cost", value)
    usage = lookup.raw("reported_cost_list")
    if usage is not None:
        return _netra_cost(usage)
    details = lookup.raw("cost_details")
    if details is not None:
        return _langfuse_cost(details)
    return None


def _langfuse_cost(details: Any) -> Decimal | None:
    """Langfuse's ``cost_details``: its ``total``, else the sum of its parts."""
    parsed = _parse_json_text(details)
    if not isinstance(parsed, dict) or not parsed:
        return None
    if parsed.get("total") is not None:
        return limits.check_cost("langfuse cost_details.total", parsed["total"])
    total = Decimal(0)
    for key, value in parsed.items():
        if value is not None:
            total += limits.check_cost(f"langfuse cost_details.{key}", value)
    return limits.check_cost("langfuse cost_details", total)


def _netra_cost(usage: Any) -> Decimal | None:
    """Sum ``cost_in_usd`` over netra usage entries; unrecognised shapes report nothing."""
    entries = _parse_json_text(usage)
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list):
        return None
    total: Decimal | None = None
    for entry in entries:
        item = _parse_json_text(entry)
        if not isinstance(item, dict) or item.get("cost_in_usd") is None:
            continue
        cost = limits.check_cost("netra.usage.cost_in_usd", item["cost_in_usd"])
        total = cost if total is None else total + cost
    if total is not None and total > limits.MAX_COST_USD:
        limits.check_cost("netra.usage.cost_in_usd", total)
    return total


def _parse_json_text(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value, parse_float=Decimal)
    except (ValueError, RecursionError):
        return None


def _outcome(span: RawSpan) -> tuple[Status, str, str]:
    attributes = span.attributes
    if span.status_code != 2 and _OUTCOME_KEYS.isdisjoint(attributes):
        return "ok", "", ""  # most spans: nothing says otherwise
    exception = (
        next((e for e in span.events if e.get("name") == "exception"), None)
        if span.events
        else None
    )
    exception_attrs: dict[str, Any] = exception.get("attributes", {}) if exception else {}
    error_type = _text_or_empty(attributes.get(semconv.ERROR_TYPE)) or _text_or_empty(
        exception_attrs.get("exception.type")
    )
    message = span.status_message or _text_or_empty(exception_attrs.get("exception.message"))

    explicit = attributes.get(semconv.STATUS)
    status: Status
    if isinstance(explicit, str) and explicit in STATUSES:
        status = cast(Status, explicit)
    elif attributes.get(semconv.ERROR_TYPE) == "cancelled":
        status = "cancelled"
    elif span.status_code == 2 or _text_or_empty(attributes.get(semconv.ERROR_TYPE)):
        status = "error"
    else:
        status = "ok"
    if status == "ok":
        return status, "", ""
    return status, error_type, message


_OUTCOME_KEYS = frozenset({semconv.STATUS, semconv.ERROR_TYPE})


def _text_or_empty(value: object) -> str:
    return value if isinstance(value, str) else ""


def _error_type(value: str) -> str:
    # Truncated, not rejected: the failed call still happened and is still shown.
    limits.check_unicode("error_type", value)
    return value[: limits.MAX_ID_LEN]


def _ttft(lookup: _Lookup) -> float | None:
    value = lookup.raw("ttft_ms")
    if value is not None:
        return limits.check_ms("tenantscope.ttft_ms", value)
    seconds = lookup.raw("ttft_s")
    if seconds is not None:
        return limits.check_ms("gen_ai.server.time_to_first_token", seconds) * 1000.0
    return None


def _name(name: str) -> str:
    limits.check_unicode("name", name)
    return name if len(name) <= limits.MAX_ID_LEN else name[: limits.MAX_ID_LEN]


def _bounded_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    if limits.json_within("attributes", attributes, limits.MAX_ATTRIBUTES_BYTES):
        return attributes  # the decoder's own dict, made for this span
    size = limits.json_size("attributes", attributes)
    sizes = {key: limits.json_size("attributes", {key: value}) for key, value in attributes.items()}
    kept = dict(attributes)
    dropped: list[str] = []
    for key in sorted(sizes, key=lambda k: sizes[k], reverse=True):
        if size <= limits.MAX_ATTRIBUTES_BYTES - 1024:  # room for the list of dropped keys
            break
        if key in _READ_ATTRIBUTES:
            continue
        del kept[key]
        dropped.append(key[:200])
        size -= sizes[key]
    kept[DROPPED_ATTRIBUTES] = dropped[:50]
    if limits.json_size("attributes", kept) > limits.MAX_ATTRIBUTES_BYTES:
        fail(
            "attributes",
            f"are {size} bytes as JSON even without the attributes tenantscope does not "
            f"read; the limit is {limits.MAX_ATTRIBUTES_BYTES}",
        )
    return kept


def _events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for event in events:
        time_ns = event.get("time_ns")
        when = ""
        if isinstance(time_ns, int) and time_ns > 0:
            try:
                when = (_EPOCH + timedelta(microseconds=time_ns // 1000)).isoformat()
            except OverflowError:
                pass
        name = event.get("name", "")
        out.append(
            {
                "name": limits.check_unicode("events.name", name if isinstance(name, str) else ""),
                "time": when.replace("+00:00", "Z"),
                "attributes": dict(event.get("attributes") or {}),
            }
        )
    if out and not limits.json_within("events", out, limits.MAX_ATTRIBUTES_BYTES):
        for event in out:
            event["attributes"] = {}
    return out
