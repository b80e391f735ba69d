"""The comparison page: which tenants use which features (or models, providers, ...), as a
matrix of tenants (rows) by values (columns), from the query layer's crossed breakdown."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from tenantscope.dashboard import downloads
from tenantscope.dashboard.csv_export import wants_csv
from tenantscope.dashboard.pages import FormatQ, PickedDep, QueriesDep, ScopeDep, _html, _page
from tenantscope.errors import BadRequest
from tenantscope.server.strict_params import reject_unknown_params

router = APIRouter(
    include_in_schema=False, dependencies=[Depends(_html), Depends(reject_unknown_params)]
)
# what the columns can be (the rows are tenants)
COLUMNS = ("feature", "model", "provider", "billable_action", "workspace", "environment", "service")
ROW_CHOICES = (10, 20, 50, 100)


@router.get("/compare")
def compare(
    request: Request,
    scope: ScopeDep,
    queries: QueriesDep,
    picked: PickedDep,
    by: Annotated[str | None, Query(description="the columns: feature (default), model, …")] = None,
    tenant_id: str | None = None,
    limit: Annotated[int | None, Query(description="how many tenants (rows): 20")] = None,
    fmt: FormatQ = None,
) -> Response:
    by = by or "feature"
    if by not in COLUMNS:
        raise BadRequest(f"by must be one of {', '.join(COLUMNS)}; got {by!r}")
    if wants_csv(fmt):
        return downloads.compare(queries, scope, picked, by, tenant_id)
    cb = queries.cross_breakdown(scope, picked.rng, by, "tenant", tenant_id=tenant_id, limit=limit)
    cells = {(i.group, i.key): i for i in cb.items}
    configs = queries.config.get_tenants([g.key for g in cb.groups])
    return _page(
        request,
        "compare.html",
        picked,
        "compare",
        cb=cb,
        by=by,
        cells=cells,
        configs=configs,
        columns=COLUMNS,
        row_choices=ROW_CHOICES,
        limit=limit or 20,
    )
