"""What a limit may say, the one check every way in (API, CLI, dashboard form) runs, and
which limits apply to a call.

``check_limit`` turns a submission into a stored ``LimitDef`` (or raises ``InvalidFields``
naming every wrong field); ``check_approval`` does the same for a temporary raise.

Which limits apply (``Resolver``): limits sit in slots — (kind, per, subject) — and in each
slot the most specific one applies: the tenant's own limit, else the tenant
configuration's shorthand (``rate_limit_rpm``, ``monthly_budget_usd``: a tenant rate limit
and a tenant budget), else its tier's, else the one for every tenant. Active approvals add
to the limit they name, for their tenant (and subject).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from tenantscope.errors import InvalidFields
from tenantscope.limits.periods import check_period
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
from tenantscope.storage.validation import MAX_LABEL, MAX_MONEY, MAX_TENANT_ID

LIMIT_FIELDS = (
    "name",
    "kind",
    "per",
    "subject",
    "tenant_id",
    "tier",
    "requests_per_minute",
    "tokens_per_minute",
    "amount_usd",
    "basis",
    "timezone",
    "anchor_day",
    "thresholds",
    "mode",
    "contact_ids",
    "enabled",
    "description",
)
APPROVAL_FIELDS = (
    "limit",
    "tenant_id",
    "subject",
    "amount_usd",
    "requests_per_minute",
    "tokens_per_minute",
    "expires_at",
    "reason",
)
MAX_DESCRIPTION = 2000
MAX_RATE = 10**9
MAX_CONTACTS = 20
# the tenant configuration's shorthand limits, by slot
TENANT_RATE = "tenant:rate"
TENANT_BUDGET = "tenant:budget"
PER_COLUMN = {"tenant": "", "feature": "feature", "user": "user_id", "workspace": "workspace_id"}


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ValueError
    try:
        out = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError from exc
    if not out.is_finite():
        raise ValueError
    return out


def _count(value: Any) -> int | None:
    """A positive whole number (None for empty); ValueError otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            raise ValueError
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= MAX_RATE:
        raise ValueError
    return value


def _text(problems: dict[str, str], name: str, value: Any, limit: int, what: str) -> str:
    value = "" if value is None else value
    if not isinstance(value, str) or len(value) > limit:
        problems[name] = f"{what} of at most {limit} characters"
        return ""
    return value.strip()


