"""The counting rule and attribute inheritance over the spans of one trace.

``resolve_trace`` is a function of the *set* of a trace's records, so the result is the
same whatever order or batches the spans arrived in; the writer re-runs it whenever a batch
touches a trace and stores whatever changed.

- Inheritance: a span that does not carry tenant/user/session/... takes the value of its
  nearest ancestor that does (``records.INHERITED_FIELDS``). The fields it took are listed in
  ``record.inherited`` so a later re-resolution can tell them from the span's own values.
- Counting: an LLM record with an LLM descendant is ``shadowed`` (the most specific record
  counts; the ancestor's figure stays for reference). Two records reporting the same provider
  response (``response_id``) count once.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable

from tenantscope.records import INHERITED_FIELDS, UsageRecord

_NO_VALUES: tuple[str, ...] = ("",) * len(INHERITED_FIELDS)
_VALUES = operator.attrgetter(*INHERITED_FIELDS)  # one C call: this runs for every span


def own_values(record: UsageRecord) -> tuple[str, ...]:
    """The record's attribution as sent, without what it inherited."""
    inherited = record.inherited
    values: tuple[str, ...] = _VALUES(record)
    if not inherited:
        return values
    return tuple("" if f in inherited else v for f, v in zip(INHERITED_FIELDS, values, strict=True))


def resolve_trace(records: Iterable[UsageRecord]) -> list[UsageRecord]:
    """Resolve inheritance and shadowing over one trace's records, **in place** (the
    writer owns its records; callers that need the previous state take it first).
    Returns the records."""
    spans = list(records)
    by_id: dict[str, UsageRecord] = {r.span_id: r for r in spans if r.span_id}
    own: dict[int, tuple[str, ...]] = {id(r): own_values(r) for r in spans}
    resolved: dict[int, tuple[str, ...]] = {}

    def values_of(record: UsageRecord) -> tuple[str, ...]:
        """Resolved values, walking up iteratively (traces can be deep) with memoisation."""
        chain: list[UsageRecord] = []
        node: UsageRecord | None = record
        seen: set[int] = set()
        while node is not None and id(node) not in resolved and id(node) not in seen:
            seen.add(id(node))
            chain.append(node)
            parent = node.parent_span_id
            node = by_id.get(parent) if parent and parent != node.span_id else None
        above = resolved.get(id(node), _NO_VALUES) if node is not None else _NO_VALUES
        for n in reversed(chain):
            mine = own[id(n)]
            if above is not _NO_VALUES and above != mine:
                above = tuple(m or a for m, a in zip(mine, above, strict=True))
            else:
                above = mine  # a root, or the same values as its parent
            resolved[id(n)] = above
        return resolved[id(record)]

    # Which spans have an LLM descendant: walk up from every LLM span.
    has_llm_descendant: set[int] = set()
    for r in spans:
        if r.kind == "llm":
            parent = r.parent_span_id
            hops = 0
            while parent and hops < 10_000:
                node = by_id.get(parent)
                if node is None or id(node) in has_llm_descendant:
                    break  # its ancestors were marked by the walk that marked it
                has_llm_descendant.add(id(node))
                parent = node.parent_span_id
                hops += 1
    shadowed = {id(r): r.kind == "llm" and id(r) in has_llm_descendant for r in spans}
    # Same provider response reported twice (two instrumentations): keep one, preferring a
    # reported cost, then the smallest event id, so the choice does not depend on order.
    by_response: dict[str, list[UsageRecord]] = {}
    for r in spans:
        if r.kind == "llm" and r.response_id and not shadowed[id(r)]:
            by_response.setdefault(r.response_id, []).append(r)
    for group in by_response.values():
        if len(group) > 1:
            group.sort(key=lambda r: (r.cost_source != "reported", r.event_id))
            for dup in group[1:]:
                shadowed[id(dup)] = True

    for r in spans:
        mine = own[id(r)]
        values = values_of(r)
        if values != mine:
            r.inherited = tuple(
                f for f, m, v in zip(INHERITED_FIELDS, mine, values, strict=True) if v and not m
            )
            for f, v in zip(INHERITED_FIELDS, values, strict=True):
                setattr(r, f, v)
        elif r.inherited:
            r.inherited = ()
            for f, v in zip(INHERITED_FIELDS, values, strict=True):
                setattr(r, f, v)
        r.shadowed = shadowed[id(r)]
    return spans


def attribution_key(record: UsageRecord) -> tuple[object, ...]:
    """What resolve_trace may change; used to detect stored records that need rewriting."""
    return (
        tuple(getattr(record, f) for f in INHERITED_FIELDS),
        record.inherited,
        record.shadowed,
    )
