"""``tenantscope limits``: rate limits and budgets, approvals (temporary raises) and where
each tenant stands, on the data dir's config store. Definitions and approvals work while
the server runs (its limiter picks changes up within seconds); ``status`` asks the server
running on the data dir, else reads the data dir itself. The seeds' tiers are one line
each, e.g.

    tenantscope limits create "starter rate" --kind rate --tier starter --rpm 10
    tenantscope limits create "acme budget" --kind budget --tenant acme --usd 250
    tenantscope limits approve L2 --tenant acme --usd 50 --for 7d --reason "quarter end"
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from tenantscope.alerts.rules import parse_duration
from tenantscope.cli_alerts import JsonOpt, _open
from tenantscope.cli_common import DataDirOpt, _fail, _settings, console, err_console
from tenantscope.errors import InvalidFields, TenantscopeError
from tenantscope.limits.definitions import check_approval, check_limit
from tenantscope.storage.base import CLI
from tenantscope.storage.limit_rows import approval_snapshot, limit_snapshot
from tenantscope.storage.limit_state import BUDGET_PER, KINDS, MODES, RATE_PER, Approval, LimitDef

if TYPE_CHECKING:
    from tenantscope.server.services import Services

limits_app = typer.Typer(
    help="Rate limits and budgets, approvals, and where each tenant stands (works while"
    " the server runs)."
)

# the command-line flag of each field check_limit / check_approval may name
FLAGS = {
    "name": "NAME / --name",
    "kind": "--kind",
    "per": "--per",
    "subject": "--subject",
    "tenant_id": "--tenant",
    "tier": "--tier",
    "requests_per_minute": "--rpm",
    "tokens_per_minute": "--tpm",
    "amount_usd": "--usd",
    "basis": "--basis",
    "timezone": "--timezone",
    "anchor_day": "--anchor-day",
    "thresholds": "--thresholds",
    "mode": "--mode",
    "contact_ids": "--contact",
    "enabled": "--enabled/--disabled",
    "description": "--description",
    "limit": "LIMIT",
    "expires_at": "--for / --until",
    "reason": "--reason",
}


def _invalid(what: str, exc: InvalidFields) -> None:
    """Each field to fix on a line of its own, named as the command line names it."""
    lines = "\n".join(
        f"  {name}" + (f" ({FLAGS[name]})" if name in FLAGS else "") + f": {message}"
        for name, message in exc.problems.items()
    )
    _fail(f"the {what} was not saved; fix:\n{lines}")


def _limit_id(ref: str) -> int:
    """A limit as ``L3`` (how pages, decisions and blocked calls name it) or ``3``."""
    number = ref[1:] if ref[:1] in ("L", "l") else ref
    if not number.isdigit() or len(number) > 10:
        _fail(f"{ref!r} is not a limit id (e.g. L3 or 3; `tenantscope limits list` shows them)")
    return int(number)


def _iso(at: datetime | None) -> str:
    return "—" if at is None else at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


# -- definitions ---------------------------------------------------------------------------

KindOpt = Annotated[str | None, typer.Option(help=" or ".join(KINDS))]
PerOpt = Annotated[
    str | None,
    typer.Option(
        help=f"a counter per: {', '.join(RATE_PER)} (rate) or {', '.join(BUDGET_PER)}"
        " (budget); default tenant"
    ),
]
SubjectOpt = Annotated[
    str | None, typer.Option(help="with --per feature/user/workspace: only this one")
]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="one tenant's own limit")]
TierOpt = Annotated[
    str | None, typer.Option(help="the default of a tier (neither --tenant nor --tier: all)")
]
RpmOpt = Annotated[str | None, typer.Option("--rpm", help="requests per minute ('' clears)")]
TpmOpt = Annotated[str | None, typer.Option("--tpm", help="tokens per minute ('' clears)")]
UsdOpt = Annotated[str | None, typer.Option("--usd", help="budget: USD per monthly period")]
TimezoneOpt = Annotated[
    str | None, typer.Option("--timezone", help="budget: IANA time zone (default UTC)")
]
AnchorOpt = Annotated[
    int | None, typer.Option("--anchor-day", help="budget: the day a period starts, 1-28")
]
ThresholdsOpt = Annotated[
    str | None, typer.Option(help="budget: warn at these percentages (default 50,80,100)")
]
ModeOpt = Annotated[str | None, typer.Option(help=f"{' or '.join(MODES)} (warnings only)")]
ContactOpt = Annotated[
    list[int] | None,
    typer.Option("--contact", help="contact point id for warnings (repeat for more)"),
]
EnabledOpt = Annotated[bool | None, typer.Option("--enabled/--disabled")]
DescriptionOpt = Annotated[str | None, typer.Option(help="why it is set")]


def _limit_fields(**given: Any) -> dict[str, Any]:
    """The options given, as check_limit's fields (left out: not given)."""
    names = {
        "rpm": "requests_per_minute",
        "tpm": "tokens_per_minute",
        "usd": "amount_usd",
        "tenant": "tenant_id",
        "contact": "contact_ids",
    }
    return {names.get(k, k): v for k, v in given.items() if v is not None}


