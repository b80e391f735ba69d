from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tenantscope import semconv
from tenantscope.errors import ValidationFailed
from tenantscope.ingest import limits
from tenantscope.ingest.normalize import DROPPED_ATTRIBUTES, normalize_span
from tenantscope.ingest.otlp import decode_traces
from tenantscope.ingest.spans import RawSpan
from tenantscope.records import UsageRecord

from .test_otlp import END_NS, START_NS, request, span

RECEIVED = datetime(2025, 1, 1, 0, 0, 5, tzinfo=timezone.utc)
TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


def _raw(
    attributes: dict[str, Any] | None = None,
    *,
    resource: dict[str, Any] | None = None,
    scope_name: str = "",
    **changes: Any,
) -> RawSpan:
    fields: dict[str, Any] = {
        "trace_id": TRACE,
        "span_id": SPAN,
        "parent_span_id": "",
        "name": "op",
        "start_ns": START_NS,
        "end_ns": END_NS,
        "attributes": attributes or {},
        "resource": resource or {},
        "scope_name": scope_name,
    }
    fields.update(changes)
    return RawSpan(**fields)


def _norm(attributes: dict[str, Any] | None = None, **kwargs: Any) -> UsageRecord:
    infer = kwargs.pop("infer_provider", None)
    return normalize_span(_raw(attributes, **kwargs), received_at=RECEIVED, infer_provider=infer)


def _rejects(field: str, attributes: dict[str, Any] | None = None, **kwargs: Any) -> str:
    with pytest.raises(ValidationFailed) as info:
        _norm(attributes, **kwargs)
    assert info.value.message.startswith(field), info.value.message
    assert info.value.details == {"field": field}
    return info.value.message


# --- attribution -----------------------------------------------------------------------

_STRING_FIELDS = limits.ID_FIELDS
_LISTED_STRING_FIELDS = (
    "tenant_id",
    "workspace_id",
    "user_id",
    "session_id",
    "feature",
    "billable_action",
    "customer_visible_label",
    "model",
    "operation",
    "response_id",
    "environment",
    "service",
)


def test_every_id_field_is_read() -> None:
    assert set(_STRING_FIELDS) >= {*_LISTED_STRING_FIELDS, "customer_id"}


@pytest.mark.parametrize(
    ("field", "name"),
    [(field, name) for field in _STRING_FIELDS for name in semconv.ACCEPT[field]],
)
def test_every_accepted_attribute_name_fills_its_field(field: str, name: str) -> None:
    record = _norm({name: "value-1"})
    assert getattr(record, field) == "value-1"


@pytest.mark.parametrize("field", ["tenant_id", "user_id", "session_id", "model"])
def test_first_non_empty_accepted_name_wins(field: str) -> None:
    first, second = semconv.ACCEPT[field][:2]
    assert getattr(_norm({second: "b", first: "a"}), field) == "a"
    assert getattr(_norm({first: "", second: "b"}), field) == "b"
    assert getattr(_norm({first: "  ", second: "b"}), field) == "b"


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("baggage.tenant.id", "tenant_id"),
        ("baggage.tenant_id", "tenant_id"),
        ("baggage.user.id", "user_id"),
        ("baggage.session.id", "session_id"),
        ("baggage.workspace_id", "workspace_id"),
        ("baggage.feature", "feature"),
    ],
)
def test_baggage_copied_onto_spans(key: str, field: str) -> None:
    assert getattr(_norm({key: "from-baggage"}), field) == "from-baggage"


def test_span_attribute_beats_baggage_beats_resource() -> None:
    resource = {"tenant.id": "from-resource"}
    assert _norm({}, resource=resource).tenant_id == "from-resource"
    assert _norm({"baggage.tenant.id": "bag"}, resource=resource).tenant_id == "bag"
    assert _norm({"tenant_id": "span", "baggage.tenant.id": "bag"}).tenant_id == "span"


def test_baggage_only_for_baggage_fields() -> None:
    assert _norm({"baggage.gen_ai.request.model": "gpt-4o"}).model == ""


def test_resource_gives_service_and_environment_but_not_user() -> None:
    resource = {
        "service.name": "api",
        "deployment.environment": "staging",
        "user.id": "not-a-resource-field",
    }
    record = _norm({}, resource=resource)
    assert (record.service, record.environment, record.user_id) == ("api", "staging", "")
    newer = {"deployment.environment.name": "prod", "deployment.environment": "old"}
    assert _norm({}, resource=newer).environment == "prod"


