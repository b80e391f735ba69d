"""Copies of one provider response count once, across traces.

Two instrumentations can report the same call (netra-sdk exports one Anthropic call as two
root spans in two traces, under the anthropic SDK's own scope and OpenLLMetry's), and a
span can be re-sent in another trace. Records of one tenant that name the same provider and
``response_id`` are copies of one call: one counts, the others are ``shadowed`` with a
``shadow_reason`` that names the copy that counts.

The copy that counts is a function of the set of copies, never of their arrival order
(``preference``): most complete usage first (usage at all, then the most token kinds
reported), then a reported cost, then the library listed first in ``semconv.CONVENTIONS``
(a provider SDK's own spans first: they report the API's figures verbatim; OpenLLMetry's
Anthropic stream spans, for one, count one output token too many), then a time to first
token, then the smallest event id.

Only records the trace rules (``attribution.resolve_trace``) let count are candidates, and
records of different tenants are never copies of each other: a tenant's record is never
shadowed by, and its reason never names, another tenant's. The writer looks for stored
copies within ``writer.DEFAULT_RESPONSE_WINDOW`` of a batch's start times.
"""

from __future__ import annotations

from collections.abc import Iterable

from tenantscope import semconv
from tenantscope.ingest.attribution import has_usage
from tenantscope.records import UsageRecord

# The start of every reason this module gives, and only this module.
DUPLICATE = "duplicate of response "

# Copies equally complete: the library listed first in ``semconv.CONVENTIONS`` counts (a
# provider SDK's own spans report its API's figures verbatim), then what our own SDK or an
# event said, then conventions guessed from the figures.
_RANK = {
    name: i for i, name in enumerate([c.name for c in semconv.CONVENTIONS] + ["attribute", "event"])
}

Key = tuple[str, str, str]


def is_candidate(record: UsageRecord) -> bool:
    """An LLM record with a response id that no trace rule keeps from counting."""
    return (
        record.kind == "llm"
        and bool(record.response_id)
        and (not record.shadowed or record.shadow_reason.startswith(DUPLICATE))
    )


def key_of(record: UsageRecord) -> Key:
    return (record.tenant_id, record.provider, record.response_id)


def preference(record: UsageRecord) -> tuple[object, ...]:
    """Sort key: the first of a group's copies counts."""
    kinds = sum(
        1
        for n in (
            record.input_tokens,
            record.output_tokens,
            record.cache_read_tokens,
            record.cache_write_tokens,
            record.reasoning_tokens,
        )
        if n
    )
    return (
        not has_usage(record),
        -kinds,
        record.cost_source != "reported",
        _RANK.get(record.usage_convention, len(_RANK)),
        record.ttft_ms is None,
        record.event_id,
    )


def resolve_duplicates(records: Iterable[UsageRecord]) -> None:
    """Mark, in place, which copy of each response counts among ``records`` (every copy
    there is: the caller gives the whole group, stored copies included, each once)."""
    groups: dict[Key, list[UsageRecord]] = {}
    for r in records:
        if is_candidate(r):
            groups.setdefault(key_of(r), []).append(r)
    for (_, _, response_id), group in groups.items():
        winner = min(group, key=preference)
        for r in group:
            if r is winner:
                r.shadowed, r.shadow_reason = False, ""
            else:
                r.shadowed = True
                r.shadow_reason = (
                    f"{DUPLICATE}{response_id}: span {winner.span_id} of trace "
                    f"{winner.trace_id} counts it"
                )