def _limit_json(limit: LimitDef) -> dict[str, Any]:
    out = limit_snapshot(limit)
    assert out is not None
    return {**out, "ref": limit.ref}


def _figures(x: LimitDef) -> str:
    from tenantscope.dashboard.limit_views import limit_figures

    return limit_figures(x)


def _print_limit(x: LimitDef) -> None:
    from tenantscope.dashboard.limit_views import counted_text

    who = f"tenant {x.tenant_id}" if x.tenant_id else f"tier {x.tier}" if x.tier else "all"
    extra = ""
    if x.kind == "budget":
        warn = ", ".join(f"{t}%" for t in x.thresholds) or "no threshold"
        extra = f", {x.timezone} from day {x.anchor_day}, warn at {warn}"
    console.print(
        f"limit {x.ref}: [bold]{escape(x.name)}[/bold] — {x.kind} {_figures(x)}"
        f" {counted_text(x.per, x.subject)}, applies to {who}{extra},"
        f" {x.mode}{'' if x.enabled else ' (disabled)'}",
        markup=True,
        highlight=False,
    )


@limits_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="the limit's name")],
    kind: KindOpt = None,
    per: PerOpt = None,
    subject: SubjectOpt = None,
    tenant: TenantOpt = None,
    tier: TierOpt = None,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    usd: UsdOpt = None,
    timezone_: TimezoneOpt = None,
    anchor_day: AnchorOpt = None,
    thresholds: ThresholdsOpt = None,
    mode: ModeOpt = None,
    contact: ContactOpt = None,
    enabled: EnabledOpt = None,
    description: DescriptionOpt = None,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a rate limit (--rpm and/or --tpm) or a budget (--usd)."""
    given = _limit_fields(
        name=name, kind=kind, per=per, subject=subject, tenant=tenant, tier=tier, rpm=rpm,
        tpm=tpm, usd=usd, timezone=timezone_, anchor_day=anchor_day, thresholds=thresholds,
        mode=mode, contact=contact, enabled=enabled, description=description,
    )  # fmt: skip
    cfg = _open(data_dir)
    try:
        limit = cfg.limits.add_limit(check_limit(given), actor=CLI)
    except InvalidFields as exc:
        _invalid("limit", exc)
        return
    finally:
        cfg.close()
    print(json.dumps(_limit_json(limit), indent=2)) if as_json else _print_limit(limit)


@limits_app.command("update")
def update(
    limit_ref: Annotated[str, typer.Argument(metavar="LIMIT", help="e.g. L3 or 3")],
    name: Annotated[str | None, typer.Option(help="a new name")] = None,
    kind: KindOpt = None,
    per: PerOpt = None,
    subject: SubjectOpt = None,
    tenant: TenantOpt = None,
    tier: TierOpt = None,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    usd: UsdOpt = None,
    timezone_: TimezoneOpt = None,
    anchor_day: AnchorOpt = None,
    thresholds: ThresholdsOpt = None,
    mode: ModeOpt = None,
    contact: ContactOpt = None,
    enabled: EnabledOpt = None,
    description: DescriptionOpt = None,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Change a limit: options given replace those values, the others stay."""
    limit_id = _limit_id(limit_ref)
    given = _limit_fields(
        name=name, kind=kind, per=per, subject=subject, tenant=tenant, tier=tier, rpm=rpm,
        tpm=tpm, usd=usd, timezone=timezone_, anchor_day=anchor_day, thresholds=thresholds,
        mode=mode, contact=contact, enabled=enabled, description=description,
    )  # fmt: skip
    cfg = _open(data_dir)
    try:
        current = cfg.limits.get_limit(limit_id)
        if current is None:
            _fail(f"no limit L{limit_id}")
        new = cfg.limits.replace_limit(limit_id, check_limit(given, base=current), actor=CLI)
    except InvalidFields as exc:
        _invalid("limit", exc)
        return
    finally:
        cfg.close()
    if new is None:
        _fail(f"no limit L{limit_id}")
    print(json.dumps(_limit_json(new), indent=2)) if as_json else _print_limit(new)


