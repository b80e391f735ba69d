from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from tenantscope.errors import BadRequest
from tenantscope.ingest.events import FIELDS, ItemError, ParsedEvents, parse_events
from tenantscope.records import UsageRecord

RECEIVED = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def _parse(items: Any, **kwargs: Any) -> ParsedEvents:
    return parse_events(json.dumps(items).encode(), received_at=RECEIVED, **kwargs)


def _one(**fields: Any) -> UsageRecord:
    parsed = _parse([{"event_id": "e1", **fields}])
    assert parsed.errors == []
    [record] = parsed.records
    return record


def _errors(**fields: Any) -> list[tuple[str, str]]:
    parsed = _parse([{"event_id": "e1", **fields}])
    assert parsed.records == []
    assert {e.index for e in parsed.errors} == {0}
    return [(e.field, e.message) for e in parsed.errors]


def _error_fields(**fields: Any) -> list[str]:
    return [field for field, _ in _errors(**fields)]


FULL_EVENT: dict[str, Any] = {
    "event_id": "evt-123",
    "tenant_id": "apex-legal",
    "workspace_id": "ws-1",
    "user_id": "u-1",
    "session_id": "s-1",
    "feature": "meeting-summary",
    "billable_action": "summarize",
    "customer_visible_label": "Meeting summary",
    "customer_id": "end-customer-42",
    "environment": "prod",
    "service": "api",
    "provider": "aws.bedrock",
    "model": "anthropic.claude-3-5-sonnet",
    "operation": "chat",
    "name": "summarize meeting",
    "response_id": "msg_01",
    "input_tokens": 1300,
    "output_tokens": 400,
    "cache_read_tokens": 1000,
    "cache_write_tokens": 200,
    "reasoning_tokens": 100,
    "cost_usd": "0.004500",
    "timestamp": "2025-03-01T11:00:00.250Z",
    "duration_ms": 1750,
    "ttft_ms": 300,
    "status": "error",
    "error_type": "overloaded",
    "error_message": "overloaded, try again",
    "billable_state": "included",
    "trace_id": "0AF7651916CD43DD8448EB211C80319C",
    "span_id": "b7ad6b7169203331",
    "parent_span_id": "00f067aa0ba902b7",
    "attributes": {"plan": "enterprise", "n": 1.5, "nested": {"k": [1, 2]}},
}


def test_every_documented_field_is_accepted() -> None:
    assert set(FULL_EVENT) | {"start_time", "end_time"} == FIELDS
    record = _one(**FULL_EVENT)
    assert record.event_id == "evt-123"
    assert (record.tenant_id, record.workspace_id, record.user_id, record.session_id) == (
        "apex-legal",
        "ws-1",
        "u-1",
        "s-1",
    )
    assert (record.feature, record.billable_action, record.customer_visible_label) == (
        "meeting-summary",
        "summarize",
        "Meeting summary",
    )
    assert record.customer_id == "end-customer-42"
    assert (record.environment, record.service) == ("prod", "api")
    assert (record.provider, record.model, record.operation) == (
        "aws",
        "anthropic.claude-3-5-sonnet",
        "chat",
    )
    assert (record.name, record.response_id) == ("summarize meeting", "msg_01")
    assert (record.input_tokens, record.output_tokens) == (1300, 400)
    assert (record.cache_read_tokens, record.cache_write_tokens, record.reasoning_tokens) == (
        1000,
        200,
        100,
    )
    assert (record.cost_usd, record.cost_source) == (Decimal("0.004500"), "reported")
    assert record.start_time == datetime(2025, 3, 1, 11, 0, 0, 250000, tzinfo=timezone.utc)
    assert record.end_time == record.start_time + timedelta(milliseconds=1750)
    assert record.duration_ms == 1750.0
    assert record.ttft_ms == 300.0
    assert (record.status, record.error_type, record.error_message) == (
        "error",
        "overloaded",
        "overloaded, try again",
    )
    assert record.billable_state == "included"
    assert record.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert (record.span_id, record.parent_span_id) == ("b7ad6b7169203331", "00f067aa0ba902b7")
    assert record.attributes == {"plan": "enterprise", "n": 1.5, "nested": {"k": [1, 2]}}
    assert isinstance(record.attributes["n"], float)
    assert (record.kind, record.source, record.received_at) == ("llm", "event", RECEIVED)


def test_minimal_event_defaults() -> None:
    record = _one()
    assert record.kind == "span"
    assert (record.trace_id, record.span_id, record.tenant_id) == ("", "", "")
    assert record.start_time == record.end_time == RECEIVED
    assert (record.status, record.billable_state, record.cost_source) == (
        "ok",
        "billable",
        "unknown",
    )
    assert record.cost_usd is None
    assert record.name == "usage event"


def test_object_body_with_events_key() -> None:
    body = json.dumps({"events": [{"event_id": "a"}, {"event_id": "b"}]}).encode()
    parsed = parse_events(body, received_at=RECEIVED)
    assert [r.event_id for r in parsed.records] == ["a", "b"]


