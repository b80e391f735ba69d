"""The anthropic SDK's own OTel spans (scope ``com.anthropic.sdk.python``), no instrumentation.

anthropic 2.x traces every API call by itself once OpenTelemetry has a global tracer provider
(``open_telemetry`` client option, default on; ``ANTHROPIC_OPEN_TELEMETRY=false`` turns it
off; content is ``metadata_only`` by default). So the app only sets an SDK TracerProvider with
an OTLP/HTTP exporter. No tenant notion: each call runs inside the app's own span with
``tenant.id`` (plain OTel tracer). The openai SDK has no spans of its own.
"""

from __future__ import annotations

import _common
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)

_common.run(make_openai=None, wrap=_common.otel_app_span, flush=provider.shutdown)
