"""What the limit pages show: each tenant's limits as they stand (from the API's own
``/api/limits/status`` answer, ``routes_limits.status_of``), grouped per limit with its
blocked calls, a straight-line month-end projection of each budget, the definitions and
approvals in words, the budget chart, and the values of the limit and approval forms.

No routes here (dashboard/limits.py has them), so the tenant page (dashboard/pages.py)
can show a tenant's limits without importing the admin forms. Nothing here checks a limit
or an approval: ``limits.definitions.check_limit`` / ``check_approval`` are the one
validators; the forms only turn posted boxes into the fields they take. Nothing here
measures usage either: every used, remaining and blocked figure is the one ``status_of``
answered; the projection only extends it over the rest of the period.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from starlette.requests import Request

from tenantscope.dashboard.charts import PALETTE, Spec, plotly_text
from tenantscope.dashboard.render import num, tenant_label
from tenantscope.limits.definitions import LIMIT_FIELDS, TENANT_BUDGET, TENANT_RATE
from tenantscope.server.routes_limits import status_of
from tenantscope.server.services import services_of
from tenantscope.storage.base import TenantConfig
from tenantscope.storage.limit_state import (
    BASES,
    BUDGET_PER,
    DEFAULT_THRESHOLDS,
    KINDS,
    MODES,
    RATE_PER,
    Approval,
    LimitDef,
)

UNITS = {
    "requests_per_minute": "requests/min",
    "tokens_per_minute": "tokens/min",
    "usd_per_period": "USD this period",
}
SOURCES = {
    "tenant": "the tenant's own limit",
    "tenant-config": "the tenant's configuration",
    "tier": "its tier's default",
    "all": "the default for every tenant",
}
PER_WORDS = {"tenant": "the tenant", "feature": "feature", "user": "user", "workspace": "workspace"}
# the budget chart's bars: the tenants using the largest share of their budget
CHART_TENANTS = 20
LIMIT_LABELS = {
    "name": "Name",
    "kind": "Kind",
    "per": "Counted per",
    "subject": "Only this one",
    "tenant_id": "Tenant",
    "tier": "Tier",
    "requests_per_minute": "Requests per minute",
    "tokens_per_minute": "Tokens per minute",
    "amount_usd": "Budget (USD per period)",
    "basis": "Basis",
    "timezone": "Time zone",
    "anchor_day": "Period starts on day",
    "thresholds": "Warn at (% of budget)",
    "mode": "When reached",
    "contact_ids": "Warnings go to",
    "enabled": "Enabled",
    "description": "Description",
}
# the limit form's text boxes and selects, named as check_limit's fields (the contact
# points and "enabled" are checkboxes)
LIMIT_TEXT_FIELDS = tuple(f for f in LIMIT_FIELDS if f not in ("contact_ids", "enabled"))
# the limit form's choices: each stored value with what it means
_CHOICE_TEXT = {
    "rate": "rate: requests and/or tokens per minute",
    "budget": "budget: USD per monthly period",
    "tenant": "the tenant as a whole",
    "feature": "each feature",
    "user": "each user (rate limits)",
    "workspace": "each workspace (budgets)",
    "block": "block: a hard cap, calls are refused",
    "soft": "soft: warnings only",
    "provider_cost": "provider cost",
}
LIMIT_OPTIONS = {
    name: [(value, _CHOICE_TEXT.get(value, value)) for value in values]
    for name, values in (
        ("kind", KINDS),
        ("per", tuple(dict.fromkeys((*RATE_PER, *BUDGET_PER)))),
        ("mode", MODES),
        ("basis", BASES),
    )
}
APPROVAL_LABELS = {
    "limit": "Limit",
    "tenant_id": "Tenant",
    "subject": "Only for (feature, user or workspace)",
    "amount_usd": "More budget (USD)",
    "requests_per_minute": "More requests per minute",
    "tokens_per_minute": "More tokens per minute",
    "expires_at": "Until (UTC)",
    "reason": "Reason",
}
APPROVAL_FIELDS = tuple(APPROVAL_LABELS)
# a new approval's default length (the form shows the end time; it can be changed)
DEFAULT_APPROVAL = timedelta(days=7)


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def iso_text(at: datetime | None) -> str:
    if at is None:
        return ""
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- figures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FigureRow:
    """One figure of ``status_of`` (a limit as it stands for one counter), with money and
    counts as exact decimals again and, for a budget, the month-end projection."""

    measure: str
    subject: str
    limit: Decimal
    used: Decimal
    held: Decimal
    remaining: Decimal
    used_pct: float
    period_start: datetime | None
    period_end: datetime | None
    projected: Decimal | None = None  # spend at the period's end at the pace so far
    projected_pct: float | None = None

    @property
    def is_budget(self) -> bool:
        return self.measure == "usd_per_period"

    @property
    def unit(self) -> str:
        return UNITS.get(self.measure, self.measure)

    @property
    def state(self) -> str:
        """reached (nothing left), over_pace (the projection passes the limit), ok."""
        if self.remaining <= 0:
            return "reached"
        if self.projected is not None and self.projected > self.limit:
            return "over_pace"
        return "ok"

    @property
    def bar_pct(self) -> float:
        """The meter's fill (capped: a bar never runs past its box)."""
        return max(0.0, min(self.used_pct, 100.0))