def check_limit(data: Any, *, base: LimitDef | None = None) -> LimitDef:
    """The limit a submission (a JSON object of ``LIMIT_FIELDS``) describes. With ``base``
    (the stored limit an edit starts from), fields left out keep its values."""
    if not isinstance(data, dict):
        raise InvalidFields({"body": "must be a JSON object of the limit's fields"})
    problems: dict[str, str] = {}
    for unknown in sorted(set(data) - set(LIMIT_FIELDS)):
        problems[unknown] = f"not a limit field (fields: {', '.join(LIMIT_FIELDS)})"
    start = base or LimitDef(name="", kind="")
    given = dict(data)

    def get(name: str) -> Any:
        return given.get(name, getattr(start, name))

    name = get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_LABEL:
        problems["name"] = f"required, at most {MAX_LABEL} characters"
        name = ""
    kind = get("kind")
    if kind not in KINDS:
        problems["kind"] = "rate (requests or tokens per minute) or budget (USD per month)"
    per = get("per") or "tenant"
    allowed_per = RATE_PER if kind == "rate" else BUDGET_PER
    if per not in allowed_per:
        problems["per"] = f"for a {kind or 'rate'} limit one of {', '.join(allowed_per)}"
    subject = _text(problems, "subject", get("subject"), MAX_TENANT_ID, "a value")
    if subject and per == "tenant":
        problems["subject"] = "only with per feature, user or workspace (the one it limits)"
    tenant_id = _text(problems, "tenant_id", get("tenant_id"), MAX_TENANT_ID, "a tenant id")
    tier = _text(problems, "tier", get("tier"), MAX_LABEL, "a tier name")
    if tenant_id and tier:
        problems["tier"] = "give a tenant_id or a tier, not both (neither: every tenant)"
    rpm = tpm = None
    amount = None
    for field_ in ("requests_per_minute", "tokens_per_minute"):
        try:
            value = _count(get(field_))
        except ValueError:
            problems[field_] = f"a whole number from 1 to {MAX_RATE}, or empty"
            continue
        if field_ == "requests_per_minute":
            rpm = value
        else:
            tpm = value
    raw_amount = get("amount_usd")
    if raw_amount not in (None, ""):
        try:
            amount = _decimal(raw_amount)
            if not Decimal(0) < amount < MAX_MONEY or amount.as_tuple().exponent < -9:  # type: ignore[operator]
                raise ValueError
        except ValueError:
            problems["amount_usd"] = "a positive amount in USD (at most 9 decimal places)"
            amount = None
    if kind == "rate":
        if rpm is None and tpm is None and "requests_per_minute" not in problems:
            problems["requests_per_minute"] = (
                "a rate limit needs requests_per_minute, tokens_per_minute or both"
            )
        if raw_amount not in (None, ""):
            problems["amount_usd"] = "only for budgets"
    elif kind == "budget":
        if amount is None and "amount_usd" not in problems:
            problems["amount_usd"] = "required for a budget: USD per period"
        for field_, value in (("requests_per_minute", rpm), ("tokens_per_minute", tpm)):
            if value is not None:
                problems[field_] = "only for rate limits"
    basis = get("basis") or "provider_cost"
    if basis not in BASES:
        problems["basis"] = (
            "provider_cost (customer price budgets come with plans; not available yet)"
        )
    tz, anchor = check_period(problems, get("timezone"), get("anchor_day"))
    thresholds = get("thresholds")
    if thresholds in (None, ""):
        thresholds = list(DEFAULT_THRESHOLDS)
    if isinstance(thresholds, str):
        thresholds = [t.strip() for t in thresholds.split(",") if t.strip()]
    try:
        if not isinstance(thresholds, list) or len(thresholds) > 10:
            raise ValueError
        thresholds = sorted({int(t) for t in thresholds if not isinstance(t, bool)})
        if not all(1 <= t <= 1000 for t in thresholds):
            raise ValueError
    except (TypeError, ValueError):
        problems["thresholds"] = "up to 10 percentages from 1 to 1000, e.g. 50,80,100"
        thresholds = list(DEFAULT_THRESHOLDS)
    mode = get("mode") or "block"
    if mode not in MODES:
        problems["mode"] = "block (a hard cap) or soft (warnings only)"
    contact_ids = get("contact_ids")
    if isinstance(contact_ids, str):
        contact_ids = [c.strip() for c in contact_ids.split(",") if c.strip()]
    try:
        if not isinstance(contact_ids, list) or len(contact_ids) > MAX_CONTACTS:
            raise ValueError
        contact_ids = [int(c) for c in contact_ids if not isinstance(c, bool)]
        if not all(c >= 1 for c in contact_ids):
            raise ValueError
    except (TypeError, ValueError):
        problems["contact_ids"] = f"a list of at most {MAX_CONTACTS} contact point ids"
        contact_ids = []
    enabled = get("enabled")
    if not isinstance(enabled, bool):
        problems["enabled"] = "true or false"
    description = _text(problems, "description", get("description"), MAX_DESCRIPTION, "text")
    if problems:
        raise InvalidFields(problems)
    return LimitDef(
        id=start.id,
        created_at=start.created_at,
        updated_at=start.updated_at,
        name=name.strip(),
        kind=kind,
        per=per,
        subject=subject,
        tenant_id=tenant_id,
        tier=tier,
        requests_per_minute=rpm,
        tokens_per_minute=tpm,
        amount_usd=amount,
        basis=basis,
        timezone=str(tz),
        anchor_day=anchor,
        thresholds=thresholds,
        mode=mode,
        contact_ids=contact_ids,
        enabled=enabled,
        description=description,
    )


def parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError
    at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(timezone.utc)