def test_integer_ids_are_written_in_decimal() -> None:
    assert _norm({"user.id": 42}).user_id == "42"


@pytest.mark.parametrize("value", [["a"], {"a": 1}, 1.5, True])
def test_non_string_ids_are_rejected(value: Any) -> None:
    _rejects("tenant_id", {"tenant.id": value})


def test_ten_kilobyte_tenant_id_is_rejected() -> None:
    message = _rejects("tenant_id", {"tenant.id": "t" * 10_000})
    assert "1024" in message
    assert _norm({"tenant.id": "t" * limits.MAX_ID_LEN}).tenant_id == "t" * 1024


@pytest.mark.parametrize("value", ["a\x00b", "line\nbreak", "lone \ud800 surrogate"])
def test_ids_with_control_characters_or_surrogates_are_rejected(value: str) -> None:
    _rejects("user_id", {"user.id": value})


def test_event_id_defaults_to_trace_and_span() -> None:
    assert _norm({}).event_id == f"{TRACE}:{SPAN}"
    assert _norm({"tenantscope.event_id": "evt-1"}).event_id == "evt-1"
    _rejects("event_id", {"tenantscope.event_id": "e" * 257})


# --- kind and provider -------------------------------------------------------------------


def test_wrapper_span_without_usage_is_a_plain_span() -> None:
    record = _norm({"tenant.id": "t", "gen_ai.request.model": "gpt-4o"})
    assert record.kind == "span"
    assert record.input_tokens == record.output_tokens == 0
    assert not record.counted


@pytest.mark.parametrize(
    "attributes",
    [
        {"gen_ai.usage.input_tokens": 0},
        {"gen_ai.usage.output_tokens": 3},
        {"gen_ai.usage.prompt_tokens": 3},
        {"gen_ai.usage.reasoning.output_tokens": 3},
        {"gen_ai.usage.cost": 0.01},
        {"netra.usage": json.dumps([{"cost_in_usd": 0.01}])},
        {"gen_ai.request.model": "gpt-4o", "gen_ai.operation.name": "chat"},
        {"gen_ai.request.model": "text-embedding-3-small", "gen_ai.operation.name": "embeddings"},
    ],
)
def test_spans_carrying_llm_usage_are_llm(attributes: dict[str, Any]) -> None:
    assert _norm(attributes).kind == "llm"


@pytest.mark.parametrize("operation", ["invoke_agent", "execute_tool", "create_agent"])
def test_agent_and_tool_spans_with_a_model_are_not_calls(operation: str) -> None:
    attributes = {"gen_ai.request.model": "gpt-4o", "gen_ai.operation.name": operation}
    assert _norm(attributes).kind == "span"


def test_explicit_span_kind_wins() -> None:
    assert _norm({"tenantscope.span.kind": "llm"}).kind == "llm"
    record = _norm({"tenantscope.span.kind": "span", "gen_ai.usage.input_tokens": 5})
    assert record.kind == "span" and record.input_tokens == 0
    assert _norm({"tenantscope.span.kind": "bogus", "gen_ai.usage.input_tokens": 5}).kind == "llm"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("openai", "openai"),
        ("az.ai.openai", "azure"),
        ("aws.bedrock", "aws"),
        ("gcp.vertex_ai", "google"),
        ("Anthropic", "anthropic"),
        ("MyInHouseLLM", "myinhousellm"),
    ],
)
def test_provider_attribute_is_mapped(value: str, expected: str) -> None:
    assert _norm({"gen_ai.system": value}).provider == expected
    assert _norm({"gen_ai.provider.name": value, "gen_ai.system": "x"}).provider == expected


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("opentelemetry.instrumentation.openai", "openai"),
        ("opentelemetry.instrumentation.anthropic", "anthropic"),
        ("opentelemetry.instrumentation.google_genai", "google"),
        ("openinference.instrumentation.bedrock", "aws"),
        ("my.app", ""),
    ],
)
def test_provider_from_instrumentation_scope(scope: str, expected: str) -> None:
    assert _norm({"gen_ai.usage.input_tokens": 1}, scope_name=scope).provider == expected