@dataclass
class LimitGroup:
    """One limit of one tenant: its figures (a rate limit with requests and tokens per
    minute has two; a per-feature budget one per feature) and the calls it refused this
    month."""

    ref: str
    name: str
    kind: str
    per: str
    mode: str
    source: str
    blocked: int = 0
    figures: list[FigureRow] = field(default_factory=list)

    @property
    def source_text(self) -> str:
        return SOURCES.get(self.source, self.source)

    @property
    def applies(self) -> bool:
        """False for a limit that refused calls this month but no longer applies."""
        return bool(self.figures)

    @property
    def rows(self) -> int:
        """Table rows it takes: one per figure, one when it no longer applies."""
        return max(1, len(self.figures))


@dataclass
class TenantLimits:
    tenant_id: str
    groups: list[LimitGroup]
    blocked: int

    @property
    def rows(self) -> int:
        return sum(g.rows for g in self.groups)

    @property
    def budget(self) -> FigureRow | None:
        """The tenant's own budget (per tenant, not per feature or workspace), if any: the
        one the chart draws. The tightest when several apply."""
        found = [
            f
            for g in self.groups
            if g.kind == "budget" and g.per == "tenant"
            for f in g.figures
            if f.is_budget
        ]
        return max(found, key=lambda f: f.used_pct, default=None)


