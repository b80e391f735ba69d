"""The Jinja2 environment of the dashboard: autoescaped templates, the display filters
(money, tokens, durations, times) and the page response helper."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from tenantscope import __version__
from tenantscope.dashboard.assets import asset_version
from tenantscope.dashboard.csv_export import MAX_CSV_ROWS
from tenantscope.query.models import rfc3339
from tenantscope.semconv import describe_usage_convention
from tenantscope.server.sessions import CSRF_COOKIE, SESSION_COOKIE, new_csrf_token
from tenantscope.storage.serialize import to_utc_aware

TEMPLATES = Path(__file__).parent / "templates"
NO_TENANT = "(no tenant)"
# A confirmation shown once on the page a form's redirect leads to (POST/redirect/GET).
FLASH_COOKIE = "ts_flash"
MAX_FLASH = 500


def set_flash(response: Response, message: str) -> None:
    """Say ``message`` on the next page this browser gets (then it is gone). A cookie,
    not a URL parameter: a link cannot make a page claim that something was saved."""
    response.set_cookie(
        FLASH_COOKIE, quote(message[:MAX_FLASH], safe=""), max_age=60, httponly=True,
        samesite="strict", path="/",
    )  # fmt: skip


def money(value: Decimal | str | None) -> str:
    """Currency with sensible precision: cents from a dollar up, four places below, six
    for fractions of a cent (an LLM call often costs less than one)."""
    if value is None:
        return "—"
    d = Decimal(value)
    a = abs(d)
    if a == 0:
        return "$0.00"
    places = 2 if a >= 1 else 4 if a >= Decimal("0.01") else 6
    q = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if q == 0:
        return "<$0.000001" if d > 0 else "−<$0.000001"
    sign = "−" if q < 0 else ""
    text = f"{abs(q):,.{places}f}"
    if places == 6:  # $0.001000 reads better as $0.0010; keep significant digits only
        text = text.rstrip("0")
        text += "0" * max(0, 6 - len(text))  # at least four places: "0.0010"
    return f"{sign}${text}"


def num(value: int | float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def compact(value: int | float | Decimal | None) -> str:
    """1.2k, 3.4M: for cards and chart labels, where the exact figure is one click away."""
    if value is None:
        return "—"
    v = float(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= limit:
            return f"{v / limit:.1f}{suffix}"
    return f"{v:,.0f}"


def ms(value: float | int | None) -> str:
    if value is None:
        return "—"
    v = float(value)
    if v < 1000:
        return f"{v:.0f} ms"
    if v < 60_000:
        return f"{v / 1000:.2f} s"
    return f"{v / 60_000:.1f} min"


def pct(value: float | None, places: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.{places}f}%"


def ts(value: datetime | None) -> str:
    if value is None:
        return "—"
    return to_utc_aware(value).strftime("%Y-%m-%d %H:%M:%S")


def iso(value: datetime | None) -> str:
    return rfc3339(value) or ""


def ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "—"
    seconds = ((now or datetime.now(timezone.utc)) - to_utc_aware(value)).total_seconds()
    if seconds < 0:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


# A previous figure under this share of the current one is "nothing before": the change
# reads "new", not a percentage such as +14154037% (so at most +9900% is ever shown).
NEW_BELOW = 0.01


def delta(current: Decimal | float | int | None, previous: Decimal | float | int | None) -> str:
    """Change against the previous period, as a signed percentage; "new" when the previous
    period had under 1% of this one's (NEW_BELOW); '' when both are zero or unknown."""
    if current is None or previous is None:
        return ""
    cur, prev = float(current), float(previous)
    if abs(prev) < NEW_BELOW * abs(cur):
        return "new"
    if prev == 0:
        return ""
    change = (cur - prev) / abs(prev) * 100
    return f"{'+' if change >= 0 else '−'}{abs(change):.0f}%"


def tenant_label(tenant_id: str) -> str:
    return tenant_id if tenant_id else NO_TENANT


def segment(value: str) -> str:
    """A value as one URL path segment: every reserved character percent-encoded."""
    return quote(value, safe="")


