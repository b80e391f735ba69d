"""Tenant ids in URL paths. A tenant id is any string an app sends, ``/`` included, so
``/api/tenants/{tenant_id}`` and ``/api/tenants/{tenant_id}/usage`` cannot be told apart on
the decoded path: ``/api/tenants/acme%2Fusage`` (the tenant ``acme/usage``) decodes to the
usage of ``acme``. These routes read the path as it was sent instead: only a literal ``/``
separates the id from the ``/usage`` suffix, and an encoded one (``%2F``) is part of the id.

So a client that percent-encodes the id as one path segment (``quote(id, safe="")``) reaches
any tenant exactly. An unencoded ``/`` inside an id still works for the detail route
(``/api/tenants/a/b`` is the tenant ``a/b``), but an id ending in ``/usage`` must be encoded.
"""

from __future__ import annotations

from urllib.parse import unquote

from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

PREFIX = ("", "api", "tenants")
USAGE = "usage"


def split_tenant_path(scope: Scope) -> tuple[str, bool] | None:
    """(tenant id, whether the usage suffix was asked for) of a path under
    ``/api/tenants/``, or None for another path."""
    raw = scope.get("raw_path")
    # servers may leave raw_path out (ASGI makes it optional): then the decoded path
    # is all there is, and an encoded / in an id reads as a separator
    sent = raw.decode("latin-1") if raw else str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    if root and sent.startswith(root):
        sent = sent[len(root) :]
    parts = [unquote(p) for p in sent.split("/")]
    if tuple(parts[: len(PREFIX)]) != PREFIX or len(parts) <= len(PREFIX):
        return None
    rest = parts[len(PREFIX) :]
    if len(rest) > 1 and rest[-1] == USAGE:
        return "/".join(rest[:-1]), True
    return "/".join(rest), False


class TenantIdRoute(APIRoute):
    """A route under ``/api/tenants/{tenant_id:path}`` whose ``tenant_id`` is read from the
    path as sent (see the module's docstring). Declare the route with ``/usage`` at the end
    for the usage suffix, without it for the tenant itself."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is Match.NONE:
            return match, child
        found = split_tenant_path(scope)
        if found is None or found[1] != self.path.endswith("/" + USAGE):
            return Match.NONE, {}
        child["path_params"] = {**child.get("path_params", {}), "tenant_id": found[0]}
        return match, child
