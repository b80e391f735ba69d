"""The API reference at ``/docs``: Swagger UI drawn from this server's OpenAPI schema.

FastAPI's own page loads Swagger UI from a CDN (a floating version, no integrity check:
third-party script on the origin of the signed-in dashboard, and a blank page offline) and
starts it with an inline script. Here the page is a template like the dashboard's, sent
with the same Content-Security-Policy; Swagger UI's files come from the installed
``fastapi-offline`` package (dashboard/assets.py) and ``static/docs.js`` starts it. ReDoc
and the OAuth2 redirect page are not served (app.py turns them off)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

from tenantscope.dashboard.render import pages

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def api_reference(request: Request) -> HTMLResponse:
    root = str(request.scope.get("root_path", ""))
    schema = f"{root}{request.app.openapi_url or '/openapi.json'}"
    return pages.render(request, "api_docs.html", openapi_url=schema)