def usage_rule(name: str) -> str:
    """What a span's ``usage_convention`` means; the name itself for one we don't know
    (a newer ingest than this dashboard)."""
    return describe_usage_convention(name) or name


def _asset_url(name: str) -> str:
    try:
        return f"/static/{name}?v={asset_version(name)}"
    except Exception:  # a missing optional asset (plotly) must not break the page
        return f"/static/{name}"


# Our pages run no inline script (chart data sits in JSON blocks, which are not executed);
# inline styles are allowed for the waterfall's bar positions and plotly's layout.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


# The configuration pages (dashboard/admin.py) and the alert pages (dashboard/alerts.py)
# are not filtered by the tenant selector: they neither show it nor carry its tenant
# (/admin/tenant's tenant_id is the one edited).
UNFILTERED_PATHS = ("/admin/", "/audit", "/alerts")


def tenant_selector_on(request: Request, principal: Any) -> bool:
    """Whether the page has the global tenant selector: for callers who see every tenant
    (a tenant key's portal is its tenant already), on the pages it filters."""
    return (
        principal is not None
        and principal.can("read_all")
        and not request.url.path.startswith(UNFILTERED_PATHS)
    )


def selected_tenant(request: Request, principal: Any) -> str | None:
    """The tenant the global selector filters every page to: ``tenant_id`` of the URL
    (present and empty: the tenant ""), None for all tenants."""
    if not tenant_selector_on(request, principal):
        return None
    return request.query_params.get("tenant_id")


class Pages:
    """Renders a page template with the values every page needs (navigation, range)."""

    def __init__(self) -> None:
        env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(("html",), default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(
            money=money,
            num=num,
            compact=compact,
            ms=ms,
            pct=pct,
            ts=ts,
            iso=iso,
            ago=ago,
            tenant_label=tenant_label,
            usage_rule=usage_rule,
            segment=segment,
        )
        env.globals.update(delta=delta, version=__version__, NO_TENANT=NO_TENANT, asset=_asset_url)
        self.env = env

    def render(
        self, request: Request, template: str, status_code: int = 200, **values: Any
    ) -> HTMLResponse:
        def url(path: str, **params: Any) -> str:
            """A dashboard link with these query parameters (empty ones left out)."""
            # "tenant_id" stays even when empty: "" is the (no tenant) tenant
            clean = {
                k: v for k, v in params.items() if v is not None and (v != "" or k == "tenant_id")
            }
            return path + ("?" + urlencode(clean) if clean else "")

        def csv_url(table: str | None = None) -> str:
            """This page's URL asking for its table as CSV (every row, from the first)."""
            params = [
                (k, v)
                for k, v in request.query_params.multi_items()
                if k not in ("cursor", "form", "format", "table")
            ]
            params += [("format", "csv"), *((("table", table),) if table else ())]
            return request.url.path + "?" + urlencode(params)

        csrf = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
        principal = getattr(request.state, "principal", None)
        flash = unquote(request.cookies.get(FLASH_COOKIE, ""))[:MAX_FLASH]
        selected = selected_tenant(request, principal)
        picked = values.get("picked")
        # what links carry from page to page: the time range and the selected tenant
        carry = {
            **(picked.params() if picked else {}),
            **({"tenant_id": selected} if selected is not None else {}),
        }
        html = self.env.get_template(template).render(
            request=request,
            url=url,
            csv_url=csv_url,
            path=request.url.path,
            csrf_token=csrf,
            principal=principal,
            signed_in=SESSION_COOKIE in request.cookies,
            flash=flash,
            selected_tenant=selected,
            picker=tenant_selector_on(request, principal),
            carry=carry,
            max_csv_rows=MAX_CSV_ROWS,
            **values,
        )
        response = HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
        if flash:
            response.delete_cookie(FLASH_COOKIE, path="/")
        if CSRF_COOKIE not in request.cookies:
            response.set_cookie(
                CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/",
                secure=request.url.scheme == "https",
            )  # fmt: skip
        return response


pages = Pages()
