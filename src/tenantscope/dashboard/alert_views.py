"""What the alert pages show of rules, instances, contact points and history: a rule's
condition and tenants in words, state counts, the firing instances (also the banner of
the overview and of a tenant page), and the values of the rule and contact point forms.

No routes here (dashboard/alerts.py has them), so dashboard/pages.py can use the banner
without importing the admin forms. Nothing here checks a rule: ``alerts.rules.check_rule``
is the one validator; the forms only turn posted boxes into the fields it takes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from tenantscope.alerts.contacts import FIELDS, SECRET_FIELDS, ContactPoint, public_settings
from tenantscope.alerts.rules import (
    FILTERS,
    METRICS,
    condition_text,
    format_duration,
    format_value,
    rule_json,
)
from tenantscope.dashboard.render import tenant_label
from tenantscope.storage.alert_state import (
    AlertInstance,
    AlertRule,
    AlertStore,
    HistoryEntry,
)

SCOPE_WORDS = {"span": "LLM calls", "trace": "traces"}
SCOPE_CHOICES = {"span": "span: each LLM call", "trace": "trace: each whole request"}
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
# the order instances are listed in: what needs attention first
STATE_ORDER = {s: n for n, s in enumerate(("firing", "pending", "warning", "no_data", "ok"))}
# "until lifted": a silence with no end of its own (the store keeps a time)
FOREVER = datetime(9999, 1, 1, tzinfo=timezone.utc)
SILENCE_CHOICES = (("1h", "1 hour"), ("4h", "4 hours"), ("1d", "1 day"), ("lifted", "until lifted"))
SILENCE_SECONDS = {"1h": 3600, "4h": 4 * 3600, "1d": 86400}
MAX_TENANTS_SHOWN = 5
# the rule form's text boxes, named as check_rule's fields
RULE_TEXT_FIELDS = (
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
)
RULE_LABELS = {
    "name": "Name",
    "description": "Description",
    "metric": "Metric",
    "scope": "Scope",
    "comparator": "Comparator",
    "threshold": "Threshold",
    "warning": "Warning threshold",
    "window": "Window",
    "interval": "Evaluate every",
    "min_requests": "Minimum requests",
    "pending": "Pending for",
    "keep_firing": "Keep firing for",
    "severity": "Severity",
    "tenant_ids": "Tenant ids",
    "tier": "Tier",
    "per_tenant": "Each tenant on its own",
    "filters": "Filters",
    "contact_ids": "Contact points",
    "enabled": "Enabled",
}
CONTACT_LABELS = {
    "url": "Webhook URL",
    "secret": "Signing secret",
    "to": "To",
    "from_addr": "From",
    "host": "SMTP host",
    "port": "Port",
    "security": "Security",
    "username": "Username",
    "password": "Password",
}
KIND_LABELS = {"slack": "Slack", "webhook": "Webhook (signed)", "email": "Email (SMTP)"}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


# -- a rule in words -----------------------------------------------------------------------


def condition(rule: AlertRule) -> str:
    """e.g. "p95 latency (traces) > 2,000 ms over 5m"."""
    metric = METRICS.get(rule.metric)
    if metric is None:
        return f"{rule.metric} {rule.comparator} {rule.threshold}"
    text = f"{metric.label}"
    if metric.windowed:
        text += f" ({SCOPE_WORDS.get(rule.scope, rule.scope)})"
    text += f" {condition_text(rule.metric, rule.comparator, rule.threshold)}"
    if metric.windowed:
        text += f" over {format_duration(rule.window_s)}"
    return text


def warning_text(rule: AlertRule) -> str:
    if rule.warning is None or rule.metric not in METRICS:
        return ""
    return f"warning {condition_text(rule.metric, rule.comparator, rule.warning)}"


def tenants_text(rule: AlertRule) -> str:
    """Which tenants the rule selects: its ids, its tier, or all."""
    parts = []
    if rule.tenant_ids:
        shown = ", ".join(tenant_label(t) for t in rule.tenant_ids[:MAX_TENANTS_SHOWN])
        more = len(rule.tenant_ids) - MAX_TENANTS_SHOWN
        parts.append(shown + (f" and {more} more" if more > 0 else ""))
    if rule.tier:
        parts.append(f"tier {rule.tier}")
    return " · ".join(parts) if parts else "all tenants"


def single_tenant(rule: AlertRule) -> str | None:
    """The one tenant a rule over its selection as a whole measures (as its
    notifications name it: one id and no tier), else None."""
    return rule.tenant_ids[0] if len(rule.tenant_ids) == 1 and not rule.tier else None


def instance_tenant(rule: AlertRule | None, inst: AlertInstance | HistoryEntry) -> str | None:
    """The tenant an instance (or a state change) is of; None: the rule's selection."""
    if rule is None:
        return inst.key or None
    return inst.key if rule.per_tenant else single_tenant(rule)