@pytest.mark.parametrize(
    "fields",
    [{"input_tokens": 0}, {"model": "gpt-4o"}, {"cost_usd": 0}, {"reasoning_tokens": 0}],
)
def test_kind_llm_when_usage_model_or_cost_given(fields: dict[str, Any]) -> None:
    assert _one(**fields).kind == "llm"


def test_mixed_batch_names_index_and_field_and_keeps_valid_items() -> None:
    items = [
        {"event_id": "ok-0", "tenant_id": "a", "input_tokens": 5},
        {"event_id": "bad-1", "input_tokens": -3},
        "not an object",
        {"event_id": "ok-3", "tenant_id": "b"},
        {"event_id": "bad-4", "tennant_id": "typo"},
        {"tenant_id": "no-id"},
    ]
    parsed = _parse(items)
    assert [r.event_id for r in parsed.records] == ["ok-0", "ok-3"]
    by_index = {e.index: e for e in parsed.errors}
    assert set(by_index) == {1, 2, 4, 5}
    assert by_index[1].field == "input_tokens" and "negative" in by_index[1].message
    assert by_index[2].field == "" and "object" in by_index[2].message
    assert by_index[4] == ItemError(4, "tennant_id", "unknown field (did you mean 'tenant_id'?)")
    assert by_index[5].field == "event_id" and "required" in by_index[5].message


def test_repeated_event_ids_are_handed_on_for_the_writer_to_count() -> None:
    """The writer keeps the first of a tenant's repeats and answers the rest as duplicates
    (tests/server/test_event_ids.py): parsing drops none, so none goes uncounted."""
    parsed = _parse(
        [
            {"event_id": "x", "tenant_id": "first"},
            {"event_id": "x", "tenant_id": "second"},
            {"event_id": "x", "tenant_id": "first"},
            {"event_id": "y"},
        ]
    )
    assert [(r.event_id, r.tenant_id) for r in parsed.records] == [
        ("x", "first"),
        ("x", "second"),
        ("x", "first"),
        ("y", ""),
    ]
    assert parsed.errors == []


def test_an_invalid_first_copy_does_not_hide_a_valid_later_one() -> None:
    parsed = _parse([{"event_id": "x", "input_tokens": -1}, {"event_id": "x", "input_tokens": 1}])
    assert [r.input_tokens for r in parsed.records] == [1]
    assert [e.index for e in parsed.errors] == [0]


def test_batch_limit() -> None:
    items = [{"event_id": f"e{i}"} for i in range(1000)]
    assert len(_parse(items).records) == 1000
    with pytest.raises(BadRequest) as info:
        _parse([*items, {"event_id": "one-too-many"}])
    assert "1001" in info.value.message and "1000" in info.value.message
    with pytest.raises(BadRequest):
        _parse(items[:11], max_items=10)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "not valid JSON"),
        (b"{events: []}", "not valid JSON"),
        (b'[{"event_id": "\xff"}]', "UTF-8"),
        (b"42", "JSON list"),
        (b'{"items": []}', "JSON list"),
        (b'{"events": [], "extra": 1}', "JSON list"),
        (b'{"events": {"event_id": "a"}}', "must be a list"),
        (b'[{"event_id": "a", "cost_usd": NaN}]', "not valid JSON"),
    ],
)
def test_unparseable_bodies_are_400(body: bytes, fragment: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_events(body, received_at=RECEIVED)
    assert fragment in info.value.message


# --- field validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"event_id": ""}, "event_id", "empty"),
        ({"event_id": 7}, "event_id", "string"),
        ({"event_id": "e" * 257}, "event_id", "256"),
        ({"tenant_id": "t" * 10_000}, "tenant_id", "1024"),
        ({"tenant_id": 123}, "tenant_id", "string"),
        ({"user_id": ["u"]}, "user_id", "string"),
        ({"session_id": "a\x00b"}, "session_id", "control"),
        ({"tenant_id": "\ud800"}, "tenant_id", "surrogate"),
        ({"input_tokens": -1}, "input_tokens", "negative"),
        ({"output_tokens": 2_000_000_000}, "output_tokens", "limit"),
        ({"input_tokens": "12"}, "input_tokens", "not a string"),
        ({"input_tokens": True}, "input_tokens", "boolean"),
        ({"input_tokens": 1.5}, "input_tokens", "integer"),
        ({"cost_usd": -0.5}, "cost_usd", "negative"),
        ({"cost_usd": "free"}, "cost_usd", "decimal"),
        ({"cost_usd": 1e9}, "cost_usd", "limit"),
        ({"cost_usd": [1]}, "cost_usd", "number"),
        ({"status": "failed"}, "status", "ok, error, cancelled"),
        ({"billable_state": "free"}, "billable_state", "billable, included, ignored"),
        ({"ttft_ms": -5}, "ttft_ms", "non-negative"),
        ({"trace_id": "abc"}, "trace_id", "32 hex"),
        ({"trace_id": "0" * 32}, "trace_id", "zero"),
        ({"span_id": "b7ad6b7169203331"}, "trace_id", "required"),
        ({"attributes": [1, 2]}, "attributes", "object"),
        ({"attributes": {"blob": "x" * 70_000}}, "attributes", "limit"),
        ({"attributes": {"k": "\udfff"}}, "attributes", "surrogate"),
        ({"error_message": 5}, "error_message", "string"),
    ],
)
def test_bad_fields_name_the_field(fields: dict[str, Any], field: str, fragment: str) -> None:
    errors = _errors(**fields)
    assert [f for f, _ in errors] == [field], errors
    assert fragment in errors[0][1], errors


