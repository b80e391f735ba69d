"""What a limit decision says: the call asked about, each limit's figure for one
counter (limit, used, held, remaining, period, projection), the decision and its JSON,
and the words of a refusal. ``limiter.py`` decides; this is what it answers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from tenantscope.limits.definitions import Effective
from tenantscope.limits.ledger import Reservation

DEFAULT_TTL_S = 600


@dataclass(frozen=True, slots=True)
class Call:
    """What a check is asked about."""

    tenant_id: str
    workspace_id: str = ""
    feature: str = ""
    user_id: str = ""
    provider: str = ""
    model: str = ""
    input_tokens: int = 0
    max_tokens: int | None = None
    estimated_cost_usd: Decimal | None = None
    ttl_s: int = DEFAULT_TTL_S

    def subject(self, per: str) -> str:
        return {
            "tenant": "",
            "feature": self.feature,
            "user": self.user_id,
            "workspace": self.workspace_id,
        }[per]


@dataclass(frozen=True, slots=True)
class Figure:
    """One limit as it stands for one counter: what it allows, what is used, what
    remains (in the measure's unit)."""

    ref: str
    name: str
    kind: str
    per: str
    subject: str
    measure: str  # requests_per_minute, tokens_per_minute, usd_per_period
    limit: Decimal
    used: Decimal
    remaining: Decimal
    mode: str
    source: str
    period_start: datetime | None = None
    period_end: datetime | None = None
    held: Decimal = Decimal(0)  # of ``used``, reserved by calls in flight
    # budgets in ``status``: the period's spend at its end at the pace so far
    projected: Decimal | None = None

    @property
    def share(self) -> float:
        return float(self.used / self.limit) if self.limit else 0.0

    def as_json(self) -> dict[str, Any]:
        def iso(at: datetime | None) -> str | None:
            return None if at is None else at.isoformat().replace("+00:00", "Z")

        return {
            "id": self.ref,
            "name": self.name,
            "kind": self.kind,
            "per": self.per,
            "subject": self.subject,
            "measure": self.measure,
            "limit": _text(self.limit),
            "used": _text(self.used),
            "held": _text(self.held),
            "remaining": _text(self.remaining),
            "used_pct": round(self.share * 100, 1),
            "mode": self.mode,
            "source": self.source,
            "period_start": iso(self.period_start),
            "period_end": iso(self.period_end),
            "projected": None if self.projected is None else _text(self.projected),
        }


def _text(value: Decimal) -> str:
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


@dataclass(slots=True)
class Decision:
    allowed: bool
    message: str
    reservation: Reservation | None = None
    decided_by: Figure | None = None
    retry_after: int | None = None
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        r = self.reservation
        return {
            "allowed": self.allowed,
            "reservation_id": r.id if r else None,
            "expires_at": r.expires_at.isoformat().replace("+00:00", "Z") if r else None,
            "hold": None
            if r is None
            else {
                "cost_usd": format(r.cost, "f"),
                "tokens": r.input_tokens + r.output_tokens,
                "output_tokens": r.output_tokens,
                "priced": r.priced,
            },
            "decided_by": self.decided_by.as_json() if self.decided_by else None,
            "remaining": _text(self.decided_by.remaining) if self.decided_by else None,
            "retry_after": self.retry_after,
            "message": self.message,
            "warnings": self.warnings,
        }


@dataclass(slots=True)
class Verdict:
    figure: Figure
    fits: bool
    retry_after: float | None = None


def figure_of(eff: Effective, subject: str, measure: str, limit: int, used: int) -> Figure:
    return Figure(
        ref=eff.ref,
        name=eff.name,
        kind="rate",
        per=eff.per,
        subject=subject,
        measure=measure,
        limit=Decimal(limit),
        used=Decimal(used),
        remaining=Decimal(max(0, limit - used)),
        mode="block",
        source=eff.source,
    )


_UNITS = {
    "requests_per_minute": "requests/min",
    "tokens_per_minute": "tokens/min",
    "usd_per_period": "USD",
}


def _of(fig: Figure) -> str:
    per = "" if fig.per == "tenant" else f" for {fig.per} {fig.subject or '(none)'}"
    return f"'{fig.name}' ({fig.ref}{per})"


def refusal(v: Verdict, *, extending: bool = False) -> str:
    fig = v.figure
    unit = _UNITS[fig.measure]
    what = "the stream may not go on" if extending else "call refused"
    if fig.kind == "budget":
        head = (
            f"{what}: budget {_of(fig)} of {fig.limit} USD"
            f" has {fig.remaining} USD left (in flight: {fig.held})"
        )
    else:
        head = f"{what}: rate limit {_of(fig)} of {fig.limit} {unit} reached ({fig.used} used)"
    if v.retry_after is None:
        return head + "; the call is larger than the limit itself"
    return head + f"; retry in {max(1, math.ceil(v.retry_after))} s"


def warning(v: Verdict) -> str:
    fig = v.figure
    return (
        f"soft budget {_of(fig)} exceeded: {fig.used} of {fig.limit} USD"
        if fig.kind == "budget"
        else f"soft limit {_of(fig)} exceeded"
    )
