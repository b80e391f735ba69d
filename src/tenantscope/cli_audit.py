"""``tenantscope audit``: the audit log of config changes, newest first."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from tenantscope.cli_common import DataDirOpt, _config, _fail, _settings, console
from tenantscope.errors import TenantscopeError
from tenantscope.query.params import parse_time
from tenantscope.storage.audit import changed_fields
from tenantscope.storage.base import AUDIT_ACTIONS, AuditEntry
from tenantscope.storage.sqlite_config import MAX_AUDIT_PAGE


def _value(value: Any) -> str:
    return "—" if value is None or value == "" else str(value)


def _change(entry: AuditEntry) -> str:
    return "\n".join(
        f"{name}: {_value(old)} → {_value(new)}" for name, old, new in changed_fields(entry)
    )


def _as_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.isoformat().replace("+00:00", "Z"),
        "actor": {
            "kind": entry.actor.kind,
            "key_id": entry.actor.key_id,
            "name": entry.actor.name,
            "role": entry.actor.role,
        },
        "action": entry.action,
        "target": entry.target,
        "before": entry.before,
        "after": entry.after,
    }


def audit(
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_AUDIT_PAGE, help="how many entries, newest first")
    ] = 50,
    action: Annotated[
        str | None, typer.Option(help=f"only this action: {', '.join(AUDIT_ACTIONS)}")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="only this target: a tenant id, a model or a key id")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="only changes at or after this time (RFC 3339 or epoch)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Who changed which configuration (tenants, price overrides, keys), when, from what
    to what: the dashboard's forms, the JSON API and these commands alike."""
    if action is not None and action not in AUDIT_ACTIONS:
        _fail(f"--action must be one of {', '.join(AUDIT_ACTIONS)}")
    try:
        after = parse_time(since, "--since")
    except TenantscopeError as exc:
        _fail(exc.message)
    cfg = _config(_settings(data_dir=data_dir))
    try:
        entries = cfg.list_audit(action=action, target=target, since=after, limit=limit)
    finally:
        cfg.close()
    if as_json:
        print(json.dumps([_as_json(e) for e in entries], indent=2))
        return
    table = Table("when (UTC)", "who", "action", "target", "change", title="config changes")
    for e in entries:
        # as Text: tenant ids and labels are anyone's input, not Rich markup
        cells = (e.at.strftime("%Y-%m-%d %H:%M:%S"), e.actor.describe(), e.action, e.target)
        table.add_row(*(Text(c) for c in cells), Text(_change(e)))
    console.print(table)
    if not entries:
        console.print("no changes recorded" + (" that match" if action or target or since else ""))
