"""The decoded form of one OTLP span, before normalisation into a UsageRecord."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RawSpan:
    trace_id: str  # 32 lowercase hex chars
    span_id: str  # 16 lowercase hex chars
    parent_span_id: str  # "" for a root span
    name: str
    start_ns: int  # unix epoch nanoseconds
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)
    scope_name: str = ""
    scope_version: str = ""
    status_code: int = 0  # OTLP: 0 unset, 1 ok, 2 error
    status_message: str = ""
    # each: {"name": str, "time_ns": int, "attributes": {...}}
    events: list[dict[str, Any]] = field(default_factory=list)
