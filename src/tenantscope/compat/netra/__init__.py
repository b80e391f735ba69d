"""A Netra-compatible facade over the tenantscope SDK.

Code written for netra's Python SDK runs unchanged but for its imports (and the
endpoint, a tenantscope server)::

    from tenantscope.compat.netra import Netra, SpanType, UsageModel
    from tenantscope.compat.netra.instrumentation.instruments import InstrumentSet

    Netra.init(app_name="meetingmind", headers=f"x-api-key={key}",
               instruments={InstrumentSet.OPENAI}, endpoint="http://127.0.0.1:4318")
    Netra.set_tenant_id("apex-legal")
    with Netra.start_span("meeting-summarization") as span:
        ...                                   # auto-traced OpenAI call, counted once
        span.set_usage([UsageModel(model="gpt-4o-mini", usage_type="chat",
                                   cost_in_usd=0.0004, units_used=1200)])
    Netra.usage.get_tenant_usage(tenant_id="apex-legal", start_time=..., end_time=...)

docs/sdk.md ("Porting from Netra") lists what is supported and what is not.
"""

from __future__ import annotations

from tenantscope.compat.netra._netra import Netra
from tenantscope.compat.netra._span import SpanType, UsageModel
from tenantscope.compat.netra.instrumentation.instruments import InstrumentSet, NetraInstruments

__all__ = ["InstrumentSet", "Netra", "NetraInstruments", "SpanType", "UsageModel"]
