"""Typed query results. JSON: money as exact decimal strings, times as RFC 3339 UTC."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from tenantscope.records import format_money


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    text = value.isoformat(timespec="microseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z")


Money = Annotated[
    Decimal | None,
    PlainSerializer(format_money, return_type=str | None, when_used="json"),
    Field(json_schema_extra={"type": "string", "format": "decimal", "nullable": True}),
]
Timestamp = Annotated[
    datetime | None,
    PlainSerializer(rfc3339, return_type=str | None, when_used="json"),
]

T = TypeVar("T")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Page(_Model, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class Totals(_Model):
    sessions: int = 0
    traces: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: Money = None
    unpriced_requests: Annotated[
        int, Field(description="counted LLM calls whose cost is unknown")
    ] = 0
    errors: int = 0
    error_rate: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    first_seen: Timestamp = None
    last_seen: Timestamp = None


class TenantRow(Totals):
    tenant_id: str
    display_name: str = ""
    tier: str = ""


class TenantConfigOut(_Model):
    display_name: str = ""
    tier: str = ""
    sla_p95_ms: int | None = None
    rate_limit_rpm: int | None = None
    monthly_budget_usd: Money = None


class TenantDetail(_Model):
    tenant_id: str
    totals: Totals
    config: TenantConfigOut | None = None
    start: Timestamp
    end: Timestamp


class TenantUsage(_Model):
    """The shape of the seeds' ``get_tenant_usage``."""

    tenant_id: str
    token_count: int
    request_count: int
    session_count: int
    total_cost: Money
    start: Timestamp
    end: Timestamp


INCOMPLETE = (
    "true when the trace's root span (a span without a parent) was never received, e.g."
    " because Langfuse 5 drops plain-OTel parent spans: the trace is then shown from its"
    " earliest span whose parent is not stored"
)


class TraceRow(_Model):
    trace_id: str
    name: Annotated[str, Field(description="the name of the root (or display root) span")]
    tenant_id: str
    user_id: str
    session_id: str
    customer_id: Annotated[str, Field(description="the tenant's end customer, if sent")] = ""
    start_time: Timestamp
    duration_ms: float
    spans: int
    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: Money
    status: str
    models: list[str] = []
    incomplete: Annotated[bool, Field(description=INCOMPLETE)] = False


class SpanNode(_Model):
    event_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    tenant_id: str
    workspace_id: str
    user_id: str
    session_id: str
    customer_id: Annotated[
        str, Field(description="the tenant's end customer (llmobserve's set_customer_id)")
    ] = ""
    feature: str
    billable_action: str
    customer_visible_label: str
    environment: str
    service: str
    provider: str
    model: str
    operation: str
    response_id: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    usage_convention: Annotated[
        str,
        Field(
            description="which rule read the token figures (tenantscope.semconv:"
            " CONVENTIONS names or USAGE_RULES keys); empty without usage"
        ),
    ] = ""
    cost_usd: Money
    cost_source: str
    price_version: str
    counted: bool
    shadowed: bool
    shadow_reason: Annotated[
        str, Field(description="why a shadowed span does not count; empty when it counts")
    ] = ""
    start_time: Timestamp
    end_time: Timestamp
    duration_ms: float
    ttft_ms: float | None
    status: str
    error_type: str
    error_message: str
    billable_state: str
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    source: str
    children: list[SpanNode] = []


class TraceDetail(_Model):
    trace_id: str
    tenant_id: str
    start_time: Timestamp
    end_time: Timestamp
    duration_ms: float
    spans: int
    requests: int
    total_tokens: int
    cost_usd: Money
    incomplete: Annotated[bool, Field(description=INCOMPLETE)] = False
    roots: Annotated[
        list[SpanNode],
        Field(description="top-level spans: the root, and any span whose parent is not stored"),
    ]


class ActorRow(_Model):
    """A user or a session of a tenant."""

    id: str
    tenant_id: str
    requests: int
    traces: int
    sessions: int = 0
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: Money
    errors: int
    first_seen: Timestamp
    last_seen: Timestamp
    user_id: str = ""


class BreakdownRow(_Model):
    key: str
    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: Money
    unpriced_requests: int
    errors: int
    share_of_cost: float | None = None


class Breakdown(_Model):
    by: str
    items: list[BreakdownRow]
    total_cost_usd: Money


class SeriesPoint(_Model):
    t: Timestamp
    value: float | int | str | None


class Series(_Model):
    key: str
    points: list[SeriesPoint]


class TimeSeries(_Model):
    metric: str
    interval: str
    start: Timestamp
    end: Timestamp
    series: list[Series]


class SlaRow(_Model):
    tenant_id: str
    display_name: str = ""
    tier: str = ""
    requests: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    target_p95_ms: int | None
    within_target: Annotated[
        float | None, Field(description="share of requests at or under the target (0..1)")
    ] = None
    compliant: Annotated[bool | None, Field(description="p95 <= target; null without a target")] = (
        None
    )


class ModelRow(_Model):
    provider: str
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: Money
    unpriced_requests: int
    last_seen: Timestamp


class CrossBreakdownRow(_Model):
    """One (group, key) pair, e.g. one tenant's use of one feature."""

    group: Annotated[str, Field(description="the value of `group_by` (e.g. the tenant id)")]
    key: Annotated[str, Field(description="the value of `by` (e.g. the feature)")]
    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: Money
    unpriced_requests: int
    errors: int
    share_of_group_cost: Annotated[
        float | None,
        Field(description="this pair's cost / its group's cost over every key (0..1)"),
    ] = None
    share_of_cost: Annotated[
        float | None, Field(description="this pair's cost / the cost of every pair (0..1)")
    ] = None


class CrossBreakdown(_Model):
    by: str
    group_by: str
    groups: Annotated[
        list[BreakdownRow],
        Field(description="the groups shown, costliest first, each with its totals over every key"),
    ]
    keys: Annotated[
        list[str], Field(description="the keys shown, costliest first over the groups shown")
    ]
    items: Annotated[
        list[CrossBreakdownRow],
        Field(description="the pairs with usage, in the order of `groups`, then of `keys`"),
    ]
    total_cost_usd: Money


class TenantSuggestion(_Model):
    tenant_id: str
    display_name: str = ""
    tier: str = ""
