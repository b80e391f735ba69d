"""netra-sdk: ``Netra.init(...)`` auto-instruments openai and anthropic (through the OpenLLMetry
instrumentation packages it depends on).

The endpoint is ``NETRA_OTLP_ENDPOINT`` (set by record.py to the receiver's root; Netra
appends ``/v1/traces``),
``trace_content=False``. Tenant: ``Netra.set_tenant_id(...)`` before each call (Netra's own
tenant mechanism, the one in the product's seed docs).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import _common
from netra import Netra

Netra.init(app_name="conformance-netra", environment="conformance", trace_content=False)


@contextmanager
def wrap(shape: str, tenant: str) -> Iterator[None]:
    Netra.set_tenant_id(tenant)
    yield


_common.run(wrap=wrap, flush=Netra.shutdown)
