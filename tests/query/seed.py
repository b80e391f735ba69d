"""A small, fully known dataset written through the real writer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from tenantscope.records import UsageRecord
from tenantscope.server.services import Services

NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
HOSTILE = "<script>alert('x')</script>"


@dataclass(frozen=True)
class Call:
    tenant: str
    user: str
    session: str
    model: str
    feature: str
    duration_ms: float
    cost: str
    status: str = "ok"
    hours_ago: float = 1.0


CALLS: list[Call] = [
    # apex-legal: 4 calls, one over its 2 s target
    Call("apex-legal", "alice", "s1", "gpt-4o", "summary", 900, "0.010"),
    Call("apex-legal", "alice", "s1", "gpt-4o", "summary", 1100, "0.020"),
    Call("apex-legal", "bob", "s2", "claude-3-5-sonnet", "qa", 1500, "0.030"),
    Call("apex-legal", "bob", "s2", "claude-3-5-sonnet", "qa", 5000, "0.040", "error"),
    # stratex: 2 calls
    Call("stratex-consulting", "carol", "s3", "gpt-4o-mini", "summary", 2000, "0.001"),
    Call("stratex-consulting", "carol", "s3", "gpt-4o-mini", "email", 2500, "0.002", "ok", 30),
    # techstart: 1 call, no SLA
    Call("techstart-inc", "dan", "s4", "gpt-4o-mini", "summary", 700, "0.0005"),
    # a hostile tenant id is data like any other
    Call(HOSTILE, "eve", "s5", "gpt-4o", "summary", 100, "0.000000000001"),
]


def seed(svc: Services) -> None:
    svc.config.set_tenant(
        "apex-legal",
        display_name="Apex Legal",
        tier="enterprise",
        sla_p95_ms=2000,
        monthly_budget_usd=Decimal("500"),
    )
    svc.config.set_tenant(
        "stratex-consulting",
        display_name="Stratex Consulting",
        tier="professional",
        sla_p95_ms=3000,
    )
    svc.config.set_tenant("techstart-inc", display_name="TechStart Inc", tier="starter")
    records: list[UsageRecord] = []
    for i, c in enumerate(CALLS):
        trace = f"{i + 1:032x}"
        start = NOW - timedelta(hours=c.hours_ago) + timedelta(minutes=i)
        end = start + timedelta(milliseconds=c.duration_ms)
        records.append(
            UsageRecord(
                event_id=f"{trace}:root",
                trace_id=trace,
                span_id=f"{2 * i + 1:016x}",
                name="POST /summarize",
                tenant_id=c.tenant,
                user_id=c.user,
                session_id=c.session,
                feature=c.feature,
                start_time=start,
                end_time=end,
                duration_ms=c.duration_ms,
                status=c.status,  # type: ignore[arg-type]
            )
        )
        records.append(
            UsageRecord(
                event_id=f"{trace}:llm",
                trace_id=trace,
                span_id=f"{2 * i + 2:016x}",
                parent_span_id=f"{2 * i + 1:016x}",
                name=f"chat {c.model}",
                kind="llm",
                provider="anthropic" if c.model.startswith("claude") else "openai",
                model=c.model,
                input_tokens=1000,
                output_tokens=100,
                cost_usd=Decimal(c.cost),
                cost_source="reported",
                start_time=start,
                end_time=end,
                duration_ms=c.duration_ms,
                status=c.status,  # type: ignore[arg-type]
                error_message="upstream 500" if c.status == "error" else "",
            )
        )
    result = svc.writer.write_sync(records)
    assert result.accepted == len(records)