def test_provider_inferred_from_model_last() -> None:
    seen: list[str] = []

    def infer(model: str) -> str | None:
        seen.append(model)
        return "mistral" if model.startswith("mistral") else None

    attributes = {"gen_ai.response.model": "mistral-large", "gen_ai.usage.input_tokens": 1}
    assert _norm(attributes, infer_provider=infer).provider == "mistral"
    assert _norm({**attributes, "gen_ai.system": "openai"}, infer_provider=infer).provider == (
        "openai"
    )
    assert _norm(attributes, scope_name="x.anthropic", infer_provider=infer).provider == (
        "anthropic"
    )
    assert seen == ["mistral-large"]
    assert _norm({"gen_ai.response.model": "zzz"}, infer_provider=infer).provider == ""


# --- tokens ------------------------------------------------------------------------------


def test_current_token_attributes() -> None:
    record = _norm(
        {
            "gen_ai.system": "openai",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 500,
            "gen_ai.usage.cache_read.input_tokens": 400,
            "gen_ai.usage.cache_creation.input_tokens": 0,
            "gen_ai.usage.reasoning.output_tokens": 200,
        }
    )
    # OpenAI: input already includes cached tokens, output already includes reasoning
    assert (record.input_tokens, record.output_tokens) == (1000, 500)
    assert (record.cache_read_tokens, record.cache_write_tokens) == (400, 0)
    assert record.reasoning_tokens == 200
    assert record.total_tokens == 1500


def test_legacy_prompt_and_completion_tokens() -> None:
    record = _norm(
        {
            "gen_ai.usage.prompt_tokens": 120,
            "gen_ai.usage.completion_tokens": 30,
            "gen_ai.usage.cache_read_input_tokens": 20,
            "gen_ai.usage.cache_creation_input_tokens": 10,
            "llm.usage.reasoning_tokens": 5,
        }
    )
    assert (record.input_tokens, record.output_tokens) == (120, 30)
    assert (record.cache_read_tokens, record.cache_write_tokens) == (20, 10)
    assert record.reasoning_tokens == 5


def test_token_counts_as_integral_doubles_or_digit_strings() -> None:
    record = _norm({"gen_ai.usage.input_tokens": 12.0, "gen_ai.usage.output_tokens": "7"})
    assert (record.input_tokens, record.output_tokens) == (12, 7)


# One Anthropic call: 1,050 uncached input tokens, 3,000 cache reads, 1,000 cache writes
# (5,050 in all) and 420 output tokens, as the API reports it (input without the cache).
_ANTHROPIC_API = {
    "gen_ai.system": "anthropic",
    "gen_ai.usage.input_tokens": 1050,
    "gen_ai.usage.output_tokens": 420,
    "gen_ai.usage.cache_read_input_tokens": 3000,
    "gen_ai.usage.cache_creation_input_tokens": 1000,
}
# ... and as the OTel GenAI convention says (input includes the cache)
_ANTHROPIC_OTEL = {**_ANTHROPIC_API, "gen_ai.usage.input_tokens": 5050}


def _usage(record: UsageRecord) -> tuple[int, int, int, int, str]:
    return (
        record.input_tokens,
        record.cache_read_tokens,
        record.cache_write_tokens,
        record.output_tokens,
        record.usage_convention,
    )


@pytest.mark.parametrize(
    ("scope", "convention"),
    [
        ("opentelemetry.instrumentation.anthropic", "openllmetry"),
        ("opentelemetry.instrumentation.genai.anthropic", "otel-genai"),
        ("logfire.anthropic", "logfire"),
        ("com.anthropic.sdk.python", "anthropic-sdk"),
        ("tenantscope.anthropic", "tenantscope"),
    ],
)
def test_libraries_following_the_otel_convention_are_not_counted_twice(
    scope: str, convention: str
) -> None:
    """5,050 input tokens with the cache included stay 5,050 (they once became 10,050)."""
    record = _norm({**_ANTHROPIC_OTEL, "gen_ai.usage.total_tokens": 5470}, scope_name=scope)
    assert _usage(record) == (5050, 3000, 1000, 420, convention)