@limits_app.command("list")
def list_limits(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="only what may apply to this tenant")
    ] = None,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Every limit: stored definitions, and the rate limit and budget of tenant
    configurations (`tenants set --rate-limit-rpm/--budget`), with where each comes from."""
    from tenantscope.dashboard.limit_views import definition_rows

    cfg = _open(data_dir)
    try:
        limits = cfg.limits.list_limits()
        rows = definition_rows(limits, cfg.list_tenants(), tenant)
    finally:
        cfg.close()
    if as_json:
        out = [
            _limit_json(r.limit)
            if r.limit is not None
            else {
                "ref": r.ref,
                "name": r.name,
                "kind": r.kind,
                "tenant_id": r.tenant_id,
                "source": r.source,
                "figures": r.figures,
            }
            for r in rows
        ]
        print(json.dumps(out, indent=2))
        return
    table = Table("id", "name", "applies to", "source", "figures", "counted", "period", "mode")
    for r in rows:
        table.add_row(
            r.ref,
            r.name + ("" if r.enabled else " (disabled)"),
            r.applies_to,
            r.source_text,
            r.figures,
            r.counted,
            r.period + (f", warn at {r.thresholds}" if r.thresholds else ""),
            r.mode,
        )
    console.print(table)


@limits_app.command("show")
def show(
    limit_ref: Annotated[str, typer.Argument(metavar="LIMIT", help="e.g. L3 or 3")],
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
) -> None:
    """One limit and its approvals (those in force and those that ended)."""
    limit_id = _limit_id(limit_ref)
    cfg = _open(data_dir)
    try:
        limit = cfg.limits.get_limit(limit_id)
        if limit is None:
            _fail(f"no limit L{limit_id}")
        approvals = [a for a in cfg.limits.list_approvals() if a.limit_ref == limit.ref]
    finally:
        cfg.close()
    if as_json:
        out = {**_limit_json(limit), "approvals": [approval_snapshot(a) for a in approvals]}
        print(json.dumps(out, indent=2))
        return
    _print_limit(limit)
    if limit.description:
        console.print(limit.description, markup=False, highlight=False)
    if approvals:
        _approvals_table(approvals, datetime.now(timezone.utc))


@limits_app.command("delete")
def delete(
    limit_ref: Annotated[str, typer.Argument(metavar="LIMIT", help="e.g. L3 or 3")],
    data_dir: DataDirOpt = None,
) -> None:
    """Remove a limit (its approvals end)."""
    limit_id = _limit_id(limit_ref)
    cfg = _open(data_dir)
    try:
        if not cfg.limits.delete_limit(limit_id, actor=CLI):
            _fail(f"no limit L{limit_id}")
    finally:
        cfg.close()
    console.print(f"limit L{limit_id} removed")


# -- approvals -----------------------------------------------------------------------------


def _granter() -> str:
    """Who grants from the command line: the operating system user, when it has one."""
    try:
        return f"cli ({getpass.getuser()})"
    except (KeyError, OSError):  # no user name in this environment (e.g. a bare container)
        return "cli"


@limits_app.command("approve")
def approve(
    limit_ref: Annotated[
        str, typer.Argument(metavar="LIMIT", help="L3, tenant:rate or tenant:budget")
    ],
    tenant: Annotated[str | None, typer.Option("--tenant", help="the tenant it is for")] = None,
    subject: SubjectOpt = None,
    usd: Annotated[str | None, typer.Option("--usd", help="budget: USD more")] = None,
    rpm: Annotated[str | None, typer.Option("--rpm", help="rate: requests/min more")] = None,
    tpm: Annotated[str | None, typer.Option("--tpm", help="rate: tokens/min more")] = None,
    for_: Annotated[str | None, typer.Option("--for", help="how long: e.g. 2h, 7d")] = None,
    until: Annotated[str | None, typer.Option(help="until when: RFC 3339 time")] = None,
    reason: Annotated[str | None, typer.Option(help="why (kept with it)")] = None,
    by: Annotated[str | None, typer.Option(help="who grants it (default: your user)")] = None,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Grant a temporary raise of a limit for one tenant, until a time."""
    if for_ is not None and until is not None:
        _fail("give --for or --until, not both")
    now = datetime.now(timezone.utc)
    expires: str | None = until
    if for_ is not None:
        try:
            expires = (now + timedelta(seconds=parse_duration(for_))).isoformat()
        except ValueError:
            _fail(f"--for {for_!r}: a duration like 2h or 7d")
    data = {
        "limit": limit_ref,
        "tenant_id": tenant,
        "subject": subject,
        "amount_usd": usd,
        "requests_per_minute": rpm,
        "tokens_per_minute": tpm,
        "expires_at": expires,
        "reason": reason,
    }
    cfg = _open(data_dir)
    try:
        approval = check_approval(
            {k: v for k, v in data.items() if v is not None},
            cfg.limits.list_limits(),
            now=now,
            granted_by=by or _granter(),
        )
        added = cfg.limits.add_approval(approval, actor=CLI)
    except InvalidFields as exc:
        _invalid("approval", exc)
        return
    finally:
        cfg.close()
    if as_json:
        print(json.dumps(approval_snapshot(added), indent=2))
        return
    from tenantscope.dashboard.limit_views import raise_text

    console.print(
        f"approval {added.id}: {raise_text(added)} on {added.limit_ref} for tenant"
        f" {added.tenant_id or '(no tenant)'} until {_iso(added.expires_at)} UTC",
        markup=False,
        highlight=False,
    )


