"""The canonical usage record: one span (or one native usage event).

Shared by ingest, storage and query. Stdlib only: it is part of the light SDK install.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal

Status = Literal["ok", "error", "cancelled", "blocked"]
CostSource = Literal["reported", "catalog", "override", "unknown"]
BillableState = Literal["billable", "included", "ignored"]
Kind = Literal["llm", "span"]

# blocked: refused by a limit before the call (never counted, never billable)
STATUSES: tuple[str, ...] = ("ok", "error", "cancelled", "blocked")
COST_SOURCES: tuple[str, ...] = ("reported", "catalog", "override", "unknown")
BILLABLE_STATES: tuple[str, ...] = ("billable", "included", "ignored")

# Attribution fields that descendants inherit from the nearest ancestor span that sets them.
INHERITED_FIELDS: tuple[str, ...] = (
    "tenant_id",
    "workspace_id",
    "user_id",
    "session_id",
    "feature",
    "billable_action",
    "customer_visible_label",
    "customer_id",
)

# Money is stored with 12 decimal places: a single cached token of the cheapest models
# costs a few 1e-8 USD, so 9 places would already round real calls.
MONEY_SCALE = 12
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(slots=True)
class UsageRecord:
    # ids
    event_id: str
    trace_id: str = ""
    span_id: str = ""
    parent_span_id: str = ""
    name: str = ""
    kind: Kind = "span"
    # attribution
    tenant_id: str = ""
    workspace_id: str = ""
    user_id: str = ""
    session_id: str = ""
    feature: str = ""
    billable_action: str = ""
    customer_visible_label: str = ""
    environment: str = ""
    service: str = ""
    # LLM usage (input includes cache reads and writes; output includes reasoning)
    provider: str = ""
    model: str = ""
    operation: str = ""
    response_id: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    # money
    cost_usd: Decimal | None = None
    cost_source: CostSource = "unknown"
    price_version: str = ""
    # time
    start_time: datetime = field(default_factory=utcnow)
    end_time: datetime = field(default_factory=utcnow)
    duration_ms: float = 0.0
    ttft_ms: float | None = None
    # outcome
    status: Status = "ok"
    error_type: str = ""
    error_message: str = ""
    billable_state: BillableState = "billable"
    # the counting rule: a usage-carrying ancestor of another usage-carrying span (or a second
    # report of the same provider response) is kept for reference but not counted.
    shadowed: bool = False
    # attribution fields this record took from an ancestor rather than carrying itself
    inherited: tuple[str, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    source: str = "otlp"
    received_at: datetime = field(default_factory=utcnow)
    # Fields added after the first release sit last: a store made earlier gains them as
    # trailing columns (storage/duckdb_events.py migrates), keeping the column order.
    # the tenant's own end customer (llmobserve's ``set_customer_id``), inherited like a user
    customer_id: str = ""
    # which rule read the token figures (``semconv.USAGE_CONVENTIONS``): "" for no usage
    usage_convention: str = ""
    # why a shadowed record does not count (``attribution``): "" when it counts
    shadow_reason: str = ""

    @property
    def has_usage(self) -> bool:
        return self.kind == "llm"

    @property
    def counted(self) -> bool:
        return self.kind == "llm" and not self.shadowed

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def replace(self, **changes: Any) -> UsageRecord:
        return dataclasses.replace(self, **changes)


RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(UsageRecord))


def format_money(value: Decimal | None) -> str | None:
    """Exact decimal string, at least 9 places, never exponent notation."""
    if value is None:
        return None
    q = value.quantize(MONEY_QUANTUM)
    text = format(q, "f")
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    if len(frac) < 9:
        frac = frac.ljust(9, "0")
    return f"{whole}.{frac}"