def test_openlit_sends_input_as_the_provider_reports_it() -> None:
    scope = "openlit.instrumentation.anthropic"
    record = _norm(_ANTHROPIC_API, scope_name=scope)
    assert _usage(record) == (5050, 3000, 1000, 420, "openlit")
    # even when its uncached input happens to exceed the cache
    record = _norm({**_ANTHROPIC_API, "gen_ai.usage.input_tokens": 4100}, scope_name=scope)
    assert record.input_tokens == 8100
    # OpenAI's input includes its cached tokens
    openai = {**_ANTHROPIC_OTEL, "gen_ai.system": "openai"}
    record = _norm(openai, scope_name="openlit.instrumentation.openai")
    assert _usage(record) == (5050, 3000, 1000, 420, "openlit")


def test_openlits_cost_is_its_own_estimate_and_stays_for_reference() -> None:
    """OpenLIT prices calls from its own list, leaving cache prices out: not a charge."""
    attributes = {**_ANTHROPIC_API, "gen_ai.usage.cost": 0.00945}
    record = _norm(attributes, scope_name="openlit.instrumentation.anthropic")
    assert (record.cost_usd, record.cost_source) == (None, "unknown")  # the catalog prices it
    assert record.attributes["gen_ai.usage.cost"] == 0.00945


def test_unknown_scope_reads_the_otel_convention() -> None:
    assert _usage(_norm(_ANTHROPIC_OTEL, scope_name="acme.llm")) == (5050, 3000, 1000, 420, "otel")


def test_unknown_scope_input_smaller_than_cache_cannot_include_it() -> None:
    record = _norm(_ANTHROPIC_API, scope_name="acme.llm")
    assert _usage(record) == (5050, 3000, 1000, 420, "figures:input<cache")


def test_unknown_scope_whose_total_counts_the_cache_apart_is_additive() -> None:
    attributes = {
        **_ANTHROPIC_API,
        "gen_ai.usage.input_tokens": 4100,
        "gen_ai.usage.total_tokens": 4100 + 4000 + 420,
    }
    record = _norm(attributes, scope_name="acme.llm")
    assert _usage(record) == (8100, 3000, 1000, 420, "figures:total")
    assert record.attributes["gen_ai.usage.total_tokens"] == 8520  # kept: it explains


def test_a_listed_library_cannot_include_more_cache_than_its_input() -> None:
    record = _norm(_ANTHROPIC_API, scope_name="opentelemetry.instrumentation.anthropic")
    assert _usage(record) == (5050, 3000, 1000, 420, "figures:input<cache")


def test_a_listed_convention_can_start_at_a_scope_version(monkeypatch: pytest.MonkeyPatch) -> None:
    versioned = semconv.Convention("lib-v2", "lib", ("lib.instr",), False, since="2.1")
    monkeypatch.setattr(semconv, "CONVENTIONS", (versioned, *semconv.CONVENTIONS))
    attributes = {**_ANTHROPIC_API, "gen_ai.usage.input_tokens": 4100}
    newer = _norm(attributes, scope_name="lib.instr", scope_version="2.10.0")
    older = _norm(attributes, scope_name="lib.instr", scope_version="2.0.9")
    assert (newer.input_tokens, newer.usage_convention) == (8100, "lib-v2")
    assert (older.input_tokens, older.usage_convention) == (4100, "otel")


@pytest.mark.parametrize("marker", [True, "true", "True"])
def test_input_includes_cache_marker_keeps_anthropic_input(marker: Any) -> None:
    attributes = {**_ANTHROPIC_OTEL, semconv.INPUT_INCLUDES_CACHE: marker}
    record = _norm(attributes, scope_name="openlit")
    assert _usage(record) == (5050, 3000, 1000, 420, "attribute")


def test_openai_input_is_not_made_additive() -> None:
    attributes = {**_ANTHROPIC_OTEL, "gen_ai.system": "openai"}
    assert _norm(attributes).input_tokens == 5050


def test_a_call_without_usage_names_no_convention() -> None:
    record = _norm({"gen_ai.request.model": "gpt-4o", "gen_ai.operation.name": "chat"})
    assert record.kind == "llm" and record.usage_convention == ""


def test_a_reported_zero_cost_stays_for_reference() -> None:
    attributes = {
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 10,
        "gen_ai.usage.cost": 0,
    }
    record = _norm(attributes, scope_name="acme.llm")
    assert (record.cost_usd, record.cost_source) == (Decimal(0), "reported")
    assert record.attributes["gen_ai.usage.cost"] == 0  # pricing may replace the figure
    attributes["gen_ai.usage.cost"] = 0.25
    record = _norm(attributes)
    assert record.cost_usd == Decimal("0.25") and "gen_ai.usage.cost" not in record.attributes