def _state(a: Approval, now: datetime) -> str:
    if a.revoked_at is not None:
        return f"revoked {_iso(a.revoked_at)}"
    return "in force" if a.active(now) else "expired"


def _approvals_table(approvals: Sequence[Approval], now: datetime) -> None:
    from tenantscope.dashboard.limit_views import raise_text

    table = Table(
        "id", "limit", "tenant", "raise", "granted by", "expires (UTC)", "state", "reason"
    )
    for a in approvals:
        table.add_row(
            str(a.id),
            a.limit_ref,
            (a.tenant_id or "(no tenant)") + (f" / {a.subject}" if a.subject else ""),
            raise_text(a),
            a.granted_by or "—",
            _iso(a.expires_at),
            _state(a, now),
            a.reason,
        )
    console.print(table)


@limits_app.command("approvals")
def approvals(
    active: Annotated[bool, typer.Option("--active", help="only those in force now")] = False,
    tenant: Annotated[str | None, typer.Option("--tenant", help="one tenant's")] = None,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Approvals (temporary raises), with who granted them and until when."""
    now = datetime.now(timezone.utc)
    cfg = _open(data_dir)
    try:
        found = cfg.limits.list_approvals(active_at=now if active else None)
    finally:
        cfg.close()
    found = [a for a in found if tenant is None or a.tenant_id == tenant]
    if as_json:
        print(json.dumps([approval_snapshot(a) for a in found], indent=2))
        return
    _approvals_table(found, now)


@limits_app.command("revoke")
def revoke(
    approval_id: Annotated[int, typer.Argument(help="the approval's id")],
    data_dir: DataDirOpt = None,
) -> None:
    """End an approval now: the limit is back to its own."""
    cfg = _open(data_dir)
    try:
        if not cfg.limits.revoke_approval(approval_id, datetime.now(timezone.utc), actor=CLI):
            _fail(f"no approval {approval_id}")
    finally:
        cfg.close()
    console.print(f"approval {approval_id} revoked")


# -- status --------------------------------------------------------------------------------


def _status_from_server(
    base: str, tenant: str | None, api_key: str | None, explicit: bool
) -> dict[str, Any] | None:
    """The running server's /api/limits/status (None: no server answered)."""
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    params = {"tenant_id": tenant} if tenant is not None else {}
    try:
        resp = httpx.get(f"{base}/api/limits/status", params=params, headers=headers)
    except httpx.HTTPError:
        if explicit:
            _fail(f"cannot reach {base}")
        return None
    if resp.status_code == 401:
        _fail(f"{base} needs an API key that may read limits: --api-key or TENANTSCOPE_API_KEY")
    if resp.status_code != 200:
        _fail(f"{base} answered {resp.status_code}: {resp.text[:300]}")
    body: dict[str, Any] = resp.json()
    return body


def _status_from_data_dir(data_dir: Any, tenant: str | None) -> tuple[dict[str, Any], datetime]:
    """Where each tenant stands, read from the data dir when no server runs on it: a
    limiter over the opened stores (not started), asked exactly as the API asks it."""
    from tenantscope.server.services import Services

    settings = _settings(data_dir=data_dir, ingest_workers=0, alerts=False)
    try:
        svc = Services.open(settings, start_writer=False)
    except TenantscopeError as exc:
        _fail(exc.message)
    try:
        if any(settings.wal_path.glob("*.arrows")):
            # a server that stopped abruptly left answered spans in its log: store them
            # first (starting the writer does, stopping it waits for them)
            svc.writer.start()
            svc.writer.stop()
        return _api_status(svc, tenant), svc.limiter.clock()
    finally:
        svc.close()


def _api_status(svc: Services, tenant: str | None) -> dict[str, Any]:
    """The API's own answer (``routes_limits.status_for``) for a caller seeing every
    tenant: the CLI's figures are not a second copy."""
    from tenantscope.query.scope import Scope
    from tenantscope.server.routes_limits import status_for

    return status_for(svc, Scope.all(), tenant)


@limits_app.command("status")
def status(
    tenant: Annotated[str | None, typer.Option("--tenant", help="one tenant's")] = None,
    url: Annotated[
        str | None,
        typer.Option(help="ask this running server (default: the one on the data dir, if any)"),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="TENANTSCOPE_API_KEY",
            help="an admin or reader key (a tenant key: its own tenant)",
        ),
    ] = None,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Every limit of each tenant now: used, remaining, the budget's projection at the
    period's end (a straight line from the spend so far) and calls blocked this month.

    Rates and holds of calls in flight live in the server's memory: without a running
    server the rates are 0 and budgets count the stored calls only."""
    from tenantscope.dashboard.limit_views import tenant_limits
    from tenantscope.server.runfile import running_url

    settings = _settings(data_dir=data_dir)
    base = url or running_url(settings.data_dir)
    body = None
    now = datetime.now(timezone.utc)
    if base is not None:
        body = _status_from_server(base.rstrip("/"), tenant, api_key, url is not None)
    offline = body is None
    if body is None:
        body, now = _status_from_data_dir(data_dir, tenant)
    tenants = tenant_limits(body, now)
    if as_json:
        # the API's answer, with the dashboard's projection beside each budget figure
        for t, shown in zip(body["tenants"], tenants, strict=True):
            projected = {(g.ref, f.subject): f.projected for g in shown.groups for f in g.figures}
            for fig in t["limits"]:
                value = projected.get((fig["id"], fig["subject"]))
                fig["projected_at_period_end"] = (
                    None if value is None else format(value.normalize(), "f")
                )
        print(json.dumps(body, indent=2))
        return
    table = Table(
        "tenant", "limit", "for", "used", "limit", "remaining", "share", "projected", "resets",
        "blocked",
    )  # fmt: skip
    for t in tenants:
        for g in t.groups:
            for i, f in enumerate(g.figures or [None]):
                first = i == 0
                cells = ["", "", "", "", "", "", ""]
                if f is not None:
                    money = f.is_budget
                    cells = [
                        "tenant" if g.per == "tenant" else f"{g.per} {f.subject or '(none)'}",
                        _amount(f.used, money) + ("" if money else f" {f.unit}"),
                        _amount(f.limit, money),
                        _amount(f.remaining, money),
                        f"{f.used_pct:.1f}%" + (" reached" if f.state == "reached" else ""),
                        "—" if f.projected is None else _amount(f.projected, True),
                        _iso(f.period_end) if f.period_end else "rolling minute",
                    ]
                table.add_row(
                    (t.tenant_id or "(no tenant)") if first else "",
                    f"{g.name} ({g.ref})" if first else "",
                    *cells,
                    str(g.blocked) if first else "",
                )
    console.print(table)
    if offline:
        err_console.print(
            "no server runs on this data dir: rates and calls in flight are not shown"
            " (they live in the server's memory)"
        )


def _amount(value: Any, money: bool) -> str:
    """As the dashboard shows it: money with sensible precision, counts with separators."""
    from tenantscope.dashboard.render import money as money_text
    from tenantscope.dashboard.render import num

    return money_text(value) if money else num(int(value))