def test_token_convention_is_enforced() -> None:
    assert _error_fields(input_tokens=10, cache_read_tokens=100) == ["input_tokens"]
    assert _error_fields(output_tokens=10, reasoning_tokens=100) == ["output_tokens"]
    record = _one(input_tokens=110, cache_read_tokens=100, output_tokens=10, reasoning_tokens=10)
    assert (record.input_tokens, record.output_tokens) == (110, 10)


def test_several_errors_in_one_item_are_all_reported() -> None:
    fields = _error_fields(tenant_id=1, input_tokens=-1, colour="red")
    assert sorted(fields) == ["colour", "input_tokens", "tenant_id"]


def test_long_error_message_is_truncated() -> None:
    assert len(_one(status="error", error_message="m" * 9000).error_message) == 4096


def test_null_means_absent() -> None:
    record = _one(tenant_id=None, input_tokens=None, cost_usd=None, timestamp=None)
    assert (record.tenant_id, record.kind, record.cost_usd) == ("", "span", None)


# --- money -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.1", "0.1"),
        ("0.000450000", "0.000450000"),
        ("0.123456789012345678901", "0.123456789012345678901"),
        ("3", "3"),
        ('"0.00045"', "0.00045"),
    ],
)
def test_cost_is_exact_from_numbers_and_strings(raw: str, expected: str) -> None:
    body = f'[{{"event_id": "e", "cost_usd": {raw}}}]'.encode()
    [record] = parse_events(body, received_at=RECEIVED).records
    assert record.cost_usd == Decimal(expected)
    assert str(record.cost_usd) == expected


# --- time --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-03-01T10:00:00Z", datetime(2025, 3, 1, 10, tzinfo=timezone.utc)),
        ("2025-03-01T11:00:00+01:00", datetime(2025, 3, 1, 10, tzinfo=timezone.utc)),
        ("2025-03-01t10:00:00.123456789z", datetime(2025, 3, 1, 10, 0, 0, 123456, timezone.utc)),
        (1740823200, datetime(2025, 3, 1, 10, tzinfo=timezone.utc)),
        (1740823200.5, datetime(2025, 3, 1, 10, 0, 0, 500000, tzinfo=timezone.utc)),
    ],
)
def test_timestamp_formats(value: Any, expected: datetime) -> None:
    assert _one(timestamp=value).start_time == expected
    assert _one(start_time=value).start_time == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2025-03-01T10:00:00", "offset"),
        ("yesterday", "RFC 3339"),
        ("2025-02-30T10:00:00Z", "not a valid time"),
        ("2025-03-01T10:00:00+25:00", "offset"),
        (1740823200000, "out of range"),
        (1e300, "out of range"),
        (True, "boolean"),
        ({"t": 1}, "RFC 3339"),
        ("1999-12-31T23:59:59Z", "before 2000"),
        ("2025-03-02T12:00:01Z", "future"),
    ],
)
def test_bad_timestamps(value: Any, fragment: str) -> None:
    errors = _errors(timestamp=value)
    assert [f for f, _ in errors] == ["timestamp"], errors
    assert fragment in errors[0][1]


def test_clock_skew_within_a_day_is_accepted() -> None:
    assert _one(timestamp="2025-03-02T11:59:00Z").start_time > RECEIVED


def test_end_time_and_duration() -> None:
    record = _one(timestamp="2025-03-01T10:00:00Z", end_time="2025-03-01T10:00:02.5Z")
    assert record.duration_ms == 2500.0
    assert _error_fields(timestamp="2025-03-01T10:00:00Z", end_time="2025-03-01T09:00:00Z") == [
        "end_time"
    ]
    assert _error_fields(timestamp=1, start_time=2) == ["start_time"]
    assert _error_fields(end_time="2025-03-01T10:00:00Z", duration_ms=5) == ["duration_ms"]
    assert _error_fields(duration_ms=-1) == ["duration_ms"]
    assert _error_fields(duration_ms=1e12) == ["duration_ms"]


def test_default_billable_state_follows_status() -> None:
    assert _one(status="ok").billable_state == "billable"
    assert _one(status="error").billable_state == "ignored"
    assert _one(status="cancelled").billable_state == "ignored"
    assert _one(status="cancelled", billable_state="billable").billable_state == "billable"


def test_provider_is_normalised() -> None:
    assert _one(provider="OpenAI").provider == "openai"
    assert _one(provider="az.ai.openai").provider == "azure"