_LANGFUSE = {
    "langfuse.observation.type": "generation",
    "langfuse.observation.model.name": "gpt-4o-mini-2024-07-18",
    "langfuse.trace.metadata.tenant_id": "apex-legal",
    "langfuse.user.id": "u-7",
    "langfuse.session.id": "s-7",
}


@pytest.mark.parametrize(
    "details",
    [
        # Langfuse prices each key apart: input without its cached part
        {"input": 2050, "input_cached_tokens": 3000, "output": 300, "output_reasoning_tokens": 120},
        # or input and output with their details in them, as the total says
        {
            "input": 5050,
            "input_cached_tokens": 3000,
            "output": 420,
            "output_reasoning_tokens": 120,
            "total": 5470,
        },
        # Langfuse 3's OpenAI integration: OpenAI's usage object as it came
        {
            "completion_tokens": 420,
            "prompt_tokens": 5050,
            "total_tokens": 5470,
            "completion_tokens_details": {"audio_tokens": 0, "reasoning_tokens": 120},
            "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 3000},
        },
        # ... or without its total
        {
            "completion_tokens": 420,
            "prompt_tokens": 5050,
            "completion_tokens_details": {"reasoning_tokens": 120, "note": None},
            "prompt_tokens_details": {"cached_tokens": 3000},
        },
    ],
)
def test_langfuse_generations_are_llm_calls(details: dict[str, Any]) -> None:
    attributes = {
        **_LANGFUSE,
        "langfuse.observation.usage_details": json.dumps(details),
        "langfuse.observation.cost_details": json.dumps({"input": 0.0007, "total": 0.0009}),
    }
    record = _norm(attributes, scope_name="langfuse-sdk")
    assert record.kind == "llm"
    assert (record.model, record.provider) == ("gpt-4o-mini-2024-07-18", "")
    assert (record.tenant_id, record.user_id, record.session_id) == ("apex-legal", "u-7", "s-7")
    assert _usage(record) == (5050, 3000, 0, 420, "langfuse")
    assert record.reasoning_tokens == 120
    assert (record.cost_usd, record.cost_source) == (Decimal("0.0009"), "reported")
    assert "langfuse.observation.usage_details" in record.attributes


def test_a_langfuse_generation_without_usage_is_still_a_call() -> None:
    record = _norm(_LANGFUSE)
    assert record.kind == "llm" and record.input_tokens == 0 and record.cost_usd is None
    # a non-generation observation with a model is not
    assert _norm({**_LANGFUSE, "langfuse.observation.type": "span"}).kind == "span"


@pytest.mark.parametrize(
    "key",
    [
        "langfuse.trace.metadata.tenant_id",
        "langfuse.trace.metadata.tenant",
        "langfuse.observation.metadata.tenant_id",
        "traceloop.association.properties.tenant_id",
    ],
)
def test_tenant_from_other_sdks_metadata(key: str) -> None:
    assert _norm({key: "apex-legal"}).tenant_id == "apex-legal"
    if key.startswith("langfuse."):  # Langfuse 5 writes metadata values as JSON
        assert _norm({key: '"apex-legal"'}).tenant_id == "apex-legal"
    # our own attribute wins over theirs
    assert _norm({key: "other", "tenant.id": "apex-legal"}).tenant_id == "apex-legal"


def test_every_convention_name_is_described() -> None:
    names = [c.name for c in semconv.CONVENTIONS] + list(semconv.USAGE_RULES)
    assert len(set(names)) == len(names)
    for name in names:
        assert semconv.describe_usage_convention(name)


def test_output_smaller_than_reasoning_gets_reasoning_added() -> None:
    attributes = {
        "gen_ai.usage.output_tokens": 100,
        "gen_ai.usage.reasoning.output_tokens": 300,
    }
    record = _norm(attributes)
    assert (record.output_tokens, record.reasoning_tokens) == (400, 300)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (-1, "negative"),
        (10**12, "above the limit"),
        (True, "boolean"),
        (1.5, "non-negative integer"),
        ("many", "non-negative integer"),
    ],
)
def test_bad_token_counts_are_rejected(value: Any, fragment: str) -> None:
    message = _rejects("input_tokens", {"gen_ai.usage.input_tokens": value})
    assert fragment in message


