"""What one notification says, whichever contact point carries it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

NotificationEvent = Literal["firing", "warning", "resolved", "no_data", "test"]


@dataclass(frozen=True, slots=True)
class Notification:
    # unique per state change of one rule instance (``rule:instance:seq``): a receiver
    # that sees one id twice (a delivery retried after a lost answer) can drop the copy
    id: str
    event: str  # one of NotificationEvent
    rule_id: int
    rule_name: str
    severity: str  # critical, warning or info
    tenant_id: str | None  # None: the rule's figure over all its tenants at once
    metric: str  # e.g. latency_p95
    metric_label: str  # e.g. "p95 latency (LLM calls)"
    value: str | None  # the figure, formatted with its unit ("2,412 ms"); None: no data
    threshold: str  # the condition, formatted ("> 2,000 ms")
    window: str  # e.g. "5m"
    window_start: datetime
    window_end: datetime
    # the tenant's traces over the window on the dashboard ("" when no public URL is set)
    link: str
    summary: str  # one line a person reads first
