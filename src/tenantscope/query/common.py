"""What the query modules share: WHERE clauses that start with the caller's Scope, and the
conversions of stored values into result fields."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from tenantscope.query.params import TimeRange
from tenantscope.query.scope import Scope


@dataclass(slots=True)
class Where:
    """WHERE clauses and their parameters, starting with the scope and the time range."""

    clauses: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, scope: Scope, rng: TimeRange | None = None) -> Where:
        w = cls()
        if not scope.is_all:
            w.add("tenant_id = :scope_tenant", scope_tenant=scope.tenant_id)
        if rng is not None:
            start, end = rng.naive()
            w.add("start_time >= :start AND start_time < :end", start=start, end=end)
        return w

    def add(self, clause: str, **params: Any) -> Where:
        self.clauses.append(clause)
        self.params.update(params)
        return self

    def eq(self, column: str, value: str | None, name: str) -> Where:
        """``column = value``, unless the filter is unset (None or "")."""
        if value is not None and value != "":
            self.add(f"{column} = :{name}", **{name: value})
        return self

    def tenant(self, tenant_id: str | None) -> Where:
        """``tenant_id = …`` unless None. Unlike other filters, "" is a value here: the
        tenant of spans sent without one, shown as "(no tenant)"."""
        if tenant_id is not None:
            self.add("tenant_id = :tenant", tenant=tenant_id)
        return self

    @property
    def sql(self) -> str:
        return "WHERE " + " AND ".join(self.clauses) if self.clauses else ""


def aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    raise TypeError(f"not a datetime: {value!r}")


def naive(value: datetime) -> datetime:
    """UTC-naive, as the stores keep timestamps."""
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def ms(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


def to_int(value: Any) -> int:
    return int(value or 0)


def money(value: Any) -> Decimal:
    return Decimal(0) if value is None else Decimal(value)


def from_json(value: Any, default: Any) -> Any:
    """A JSON column's value (stored as text by some backends); ``default`` if unreadable."""
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return default
    return value
