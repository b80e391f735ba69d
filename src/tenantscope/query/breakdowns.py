"""Counted LLM calls grouped by a dimension (model, provider, feature, user, ...), and by
two at once: per (tenant, feature) pair, which customers use which features.

Both read ``records`` (the rollups hold tenant totals only) under the caller's Scope, in
one pass each; money stays an exact decimal throughout.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from tenantscope.errors import BadRequest, NotFound
from tenantscope.query.common import Where, money, to_int
from tenantscope.query.models import Breakdown, BreakdownRow, CrossBreakdown, CrossBreakdownRow
from tenantscope.query.params import MAX_LIMIT, TimeRange, check_limit
from tenantscope.query.scope import Scope
from tenantscope.storage.base import EventStore
from tenantscope.storage.rollups import COUNTED

BREAKDOWNS: dict[str, str] = {
    "model": "model",
    "provider": "provider",
    "feature": "feature",
    "user": "user_id",
    "workspace": "workspace_id",
    # the tenant's own end customer (llmobserve's set_customer_id); "" when none was sent
    "customer": "customer_id",
    "billable_action": "billable_action",
    "tenant": "tenant_id",
    "environment": "environment",
    "service": "service",
    "status": "status",
}
# A crossed breakdown is a matrix: at most this many groups (rows) and keys (columns).
MAX_CROSS = 100
CROSS_DEFAULT = 20
_SUMS = """count(*) AS requests,
        sum(input_tokens) AS input_tokens,
        sum(output_tokens) AS output_tokens,
        sum(cost_usd) AS cost_usd,
        sum(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END) AS unpriced_requests,
        sum(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors"""
# the same sums over rows that already hold them
_RESUMS = """sum(requests) AS requests, sum(input_tokens) AS input_tokens,
        sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost_usd,
        sum(unpriced_requests) AS unpriced_requests, sum(errors) AS errors"""
# costliest first; unknown cost last; then busiest; then by name (a stable order)
_RANK = "cost_usd DESC NULLS LAST, requests DESC, {key} ASC"


def _check_by(by: str, name: str = "by") -> str:
    if by not in BREAKDOWNS:
        raise BadRequest(f"{name} must be one of {', '.join(BREAKDOWNS)}; got {by!r}")
    return BREAKDOWNS[by]


def _where(scope: Scope, rng: TimeRange, tenant_id: str | None) -> Where:
    if tenant_id is not None and not scope.allows(tenant_id):
        raise NotFound(f"tenant {tenant_id!r} not found")
    return Where.of(scope, rng).tenant(tenant_id).add(COUNTED)


def _share(part: Decimal, whole: Decimal) -> float | None:
    return round(float(part / whole), 6) if whole else None


def _row(r: dict[str, Any], total: Decimal, key: str = "key") -> BreakdownRow:
    return BreakdownRow(
        key=r[key],
        requests=to_int(r["requests"]),
        input_tokens=to_int(r["input_tokens"]),
        output_tokens=to_int(r["output_tokens"]),
        total_tokens=to_int(r["input_tokens"]) + to_int(r["output_tokens"]),
        cost_usd=money(r["cost_usd"]),
        unpriced_requests=to_int(r["unpriced_requests"]),
        errors=to_int(r["errors"]),
        share_of_cost=_share(money(r["cost_usd"]), total),
    )


def grouped(
    events: EventStore,
    scope: Scope,
    rng: TimeRange,
    bys: Sequence[str],
    *,
    tenant_id: str | None = None,
    limit: int | None = None,
    max_limit: int = MAX_LIMIT,
) -> dict[str, Breakdown]:
    """Totals grouped by each of several dimensions, in one pass over the records; each
    costliest first, at most ``limit`` rows (``max_limit`` bounds it: the API's 1,000, a
    CSV download's more)."""
    for by in bys:
        _check_by(by)
    lim = check_limit(limit, maximum=max_limit)
    w = _where(scope, rng, tenant_id)
    cols = [BREAKDOWNS[by] for by in dict.fromkeys(bys)]
    # which grouping set a row belongs to: the index of its dimension
    which = " ".join(f"WHEN grouping({c}) = 0 THEN {i}" for i, c in enumerate(cols))
    keys = " ".join(f"WHEN grouping({c}) = 0 THEN {c}" for c in cols)
    sql = f"""
        SELECT CASE {which} END AS dim, CASE {keys} END AS key, {_SUMS}
        FROM records {w.sql}
        GROUP BY GROUPING SETS ({", ".join(f"({c})" for c in cols)})
        ORDER BY dim, {_RANK.format(key="key")}"""
    rows_of: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(cols))}
    for r in events.fetch(sql, w.params):
        rows_of[int(r["dim"])].append(r)
    out: dict[str, Breakdown] = {}
    for by in bys:
        rows = rows_of[cols.index(BREAKDOWNS[by])]
        total = sum((money(r["cost_usd"]) for r in rows), Decimal(0))
        items = [_row(r, total) for r in rows[:lim]]
        out[by] = Breakdown(by=by, items=items, total_cost_usd=total)
    return out


