"""The global tenant selector's answer: the page it was used on, for the tenant chosen.

The selector (templates/_tenant_picker.html) sends the tenant typed or picked and the page
it sits on; the answer is a redirect to that page with ``tenant_id`` set (or, for an empty
box, removed: every tenant). Filters naming things of one tenant (a user, a session, an end
customer) and the page's cursor are dropped when the tenant changes. Pages about a tenant
or a trace move to their list when the choice is every tenant or another tenant.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Depends
from starlette.responses import RedirectResponse

from tenantscope.dashboard.login import safe_next
from tenantscope.dashboard.pages import _html
from tenantscope.dashboard.render import NO_TENANT
from tenantscope.server.strict_params import reject_unknown_params

router = APIRouter(
    include_in_schema=False, dependencies=[Depends(_html), Depends(reject_unknown_params)]
)
# not carried over to another tenant
DROPPED = ("tenant_id", "cursor", "form", "format", "table", "user_id", "session_id", "customer_id")


def target_for(next_url: str | None, tenant_id: str | None) -> str:
    """Where the selector sends a user from ``next_url`` choosing ``tenant_id`` (empty or
    None: every tenant; "(no tenant)": the tenant "")."""
    parts = urlsplit(safe_next(next_url))
    path = parts.path or "/"
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in DROPPED]
    if path.startswith("/traces/"):
        path = "/traces"  # one trace is one tenant's: the list of the one chosen
    if tenant_id:
        params.append(("tenant_id", "" if tenant_id == NO_TENANT else tenant_id))
        if path == "/":
            path = "/tenant"  # one tenant's overview is its page
    elif path == "/tenant":
        path = "/tenants"
    return path + ("?" + urlencode(params) if params else "")


@router.get("/select-tenant")
def select_tenant(tenant_id: str | None = None, next: str | None = None) -> RedirectResponse:
    return RedirectResponse(target_for(next, tenant_id), status_code=303)