def value_text(rule: AlertRule | None, value: Decimal | None) -> str:
    if rule is None or rule.metric not in METRICS:
        return "no data" if value is None else format(value, "f")
    return format_value(rule.metric, value)


def silenced_now(until: datetime | None, now: datetime) -> bool:
    return until is not None and _utc(until) > now


def until_text(until: datetime | None) -> str:
    if until is None:
        return ""
    if _utc(until) >= FOREVER:
        return "until lifted"
    return _utc(until).strftime("%Y-%m-%d %H:%M:%S")


def silence_end(choice: str, now: datetime) -> datetime | None:
    """When a silence chosen on the form ends (None: not a choice)."""
    if choice == "lifted":
        return FOREVER
    seconds = SILENCE_SECONDS.get(choice)
    return None if seconds is None else now + timedelta(seconds=seconds)


# -- rows the pages list -------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceRow:
    rule: AlertRule
    inst: AlertInstance
    tenant: str | None  # None: the rule's whole selection
    value: str
    silenced_until: datetime | None  # the rule's or the instance's, whichever is later


def instance_row(rule: AlertRule, inst: AlertInstance, now: datetime) -> InstanceRow:
    ends = [
        _utc(u)
        for u in (rule.silenced_until, inst.silenced_until)
        if u is not None and silenced_now(u, now)
    ]
    return InstanceRow(
        rule=rule,
        inst=inst,
        tenant=instance_tenant(rule, inst),
        value=value_text(rule, inst.value),
        silenced_until=max(ends, default=None),
    )


def _order(row: InstanceRow) -> tuple[int, int, str, str]:
    return (
        STATE_ORDER.get(row.inst.state, 9),
        SEVERITY_ORDER.get(row.rule.severity, 9),
        row.rule.name,
        row.inst.key,
    )


def instance_rows(
    rule: AlertRule, instances: Iterable[AlertInstance], now: datetime
) -> list[InstanceRow]:
    return sorted((instance_row(rule, i, now) for i in instances), key=_order)


def firing(
    rules: Sequence[AlertRule],
    instances: Iterable[AlertInstance],
    now: datetime,
    *,
    tenant_id: str | None = None,
) -> list[InstanceRow]:
    """The firing instances of enabled rules, most severe first. With ``tenant_id``: only
    that tenant's (a per-tenant rule's instance for it, or a rule selecting it alone)."""
    by_id = {r.id: r for r in rules if r.enabled}
    out = []
    for inst in instances:
        rule = by_id.get(inst.rule_id)
        if rule is None or inst.state != "firing":
            continue
        if tenant_id is not None and instance_tenant(rule, inst) != tenant_id:
            continue
        out.append(instance_row(rule, inst, now))
    return sorted(out, key=_order)


def firing_banner(store: AlertStore, tenant_id: str | None = None) -> list[InstanceRow]:
    """What the overview (every rule) and a tenant page (that tenant's) say is firing.
    Only for callers that see every tenant: a tenant key's pages never call this."""
    return firing(store.list_rules(), store.instances(), now_utc(), tenant_id=tenant_id)


def state_counts(instances: Iterable[AlertInstance]) -> dict[int, dict[str, int]]:
    """Instances per state of each rule, firing first (STATE_ORDER)."""
    counts: dict[int, dict[str, int]] = {}
    for i in instances:
        by = counts.setdefault(i.rule_id, {})
        by[i.state] = by.get(i.state, 0) + 1
    return {
        rule_id: dict(sorted(by.items(), key=lambda kv: STATE_ORDER.get(kv[0], 9)))
        for rule_id, by in counts.items()
    }


@dataclass(frozen=True)
class HistoryRow:
    entry: HistoryEntry
    rule: AlertRule | None  # None: the rule was removed since
    tenant: str | None
    value: str


def history_rows(entries: Iterable[HistoryEntry], rules: dict[int, AlertRule]) -> list[HistoryRow]:
    out = []
    for h in entries:
        rule = rules.get(h.rule_id)
        out.append(HistoryRow(h, rule, instance_tenant(rule, h), value_text(rule, h.value)))
    return out