def check_approval(
    data: Any, limits: Sequence[LimitDef], *, now: datetime, granted_by: str
) -> Approval:
    """A temporary raise: ``limit`` (a limit id ``L3``/``3``, or ``tenant:rate`` /
    ``tenant:budget``, the tenant configuration's), the tenant, how much more, and until
    when (``expires_at``, after now)."""
    if not isinstance(data, dict):
        raise InvalidFields({"body": "must be a JSON object of the approval's fields"})
    problems: dict[str, str] = {}
    for unknown in sorted(set(data) - set(APPROVAL_FIELDS)):
        problems[unknown] = f"not an approval field (fields: {', '.join(APPROVAL_FIELDS)})"
    ref = str(data.get("limit") or "").strip()
    kind = ""
    if ref in (TENANT_RATE, TENANT_BUDGET):
        kind = ref.split(":")[1]
    else:
        number = ref[1:] if ref[:1] in ("L", "l") else ref
        found = next((x for x in limits if number.isdigit() and x.id == int(number)), None)
        if found is None:
            problems["limit"] = (
                f"a limit id (e.g. L3), {TENANT_RATE} or {TENANT_BUDGET}; {ref or 'none'} given"
            )
        else:
            ref, kind = found.ref, found.kind
    tenant_id = _text(problems, "tenant_id", data.get("tenant_id"), MAX_TENANT_ID, "a tenant id")
    if not tenant_id and "tenant_id" not in problems:
        problems["tenant_id"] = "required: the tenant the raise is for"
    subject = _text(problems, "subject", data.get("subject"), MAX_TENANT_ID, "a value")
    amount = rpm = tpm = None
    if data.get("amount_usd") not in (None, ""):
        try:
            amount = _decimal(data["amount_usd"])
            if not Decimal(0) < amount < MAX_MONEY:
                raise ValueError
        except ValueError:
            problems["amount_usd"] = "a positive amount in USD"
    for field_ in ("requests_per_minute", "tokens_per_minute"):
        try:
            value = _count(data.get(field_))
        except ValueError:
            problems[field_] = f"a whole number from 1 to {MAX_RATE}"
            continue
        if field_ == "requests_per_minute":
            rpm = value
        else:
            tpm = value
    if kind == "budget":
        if amount is None and "amount_usd" not in problems:
            problems["amount_usd"] = "required: how many USD the budget is raised by"
        if rpm is not None or tpm is not None:
            problems["requests_per_minute"] = "a budget is raised by amount_usd"
    elif kind == "rate":
        if rpm is None and tpm is None and "requests_per_minute" not in problems:
            problems["requests_per_minute"] = (
                "required: requests_per_minute and/or tokens_per_minute to add"
            )
        if amount is not None:
            problems["amount_usd"] = "a rate limit is raised by requests or tokens per minute"
    expires_at = now
    try:
        expires_at = parse_time(data.get("expires_at"))
        if expires_at <= now:
            problems["expires_at"] = "must be in the future"
    except ValueError:
        problems["expires_at"] = (
            "required: when the raise ends (ISO 8601, e.g. 2026-12-31T00:00:00Z)"
        )
    reason = _text(problems, "reason", data.get("reason"), MAX_DESCRIPTION, "text")
    if problems:
        raise InvalidFields(problems)
    return Approval(
        limit_ref=ref,
        tenant_id=tenant_id,
        subject=subject,
        amount_usd=amount,
        requests_per_minute=rpm,
        tokens_per_minute=tpm,
        expires_at=expires_at,
        reason=reason,
        granted_by=granted_by,
        starts_at=now,
    )


@dataclass(frozen=True, slots=True)
class Effective:
    """A limit as it applies to one tenant: the definition's figures plus the tenant's
    active approvals. ``source`` says where it came from (tenant, tenant-config, tier,
    all)."""

    ref: str
    name: str
    kind: str
    per: str
    subject: str
    source: str
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    amount_usd: Decimal | None = None
    timezone: str = "UTC"
    anchor_day: int = 1
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    mode: str = "block"
    contact_ids: tuple[int, ...] = ()
    # approvals added, per subject ("" for per tenant): (usd, rpm, tpm)
    raises: tuple[tuple[str, Decimal, int, int], ...] = ()

    def raised(self, subject: str) -> tuple[Decimal | None, int | None, int | None]:
        """(USD, requests/min, tokens/min) for ``subject`` with approvals added."""
        usd, rpm, tpm = self.amount_usd, self.requests_per_minute, self.tokens_per_minute
        for s, a, r, t in self.raises:
            if s in ("", subject):
                usd = None if usd is None else usd + a
                rpm = None if rpm is None else rpm + r
                tpm = None if tpm is None else tpm + t
        return usd, rpm, tpm

    def applies(self, subject_value: str) -> bool:
        return not self.subject or self.subject == subject_value


