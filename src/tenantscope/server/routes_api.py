"""The JSON API over the query layer. Routers never filter by tenant themselves: the
Scope (from the caller's key, set by server/access.py) goes to every query."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from tenantscope.errors import BadRequest, Unauthorized
from tenantscope.query.models import (
    ActorRow,
    Breakdown,
    CrossBreakdown,
    Page,
    SlaRow,
    TenantDetail,
    TenantRow,
    TenantSuggestion,
    TenantUsage,
    TimeSeries,
    TraceDetail,
    TraceRow,
)
from tenantscope.query.params import TIME_BOUNDS, TimeRange
from tenantscope.query.queries import Queries
from tenantscope.query.scope import Scope
from tenantscope.server.services import services_of
from tenantscope.server.strict_params import reject_unknown_params
from tenantscope.server.tenant_paths import TenantIdRoute

# unknown query parameters are refused (server/strict_params.py)
router = APIRouter(prefix="/api", tags=["query"], dependencies=[Depends(reject_unknown_params)])

_TIMES = f"RFC 3339 time or epoch seconds, between {TIME_BOUNDS}"
FromQ = Annotated[str | None, Query(alias="from", description=f"{_TIMES}; default: `to` - 7 days")]
ToQ = Annotated[str | None, Query(alias="to", description=f"{_TIMES}; default: now")]
LimitQ = Annotated[int | None, Query(ge=1, le=1000, description="page size (default 50)")]
CursorQ = Annotated[str | None, Query(description="`next_cursor` of the previous page")]
OrderQ = Annotated[Literal["asc", "desc"] | None, Query(description="default desc")]
TenantPath = Annotated[
    str, Path(description="the tenant id as the app sends it, percent-encoded (`/` as `%2F`)")
]
TENANT_IN_PATH = (
    "The tenant id is one path segment, percent-encoded: any character may be in it"
    " (`/` as `%2F`, so the tenant `acme/usage` is `/api/tenants/acme%2Fusage`)."
)


def get_scope(request: Request) -> Scope:
    """The caller's scope, set from its key by the access middleware (server/access.py).
    A route reached without one is refused: the scope never defaults to everything."""
    scope: Scope | None = getattr(request.state, "scope", None)
    if scope is None:
        raise Unauthorized("an API key is required")
    return scope


def get_queries(request: Request) -> Queries:
    return services_of(request).queries


ScopeDep = Annotated[Scope, Depends(get_scope)]
QueriesDep = Annotated[Queries, Depends(get_queries)]


@router.get("/tenants", summary="Tenants with totals for a time range")
def list_tenants(
    scope: ScopeDep,
    queries: QueriesDep,
    start: FromQ = None,
    end: ToQ = None,
    q: Annotated[str | None, Query(description="search tenant id or display name")] = None,
    sort: Annotated[
        Literal[
            "cost",
            "traces",
            "sessions",
            "requests",
            "tokens",
            "errors",
            "p95",
            "last_seen",
            "tenant",
        ]
        | None,
        Query(description="default cost"),
    ] = None,
    order: OrderQ = None,
    limit: LimitQ = None,
    cursor: CursorQ = None,
) -> Page[TenantRow]:
    rng = TimeRange.parse(start, end)
    return queries.tenants(scope, rng, q=q, sort=sort, order=order, limit=limit, cursor=cursor)


def get_tenant_usage(
    tenant_id: TenantPath,
    scope: ScopeDep,
    queries: QueriesDep,
    start: FromQ = None,
    end: ToQ = None,
) -> TenantUsage:
    return queries.tenant_usage(scope, tenant_id, TimeRange.parse(start, end))


def get_tenant(
    tenant_id: TenantPath,
    scope: ScopeDep,
    queries: QueriesDep,
    start: FromQ = None,
    end: ToQ = None,
) -> TenantDetail:
    return queries.tenant(scope, tenant_id, TimeRange.parse(start, end))


# Tenant ids may hold any character, "/" included: these two routes read the id from the
# path as sent (server/tenant_paths.py), so "acme%2Fusage" is a tenant, not acme's usage.
router.add_api_route(
    "/tenants/{tenant_id:path}/usage",
    get_tenant_usage,
    methods=["GET"],
    summary="Token, request, session and cost totals of one tenant",
    description="The shape of the seeds' `get_tenant_usage`. A tenant with no usage gets"
    f" zeros. {TENANT_IN_PATH}",
    route_class_override=TenantIdRoute,
)
router.add_api_route(
    "/tenants/{tenant_id:path}",
    get_tenant,
    methods=["GET"],
    summary="One tenant: totals and configuration",
    description=TENANT_IN_PATH,
    route_class_override=TenantIdRoute,
)


@router.get(
    "/traces",
    summary="Traces, newest first, with filters",
    description="One row per trace, at its root span. A trace whose root span was never"
    " received (e.g. Langfuse 5 drops plain-OTel parent spans) is listed at its earliest"
    " span whose parent is not stored, with `incomplete: true`. Filters other than"
    " `tenant_id` match a trace when any of its spans matches.",
)
def list_traces(
    scope: ScopeDep,
    queries: QueriesDep,
    start: FromQ = None,
    end: ToQ = None,
    tenant_id: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    customer_id: Annotated[
        str | None, Query(description="the tenant's end customer (`set_customer_id`)")
    ] = None,
    model: str | None = None,
    feature: str | None = None,
    status: Annotated[
        Literal["ok", "error", "cancelled", "blocked"] | None,
        Query(description="error/cancelled/blocked: traces with such a span; ok: traces without"),
    ] = None,
    limit: LimitQ = None,
    cursor: CursorQ = None,
) -> Page[TraceRow]:
    return queries.traces(
        scope,
        TimeRange.parse(start, end),
        tenant_id=tenant_id,
        user_id=user_id,
        session_id=session_id,
        customer_id=customer_id,
        model=model,
        feature=feature,
        status=status,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/traces/{trace_id}",
    summary="One trace as a span tree",
    description="Spans whose parent is not stored are top-level (`roots`); `incomplete`"
    " says no root span was received. Each span says how its tokens were read"
    " (`usage_convention`) and, when it does not count, why (`shadow_reason`).",
)
def get_trace(
    trace_id: Annotated[str, Path(description="32 hex characters")],
    scope: ScopeDep,
    queries: QueriesDep,
) -> TraceDetail:
    return queries.trace(scope, trace_id)


ActorSort = Annotated[
    Literal["cost", "requests", "tokens", "traces", "last_seen", "first_seen", "errors"] | None,
    Query(description="default last_seen"),
]


@router.get("/users", summary="Users (per tenant) with totals")
def list_users(
    scope: ScopeDep,
    queries: QueriesDep,
    tenant_id: str | None = None,
    start: FromQ = None,
    end: ToQ = None,
    sort: ActorSort = None,
    order: OrderQ = None,
    limit: LimitQ = None,
    cursor: CursorQ = None,
) -> Page[ActorRow]:
    return queries.users(
        scope,
        TimeRange.parse(start, end),
        tenant_id=tenant_id,
        sort=sort,
        order=order,
        limit=limit,
        cursor=cursor,
    )


@router.get("/sessions", summary="Sessions (per tenant) with totals")
def list_sessions(
    scope: ScopeDep,
    queries: QueriesDep,
    tenant_id: str | None = None,
    user_id: str | None = None,
    start: FromQ = None,
    end: ToQ = None,
    sort: ActorSort = None,
    order: OrderQ = None,
    limit: LimitQ = None,
    cursor: CursorQ = None,
) -> Page[ActorRow]:
    return queries.sessions(
        scope,
        TimeRange.parse(start, end),
        tenant_id=tenant_id,
        user_id=user_id,
        sort=sort,
        order=order,
        limit=limit,
        cursor=cursor,
    )


Dimension = Literal[
    "model",
    "provider",
    "feature",
    "user",
    "workspace",
    "customer",
    "billable_action",
    "tenant",
    "environment",
    "service",
    "status",
]


@router.get(
    "/breakdown",
    summary="Totals grouped by one dimension, or by two (e.g. tenant x feature)",
    description="Counted LLM calls grouped by `by`; calls without a value form the group"
    ' with key `""`. `customer` groups by `customer_id`, the tenant\'s own end customer'
    " (llmobserve's `set_customer_id`, or the `tenantscope.customer_id` / `customer.id`"
    " span attribute).\n\nWith `group_by` (another dimension than `by`), the answer is"
    " per (`group_by`, `by`) pair: `by=feature&group_by=tenant` says which customers use"
    " which features. `groups` are the `limit` costliest groups (default 20, at most 100)"
    " with their totals over every key; `keys` the `by_limit` costliest keys over those"
    " groups (default 20, at most 100); `items` the pairs with usage among them, by group"
    " then key, each with its share of its group's cost and of the total. Ordering:"
    " cost (unknown last), then requests, then the value.",
    response_model=Breakdown | CrossBreakdown,
)
def get_breakdown(
    scope: ScopeDep,
    queries: QueriesDep,
    by: Dimension,
    group_by: Annotated[
        Dimension | None, Query(description="a second dimension: one row per pair")
    ] = None,
    tenant_id: str | None = None,
    start: FromQ = None,
    end: ToQ = None,
    limit: Annotated[
        int | None,
        Query(ge=1, le=1000, description="rows (default 50); with group_by: groups (20, ≤ 100)"),
    ] = None,
    by_limit: Annotated[
        int | None, Query(ge=1, le=100, description="with group_by: keys (default 20)")
    ] = None,
) -> Breakdown | CrossBreakdown:
    rng = TimeRange.parse(start, end)
    if group_by is not None:
        return queries.cross_breakdown(
            scope, rng, by, group_by, tenant_id=tenant_id, limit=limit, by_limit=by_limit
        )
    if by_limit is not None:
        raise BadRequest("by_limit applies with group_by only")
    return queries.breakdown(scope, rng, by, tenant_id=tenant_id, limit=limit)


@router.get(
    "/tenant-suggestions",
    summary="Tenant ids and names matching a text (the dashboard's tenant selector)",
    description="Ids seen in usage or configured, and configured display names, that"
    " contain `q` (case-insensitive): an exact match first, then those starting with it,"
    " then the rest, each alphabetically by id. Admin and reader keys only.",
)
def get_tenant_suggestions(
    scope: ScopeDep,
    queries: QueriesDep,
    q: Annotated[str | None, Query(max_length=200, description="the text typed")] = None,
    limit: Annotated[int | None, Query(ge=1, le=50, description="default 10")] = None,
) -> Page[TenantSuggestion]:
    return Page[TenantSuggestion](items=queries.tenant_suggestions(scope, q, limit))


@router.get("/timeseries", summary="A metric in hour or day buckets")
def get_timeseries(
    scope: ScopeDep,
    queries: QueriesDep,
    metric: Literal["cost", "tokens", "requests", "errors", "error_rate", "p95_latency"] = "cost",
    interval: Literal["hour", "day"] = "hour",
    group_by: Annotated[
        Literal["tenant"] | None, Query(description="one series per top tenant")
    ] = None,
    tenant_id: str | None = None,
    start: FromQ = None,
    end: ToQ = None,
    limit: Annotated[
        int | None, Query(ge=1, le=100, description="with group_by: how many tenants (10)")
    ] = None,
) -> TimeSeries:
    return queries.timeseries(
        scope,
        TimeRange.parse(start, end),
        metric,
        interval,
        tenant_id=tenant_id,
        group_by=group_by,
        limit=limit,
    )


@router.get(
    "/sla",
    summary="Per tenant latency percentiles against the configured p95 target",
    description="Latency is that of counted LLM calls. Tenants without a target get null"
    " `compliant` and `within_target`.",
)
def get_sla(
    scope: ScopeDep,
    queries: QueriesDep,
    start: FromQ = None,
    end: ToQ = None,
    tier: str | None = None,
) -> dict[str, list[SlaRow]]:
    return {"items": queries.sla(scope, TimeRange.parse(start, end), tier=tier)}
