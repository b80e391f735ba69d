"""``Netra.start_span``: netra's span wrapper over a tenantscope span.

netra records manual usage as ``netra.usage`` (a JSON list of ``UsageModel``); here it is
also the span's tenantscope usage (model, exact reported cost, units), so the server's
counting rule treats it as any manual usage: on a wrapper around an auto-traced call the
call counts and the wrapper's figure is kept for reference only.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from enum import Enum
from types import TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from tenantscope.sdk import _spans
from tenantscope.sdk._stats import internal_error, log_once

# netra's attribute names for what has no tenantscope equivalent (kept on the span as is)
_USAGE = "netra.usage"
_PROMPT = "netra.prompt"
_NEGATIVE_PROMPT = "netra.negative_prompt"
_MODEL = "netra.model"
_LLM_SYSTEM = "netra.llm_system"  # the server reads it as the provider


class SpanType(str, Enum):
    """What a span is, as netra names it (``Netra.start_span(..., as_type=)``)."""

    SPAN = "SPAN"
    GENERATION = "GENERATION"
    TOOL = "TOOL"
    EMBEDDING = "EMBEDDING"
    AGENT = "AGENT"
    USAGE = "USAGE"


# SpanType -> tenantscope span kind; a GENERATION is a model call ("llm"): alone it counts
# as one request, around an instrumented call it is a wrapper (the call counts)
_KINDS: dict[SpanType, str] = {
    SpanType.SPAN: "span",
    SpanType.GENERATION: "llm",
    SpanType.TOOL: "tool",
    SpanType.EMBEDDING: "embedding",
    SpanType.AGENT: "agent",
    SpanType.USAGE: "span",
}


@dataclasses.dataclass
class UsageModel:
    """One entry of ``span.set_usage([...])``, with netra's fields. ``cost_in_usd`` may be
    a float (as in netra), a ``Decimal`` or a decimal string; it is kept exact."""

    model: str
    usage_type: str
    units_used: int | None = None
    cost_in_usd: float | Decimal | str | None = None

    def model_dump(self) -> dict[str, Any]:
        """The fields as a dict (netra's models are pydantic; code may call this)."""
        return dataclasses.asdict(self)


class SpanWrapper:
    """What ``Netra.start_span`` returns: use it as ``with ... as span``. Its methods
    return the wrapper (for chaining) and never raise into the app."""

    def __init__(self, name: str, attributes: Mapping[str, Any] | None, kind: str) -> None:
        self._name = name
        self._kind = kind
        # set before the block starts (netra allows it): given to the span at its start
        self._attributes: dict[str, Any] = dict(attributes or {})
        self._scope: _spans.span | None = None
        self._handle: _spans.SpanHandle | None = None

    @property
    def span(self) -> trace.Span | None:
        """The OpenTelemetry span (None outside the ``with`` block)."""
        return None if self._handle is None else self._handle.span

    def __enter__(self) -> SpanWrapper:
        self._scope = _spans.span(self._name, kind=self._kind, attributes=self._attributes)
        self._handle = self._scope.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        scope, self._scope, self._handle = self._scope, None, None
        if scope is not None:
            scope.__exit__(exc_type, exc, tb)

    def set_attribute(self, key: str, value: AttributeValue) -> SpanWrapper:
        """Set an attribute on the span."""
        if self._handle is None:
            self._attributes[key] = value
        else:
            self._handle.set_attribute(key, value)
        return self

    def set_usage(self, usage: Sequence[UsageModel]) -> SpanWrapper:
        """Record usage reported by the app: the model (when all entries share one), the
        exact sum of ``cost_in_usd`` and of ``units_used``; the entries as ``netra.usage``."""
        handle = self._handle
        if handle is None:
            return self
        try:
            entries = [u.model_dump() for u in usage]
            cost = _total_cost(entries)
            models = {str(e["model"]) for e in entries if e.get("model")}
            units = [e["units_used"] for e in entries if _is_count(e.get("units_used"))]
            handle.record_usage(
                model=models.pop() if len(models) == 1 else None,
                cost_usd=cost,
                units=sum(units) if units else None,
            )
            handle.set_attribute(_USAGE, json.dumps(entries, default=str))
        except Exception as exc:
            internal_error("set_usage", exc)
        return self

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> SpanWrapper:
        """A timestamped event on the span, e.g. ``add_event("sla-breach", {...})``."""
        if self._handle is not None:
            self._handle.add_event(name, attributes)
        return self

    def set_success(self) -> SpanWrapper:
        """Mark the span successful."""
        if self._handle is not None:
            self._handle.set_success()
        return self

    def set_error(self, error_message: str) -> SpanWrapper:
        """Mark the span failed, with a message."""
        if self._handle is not None:
            self._handle.set_error(error_message)
        return self

    def set_prompt(self, prompt: str) -> SpanWrapper:
        """Record the input prompt (``netra.prompt``)."""
        return self.set_attribute(_PROMPT, prompt)

    def set_negative_prompt(self, negative_prompt: str) -> SpanWrapper:
        """Record the negative prompt (``netra.negative_prompt``)."""
        return self.set_attribute(_NEGATIVE_PROMPT, negative_prompt)

    def set_model(self, model: str) -> SpanWrapper:
        """Record the model used (``netra.model``; usage needs ``set_usage``)."""
        return self.set_attribute(_MODEL, model)

    def set_llm_system(self, system: str) -> SpanWrapper:
        """Record the LLM provider (``netra.llm_system``, read as the provider)."""
        return self.set_attribute(_LLM_SYSTEM, system)


def start_span(
    name: str, attributes: Mapping[str, Any] | None, as_type: SpanType | None
) -> SpanWrapper:
    """A wrapper for a span of ``as_type`` (default SPAN)."""
    kind = _KINDS.get(as_type or SpanType.SPAN)
    if kind is None:
        log_once("netra:span-type", "tenantscope: start_span: unknown span type %r", as_type)
        kind = "span"
    return SpanWrapper(name, attributes, kind)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _total_cost(entries: Sequence[Mapping[str, Any]]) -> Decimal | None:
    total: Decimal | None = None
    for entry in entries:
        value = entry.get("cost_in_usd")
        if value is None:
            continue
        text = _spans.exact_cost(value)
        if text is None:
            log_once(
                "netra:usage-cost",
                "tenantscope: set_usage: cost_in_usd must be a finite, non-negative amount,"
                " got %r; ignored",
                value,
            )
            continue
        total = Decimal(text) if total is None else total + Decimal(text)
    return total