def _effective(limit: LimitDef, source: str) -> Effective:
    return Effective(
        ref=limit.ref,
        name=limit.name,
        kind=limit.kind,
        per=limit.per,
        subject=limit.subject,
        source=source,
        requests_per_minute=limit.requests_per_minute,
        tokens_per_minute=limit.tokens_per_minute,
        amount_usd=limit.amount_usd,
        timezone=limit.timezone,
        anchor_day=limit.anchor_day,
        thresholds=tuple(limit.thresholds),
        mode=limit.mode,
        contact_ids=tuple(limit.contact_ids),
    )


_RANK = {"tenant": 0, "tenant-config": 1, "tier": 2, "all": 3}


class Resolver:
    """The limits that apply to each tenant, from one snapshot of the definitions, the
    tenant configurations and the approvals active at ``now``."""

    def __init__(
        self,
        limits: Sequence[LimitDef],
        tenants: Sequence[TenantConfig],
        approvals: Sequence[Approval],
        now: datetime,
    ) -> None:
        self._limits = [x for x in limits if x.enabled]
        self._tenants = {t.tenant_id: t for t in tenants}
        self._approvals: dict[tuple[str, str], list[Approval]] = {}
        for a in approvals:
            if a.active(now):
                self._approvals.setdefault((a.tenant_id, a.limit_ref), []).append(a)
        self._cache: dict[str, tuple[Effective, ...]] = {}
        # the soonest time an approval starts or ends: the resolver is stale from then
        ends = [a.expires_at for a in approvals if a.active(now)]
        starts = [a.starts_at for a in approvals if a.starts_at and a.starts_at > now]
        self.valid_until = min([*ends, *starts], default=None)

    def budget_periods(self) -> set[tuple[str, int, str]]:
        """The kinds of budget period the enabled limits use: (time zone, anchor, per)."""
        return {(x.timezone, x.anchor_day, x.per) for x in self._limits if x.kind == "budget"}

    def tenants_with_config(self) -> list[str]:
        return list(self._tenants)

    def for_tenant(self, tenant_id: str) -> tuple[Effective, ...]:
        found = self._cache.get(tenant_id)
        if found is None:
            found = self._cache[tenant_id] = self._resolve(tenant_id)
        return found

    def _resolve(self, tenant_id: str) -> tuple[Effective, ...]:
        cfg = self._tenants.get(tenant_id)
        tier = cfg.tier if cfg is not None else None
        best: dict[tuple[str, str, str], tuple[int, Effective]] = {}

        def offer(slot: tuple[str, str, str], rank: int, eff: Effective) -> None:
            if slot not in best or rank < best[slot][0]:
                best[slot] = (rank, eff)

        for limit in self._limits:
            if limit.tenant_id:
                if limit.tenant_id != tenant_id:
                    continue
                source = "tenant"
            elif limit.tier:
                if tier is None or limit.tier != tier:
                    continue
                source = "tier"
            else:
                source = "all"
            offer((limit.kind, limit.per, limit.subject), _RANK[source], _effective(limit, source))
        if cfg is not None and cfg.rate_limit_rpm:
            offer(
                ("rate", "tenant", ""),
                _RANK["tenant-config"],
                Effective(
                    ref=TENANT_RATE,
                    name=f"{cfg.display_name or tenant_id} rate limit",
                    kind="rate",
                    per="tenant",
                    subject="",
                    source="tenant-config",
                    requests_per_minute=cfg.rate_limit_rpm,
                ),
            )
        if cfg is not None and cfg.monthly_budget_usd:
            offer(
                ("budget", "tenant", ""),
                _RANK["tenant-config"],
                Effective(
                    ref=TENANT_BUDGET,
                    name=f"{cfg.display_name or tenant_id} monthly budget",
                    kind="budget",
                    per="tenant",
                    subject="",
                    source="tenant-config",
                    amount_usd=cfg.monthly_budget_usd,
                ),
            )
        out = []
        for _, eff in sorted(best.values(), key=lambda x: (x[1].kind, x[1].ref)):
            approvals = self._approvals.get((tenant_id, eff.ref), [])
            if approvals:
                eff = replace(
                    eff,
                    raises=tuple(
                        (
                            a.subject,
                            a.amount_usd or Decimal(0),
                            a.requests_per_minute or 0,
                            a.tokens_per_minute or 0,
                        )
                        for a in approvals
                    ),
                )
            out.append(eff)
        return tuple(out)
