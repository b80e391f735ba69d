"""The counting rule and attribute inheritance over the spans of one trace.

``resolve_trace`` is a pure function of the *set* of a trace's records, so the result is
the same whatever order or batches the spans arrived in; the writer re-runs it whenever a
batch touches a trace and stores whatever changed.

- Inheritance: a span that does not carry tenant/user/session/... takes the value of its
  nearest ancestor that does (``records.INHERITED_FIELDS``). The fields it took are listed in
  ``record.inherited`` so a later re-resolution can tell them from the span's own values.
- Counting: an LLM record with an LLM descendant is ``shadowed`` (the most specific record
  counts; the ancestor's figure stays for reference). Two records reporting the same provider
  response (``response_id``) count once.
"""

from __future__ import annotations

from collections.abc import Iterable

from tenantscope.records import INHERITED_FIELDS, UsageRecord


def own_value(record: UsageRecord, field: str) -> str:
    if field in record.inherited:
        return ""
    value: str = getattr(record, field)
    return value


def resolve_trace(records: Iterable[UsageRecord]) -> list[UsageRecord]:
    """Return the trace's records with inheritance and shadowing resolved (new objects
    only where something changed; unchanged records are returned as they are)."""
    spans = list(records)
    by_id: dict[str, UsageRecord] = {r.span_id: r for r in spans if r.span_id}
    own: dict[str, dict[str, str]] = {
        r.event_id: {f: own_value(r, f) for f in INHERITED_FIELDS} for r in spans
    }

    def ancestors(record: UsageRecord) -> Iterable[UsageRecord]:
        seen = {record.span_id}
        parent = record.parent_span_id
        while parent and parent not in seen:
            seen.add(parent)
            node = by_id.get(parent)
            if node is None:
                return
            yield node
            parent = node.parent_span_id

    # Which spans have an LLM descendant: walk up from every LLM span.
    has_llm_descendant: set[str] = set()
    for r in spans:
        if r.kind == "llm":
            for a in ancestors(r):
                has_llm_descendant.add(a.event_id)

    shadowed: dict[str, bool] = {
        r.event_id: r.kind == "llm" and r.event_id in has_llm_descendant for r in spans
    }
    # Same provider response reported twice (two instrumentations): keep one, preferring a
    # reported cost, then the smallest event id, so the choice does not depend on order.
    by_response: dict[str, list[UsageRecord]] = {}
    for r in spans:
        if r.kind == "llm" and r.response_id and not shadowed[r.event_id]:
            by_response.setdefault(r.response_id, []).append(r)
    for group in by_response.values():
        if len(group) > 1:
            group.sort(key=lambda r: (r.cost_source != "reported", r.event_id))
            for dup in group[1:]:
                shadowed[dup.event_id] = True

    out: list[UsageRecord] = []
    for r in spans:
        values = dict(own[r.event_id])
        inherited: list[str] = []
        missing = [f for f in INHERITED_FIELDS if not values[f]]
        if missing:
            for a in ancestors(r):
                a_own = own[a.event_id]
                for f in list(missing):
                    if a_own[f]:
                        values[f] = a_own[f]
                        inherited.append(f)
                        missing.remove(f)
                if not missing:
                    break
        new_inherited = tuple(f for f in INHERITED_FIELDS if f in inherited)
        changes: dict[str, object] = {}
        for f in INHERITED_FIELDS:
            if getattr(r, f) != values[f]:
                changes[f] = values[f]
        if r.inherited != new_inherited:
            changes["inherited"] = new_inherited
        if r.shadowed != shadowed[r.event_id]:
            changes["shadowed"] = shadowed[r.event_id]
        out.append(r.replace(**changes) if changes else r)
    return out


def attribution_key(record: UsageRecord) -> tuple[object, ...]:
    """What resolve_trace may change; used to detect stored records that need rewriting."""
    return (
        tuple(getattr(record, f) for f in INHERITED_FIELDS),
        record.inherited,
        record.shadowed,
    )
