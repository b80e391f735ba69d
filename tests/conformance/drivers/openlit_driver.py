"""OpenLIT: ``openlit.init(...)`` auto-instruments openai and anthropic.

``otlp_endpoint`` is the receiver, ``capture_message_content=False``, metrics and events off.
OpenLIT downloads its price list from GitHub at init; without internet here it is given a
local ``openlit_pricing.json`` (same format, list prices per 1K tokens) so its
``gen_ai.usage.cost`` is what a user would see. No tenant notion: each call runs inside the
app's own span with ``tenant.id`` (plain OTel tracer). openlit 1.45.0 needs openai<3 and
anthropic<1, so this venv has older clients.
"""

from __future__ import annotations

import os

import _common
import openlit
from opentelemetry import trace

openlit.init(
    otlp_endpoint=_common.OTLP_ENDPOINT,
    application_name="conformance-openlit",
    capture_message_content=False,
    disable_metrics=True,
    disable_events=True,
    pricing_json=os.path.join(os.path.dirname(__file__), "openlit_pricing.json"),
)


def flush() -> None:
    provider = trace.get_tracer_provider()
    provider.force_flush()
    provider.shutdown()


_common.run(wrap=_common.otel_app_span, flush=flush)
