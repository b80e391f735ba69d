"""``tenantscope alerts``: alert rules, contact points, states and history, on the data
dir's config store (works while the server runs; its evaluator picks changes up at its
next round). Each rule of the seeds' table is one line, e.g.

    tenantscope alerts create "apex-legal p95 > 2 s" --metric latency_p95 --scope trace \\
        --threshold 2000 --window 5m --tenant apex-legal --contact 1
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

import typer
from rich.table import Table

from tenantscope.alerts.contacts import CONTACT_KINDS, check_contact, public_settings
from tenantscope.alerts.rules import (
    COMPARATORS,
    METRICS,
    SCOPES,
    SEVERITIES,
    check_rule,
    format_value,
    parse_duration,
    rule_json,
)
from tenantscope.cli_common import DataDirOpt, _config, _fail, _settings, console
from tenantscope.errors import InvalidFields, TenantscopeError
from tenantscope.storage.base import CLI, ConfigStore

alerts_app = typer.Typer(help="Alert rules, their states and contact points.")
contacts_app = typer.Typer(help="Where notifications go: slack, webhook or email.")
alerts_app.add_typer(contacts_app, name="contacts")

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def _open(data_dir: Any) -> ConfigStore:
    return _config(_settings(data_dir=data_dir))


def _invalid(exc: InvalidFields) -> None:
    lines = "\n".join(f"  {field}: {msg}" for field, msg in exc.problems.items())
    _fail(f"the rule was not saved; fix:\n{lines}")


def _rule_fields(
    name: str | None,
    metric: str | None,
    threshold: str | None,
    comparator: str | None,
    scope: str | None,
    warning: str | None,
    window: str | None,
    interval: str | None,
    min_requests: int | None,
    pending: str | None,
    keep_firing: str | None,
    severity: str | None,
    tenant: list[str] | None,
    tier: str | None,
    each_tenant: bool | None,
    filters: list[str] | None,
    contact: list[int] | None,
    enabled: bool | None,
    description: str | None,
) -> dict[str, Any]:
    given: dict[str, Any] = {
        "name": name,
        "metric": metric,
        "threshold": threshold,
        "comparator": comparator,
        "scope": scope,
        "warning": warning,
        "window": window,
        "interval": interval,
        "min_requests": min_requests,
        "pending": pending,
        "keep_firing": keep_firing,
        "severity": severity,
        "tenant_ids": tenant or None,
        "tier": tier,
        "per_tenant": each_tenant,
        "contact_ids": contact or None,
        "enabled": enabled,
        "description": description,
    }
    if filters:
        parsed: dict[str, str] = {}
        for item in filters:
            key, sep, value = item.partition("=")
            if not sep:
                _fail(f"--filter {item!r}: write it as name=value (e.g. model=gpt-4o)")
            parsed[key.strip()] = value.strip()
        given["filters"] = parsed
    return {k: v for k, v in given.items() if v is not None}


MetricOpt = Annotated[str | None, typer.Option(help=f"one of {', '.join(METRICS)}")]
ThresholdOpt = Annotated[str | None, typer.Option(help="the number the figure is compared to")]
ComparatorOpt = Annotated[str | None, typer.Option(help=" ".join(COMPARATORS) + " (default >)")]
ScopeOpt = Annotated[
    str | None, typer.Option(help=f"{' or '.join(SCOPES)}: LLM calls or whole requests")
]
WarningOpt = Annotated[str | None, typer.Option(help="an earlier threshold that warns")]
WindowOpt = Annotated[str | None, typer.Option(help="e.g. 5m (default), 1h, 1d")]
IntervalOpt = Annotated[str | None, typer.Option(help="how often to evaluate (default 1m)")]
MinRequestsOpt = Annotated[
    int | None, typer.Option(help="fewer requests in the window: no data (default 1)")
]
PendingOpt = Annotated[str | None, typer.Option(help="breach held this long before firing")]
KeepFiringOpt = Annotated[str | None, typer.Option(help="keep firing this long after it clears")]
SeverityOpt = Annotated[str | None, typer.Option(help=", ".join(SEVERITIES))]
TenantOpt = Annotated[
    list[str] | None, typer.Option("--tenant", help="a tenant to watch (repeat for a list)")
]
TierOpt = Annotated[str | None, typer.Option(help="the tenants of this tier")]
EachOpt = Annotated[
    bool | None,
    typer.Option("--each-tenant/--all-at-once", help="one state per tenant, or one overall"),
]
FilterOpt = Annotated[
    list[str] | None,
    typer.Option("--filter", help="model=, feature=, workspace=, user=, environment=, service="),
]
ContactOpt = Annotated[
    list[int] | None, typer.Option("--contact", help="contact point id (repeat for more)")
]
EnabledOpt = Annotated[bool | None, typer.Option("--enabled/--disabled")]
DescriptionOpt = Annotated[str | None, typer.Option(help="what to do when it fires")]


def _print_rule(rule: dict[str, Any]) -> None:
    who = ", ".join(rule["tenant_ids"]) or (f"tier {rule['tier']}" if rule["tier"] else "all")
    each = " (each tenant)" if rule["per_tenant"] else ""
    console.print(
        f"rule {rule['id']}: [bold]{rule['name']}[/bold] — {rule['metric']} ({rule['scope']})"
        f" {rule['comparator']} {rule['threshold']} over {rule['window']}, tenants {who}{each},"
        f" every {rule['interval']}, contacts {rule['contact_ids'] or 'none'}",
        markup=True,
        highlight=False,
    )


@alerts_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="the rule's name")],
    metric: MetricOpt = None,
    threshold: ThresholdOpt = None,
    comparator: ComparatorOpt = None,
    scope: ScopeOpt = None,
    warning: WarningOpt = None,
    window: WindowOpt = None,
    interval: IntervalOpt = None,
    min_requests: MinRequestsOpt = None,
    pending: PendingOpt = None,
    keep_firing: KeepFiringOpt = None,
    severity: SeverityOpt = None,
    tenant: TenantOpt = None,
    tier: TierOpt = None,
    each_tenant: EachOpt = None,
    filters: FilterOpt = None,
    contact: ContactOpt = None,
    enabled: EnabledOpt = None,
    description: DescriptionOpt = None,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Create an alert rule."""
    given = _rule_fields(
        name, metric, threshold, comparator, scope, warning, window, interval, min_requests,
        pending, keep_firing, severity, tenant, tier, each_tenant, filters, contact, enabled,
        description,
    )  # fmt: skip
    cfg = _open(data_dir)
    try:
        rule = cfg.alerts.add_rule(check_rule(given), actor=CLI)
    except InvalidFields as exc:
        _invalid(exc)
        return
    finally:
        cfg.close()
    out = rule_json(rule)
    print(json.dumps(out, indent=2)) if as_json else _print_rule(out)