@dataclass(frozen=True)
class ContactRow:
    contact: ContactPoint
    settings: dict[str, Any]  # secrets replaced (public_settings)
    used_by: list[AlertRule]


def contact_rows(contacts: Iterable[ContactPoint], rules: Sequence[AlertRule]) -> list[ContactRow]:
    return [
        ContactRow(
            contact=c,
            settings=public_settings(c),
            used_by=[r for r in rules if c.id in r.contact_ids],
        )
        for c in contacts
    ]


# -- the rule form -------------------------------------------------------------------------

Form = dict[str, list[str]]


def _first(form: Form, name: str) -> str:
    return form.get(name, [""])[0]


def rule_values(rule: AlertRule | None) -> dict[str, Any]:
    """The form's boxes for a stored rule (its API field values), or a new rule's defaults."""
    start = rule or AlertRule(name="", metric="latency_p95", comparator=">", threshold=Decimal(0))
    data = rule_json(start)
    values: dict[str, Any] = {
        name: "" if data[name] is None else str(data[name]) for name in RULE_TEXT_FIELDS
    }
    values["tenant_ids"] = ", ".join(start.tenant_ids)
    if rule is None:
        values["threshold"] = ""
    values["per_tenant"] = start.per_tenant
    values["enabled"] = start.enabled
    values["filters"] = dict(start.filters)
    values["contact_ids"] = [str(c) for c in start.contact_ids]
    return values


def rule_submission(form: Form) -> tuple[dict[str, Any], dict[str, Any]]:
    """The posted rule form as the fields ``check_rule`` takes, and as the boxes to show
    again (as typed) when it refuses them."""
    data: dict[str, Any] = {name: _first(form, name) for name in RULE_TEXT_FIELDS}
    data["per_tenant"] = "per_tenant" in form  # a checkbox is sent only when ticked
    data["enabled"] = "enabled" in form
    data["filters"] = {name: _first(form, f"filter_{name}") for name in FILTERS}
    data["contact_ids"] = list(form.get("contact_ids", []))
    values = {**data, "filters": dict(data["filters"]), "contact_ids": data["contact_ids"]}
    return data, values


# -- the contact point form ----------------------------------------------------------------


def contact_values(contact: ContactPoint | None) -> dict[str, str]:
    """The boxes of each kind (``kind.field``) for a stored contact point; secrets are
    never put back in a page: they stay empty ("leave empty to keep")."""
    values = {"name": "", "kind": "slack"}
    if contact is None:
        return values
    values.update(name=contact.name, kind=contact.kind)
    secret = SECRET_FIELDS.get(contact.kind, ())
    for name in FIELDS.get(contact.kind, {}):
        if name in secret:
            continue
        value = contact.settings.get(name)
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        values[f"{contact.kind}.{name}"] = "" if value is None else str(value)
    return values


def contact_submission(form: Form) -> tuple[str, str, dict[str, str], dict[str, str]]:
    """Name, kind and settings as posted (the chosen kind's boxes only), and the boxes to
    show again when they are refused: as typed, except secrets."""
    name, kind = _first(form, "name"), _first(form, "kind")
    settings = {f: _first(form, f"{kind}.{f}") for f in FIELDS.get(kind, {})}
    values = {"name": name, "kind": kind}
    for k, fields in FIELDS.items():
        secret = SECRET_FIELDS.get(k, ())
        for f in fields:
            if f not in secret:
                values[f"{k}.{f}"] = _first(form, f"{k}.{f}")
    return name, kind, settings, values


def contact_errors(kind: str, problems: dict[str, str]) -> dict[str, str]:
    """check_contact's problems keyed by the form's boxes (``settings.url`` -> ``slack.url``)."""
    out = {}
    for key, message in problems.items():
        if key.startswith("settings."):
            out[f"{kind}.{key.removeprefix('settings.')}"] = message
        else:
            out[key] = message
    return out


def secret_hints(contact: ContactPoint | None) -> dict[str, str]:
    """What an edit form says beside each secret box: whether one is stored (a Slack URL
    by its host only), and that an empty box keeps it."""
    if contact is None:
        return {}
    shown = public_settings(contact)
    hints = {}
    for name in SECRET_FIELDS.get(contact.kind, ()):
        if contact.settings.get(name):
            stored = shown.get(name) if name == "url" else "set"
            hints[f"{contact.kind}.{name}"] = f"stored ({stored}): leave empty to keep it"
    return hints
