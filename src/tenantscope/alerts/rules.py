"""What an alert rule may say, and the one check every way in (API, CLI, dashboard form)
runs: ``check_rule`` turns a submission into a stored ``AlertRule`` or raises
``InvalidFields`` naming every wrong field.

Metrics, their units, and what "span" and "trace" scope mean:

- span scope: counted LLM calls (the counting rule); trace scope: traces, i.e. their root
  spans (latency of the whole request, an error when the root failed). Filters select
  the calls (span scope) or the roots (trace scope) by their attributes.
- ``cost`` (USD), ``tokens`` and ``requests`` are totals over the window, for both scopes
  the LLM calls in it (trace scope: of the traces selected).
- ``error_rate`` and ``sla_compliance`` are percentages (0–100); ``sla_compliance`` is
  the share of requests within each tenant's SLA target (``sla_p95_ms``).
- ``budget_used`` is the month-to-date cost (UTC calendar month) as a percentage of the
  tenant's monthly budget; ``anomaly_score`` the robust score of the last whole hour
  (``alerts/anomaly.py``). Both ignore the window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from tenantscope.errors import InvalidFields
from tenantscope.query.windows import FILTER_COLUMNS
from tenantscope.storage.alert_state import AlertRule
from tenantscope.storage.validation import MAX_LABEL, MAX_TENANT_ID


@dataclass(frozen=True, slots=True)
class Metric:
    label: str
    unit: str  # ms, %, USD, tokens, requests, "" (a score)
    windowed: bool = True  # False: the metric has its own period


METRICS: dict[str, Metric] = {
    "latency_p50": Metric("p50 latency", "ms"),
    "latency_p95": Metric("p95 latency", "ms"),
    "latency_p99": Metric("p99 latency", "ms"),
    "latency_avg": Metric("average latency", "ms"),
    "error_rate": Metric("error rate", "%"),
    "cost": Metric("cost", "USD"),
    "tokens": Metric("tokens", "tokens"),
    "requests": Metric("requests", "requests"),
    "sla_compliance": Metric("requests within SLA target", "%"),
    "budget_used": Metric("monthly budget used", "%", windowed=False),
    "anomaly_score": Metric("anomaly score", "", windowed=False),
    # an SLO's error budget burn (alerts/slo.py): the smaller of the window's and the
    # short window's burn rates, so both must burn
    "burn_rate": Metric("error budget burn rate", "x"),
}
COMPARATORS = (">", ">=", "<", "<=")
SCOPES = ("span", "trace")
SEVERITIES = ("critical", "warning", "info")
FILTERS = tuple(FILTER_COLUMNS)
MIN_WINDOW_S = 10
MAX_WINDOW_S = 31 * 86400
MIN_INTERVAL_S = 1
MAX_INTERVAL_S = 86400
MAX_HOLD_S = 7 * 86400
MAX_TENANTS = 1000
MAX_CONTACTS = 20
MAX_DESCRIPTION = 2000
MAX_ID = 2**31 - 1
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> int:
    """Seconds of ``30s``, ``5m``, ``1h``, ``1d`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return int(m.group(1)) * _UNIT_S[m.group(2) or "s"]
    raise ValueError


def format_duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def format_value(metric: str, value: Decimal | None) -> str:
    """A figure with its unit, as notifications and pages show it."""
    if value is None:
        return "no data"
    unit = METRICS[metric].unit
    if unit == "USD":
        return f"${value:,.4f}" if abs(value) < 1 else f"${value:,.2f}"
    if unit == "ms":
        return f"{value:,.0f} ms"
    if unit == "%":
        return f"{value:,.2f}%"
    if unit == "":
        return f"{value:,.2f}"
    if unit == "x":
        return f"{value:,.2f}x"
    return f"{value:,.0f} {unit}"


def condition_text(metric: str, comparator: str, threshold: Decimal) -> str:
    return f"{comparator} {format_value(metric, threshold)}"


def breaches(value: Decimal, comparator: str, threshold: Decimal) -> bool:
    if comparator == ">":
        return value > threshold
    if comparator == ">=":
        return value >= threshold
    if comparator == "<":
        return value < threshold
    return value <= threshold


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or value is None or value == "":
        raise ValueError
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError from None
    if not d.is_finite() or abs(d) >= Decimal(10) ** 15:
        raise ValueError
    return d


def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    else:
        raise ValueError
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


RULE_FIELDS = (
    "name",
    "description",
    "metric",
    "scope",
    "comparator",
    "threshold",
    "warning",
    "window",
    "interval",
    "min_requests",
    "pending",
    "keep_firing",
    "severity",
    "tenant_ids",
    "tier",
    "per_tenant",
    "filters",
    "contact_ids",
    "enabled",
    "silenced_until",
    "slo_id",
    "short_window",
)


def check_rule(data: Any, *, base: AlertRule | None = None) -> AlertRule:
    """The rule a submission (a JSON object: ``RULE_FIELDS``) describes. With ``base``
    (the stored rule an edit starts from), fields left out keep its values."""
    if not isinstance(data, dict):
        raise InvalidFields({"body": "must be a JSON object of the rule's fields"})
    problems: dict[str, str] = {}
    for unknown in sorted(set(data) - set(RULE_FIELDS)):
        problems[unknown] = f"not a rule field (fields: {', '.join(RULE_FIELDS)})"
    start = base or AlertRule(name="", metric="", comparator=">", threshold=Decimal(0))
    given = dict(data)

    def get(name: str, default: Any) -> Any:
        return given.get(name, default)

    name = get("name", start.name)
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_LABEL:
        problems["name"] = f"required, at most {MAX_LABEL} characters"
    description = get("description", start.description) or ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        problems["description"] = f"text of at most {MAX_DESCRIPTION} characters"
    metric = get("metric", start.metric)
    if metric not in METRICS:
        problems["metric"] = f"one of {', '.join(METRICS)}"
    scope = get("scope", start.scope)
    if scope not in SCOPES:
        problems["scope"] = "span (LLM calls) or trace (whole requests)"
    comparator = get("comparator", start.comparator)
    if comparator not in COMPARATORS:
        problems["comparator"] = f"one of {' '.join(COMPARATORS)}"
    threshold = start.threshold
    if "threshold" in given or base is None:
        try:
            threshold = _decimal(given.get("threshold"))
        except ValueError:
            problems["threshold"] = "required: a number"
    warning = start.warning
    if "warning" in given:
        try:
            warning = None if given["warning"] in (None, "") else _decimal(given["warning"])
        except ValueError:
            problems["warning"] = "a number, or empty for none"
    if warning is not None and "threshold" not in problems and comparator in COMPARATORS:
        # the warning must come before the alert as the figure worsens
        if comparator.startswith(">") and warning >= threshold:
            problems["warning"] = f"must be below the threshold ({threshold}) for {comparator}"
        if comparator.startswith("<") and warning <= threshold:
            problems["warning"] = f"must be above the threshold ({threshold}) for {comparator}"
    durations = {}
    for field_, current, low, high in (
        ("window", start.window_s, MIN_WINDOW_S, MAX_WINDOW_S),
        ("interval", start.interval_s, MIN_INTERVAL_S, MAX_INTERVAL_S),
        ("pending", start.pending_s, 0, MAX_HOLD_S),
        ("keep_firing", start.keep_firing_s, 0, MAX_HOLD_S),
    ):
        try:
            seconds = parse_duration(given[field_]) if field_ in given else current
            if not low <= seconds <= high:
                raise ValueError
            durations[field_] = seconds
        except ValueError:
            problems[field_] = (
                f"a duration from {format_duration(low)} to {format_duration(high)}"
                " (e.g. 30s, 5m, 1h, 1d)"
            )
            durations[field_] = current
    min_requests = get("min_requests", start.min_requests)
    if isinstance(min_requests, str) and min_requests.strip().isdigit():
        min_requests = int(min_requests)
    if (
        not isinstance(min_requests, int)
        or isinstance(min_requests, bool)
        or not (0 <= min_requests <= 10**9)
    ):
        problems["min_requests"] = "a whole number, 0 or more"
    severity = get("severity", start.severity)
    if severity not in SEVERITIES:
        problems["severity"] = f"one of {', '.join(SEVERITIES)}"
    tenant_ids = get("tenant_ids", start.tenant_ids)
    if isinstance(tenant_ids, str):
        tenant_ids = [t.strip() for t in tenant_ids.split(",") if t.strip()]
    if (
        not isinstance(tenant_ids, list)
        or len(tenant_ids) > MAX_TENANTS
        or not all(isinstance(t, str) and len(t) <= MAX_TENANT_ID for t in tenant_ids)
    ):
        problems["tenant_ids"] = f"a list of at most {MAX_TENANTS} tenant ids (empty: all)"
        tenant_ids = []
    tier = get("tier", start.tier) or ""
    if not isinstance(tier, str) or len(tier) > MAX_LABEL:
        problems["tier"] = f"a tier name of at most {MAX_LABEL} characters (empty: any)"
    per_tenant = get("per_tenant", start.per_tenant)
    if not isinstance(per_tenant, bool):
        problems["per_tenant"] = "true (one state per tenant) or false (one over them all)"
    filters = get("filters", start.filters) or {}
    if not isinstance(filters, dict):
        problems["filters"] = f"an object with some of {', '.join(FILTERS)}"
        filters = {}
    clean_filters = {}
    for key, value in filters.items():
        if key not in FILTERS:
            problems[f"filters.{key}"] = f"not a filter (filters: {', '.join(FILTERS)})"
        elif value in (None, ""):
            continue
        elif not isinstance(value, str) or len(value) > MAX_TENANT_ID:
            problems[f"filters.{key}"] = "a value of at most 1024 characters"
        else:
            clean_filters[key] = value
    contact_ids = get("contact_ids", start.contact_ids)
    if isinstance(contact_ids, str):
        contact_ids = [c.strip() for c in contact_ids.split(",") if c.strip()]
    try:
        if not isinstance(contact_ids, list) or len(contact_ids) > MAX_CONTACTS:
            raise ValueError
        contact_ids = [int(c) for c in contact_ids if not isinstance(c, bool)]
        if not all(1 <= c <= MAX_ID for c in contact_ids):
            raise ValueError
    except (TypeError, ValueError):
        problems["contact_ids"] = f"a list of at most {MAX_CONTACTS} contact point ids"
        contact_ids = []
    enabled = get("enabled", start.enabled)
    if not isinstance(enabled, bool):
        problems["enabled"] = "true or false"
    try:
        silenced_until = (
            _time(given["silenced_until"]) if "silenced_until" in given else start.silenced_until
        )
    except ValueError:
        problems["silenced_until"] = "an RFC 3339 time, or empty for none"
        silenced_until = None
    slo_id = get("slo_id", start.slo_id)
    short_window = start.short_window_s
    if "short_window" in given:
        try:
            short_window = parse_duration(given["short_window"]) if given["short_window"] else 0
        except ValueError:
            problems["short_window"] = "a duration (e.g. 5m)"
    if metric == "burn_rate":
        if not isinstance(slo_id, int) or isinstance(slo_id, bool) or not 1 <= slo_id <= MAX_ID:
            problems["slo_id"] = "a burn_rate rule needs the id of its SLO"
        if not 0 < short_window < durations["window"]:
            problems["short_window"] = "required for burn_rate: shorter than the window"
        if scope == "trace":
            problems["scope"] = "burn_rate counts LLM calls: use scope span"
    elif slo_id is not None:
        problems["slo_id"] = "only for metric burn_rate"
    if metric in METRICS and not METRICS[metric].windowed and scope == "trace":
        problems["scope"] = f"{metric} is a tenant's figure: use scope span"
    if metric == "budget_used" and clean_filters:
        problems["filters"] = "budget_used is over the tenant's whole usage: no filters"
    if problems:
        raise InvalidFields(problems)
    return AlertRule(
        id=start.id,
        name=name.strip(),
        description=description,
        metric=metric,
        scope=scope,
        comparator=comparator,
        threshold=threshold,
        warning=warning,
        window_s=durations["window"],
        interval_s=durations["interval"],
        min_requests=min_requests,
        pending_s=durations["pending"],
        keep_firing_s=durations["keep_firing"],
        severity=severity,
        tenant_ids=list(dict.fromkeys(tenant_ids)),
        tier=tier,
        per_tenant=per_tenant,
        filters=clean_filters,
        contact_ids=list(dict.fromkeys(contact_ids)),
        enabled=enabled,
        silenced_until=silenced_until,
        slo_id=slo_id if metric == "burn_rate" else None,
        short_window_s=short_window if metric == "burn_rate" else 0,
        created_at=start.created_at,
    )


def rule_json(rule: AlertRule) -> dict[str, Any]:
    """The rule as the API answers it (the same field names a submission uses)."""
    return {
        "id": rule.id,
        "name": rule.name,
        "description": rule.description,
        "metric": rule.metric,
        "metric_label": METRICS[rule.metric].label if rule.metric in METRICS else rule.metric,
        "unit": METRICS[rule.metric].unit if rule.metric in METRICS else "",
        "scope": rule.scope,
        "comparator": rule.comparator,
        "threshold": format(rule.threshold, "f"),
        "warning": None if rule.warning is None else format(rule.warning, "f"),
        "window": format_duration(rule.window_s),
        "interval": format_duration(rule.interval_s),
        "min_requests": rule.min_requests,
        "pending": format_duration(rule.pending_s),
        "keep_firing": format_duration(rule.keep_firing_s),
        "severity": rule.severity,
        "tenant_ids": rule.tenant_ids,
        "tier": rule.tier,
        "per_tenant": rule.per_tenant,
        "filters": rule.filters,
        "contact_ids": rule.contact_ids,
        "enabled": rule.enabled,
        "silenced_until": _rfc(rule.silenced_until),
        "slo_id": rule.slo_id,
        "short_window": format_duration(rule.short_window_s) if rule.short_window_s else None,
        "created_at": _rfc(rule.created_at),
        "updated_at": _rfc(rule.updated_at),
    }


def _rfc(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