def crossed(
    events: EventStore,
    scope: Scope,
    rng: TimeRange,
    by: str,
    group_by: str,
    *,
    tenant_id: str | None = None,
    limit: int | None = None,
    by_limit: int | None = None,
) -> CrossBreakdown:
    """Totals per (``group_by``, ``by``) pair over counted LLM calls, e.g. per tenant and
    feature. The ``limit`` costliest groups are shown (20 by default, at most 100), and the
    ``by_limit`` costliest keys over those groups (the same bounds); each group's totals
    cover all its keys, shown or not. Order: cost (unknown last), then requests, then the
    value itself, for groups, keys and the pairs (by group, then key)."""
    key_col = _check_by(by)
    group_col = _check_by(group_by, "group_by")
    if group_col == key_col:
        others = ", ".join(b for b in BREAKDOWNS if b != by)
        raise BadRequest(f"group_by must be another dimension than by ({by!r}): one of {others}")
    glim = check_limit(limit, default=CROSS_DEFAULT, maximum=MAX_CROSS)
    klim = check_limit(by_limit, default=CROSS_DEFAULT, maximum=MAX_CROSS, name="by_limit")
    w = _where(scope, rng, tenant_id)
    # One pass: the pairs, the top groups, the top keys among them; then per top group its
    # top keys' pairs and one row (top = false) summing its other keys.
    sql = f"""
        WITH pairs AS (
            SELECT {group_col} AS grp, {key_col} AS key, {_SUMS}
            FROM records {w.sql} GROUP BY {group_col}, {key_col}
        ),
        top_groups AS (
            SELECT grp, {_RESUMS} FROM pairs GROUP BY grp
            ORDER BY {_RANK.format(key="grp")} LIMIT :glim
        ),
        top_keys AS (
            SELECT key, {_RESUMS} FROM pairs WHERE grp IN (SELECT grp FROM top_groups)
            GROUP BY key ORDER BY {_RANK.format(key="key")} LIMIT :klim
        )
        SELECT p.grp, CASE WHEN k.key IS NULL THEN '' ELSE p.key END AS key,
            k.key IS NOT NULL AS top, max(k.cost_usd) AS key_cost, max(k.requests) AS key_requests,
            sum(p.requests) AS requests, sum(p.input_tokens) AS input_tokens,
            sum(p.output_tokens) AS output_tokens, sum(p.cost_usd) AS cost_usd,
            sum(p.unpriced_requests) AS unpriced_requests, sum(p.errors) AS errors,
            (SELECT sum(cost_usd) FROM pairs) AS total
        FROM pairs p JOIN top_groups g ON g.grp = p.grp LEFT JOIN top_keys k ON k.key = p.key
        GROUP BY p.grp, 2, 3"""
    rows = events.fetch(sql, {**w.params, "glim": glim, "klim": klim})
    total = money(rows[0]["total"]) if rows else Decimal(0)
    # each group's totals over all its keys
    group_sums: dict[str, dict[str, Any]] = {}
    for r in rows:
        g = group_sums.setdefault(r["grp"], {"grp": r["grp"], "cost_usd": None})
        for f in ("requests", "input_tokens", "output_tokens", "unpriced_requests", "errors"):
            g[f] = g.get(f, 0) + to_int(r[f])
        if r["cost_usd"] is not None:
            g["cost_usd"] = money(g["cost_usd"]) + money(r["cost_usd"])
    groups = sorted(group_sums.values(), key=_rank_key("grp"))
    pairs = [r for r in rows if r["top"]]
    key_rank = {
        r["key"]: {"key": r["key"], "cost_usd": r["key_cost"], "requests": r["key_requests"]}
        for r in pairs
    }
    keys = [k["key"] for k in sorted(key_rank.values(), key=_rank_key("key"))]
    order = {k: i for i, k in enumerate(keys)}
    group_order = {g["grp"]: i for i, g in enumerate(groups)}
    pairs.sort(key=lambda r: (group_order[r["grp"]], order[r["key"]]))
    group_cost = {g["grp"]: money(g["cost_usd"]) for g in groups}
    items = [
        CrossBreakdownRow(
            group=r["grp"],
            share_of_group_cost=_share(money(r["cost_usd"]), group_cost[r["grp"]]),
            **_row(r, total).model_dump(exclude={"share_of_cost"}),
            share_of_cost=_share(money(r["cost_usd"]), total),
        )
        for r in pairs
    ]
    return CrossBreakdown(
        by=by,
        group_by=group_by,
        groups=[_row(g, total, key="grp") for g in groups],
        keys=keys,
        items=items,
        total_cost_usd=total,
    )


def _rank_key(name: str) -> Any:
    """The Python twin of _RANK: cost descending (unknown last), requests descending, name."""

    def key(r: dict[str, Any]) -> tuple[bool, Decimal, int, str]:
        cost = r["cost_usd"]
        return (cost is None, -money(cost), -to_int(r["requests"]), str(r[name]))

    return key
