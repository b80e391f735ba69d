"""Official OTel OpenAI instrumentation (opentelemetry-instrumentation-openai-v2); OpenAI only.

Set up as its README says: an SDK TracerProvider with an OTLP/HTTP exporter, then
``OpenAIInstrumentor().instrument()``. No tenant notion: each call runs inside the app's own
span with ``tenant.id`` (plain OTel tracer). Content capture is off by default.
"""

from __future__ import annotations

import _common
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)

OpenAIInstrumentor().instrument()

_common.run(make_anthropic=None, wrap=_common.otel_app_span, flush=provider.shutdown)
