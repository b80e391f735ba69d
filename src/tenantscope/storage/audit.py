"""How config values appear in the audit log: the snapshots kept as an entry's before and
after, and the entry's row. Shared by every ConfigStore backend, so each records the
same thing for the same change.

Snapshots hold what an operator set, as JSON (money as exact decimal text, times as RFC
3339 UTC). A key's snapshot holds its id, role, tenant, label and times: never its secret
or the secret's hash.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from tenantscope.storage.base import (
    TENANT_SETTABLE,
    Actor,
    ApiKey,
    AuditEntry,
    PriceOverride,
    TenantConfig,
)


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return value


def tenant_snapshot(config: TenantConfig | None) -> dict[str, Any] | None:
    if config is None:
        return None
    return {name: _json_value(getattr(config, name)) for name in TENANT_SETTABLE}


def override_snapshot(override: PriceOverride | None) -> dict[str, Any] | None:
    if override is None:
        return None
    return {
        "id": override.id,
        "provider": override.provider,
        "model": override.model,
        "effective_from": _json_value(override.effective_from),
        "input_mtok": _json_value(override.input_mtok),
        "output_mtok": _json_value(override.output_mtok),
        "cache_read_mtok": _json_value(override.cache_read_mtok),
        "cache_write_mtok": _json_value(override.cache_write_mtok),
        "note": override.note,
    }


def key_snapshot(key: ApiKey | None) -> dict[str, Any] | None:
    if key is None:
        return None
    # listed field by field: a field added to ApiKey later (or secret_hash) stays out
    return {
        "key_id": key.key_id,
        "role": key.role,
        "tenant_id": key.tenant_id,
        "name": key.name,
        "created_at": _json_value(key.created_at),
        "revoked_at": _json_value(key.revoked_at),
    }


def entry_row(
    actor: Actor,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    at: datetime,
) -> dict[str, Any]:
    """The values of one audit_log row."""
    return {
        "at": at,
        "actor_kind": actor.kind,
        "actor_key_id": actor.key_id,
        "actor_name": actor.name[:200],
        "actor_role": actor.role,
        "action": action,
        "target": target,
        "before": None if before is None else json.dumps(before, sort_keys=True),
        "after": None if after is None else json.dumps(after, sort_keys=True),
    }


def entry_from_row(m: Any, at: datetime) -> AuditEntry:
    """An entry from a row mapping (``at`` already made timezone-aware by the backend)."""
    return AuditEntry(
        id=m["id"],
        at=at,
        actor=Actor(
            kind=m["actor_kind"],
            key_id=m["actor_key_id"],
            name=m["actor_name"],
            role=m["actor_role"],
        ),
        action=m["action"],
        target=m["target"],
        before=None if m["before"] is None else json.loads(m["before"]),
        after=None if m["after"] is None else json.loads(m["after"]),
    )


def changed_fields(entry: AuditEntry) -> list[tuple[str, Any, Any]]:
    """(field, before, after) of each value the change set or changed: a creation lists
    what it set, a deletion what it removed, an update only what differs."""
    before, after = entry.before or {}, entry.after or {}
    names = list(dict.fromkeys([*before, *after]))
    return [
        (name, before.get(name), after.get(name))
        for name in names
        if entry.before is None or entry.after is None or before.get(name) != after.get(name)
    ]