def test_bad_legacy_token_count_names_the_record_field() -> None:
    _rejects("output_tokens", {"gen_ai.usage.completion_tokens": -5})


# --- cost --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, Decimal("0.1")),
        (0.000450, Decimal("0.00045")),
        ("0.000450000", Decimal("0.000450000")),
        (3, Decimal("3")),
    ],
)
def test_reported_cost_is_exact(value: Any, expected: Decimal) -> None:
    record = _norm({"gen_ai.usage.cost": value})
    assert record.cost_usd == expected
    assert str(record.cost_usd) == str(expected)
    assert record.cost_source == "reported"


def test_no_reported_cost_is_unknown_until_priced() -> None:
    record = _norm({"gen_ai.usage.input_tokens": 10})
    assert (record.cost_usd, record.cost_source) == (None, "unknown")


@pytest.mark.parametrize(
    "usage",
    [
        json.dumps(
            [
                {"model": "gpt-4o-mini", "cost_in_usd": 0.00012, "usage_type": "chat"},
                {"model": "gpt-4o-mini", "cost_in_usd": 0.00003, "units_used": 5},
            ]
        ),
        [json.dumps({"cost_in_usd": 0.00012}), json.dumps({"cost_in_usd": 0.00003})],
        [{"cost_in_usd": 0.00012}, {"cost_in_usd": "0.00003"}],
    ],
)
def test_netra_usage_cost_is_summed(usage: Any) -> None:
    record = _norm({"netra.usage": usage})
    assert record.cost_usd == Decimal("0.00015")
    assert record.cost_source == "reported"
    assert record.kind == "llm"


def test_netra_usage_without_cost_or_unparseable_reports_nothing() -> None:
    assert _norm({"netra.usage": "not json"}).cost_usd is None
    assert _norm({"netra.usage": json.dumps([{"units_used": 5}])}).cost_usd is None


def test_gen_ai_usage_cost_wins_over_netra() -> None:
    attributes = {"gen_ai.usage.cost": "0.5", "netra.usage": json.dumps([{"cost_in_usd": 9}])}
    assert _norm(attributes).cost_usd == Decimal("0.5")


@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        ({"gen_ai.usage.cost": -0.01}, "gen_ai.usage.cost"),
        ({"gen_ai.usage.cost": "cheap"}, "gen_ai.usage.cost"),
        ({"gen_ai.usage.cost": "NaN"}, "gen_ai.usage.cost"),
        ({"gen_ai.usage.cost": 10**9}, "gen_ai.usage.cost"),
        ({"netra.usage": json.dumps([{"cost_in_usd": -1}])}, "netra.usage.cost_in_usd"),
        (
            {"netra.usage": json.dumps([{"cost_in_usd": 60000}, {"cost_in_usd": 60000}])},
            "netra.usage.cost_in_usd",
        ),
    ],
)
def test_bad_costs_are_rejected(attributes: dict[str, Any], field: str) -> None:
    _rejects(field, attributes)


# --- status and billing ------------------------------------------------------------------


def test_ok_span_is_billable() -> None:
    record = _norm({})
    assert (record.status, record.billable_state, record.error_type) == ("ok", "billable", "")


def test_error_status_with_message_and_error_type() -> None:
    record = _norm({"error.type": "429"}, status_code=2, status_message="rate limited")
    assert (record.status, record.error_type, record.error_message) == (
        "error",
        "429",
        "rate limited",
    )
    assert record.billable_state == "ignored"


def test_error_type_and_message_from_exception_event() -> None:
    events = [
        {
            "name": "exception",
            "time_ns": START_NS,
            "attributes": {"exception.type": "openai.APIError", "exception.message": "bad"},
        }
    ]
    record = _norm({}, status_code=2, events=events)
    assert (record.error_type, record.error_message) == ("openai.APIError", "bad")


def test_error_type_alone_means_error() -> None:
    assert _norm({"error.type": "timeout"}).status == "error"


@pytest.mark.parametrize(
    "attributes", [{"error.type": "cancelled"}, {"tenantscope.status": "cancelled"}]
)
def test_cancelled(attributes: dict[str, Any]) -> None:
    record = _norm(attributes, status_code=2)
    assert (record.status, record.billable_state) == ("cancelled", "ignored")