@alerts_app.command("update")
def update(
    rule_id: Annotated[int, typer.Argument()],
    name: Annotated[str | None, typer.Option(help="a new name")] = None,
    metric: MetricOpt = None,
    threshold: ThresholdOpt = None,
    comparator: ComparatorOpt = None,
    scope: ScopeOpt = None,
    warning: WarningOpt = None,
    window: WindowOpt = None,
    interval: IntervalOpt = None,
    min_requests: MinRequestsOpt = None,
    pending: PendingOpt = None,
    keep_firing: KeepFiringOpt = None,
    severity: SeverityOpt = None,
    tenant: TenantOpt = None,
    tier: TierOpt = None,
    each_tenant: EachOpt = None,
    filters: FilterOpt = None,
    contact: ContactOpt = None,
    enabled: EnabledOpt = None,
    description: DescriptionOpt = None,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Change a rule: options given replace those values, the others stay."""
    given = _rule_fields(
        name, metric, threshold, comparator, scope, warning, window, interval, min_requests,
        pending, keep_firing, severity, tenant, tier, each_tenant, filters, contact, enabled,
        description,
    )  # fmt: skip
    cfg = _open(data_dir)
    try:
        current = cfg.alerts.get_rule(rule_id)
        if current is None:
            _fail(f"no alert rule {rule_id}")
        new = cfg.alerts.replace_rule(rule_id, check_rule(given, base=current), actor=CLI)
    except InvalidFields as exc:
        _invalid(exc)
        return
    finally:
        cfg.close()
    assert new is not None
    out = rule_json(new)
    print(json.dumps(out, indent=2)) if as_json else _print_rule(out)


@alerts_app.command("list")
def list_rules(as_json: JsonOpt = False, data_dir: DataDirOpt = None) -> None:
    """Every rule, with how many of its instances are in each state."""
    cfg = _open(data_dir)
    try:
        rules = cfg.alerts.list_rules()
        states: dict[int, dict[str, int]] = {}
        for i in cfg.alerts.instances():
            by = states.setdefault(i.rule_id, {})
            by[i.state] = by.get(i.state, 0) + 1
    finally:
        cfg.close()
    if as_json:
        print(
            json.dumps(
                [{**rule_json(r), "states": states.get(r.id or 0, {})} for r in rules], indent=2
            )
        )
        return
    table = Table("id", "name", "condition", "window", "tenants", "states", "contacts")
    for r in rules:
        out = rule_json(r)
        who = ", ".join(r.tenant_ids) or (f"tier {r.tier}" if r.tier else "all")
        st = states.get(r.id or 0, {})
        table.add_row(
            str(r.id),
            r.name + ("" if r.enabled else " (disabled)"),
            f"{r.metric} ({r.scope}) {r.comparator} {out['threshold']}",
            out["window"],
            who + (" — each" if r.per_tenant else ""),
            ", ".join(f"{k} {v}" for k, v in sorted(st.items())) or "—",
            ", ".join(map(str, r.contact_ids)) or "—",
        )
    console.print(table)


@alerts_app.command("show")
def show(
    rule_id: Annotated[int, typer.Argument()], as_json: JsonOpt = False, data_dir: DataDirOpt = None
) -> None:
    """One rule and the state of each of its instances."""
    cfg = _open(data_dir)
    try:
        rule = cfg.alerts.get_rule(rule_id)
        if rule is None:
            _fail(f"no alert rule {rule_id}")
        instances = cfg.alerts.instances(rule_id)
    finally:
        cfg.close()
    out = rule_json(rule)
    rows = [
        {
            "tenant_id": i.key if rule.per_tenant else None,
            "state": i.state,
            "since": i.since.isoformat() if i.since else None,
            "value": None if i.value is None else format(i.value, "f"),
            "requests": i.requests,
        }
        for i in instances
    ]
    if as_json:
        print(json.dumps({**out, "instances": rows}, indent=2))
        return
    _print_rule(out)
    table = Table("tenant", "state", "since (UTC)", "value", "requests")
    for i in instances:
        table.add_row(
            (i.key or "(no tenant)") if rule.per_tenant else "(all selected)",
            i.state,
            i.since.strftime("%Y-%m-%d %H:%M:%S") if i.since else "—",
            format_value(rule.metric, i.value),
            str(i.requests),
        )
    console.print(table)


@alerts_app.command("delete")
def delete(rule_id: Annotated[int, typer.Argument()], data_dir: DataDirOpt = None) -> None:
    """Remove a rule (its history stays)."""
    cfg = _open(data_dir)
    try:
        if not cfg.alerts.delete_rule(rule_id, actor=CLI):
            _fail(f"no alert rule {rule_id}")
    finally:
        cfg.close()
    console.print(f"rule {rule_id} removed")


@alerts_app.command("silence")
def silence(
    rule_id: Annotated[int, typer.Argument()],
    for_: Annotated[str | None, typer.Option("--for", help="e.g. 2h, 1d")] = None,
    until: Annotated[str | None, typer.Option(help="RFC 3339 time")] = None,
    tenant: Annotated[str | None, typer.Option(help="only this tenant's instance")] = None,
    lift: Annotated[bool, typer.Option("--lift", help="end the silence now")] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Keep a rule (or one tenant of it) from notifying until a time; it is still
    evaluated and its states still change."""
    if sum(x is not None for x in (for_, until)) + lift != 1:
        _fail("give one of --for, --until or --lift")
    end: datetime | None = None
    try:
        if for_ is not None:
            end = datetime.now(timezone.utc) + timedelta(seconds=parse_duration(for_))
        elif until is not None:
            end = datetime.fromisoformat(until.replace("Z", "+00:00"))
            end = end if end.tzinfo else end.replace(tzinfo=timezone.utc)
    except ValueError:
        _fail("--for takes a duration like 2h; --until an RFC 3339 time")
    cfg = _open(data_dir)
    try:
        rule = cfg.alerts.get_rule(rule_id)
        if rule is None:
            _fail(f"no alert rule {rule_id}")
        if tenant is not None and not rule.per_tenant:
            _fail("--tenant is for a rule evaluated for each tenant")
        cfg.alerts.silence(rule_id, tenant, end, actor=CLI)
    finally:
        cfg.close()
    what = f"rule {rule_id}" + (f" for tenant {tenant}" if tenant else "")
    console.print(
        f"{what} silenced until {end:%Y-%m-%d %H:%M:%S} UTC" if end else f"{what}: silence lifted"
    )


@alerts_app.command("history")
def history(
    rule: Annotated[int | None, typer.Option(help="one rule's")] = None,
    tenant: Annotated[str | None, typer.Option(help="one tenant's")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
) -> None:
    """State changes, newest first."""
    cfg = _open(data_dir)
    try:
        rows = cfg.alerts.history(rule_id=rule, key=tenant, limit=limit)
    finally:
        cfg.close()
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "id": h.id,
                        "rule_id": h.rule_id,
                        "tenant_id": h.key,
                        "at": h.at.isoformat().replace("+00:00", "Z"),
                        "from_state": h.from_state,
                        "to_state": h.to_state,
                        "value": None if h.value is None else format(h.value, "f"),
                        "note": h.note,
                    }
                    for h in rows
                ],
                indent=2,
            )
        )
        return
    table = Table("when (UTC)", "rule", "tenant", "change", "value", "note")
    for h in rows:
        table.add_row(
            h.at.strftime("%Y-%m-%d %H:%M:%S"),
            str(h.rule_id),
            h.key or "—",
            f"{h.from_state} → {h.to_state}",
            "—" if h.value is None else format(h.value, "f"),
            h.note,
        )
    console.print(table)


