"""``Netra.usage``: a tenant's usage read back from the tenantscope server.

As in netra, a failed query is logged and answered with None (the cookbook checks
``if usage:``), never raised; the figures are tenantscope's ``TenantUsage``, with
``total_cost`` an exact ``Decimal``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tenantscope.usage import TenantUsage, TimeArg

log = logging.getLogger("tenantscope.compat.netra")


class Usage:
    """Usage queries against the server ``Netra.init`` pointed at (before ``init``: the
    SDK's own endpoint and API key settings)."""

    def __init__(self, endpoint: str | None = None, api_key: str | None = None) -> None:
        self._endpoint = endpoint
        self._api_key = api_key

    def get_tenant_usage(
        self, tenant_id: str, start_time: TimeArg = None, end_time: TimeArg = None
    ) -> TenantUsage | None:
        """Tokens, requests, sessions and exact cost of one tenant between two times
        (RFC 3339 strings, datetimes or epoch seconds; default the last 7 days), or None
        when the server refuses or cannot be reached (logged)."""
        # imported here: urllib's HTTP stack is only needed once usage is asked for
        from tenantscope.usage import UsageQueryError, get_tenant_usage

        if not tenant_id:
            log.error("netra.usage: tenant_id is required to fetch tenant usage")
            return None
        try:
            return get_tenant_usage(
                tenant_id,
                start_time,
                end_time,
                endpoint=self._endpoint,
                api_key=self._api_key,
            )
        except UsageQueryError as exc:
            log.error("netra.usage: failed to fetch tenant usage %r: %s", tenant_id, exc)
            return None