def test_explicit_billable_state_when_valid() -> None:
    assert _norm({"tenantscope.billable_state": "included"}).billable_state == "included"
    both = {"tenantscope.billable_state": "billable"}
    assert _norm(both, status_code=2).billable_state == "billable"
    assert _norm({"tenantscope.billable_state": "free"}).billable_state == "billable"


def test_long_error_message_is_truncated_not_rejected() -> None:
    record = _norm({}, status_code=2, status_message="x" * 10_000)
    assert len(record.error_message) == limits.MAX_ERROR_MESSAGE


# --- time --------------------------------------------------------------------------------


def test_times_and_durations() -> None:
    record = _norm({"tenantscope.ttft_ms": 250})
    assert record.start_time == datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert record.end_time == datetime(2025, 1, 1, 0, 0, 1, 500000, tzinfo=timezone.utc)
    assert record.start_time.tzinfo is timezone.utc
    assert record.duration_ms == 1500.0
    assert record.ttft_ms == 250.0
    assert _norm({"gen_ai.server.time_to_first_token": 0.3}).ttft_ms == pytest.approx(300.0)
    assert _norm({}).ttft_ms is None
    assert record.received_at == RECEIVED and record.source == "otlp"


def test_far_future_and_ancient_times_are_rejected() -> None:
    future = int((RECEIVED + timedelta(hours=25)).timestamp() * 1e9)
    _rejects("start_time", start_ns=future, end_ns=future)
    near = int((RECEIVED + timedelta(hours=23)).timestamp() * 1e9)
    assert _norm({}, start_ns=near, end_ns=near).start_time > RECEIVED
    # seconds where nanoseconds were expected lands in 1970
    _rejects("start_time", start_ns=1_735_689_600, end_ns=1_735_689_601)
    _rejects("end_time", end_ns=START_NS - 1)
    _rejects("end_time", end_ns=future)


def test_negative_ttft_is_rejected() -> None:
    _rejects("tenantscope.ttft_ms", {"tenantscope.ttft_ms": -1})


# --- attributes and events ---------------------------------------------------------------


def test_attributes_are_the_rest_of_the_span_attributes() -> None:
    attributes = {"tenant.id": "t", "sla_met": True, "tags": ["a"]}
    record = _norm(attributes, resource={"service.name": "api"})
    # the tenant is a column; the resource's attributes are not the span's
    assert record.tenant_id == "t" and record.service == "api"
    assert record.attributes == {"sla_met": True, "tags": ["a"]}
    assert attributes == {"tenant.id": "t", "sla_met": True, "tags": ["a"]}  # not changed
    json.dumps(record.attributes)


def test_attributes_keep_what_no_column_holds() -> None:
    attributes = {
        "user.id": 42,  # a column, as "42"
        "enduser.id": 42,  # a lower-ranked name: kept, whatever its value
        "baggage.tenant.id": "acme",  # lost to a span attribute: kept
        "tenant_id": "other",  # span attributes rank above baggage copies
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.request.model": "gpt-4o",  # lost to the response model: kept
        "gen_ai.system": "openai",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 5,
        "netra.usage": json.dumps([{"cost_in_usd": 0.5, "units": 3}]),  # more than a cost
        "tenantscope.billable_state": "bogus",  # ignored, so kept
        "tenantscope.span.kind": "llm",  # what the record says
        "tenantscope.status": "ok",
        "http.route": "/summarize",
    }
    record = _norm(attributes)
    assert (record.tenant_id, record.user_id, record.model) == ("other", "42", "gpt-4o-2024-08-06")
    # whatever order the attributes come in (a winner may be displaced by a later name)
    for order in (reversed(attributes), sorted(attributes)):
        again = _norm({key: attributes[key] for key in order})
        assert again.attributes == record.attributes
        assert (again.tenant_id, again.model) == (record.tenant_id, record.model)
    assert record.attributes == {
        "enduser.id": 42,
        "baggage.tenant.id": "acme",
        "gen_ai.request.model": "gpt-4o",
        "netra.usage": attributes["netra.usage"],
        "tenantscope.billable_state": "bogus",
        "http.route": "/summarize",
    }


