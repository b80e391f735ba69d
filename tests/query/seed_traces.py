"""Traces as other exporters leave them, written straight into the event store (the fields
ingest decides — shadowing, its reason, the usage convention, the customer — are stored
as given, so the read side is tested on exactly these values).

- ``ROOTED``: a complete trace of ``lf-co`` (root + LLM call, customer ``acme``, and a
  shadowed wrapper whose reason is not stored).
- ``ROOTLESS``: a trace of ``lf-co`` whose root never arrived (Langfuse 5 drops plain-OTel
  parent spans): two spans name the missing parent ``MISSING``; under the first, an LLM call
  (customer ``acme``), a shadowed copy of it (with a reason) and nothing else; the second is
  a call of customer ``globex``.
- ``OLD``: a one-span rootless trace three days back, no customer (found only by searching
  back past every newer trace).
- ``TIED``: a rootless trace whose two top spans start at the same time: the display root
  is the one with the smaller span id.
- ``HANDOFF``: a root of ``lf-co`` with a child that belongs to ``other-co``: complete for an
  all-tenants caller; for ``other-co`` its root is not visible, so it is incomplete.
- ``PLAIN``: a complete trace of ``plain-co``, which sends no customer ids.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tenantscope.records import UsageRecord
from tenantscope.server.services import Services
from tests.query.seed import HOSTILE, NOW

ROOTED = "a1" * 16
ROOTLESS = "b2" * 16
OLD = "c3" * 16
TIED = "d4" * 16
HANDOFF = "e5" * 16
PLAIN = "f6" * 16
MISSING = "9" * 16
# what ingest writes for a second report of one provider response, with markup in it
REASON = (
    f"duplicate of response resp-1 {HOSTILE}: span 00000000000000b2 of trace {ROOTLESS} counts it"
)
# the display root of ROOTLESS, and its other top-level span
FIRST, SECOND = "00000000000000b1", "00000000000000b4"


def _span(
    trace: str, span: str, parent: str, name: str, start: datetime, **fields: Any
) -> UsageRecord:
    duration = float(fields.pop("duration_ms", 400.0))
    fields.setdefault("tenant_id", "lf-co")
    if fields.get("kind") == "llm":
        fields.setdefault("provider", "openai")
        fields.setdefault("model", "gpt-4o")
        fields.setdefault("input_tokens", 100)
        fields.setdefault("output_tokens", 10)
        fields.setdefault("cost_source", "reported")
        fields.setdefault("usage_convention", "otel-genai")
    return UsageRecord(
        event_id=f"{trace}:{span}",
        trace_id=trace,
        span_id=span,
        parent_span_id=parent,
        name=name,
        start_time=start,
        end_time=start + timedelta(milliseconds=duration),
        duration_ms=duration,
        **fields,
    )


def records() -> list[UsageRecord]:
    t_rooted = NOW - timedelta(hours=2)
    t_rootless = NOW - timedelta(minutes=90)
    t_tied = NOW - timedelta(minutes=60)
    t_handoff = NOW - timedelta(minutes=30)
    return [
        _span(ROOTED, "00000000000000a1", "", "POST /chat", t_rooted, user_id="u1"),
        _span(
            ROOTED, "00000000000000a2", "00000000000000a1", "chat gpt-4o",
            t_rooted + timedelta(milliseconds=5), kind="llm", cost_usd=Decimal("0.01"),
            customer_id="acme", user_id="u1",
        ),
        _span(  # a usage-carrying wrapper shadowed without a stated reason (older ingest)
            ROOTED, "00000000000000a3", "00000000000000a1", "summarize (set_usage)",
            t_rooted + timedelta(milliseconds=2), kind="llm", cost_usd=Decimal("0.01"),
            customer_id="acme", user_id="u1", shadowed=True,
        ),
        _span(
            ROOTLESS, FIRST, MISSING, "agent step", t_rootless, user_id="u2",
            customer_id="acme", duration_ms=3000,
        ),
        _span(
            ROOTLESS, "00000000000000b2", FIRST, "chat gpt-4o",
            t_rootless + timedelta(seconds=1), kind="llm", cost_usd=Decimal("0.02"),
            customer_id="acme", user_id="u2", usage_convention="langfuse",
        ),
        _span(
            ROOTLESS, "00000000000000b3", FIRST, "chat gpt-4o (copy)",
            t_rootless + timedelta(seconds=1), kind="llm", cost_usd=Decimal("0.02"),
            customer_id="acme", user_id="u2", shadowed=True, shadow_reason=REASON,
            usage_convention="openllmetry",
        ),
        _span(
            ROOTLESS, SECOND, MISSING, "chat gpt-4o-mini",
            t_rootless + timedelta(seconds=2), kind="llm", model="gpt-4o-mini",
            cost_usd=Decimal("0.003"), customer_id="globex", user_id="u2",
            usage_convention="figures:input<cache",
        ),
        _span(
            OLD, "00000000000000c1", MISSING, "chat gpt-4o", NOW - timedelta(days=3),
            kind="llm", cost_usd=Decimal("0.004"),
        ),
        _span(TIED, "00000000000000d2", MISSING, "second", t_tied),
        _span(TIED, "00000000000000d1", MISSING, "first", t_tied),
        _span(HANDOFF, "00000000000000e1", "", "POST /handoff", t_handoff),
        _span(
            HANDOFF, "00000000000000e2", "00000000000000e1", "chat gpt-4o",
            t_handoff + timedelta(milliseconds=5), kind="llm", cost_usd=Decimal("0.005"),
            tenant_id="other-co",
        ),
        _span(PLAIN, "00000000000000f1", "", "POST /plain", NOW - timedelta(minutes=45),
              tenant_id="plain-co"),
        _span(
            PLAIN, "00000000000000f2", "00000000000000f1", "chat gpt-4o-mini",
            NOW - timedelta(minutes=45), kind="llm", model="gpt-4o-mini",
            cost_usd=Decimal("0.001"), tenant_id="plain-co",
        ),
    ]  # fmt: skip


def seed_traces(svc: Services) -> None:
    svc.events.write(records())