def _dec(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def figure_row(fig: Mapping[str, Any], now: datetime) -> FigureRow:
    limit, used, held = _dec(fig["limit"]), _dec(fig["used"]), _dec(fig.get("held"))
    start, end = parse_iso(fig.get("period_start")), parse_iso(fig.get("period_end"))
    projected = projected_pct = None
    if fig.get("projected") is not None:  # budgets: the limiter's straight line
        projected = _dec(fig["projected"])
        projected_pct = float(projected / limit * 100) if limit else None
    return FigureRow(
        measure=fig["measure"],
        subject=fig.get("subject") or "",
        limit=limit,
        used=used,
        held=held,
        remaining=_dec(fig["remaining"]),
        used_pct=float(fig.get("used_pct") or 0.0),
        period_start=start,
        period_end=end,
        projected=projected,
        projected_pct=projected_pct,
    )


def tenant_limits(status: Mapping[str, Any], now: datetime) -> list[TenantLimits]:
    """``status_of``'s answer as each tenant's limits, grouped per limit in its order; a
    limit that refused calls this month but no longer applies (removed, or the tenant
    moved tier) is listed after them with its count."""
    out = []
    for t in status["tenants"]:
        groups: dict[str, LimitGroup] = {}
        for fig in t["limits"]:
            g = groups.get(fig["id"])
            if g is None:
                g = groups[fig["id"]] = LimitGroup(
                    ref=fig["id"],
                    name=fig["name"],
                    kind=fig["kind"],
                    per=fig["per"],
                    mode=fig["mode"],
                    source=fig["source"],
                )
            g.figures.append(figure_row(fig, now))
        blocked: dict[str, int] = t.get("blocked_by_limit", {})
        for ref, n in sorted(blocked.items()):
            if ref in groups:
                groups[ref].blocked = n
            else:
                groups[ref] = LimitGroup(ref, ref, "", "", "", "", blocked=n)
        out.append(TenantLimits(t["tenant_id"], list(groups.values()), t["blocked_this_month"]))
    return out


def budget_chart(tenants: Sequence[TenantLimits]) -> Spec | None:
    """Each tenant's own budget: the share used so far and the share projected at the
    period's end, as horizontal bars against a line at 100 %. None without budgets."""
    rows = [(t.tenant_id, b) for t in tenants if (b := t.budget) is not None]
    if not rows:
        return None
    rows = sorted(rows, key=lambda r: -r[1].used_pct)[:CHART_TENANTS]
    rows.reverse()  # plotly draws the first category at the bottom
    names = [plotly_text(tenant_label(t)) for t, _ in rows]
    used = [round(b.used_pct, 1) for _, b in rows]
    projected = [None if b.projected_pct is None else round(b.projected_pct, 1) for _, b in rows]
    data: list[Spec] = [
        {
            "type": "bar",
            "orientation": "h",
            "name": label,
            "y": names,
            "x": values,
            "marker": {"color": color},
            "hovertemplate": "%{y}: %{x:.1f}%<extra>" + label + "</extra>",
        }
        for label, values, color in (
            ("used so far", used, PALETTE[0]),
            ("projected at period end", projected, "#a5b4fc"),
        )
    ]
    layout: Spec = {
        "margin": {"l": 140, "r": 12, "t": 32, "b": 36},
        "height": max(180, 60 + 28 * len(rows)),
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "barmode": "group",
        # the 100 % line always in view, and every bar whole
        "xaxis": {
            "title": {"text": "% of budget"},
            "ticksuffix": "%",
            "range": [0, max(110.0, *(x * 1.05 for x in used + projected if x is not None))],
        },
        "yaxis": {"type": "category", "automargin": True},
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        "hovermode": "closest",
        "shapes": [
            {
                "type": "line",
                "yref": "paper",
                "y0": 0,
                "y1": 1,
                "x0": 100,
                "x1": 100,
                "line": {"color": "#dc2626", "dash": "dash", "width": 2},
            }
        ],
    }
    return {"data": data, "layout": layout}


def of_tenant(
    request: Request, tenant_id: str
) -> tuple[TenantLimits | None, list[Approval], dict[str, str]]:
    """One tenant's limits now (the tenant page's section), and for callers that see
    every tenant the approvals in force for it (who granted a raise, and why, is the
    operator's business, not the tenant portal's) with the names of the limits."""
    svc = services_of(request)
    now = svc.limiter.clock()
    found = tenant_limits(status_of(request, tenant_id), now)
    principal = getattr(request.state, "principal", None)
    if principal is None or not principal.can("read_all"):
        return (found[0] if found else None), [], {}
    store = svc.config.limits
    approvals = [a for a in store.list_approvals(active_at=now) if a.tenant_id == tenant_id]
    names = limit_names(store.list_limits()) if approvals else {}
    return (found[0] if found else None), approvals, names


# -- definitions and approvals -------------------------------------------------------------


@dataclass(frozen=True)
class DefinitionRow:
    """A limit as configured: a stored definition (``limit``) or a tenant
    configuration's shorthand (rate_limit_rpm / monthly_budget_usd: ``config``)."""

    ref: str
    name: str
    kind: str
    applies_to: str  # in words: a tenant, a tier, every tenant
    source: str  # tenant, tier, all, tenant-config
    figures: str
    counted: str
    period: str
    thresholds: str
    mode: str
    enabled: bool
    limit: LimitDef | None = None
    tenant_id: str = ""  # of a tenant configuration's shorthand

    @property
    def source_text(self) -> str:
        return SOURCES.get(self.source, self.source)


def limit_figures(x: LimitDef) -> str:
    if x.kind == "budget":
        return f"{x.amount_usd} USD"
    parts = []
    if x.requests_per_minute is not None:
        parts.append(f"{num(x.requests_per_minute)} requests/min")
    if x.tokens_per_minute is not None:
        parts.append(f"{num(x.tokens_per_minute)} tokens/min")
    return " · ".join(parts)


def counted_text(per: str, subject: str) -> str:
    if per == "tenant":
        return "per tenant"
    return f"per {per}" + (f" {subject}" if subject else " (each one)")


def definition_rows(
    limits: Iterable[LimitDef], tenants: Iterable[TenantConfig], tenant_id: str | None = None
) -> list[DefinitionRow]:
    """Stored limits, then each tenant configuration's shorthand limits. With
    ``tenant_id``: only what may apply to that tenant (its own, its tier's, every
    tenant's)."""
    configs = {t.tenant_id: t for t in tenants}
    tier = configs[tenant_id].tier if tenant_id in configs else None
    out = []
    for x in limits:
        if tenant_id is not None and not (
            x.tenant_id == tenant_id
            or (x.tier and x.tier == tier)
            or (not x.tenant_id and not x.tier)
        ):
            continue
        if x.tenant_id:
            source, applies = "tenant", f"tenant {tenant_label(x.tenant_id)}"
        elif x.tier:
            source, applies = "tier", f"tier {x.tier}"
        else:
            source, applies = "all", "every tenant"
        budget = x.kind == "budget"
        anchor = "" if x.anchor_day == 1 else f", from day {x.anchor_day}"
        out.append(
            DefinitionRow(
                ref=x.ref,
                name=x.name,
                kind=x.kind,
                applies_to=applies,
                source=source,
                figures=limit_figures(x),
                counted=counted_text(x.per, x.subject),
                period=f"monthly, {x.timezone}{anchor}" if budget else "per minute",
                thresholds=", ".join(f"{t}%" for t in x.thresholds) if budget else "",
                mode=x.mode,
                enabled=x.enabled,
                limit=x,
            )
        )
    for cfg in configs.values():
        if tenant_id is not None and cfg.tenant_id != tenant_id:
            continue
        label = tenant_label(cfg.tenant_id)
        if cfg.rate_limit_rpm:
            out.append(
                _shorthand(
                    cfg, TENANT_RATE, "rate", f"{num(cfg.rate_limit_rpm)} requests/min", label
                )
            )
        if cfg.monthly_budget_usd:
            out.append(
                _shorthand(cfg, TENANT_BUDGET, "budget", f"{cfg.monthly_budget_usd} USD", label)
            )
    return out


def _shorthand(cfg: TenantConfig, ref: str, kind: str, figures: str, label: str) -> DefinitionRow:
    budget = kind == "budget"
    return DefinitionRow(
        ref=ref,
        name=f"{cfg.display_name or label} {'monthly budget' if budget else 'rate limit'}",
        kind=kind,
        applies_to=f"tenant {label}",
        source="tenant-config",
        figures=figures,
        counted="per tenant",
        period="monthly, UTC" if budget else "per minute",
        thresholds=", ".join(f"{t}%" for t in DEFAULT_THRESHOLDS) if budget else "",
        mode="block",
        enabled=True,
        tenant_id=cfg.tenant_id,
    )


def raise_text(a: Approval) -> str:
    parts = []
    if a.amount_usd is not None:
        parts.append(f"+{a.amount_usd} USD")
    if a.requests_per_minute:
        parts.append(f"+{num(a.requests_per_minute)} requests/min")
    if a.tokens_per_minute:
        parts.append(f"+{num(a.tokens_per_minute)} tokens/min")
    return " · ".join(parts)


def limit_names(limits: Iterable[LimitDef]) -> dict[str, str]:
    """Limit refs as approvals name them -> the limit's name."""
    names = {x.ref: x.name for x in limits}
    names.setdefault(TENANT_RATE, "the tenant's configured rate limit")
    names.setdefault(TENANT_BUDGET, "the tenant's configured monthly budget")
    return names


# -- the limit form ------------------------------------------------------------------------

Form = dict[str, list[str]]


def _first(form: Form, name: str) -> str:
    return form.get(name, [""])[0]


def limit_values(limit: LimitDef | None, **given: str) -> dict[str, Any]:
    """The form's boxes for a stored limit, or a new limit's defaults (``given``: boxes
    filled in from the link that opened the form, e.g. the tenant)."""
    x = limit or LimitDef(name="", kind="rate")
    values: dict[str, Any] = {
        "name": x.name,
        "kind": x.kind,
        "per": x.per,
        "subject": x.subject,
        "tenant_id": x.tenant_id,
        "tier": x.tier,
        "requests_per_minute": "" if x.requests_per_minute is None else str(x.requests_per_minute),
        "tokens_per_minute": "" if x.tokens_per_minute is None else str(x.tokens_per_minute),
        "amount_usd": "" if x.amount_usd is None else format(x.amount_usd, "f"),
        "basis": x.basis,
        "timezone": x.timezone,
        "anchor_day": str(x.anchor_day),
        "thresholds": ",".join(str(t) for t in x.thresholds),
        "mode": x.mode,
        "description": x.description,
        "contact_ids": [str(c) for c in x.contact_ids],
        "enabled": x.enabled,
    }
    values.update({k: v for k, v in given.items() if k in values and v})
    return values


def limit_submission(form: Form) -> tuple[dict[str, Any], dict[str, Any]]:
    """The posted limit form as the fields ``check_limit`` takes, and as the boxes to
    show again (as typed) when it refuses them."""
    data: dict[str, Any] = {name: _first(form, name) for name in LIMIT_TEXT_FIELDS}
    data["enabled"] = "enabled" in form  # a checkbox is sent only when ticked
    data["contact_ids"] = list(form.get("contact_ids", []))
    return data, {**data, "contact_ids": list(data["contact_ids"])}


def approval_values(now: datetime, **given: str) -> dict[str, str]:
    values = dict.fromkeys(APPROVAL_FIELDS, "")
    values["expires_at"] = iso_text(now + DEFAULT_APPROVAL)
    values.update({k: v for k, v in given.items() if k in values and v})
    return values


def approval_submission(form: Form) -> dict[str, str]:
    """The posted approval form: the fields ``check_approval`` takes, as typed."""
    return {name: _first(form, name) for name in APPROVAL_FIELDS}