def test_steering_attributes_stay_only_when_they_disagree_with_the_record() -> None:
    said = _norm({"error.type": "cancelled", "tenantscope.span.kind": "span"}, status_code=2)
    assert (said.status, said.error_type, said.kind) == ("cancelled", "cancelled", "span")
    assert said.attributes == {}
    ignored = {"tenantscope.status": "bogus", "tenantscope.span.kind": "agent"}
    assert _norm(ignored).attributes == ignored
    timeout = _norm({"tenantscope.status": "error", "error.type": "Timeout"})
    assert (timeout.status, timeout.error_type, timeout.attributes) == ("error", "Timeout", {})


def test_events_have_rfc3339_times() -> None:
    events = [{"name": "sla-breach", "time_ns": START_NS + 1_000_000, "attributes": {"x": 1}}]
    record = _norm({}, events=events)
    assert record.events == [
        {"name": "sla-breach", "time": "2025-01-01T00:00:00.001000Z", "attributes": {"x": 1}}
    ]


def test_oversized_content_attributes_are_dropped_not_the_call() -> None:
    attributes = {
        "tenant.id": "t1",
        "gen_ai.usage.input_tokens": 40_000,
        "gen_ai.prompt.0.content": "p" * 200_000,
        "gen_ai.completion.0.content": "c" * 1000,
    }
    record = _norm(attributes)
    assert record.tenant_id == "t1" and record.input_tokens == 40_000
    assert "gen_ai.prompt.0.content" not in record.attributes
    assert record.attributes["gen_ai.completion.0.content"] == "c" * 1000
    assert record.attributes[DROPPED_ATTRIBUTES] == ["gen_ai.prompt.0.content"]
    assert len(json.dumps(record.attributes)) <= limits.MAX_ATTRIBUTES_BYTES


def test_oversized_attributes_tenantscope_reads_reject_the_span() -> None:
    usage = json.dumps([{"cost_in_usd": 0.001, "pad": "x" * 100_000}])
    _rejects("attributes", {"netra.usage": usage})


def test_oversized_event_attributes_are_dropped() -> None:
    events = [
        {"name": "gen_ai.user.message", "time_ns": START_NS, "attributes": {"c": "x" * 70_000}}
    ]
    record = _norm({}, events=events)
    assert record.events[0]["attributes"] == {}
    assert record.events[0]["name"] == "gen_ai.user.message"


# --- end to end from real encodings ---------------------------------------------------------


def test_sdk_spans_through_decode_and_normalize() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=SdkResource.create({"service.name": "meetings", "deployment.environment": "prod"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("app").start_as_current_span("summarize") as wrapper:
        wrapper.set_attribute("tenant_id", "apex-legal")
        wrapper.set_attribute("baggage.user.id", "u-7")
        tracer = provider.get_tracer("opentelemetry.instrumentation.anthropic")
        with tracer.start_as_current_span("chat claude") as call:
            call.set_attribute("gen_ai.response.model", "claude-sonnet-4-5")
            call.set_attribute("gen_ai.usage.input_tokens", 10)
            call.set_attribute("gen_ai.usage.output_tokens", 20)
            call.set_attribute("gen_ai.usage.cache_read_input_tokens", 90)
    body = encode_spans(exporter.get_finished_spans()).SerializeToString()
    decoded = decode_traces(body, "application/x-protobuf", None, max_bytes=1 << 20)
    received = datetime.now(timezone.utc)
    records = {r.name: r for r in (normalize_span(s, received_at=received) for s in decoded.spans)}
    wrapper_record, call_record = records["summarize"], records["chat claude"]
    assert (wrapper_record.kind, wrapper_record.tenant_id, wrapper_record.user_id) == (
        "span",
        "apex-legal",
        "u-7",
    )
    assert call_record.kind == "llm"
    assert call_record.provider == "anthropic"
    assert call_record.input_tokens == 100
    assert call_record.parent_span_id == wrapper_record.span_id
    assert (call_record.service, call_record.environment) == ("meetings", "prod")
    assert call_record.tenant_id == ""  # inheritance is the writer's job, not this function's


def test_protobuf_request_to_record() -> None:
    body = request(
        [span(attributes={"tenant.id": "acme", "gen_ai.usage.input_tokens": 3})],
        resource={"service.name": "svc"},
    ).SerializeToString()
    [raw] = decode_traces(body, "application/x-protobuf", None, max_bytes=1 << 20).spans
    record = normalize_span(raw, received_at=RECEIVED)
    assert (record.tenant_id, record.service, record.input_tokens) == ("acme", "svc", 3)
