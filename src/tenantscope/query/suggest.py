"""Tenant suggestions for the dashboard's tenant selector: ids that were seen (in the
rollups) or configured, and configured names, matching what was typed.

Ranked: an exact id or name first, then ids or names starting with the text, then those
containing it (all case-insensitive), each alphabetically by id; at most ``limit``. The
rollups are read, not the records: one row per tenant and hour, so 50,000 tenants cost a
scan of the rollup table, not of every span.
"""

from __future__ import annotations

from tenantscope.query.models import TenantSuggestion
from tenantscope.query.params import check_limit
from tenantscope.query.scope import Scope
from tenantscope.query.sources import TenantFilter
from tenantscope.storage.base import ConfigStore, EventStore

MAX_SUGGESTIONS = 50
DEFAULT_SUGGESTIONS = 10


def _rank(text: str, needle: str) -> int | None:
    """0 equal, 1 starts with, 2 contains, None: no match (case-insensitive)."""
    low = text.lower()
    if low == needle:
        return 0
    if low.startswith(needle):
        return 1
    return 2 if needle in low else None


def tenant_suggestions(
    events: EventStore,
    config: ConfigStore,
    scope: Scope,
    q: str | None,
    limit: int | None = None,
) -> list[TenantSuggestion]:
    lim = check_limit(limit, default=DEFAULT_SUGGESTIONS, maximum=MAX_SUGGESTIONS)
    needle = (q or "").strip().lower()
    tf = TenantFilter.of(scope)
    if needle:
        tf.add("position(:q IN lower(tenant_id)) > 0", q=needle)
    seen = events.fetch(
        f"""SELECT tenant_id, CASE WHEN lower(tenant_id) = :q THEN 0
                WHEN position(:q IN lower(tenant_id)) = 1 THEN 1 ELSE 2 END AS rank
            FROM rollup_hourly WHERE true{tf.and_sql()}
            GROUP BY tenant_id ORDER BY rank, tenant_id LIMIT :lim""",
        {**tf.params, "q": needle, "lim": lim},
    )
    ranks: dict[str, int] = {r["tenant_id"]: int(r["rank"]) for r in seen}
    configs = {c.tenant_id: c for c in config.list_tenants() if scope.allows(c.tenant_id)}
    for c in configs.values():
        matched = (_rank(c.tenant_id, needle), _rank(c.display_name, needle))
        found = [r for r in matched if r is not None]
        if found:
            ranks[c.tenant_id] = min([*found, ranks.get(c.tenant_id, 2)])
    best = sorted(ranks, key=lambda t: (ranks[t], t))[:lim]
    return [
        TenantSuggestion(
            tenant_id=t,
            display_name=configs[t].display_name if t in configs else "",
            tier=configs[t].tier if t in configs else "",
        )
        for t in best
    ]
