"""What each table page downloads as CSV (dashboard/csv_export.py does the writing): its
columns and the query-layer reads behind it, with the page's filters and the caller's
Scope. The columns are the JSON API's field names."""

from __future__ import annotations

from typing import Any

from starlette.responses import StreamingResponse

from tenantscope.dashboard.csv_export import (
    CHUNK,
    MAX_CSV_ROWS,
    Table,
    csv_response,
    fields,
    paged,
)
from tenantscope.dashboard.ranges import PickedRange
from tenantscope.pricing.catalog import CatalogPrice
from tenantscope.query.breakdowns import MAX_CROSS
from tenantscope.query.models import (
    ActorRow,
    BreakdownRow,
    CrossBreakdownRow,
    ModelRow,
    SlaRow,
    TenantRow,
    TraceRow,
)
from tenantscope.query.queries import Queries
from tenantscope.query.scope import Scope
from tenantscope.storage.base import PriceOverride

TENANTS = Table("tenants", fields(TenantRow, first=("tenant_id", "display_name", "tier")))
TRACES = Table("traces", fields(TraceRow))
USERS = Table("users", fields(ActorRow, first=("id", "tenant_id"), drop=("user_id",)))
SESSIONS = Table(
    "sessions", fields(ActorRow, first=("id", "tenant_id", "user_id"), drop=("sessions",))
)
SLA = Table("sla", fields(SlaRow, first=("tier", "tenant_id", "display_name")))
_PRICES = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
MODELS = Table("models", (*fields(ModelRow), *(f"catalog_{p}" for p in _PRICES)))
OVERRIDES = Table(
    "price-overrides",
    ("provider", "model", "effective_from", *_PRICES, "prices_models_seen", "note"),
)
PAIR_FIGURES = fields(CrossBreakdownRow, drop=("group", "key"))
# the tenant page's breakdown tables (``table=`` names one)
TENANT_TABLES = ("model", "provider", "feature", "user", "workspace", "customer")


def tenants(
    queries: Queries, scope: Scope, picked: PickedRange, **filters: Any
) -> StreamingResponse:
    rows = paged(
        lambda cursor: queries.tenants(scope, picked.rng, limit=CHUNK, cursor=cursor, **filters)
    )
    return csv_response(TENANTS, rows, picked)


def traces(
    queries: Queries, scope: Scope, picked: PickedRange, **filters: Any
) -> StreamingResponse:
    rows = paged(
        lambda cursor: queries.traces(scope, picked.rng, limit=CHUNK, cursor=cursor, **filters)
    )
    return csv_response(TRACES, rows, picked)


def actors(
    kind: str, queries: Queries, scope: Scope, picked: PickedRange, **filters: Any
) -> StreamingResponse:
    """Users or sessions."""
    read = queries.users if kind == "users" else queries.sessions
    rows = paged(lambda cursor: read(scope, picked.rng, limit=CHUNK, cursor=cursor, **filters))
    return csv_response(USERS if kind == "users" else SESSIONS, rows, picked)


def sla(rows: list[SlaRow], picked: PickedRange) -> StreamingResponse:
    return csv_response(SLA, rows, picked)


def models(seen: list[dict[str, Any]], picked: PickedRange) -> StreamingResponse:
    """The models seen, each with its catalog price (empty when not in the catalog)."""

    def row(m: ModelRow, c: CatalogPrice | None) -> dict[str, Any]:
        prices = {f"catalog_{p}": getattr(c, p) if c else None for p in _PRICES}
        return {**m.model_dump(), **prices}

    return csv_response(MODELS, [row(s["m"], s["catalog"]) for s in seen], picked)


def overrides(
    rows: list[PriceOverride], covers: dict[Any, list[str]], picked: PickedRange
) -> StreamingResponse:
    items = [
        {
            **{c: getattr(o, c, None) for c in OVERRIDES.columns},
            "prices_models_seen": covers.get(o.id, []),
        }
        for o in rows
    ]
    return csv_response(OVERRIDES, items, picked)


def breakdown(
    queries: Queries, scope: Scope, picked: PickedRange, by: str, tenant_id: str
) -> StreamingResponse:
    """One of the tenant page's breakdowns, every row (up to MAX_CSV_ROWS)."""
    bd = queries.breakdowns(
        scope, picked.rng, (by,), tenant_id=tenant_id, limit=MAX_CSV_ROWS, max_limit=MAX_CSV_ROWS
    )[by]
    table = Table(f"{by}s", (by, *fields(BreakdownRow, drop=("key",))))
    rows = ({by: r.key, **r.model_dump()} for r in bd.items)
    return csv_response(table, rows, picked)


def compare(
    queries: Queries, scope: Scope, picked: PickedRange, by: str, tenant_id: str | None
) -> StreamingResponse:
    """The comparison's pairs, one per line (a pivot table makes the matrix), for the
    most groups and keys the query layer gives (MAX_CROSS each)."""
    cb = queries.cross_breakdown(
        scope, picked.rng, by, "tenant", tenant_id=tenant_id, limit=MAX_CROSS, by_limit=MAX_CROSS
    )
    table = Table(f"tenant-by-{by}", ("tenant_id", by, *PAIR_FIGURES))
    rows = ({"tenant_id": r.group, by: r.key, **r.model_dump()} for r in cb.items)
    return csv_response(table, rows, picked)
