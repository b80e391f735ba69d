"""The tenantscope SDK: ``tenantscope.init(endpoint=...)``, ``tenantscope.instrument_all()``
and ``with tenantscope.context(tenant_id=...)`` around each call (its own tenant mechanism).
Content capture is off by default.
"""

from __future__ import annotations

import _common

import tenantscope

tenantscope.init(
    endpoint=_common.OTLP_ENDPOINT,
    api_key="tsi_conformance",
    service_name="conformance-tenantscope",
)
tenantscope.instrument_all()


def wrap(shape: str, tenant: str) -> object:
    return tenantscope.context(tenant_id=tenant)


_common.run(wrap=wrap, flush=tenantscope.shutdown)
