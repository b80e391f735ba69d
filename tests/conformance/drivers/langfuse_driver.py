"""Langfuse (3.x and 5.x): its OpenAI integration and an OTel Anthropic instrumentation.

As Langfuse documents: ``LANGFUSE_PUBLIC_KEY`` / ``LANGFUSE_SECRET_KEY`` / ``LANGFUSE_BASE_URL``
(and ``LANGFUSE_HOST`` for older versions) in the environment, pointing at the receiver, which
gets OTLP at ``/api/public/otel/v1/traces``. OpenAI via the drop-in ``from langfuse.openai
import OpenAI``; Anthropic via ``opentelemetry-instrumentation-anthropic`` (OpenLLMetry)
instrumented after ``get_client()`` so it uses Langfuse's tracer provider (Langfuse's
Anthropic integration page). Tenant: each call runs inside a Langfuse span ``request``
(``start_as_current_observation(as_type="span")``) and
``propagate_attributes(metadata={"tenant_id": ...})``, which puts it on every span of the
trace as ``langfuse.trace.metadata.tenant_id``.

With ``CONFORMANCE_LANGFUSE_PARENT=otel`` the parent is instead the app's own span from the
plain OTel tracer (scope ``conformance.app``, attribute ``tenant.id``), still with
``propagate_attributes``: shows whether Langfuse exports non-Langfuse parents.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import _common
from langfuse import get_client, propagate_attributes
from langfuse.openai import OpenAI
from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor

langfuse = get_client()
AnthropicInstrumentor().instrument()


def make_openai() -> OpenAI:
    return OpenAI(base_url=_common.OPENAI_BASE_URL, api_key="test-key", max_retries=0)


@contextmanager
def wrap(shape: str, tenant: str) -> Iterator[None]:
    if os.environ.get("CONFORMANCE_LANGFUSE_PARENT") == "otel":
        parent = _common.otel_app_span(shape, tenant)
    else:
        parent = langfuse.start_as_current_observation(as_type="span", name="request")
    with parent:
        with propagate_attributes(metadata={"tenant_id": tenant}):
            yield


_common.run(make_openai=make_openai, wrap=wrap, flush=langfuse.shutdown)