# -- contact points ------------------------------------------------------------------------
@contacts_app.command("add")
def add_contact(
    name: Annotated[str, typer.Argument()],
    kind: Annotated[str, typer.Option(help=", ".join(CONTACT_KINDS))],
    url: Annotated[str | None, typer.Option(help="slack / webhook: the URL to post to")] = None,
    secret_env: Annotated[
        str | None,
        typer.Option(help="webhook: the environment variable holding the signing secret"),
    ] = None,
    to: Annotated[list[str] | None, typer.Option("--to", help="email: a recipient")] = None,
    from_addr: Annotated[str | None, typer.Option("--from", help="email: the sender")] = None,
    host: Annotated[str | None, typer.Option(help="email: the SMTP server")] = None,
    port: Annotated[int | None, typer.Option(help="email: 587 (starttls) or 465 (tls)")] = None,
    security: Annotated[str | None, typer.Option(help="email: starttls, tls or none")] = None,
    username: Annotated[str | None, typer.Option(help="email: SMTP user")] = None,
    password_env: Annotated[
        str | None,
        typer.Option(help="email: the environment variable holding the SMTP password"),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Add a contact point. Secrets are read from environment variables, not arguments
    (arguments show in process lists and shell history)."""
    settings: dict[str, Any] = {
        "url": url,
        "to": to,
        "from_addr": from_addr,
        "host": host,
        "port": port,
        "security": security,
        "username": username,
    }
    for var, key in ((secret_env, "secret"), (password_env, "password")):
        if var is not None:
            if not os.environ.get(var):
                _fail(f"the environment variable {var} is not set")
            settings[key] = os.environ[var]
    cfg = _open(data_dir)
    try:
        added = cfg.alerts.add_contact(
            check_contact(name, kind, {k: v for k, v in settings.items() if v is not None}),
            actor=CLI,
        )
    except InvalidFields as exc:
        lines = "\n".join(f"  {field}: {msg}" for field, msg in exc.problems.items())
        _fail(f"the contact point was not saved; fix:\n{lines}")
    finally:
        cfg.close()
    console.print(f"contact point {added.id}: {added.name} ({added.kind})")


@contacts_app.command("list")
def list_contacts(as_json: JsonOpt = False, data_dir: DataDirOpt = None) -> None:
    """Contact points, with the last delivery's outcome (secrets never shown)."""
    cfg = _open(data_dir)
    try:
        contacts = cfg.alerts.list_contacts()
    finally:
        cfg.close()
    rows: list[dict[str, Any]] = [
        {
            "id": c.id,
            "name": c.name,
            "kind": c.kind,
            "settings": public_settings(c),
            "status": c.status,
            "last_error": c.last_error,
        }
        for c in contacts
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("id", "name", "kind", "settings", "status")
    for r in rows:
        status = r["status"] + (f": {r['last_error']}" if r["last_error"] else "")
        settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items())
        table.add_row(str(r["id"]), r["name"], r["kind"], settings, status)
    console.print(table)


@contacts_app.command("delete")
def delete_contact(
    contact_id: Annotated[int, typer.Argument()], data_dir: DataDirOpt = None
) -> None:
    """Remove a contact point (refused while a rule sends to it)."""
    cfg = _open(data_dir)
    try:
        if not cfg.alerts.delete_contact(contact_id, actor=CLI):
            _fail(f"no contact point {contact_id}")
    except TenantscopeError as exc:
        _fail(exc.message)
    finally:
        cfg.close()
    console.print(f"contact point {contact_id} removed")


@contacts_app.command("test")
def test_contact(contact_id: Annotated[int, typer.Argument()], data_dir: DataDirOpt = None) -> None:
    """Send a test notification now and say whether it arrived."""
    from tenantscope.server.routes_alerts import send_test

    settings = _settings(data_dir=data_dir)
    cfg = _config(settings)
    try:
        contact = cfg.alerts.get_contact(contact_id)
        if contact is None:
            _fail(f"no contact point {contact_id}")
        result = send_test(cfg.alerts, contact, settings.dashboard_url)
    finally:
        cfg.close()
    if result.status != "ok":
        _fail(f"the test notification did not arrive: {result.last_error}")
    console.print(f"test notification delivered to {result.name}")
