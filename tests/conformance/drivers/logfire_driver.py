"""Pydantic Logfire: ``logfire.instrument_openai()`` and ``logfire.instrument_anthropic()``.

``logfire.configure(send_to_logfire=False, console=False, metrics=False)``; the export goes
to the receiver the way Logfire documents for other backends: ``OTEL_EXPORTER_OTLP_ENDPOINT``
(set by record.py) makes Logfire add its own ``BatchSpanProcessor(OTLPSpanExporter())``.
Tenant: ``with logfire.span("request", tenant_id=...)`` around each call, so ``tenant_id`` is
an attribute of Logfire's parent span (Logfire's own attribute mechanism).
"""

from __future__ import annotations

import _common
import logfire

logfire.configure(send_to_logfire=False, console=False, metrics=False)
logfire.instrument_openai()
logfire.instrument_anthropic()


def wrap(shape: str, tenant: str) -> object:
    return logfire.span("request", tenant_id=tenant)


_common.run(wrap=wrap, flush=logfire.shutdown)
