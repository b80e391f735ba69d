"""What a config value may be: the checks every ConfigStore runs before it writes.

They live apart from any backend so that every backend, and every form that wants to
name *all* the wrong fields of a submission at once (``problems``), runs the same checks:
there is one validator. Each check returns the value as it is stored, or raises
``ValidationFailed`` whose ``details`` name the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from tenantscope import errors
from tenantscope.storage.base import ROLES, TENANT_SETTABLE, PriceOverride

MAX_TENANT_ID = 1024
MAX_LABEL = 200
MAX_NOTE = 2000
MAX_INT = 2**31 - 1
# Budgets and prices: far beyond any real figure, small enough to stay exact everywhere.
MAX_MONEY = Decimal(10) ** 15
MAX_MONEY_PLACES = 12
PRICE_FIELDS: tuple[str, ...] = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
)


def utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def fail(field: str, message: str) -> errors.ValidationFailed:
    return errors.ValidationFailed(f"{field}: {message}", details={"field": field})


def check_tenant_id(tenant_id: Any) -> str:
    if not isinstance(tenant_id, str) or not 1 <= len(tenant_id) <= MAX_TENANT_ID:
        raise fail("tenant_id", f"must be a string of 1 to {MAX_TENANT_ID} characters")
    return tenant_id


def check_label(field: str, value: Any, limit: int = MAX_LABEL) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise fail(field, "must be a string")
    if len(value) > limit:
        raise fail(field, f"must be at most {limit} characters")
    return value


def check_positive_int(field: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(field, "must be a positive whole number")
    if not 1 <= value <= MAX_INT:
        raise fail(field, f"must be between 1 and {MAX_INT}")
    return value


def check_money(field: str, value: Any) -> Decimal | None:
    if value is None:
        return None
    # Floats are refused outright: money is exact, and a binary float already is not.
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise fail(field, "must be a decimal number given as text, an integer or a Decimal")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise fail(field, f"{value!r} is not a decimal number") from None
    if not amount.is_finite():
        raise fail(field, "must be a finite number")
    if amount < 0:
        raise fail(field, "must not be negative")
    if amount >= MAX_MONEY:
        raise fail(field, f"must be below {MAX_MONEY}")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_MONEY_PLACES:
        raise fail(field, f"has more than {MAX_MONEY_PLACES} decimal places")
    return amount


def money_text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def check_tenant_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The settable tenant fields as stored (money as exact text)."""
    clean: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in TENANT_SETTABLE:
            raise fail(name, f"unknown field; settable fields are {', '.join(TENANT_SETTABLE)}")
        if name in ("display_name", "tier"):
            clean[name] = check_label(name, value)
        elif name in ("sla_p95_ms", "rate_limit_rpm"):
            clean[name] = check_positive_int(name, value)
        else:
            clean[name] = money_text(check_money(name, value))
    return clean


def check_model(value: Any) -> str:
    model = check_label("model", value)
    if not model:
        raise fail("model", "must not be empty")
    return model


def check_override(override: PriceOverride) -> dict[str, Any]:
    """An override's stored row (without id and created_at)."""
    model = check_model(override.model)
    if not isinstance(override.effective_from, datetime):
        raise fail("effective_from", "must be a datetime")
    try:
        extra = json.dumps(override.extra, sort_keys=True)
    except (TypeError, ValueError):
        raise fail("extra", "must be JSON-serialisable") from None
    row: dict[str, Any] = {
        "provider": check_label("provider", override.provider),
        "model": model,
        "effective_from": utc(override.effective_from),
        "note": check_label("note", override.note, MAX_NOTE),
        "extra": extra,
    }
    for name in PRICE_FIELDS:
        row[name] = money_text(check_money(name, getattr(override, name)))
    return row


def check_some_price(prices: Mapping[str, Any]) -> None:
    """What the CLI and the forms ask of an operator's override: at least one price (one
    without would change nothing, silently). Stores accept one, as code may want it."""
    if all(prices.get(name) is None for name in PRICE_FIELDS):
        raise fail("input_mtok", "give at least one price (input, output, cache read or write)")


def check_key_binding(role: Any, tenant_id: Any, name: Any) -> tuple[str, str | None, str]:
    """(role, tenant_id, name) of a key as stored: a tenant key needs its tenant, admin
    and reader keys have none, an ingest key may have one."""
    if role not in ROLES:
        raise fail("role", f"must be one of {', '.join(ROLES)}; got {role!r}")
    if role == "tenant" and not tenant_id:
        raise fail("tenant_id", "a tenant key needs the tenant it may read")
    if role in ("admin", "reader") and tenant_id:
        raise fail("tenant_id", f"an {role} key is not bound to a tenant")
    tenant = check_tenant_id(tenant_id) if tenant_id else None
    return role, tenant, check_label("name", name)


def problems(*checks: tuple[str, Callable[[], object]]) -> dict[str, str]:
    """Run every check and collect what each found wrong, by field (empty: all valid).

    The stores stop at the first wrong field; a form wants every wrong field named at
    once, from the same checks. A check may name another field than the one it was
    listed under (``details``); the message loses its ``field:`` prefix."""
    found: dict[str, str] = {}
    for field, check in checks:
        try:
            check()
        except errors.ValidationFailed as exc:
            details = exc.details if isinstance(exc.details, dict) else {}
            name = str(details.get("field") or field)
            message = exc.message
            if message.startswith(f"{name}: "):
                message = message[len(name) + 2 :]
            found.setdefault(name, message)
        except errors.BadRequest as exc:  # e.g. a time that does not parse
            found.setdefault(field, exc.message)
    return found
