"""Recompute stored costs for a time range (after an override or a catalog update)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from tenantscope.pricing.pricer import Pricer
from tenantscope.storage.base import EventStore


@dataclass(frozen=True, slots=True)
class RepriceResult:
    scanned: int
    changed: int


def reprice(
    events: EventStore,
    pricer: Pricer,
    start: datetime,
    end: datetime,
    *,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 10_000,
) -> RepriceResult:
    """Re-price every LLM record in ``[start, end)``. Reported costs stay as reported."""
    scanned = changed = 0
    for batch in events.iter_records(start, end, batch_size):
        updates = []
        for rec in batch:
            scanned += 1
            if rec.kind != "llm" or rec.cost_source == "reported":
                continue
            res = pricer.price(rec)
            if (res.cost_usd, res.cost_source, res.price_version) != (
                rec.cost_usd,
                rec.cost_source,
                rec.price_version,
            ):
                updates.append(
                    rec.replace(
                        cost_usd=res.cost_usd,
                        cost_source=res.cost_source,
                        price_version=res.price_version,
                    )
                )
        if updates:
            events.write([], updates)
            changed += len(updates)
        if progress is not None:
            progress(len(batch))
    return RepriceResult(scanned, changed)
