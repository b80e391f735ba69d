"""The counting rule and attribute inheritance over the spans of one trace.

``resolve_trace`` is a function of the *set* of a trace's records, so the result is the
same whatever order or batches the spans arrived in; the writer re-runs it whenever a batch
touches a trace and stores whatever changed.

- Inheritance: a span that does not carry tenant/user/session/... takes the value of its
  nearest ancestor that does (``records.INHERITED_FIELDS``). The fields it took are listed in
  ``record.inherited`` so a later re-resolution can tell them from the span's own values.
- Counting (one call, one request): an LLM record is ``shadowed`` (kept for reference, not
  counted; ``shadow_reason`` says why) when
  1. it has an LLM descendant of its tenant that carries usage, or any LLM descendant while
     it carries none itself: the most specific record counts (a manual ``set_usage`` on a
     wrapper around an auto-traced call);
  2. it carries no usage, did not fail, and an ancestor of its tenant carries the usage;
  3. it carries no usage, did not fail, and a later sibling span of its tenant for the same
     model carries the usage (Logfire reports a stream's usage on a "streaming response"
     span beside the request span); each such span answers for one call, paired in order
     of start time.
  A failed call without usage still counts, as a failed request. Records of another
  tenant never shadow a record (nor are they named in its reason).
- Copies of one provider response (two instrumentations, or one library exporting a call
  twice, possibly in two traces) are found across traces by ``ingest/duplicates.py``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable

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

    shadow = _call_shadows(spans, by_id, values_of)
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
        reason = shadow.get(id(r), "")
        r.shadowed = bool(reason)
        r.shadow_reason = reason
    return spans


def has_usage(record: UsageRecord) -> bool:
    """Whether an LLM record carries the usage of its call (token figures or a cost),
    rather than only saying a call happened (a model and an operation)."""
    return bool(
        record.usage_convention
        or record.input_tokens
        or record.output_tokens
        or record.cost_source == "reported"
    )


def _call_shadows(
    spans: list[UsageRecord],
    by_id: dict[str, UsageRecord],
    values_of: Callable[[UsageRecord], tuple[str, ...]],
) -> dict[int, str]:
    """id(record) -> why it does not count, for the LLM records of one trace that another
    record of the trace counts for (rules 1-3 of the module docstring)."""
    llm = [r for r in spans if r.kind == "llm"]
    if not llm:
        return {}
    tenant = {id(r): values_of(r)[_TENANT] for r in llm}
    usage = {id(r): has_usage(r) for r in llm}
    out: dict[int, str] = {}
    # 1 and 2: walk up from every LLM span to its LLM ancestors of the same tenant
    for r in sorted(llm, key=_order):
        parent, hops = r.parent_span_id, 0
        while parent and hops < 10_000:
            node = by_id.get(parent)
            if node is None:
                break
            hops += 1
            parent = node.parent_span_id
            if node.kind != "llm" or tenant[id(node)] != tenant[id(r)]:
                continue
            if usage[id(r)] or not usage[id(node)]:
                out.setdefault(
                    id(node), f"a more specific span of this trace counts the call ({r.span_id})"
                )
            elif r.status == "ok" and id(r) not in out:
                out[id(r)] = f"its call's usage is on the enclosing span {node.span_id}"
    # 3: usage-less calls and the usage spans beside them, paired in order
    waiting = [r for r in llm if not usage[id(r)] and r.status == "ok" and id(r) not in out]
    if waiting:
        claimed: set[int] = set()
        reporters = sorted((r for r in llm if usage[id(r)] and id(r) not in out), key=_order)
        for r in sorted(waiting, key=_order):
            for u in reporters:
                if (
                    id(u) not in claimed
                    and u.parent_span_id == r.parent_span_id
                    and tenant[id(u)] == tenant[id(r)]
                    and u.start_time >= r.start_time
                    and _same_model(r.model, u.model)
                ):
                    claimed.add(id(u))
                    out[id(r)] = f"its call's usage is on span {u.span_id} beside it"
                    break
    return out


_TENANT = INHERITED_FIELDS.index("tenant_id")


def _order(record: UsageRecord) -> tuple[object, ...]:
    return (record.start_time, record.span_id, record.event_id)


def _same_model(request: str, response: str) -> bool:
    """A request model and the model a response names: equal, or the response names a
    dated snapshot of it (gpt-4o-mini -> gpt-4o-mini-2024-07-18); unknown matches."""
    if not request or not response:
        return True
    a, b = request.lower(), response.lower()
    return a == b or b.startswith(a + "-") or a.startswith(b + "-")


def attribution_key(record: UsageRecord) -> tuple[object, ...]:
    """What resolve_trace may change; used to detect stored records that need rewriting."""
    return (
        tuple(getattr(record, f) for f in INHERITED_FIELDS),
        record.inherited,
        record.shadowed,
        record.shadow_reason,
    )
