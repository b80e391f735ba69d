"""Unknown query parameters are an error, in the JSON API and on the dashboard's pages alike.

A misspelt or outdated filter that is silently ignored answers a different question than
the one asked (``/traces?tenant=acme`` once listed every tenant's traces): the caller gets a
400 naming the parameter, the nearest one the route takes and all it takes."""

from __future__ import annotations

import difflib
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request

from tenantscope.errors import BadRequest

# The dashboard's names before it took the API's (issue 11.15): old links get a pointer.
RENAMED = {
    "tenant": "tenant_id",
    "id": "tenant_id",
    "user": "user_id",
    "session": "session_id",
    "customer": "customer_id",
}
_DECLARED: dict[int, frozenset[str]] = {}
MAX_NAME = 60  # of an unknown name repeated in the message


def declared_query_params(route: APIRoute) -> frozenset[str]:
    """The query parameter names (aliases) the route and its dependencies declare."""
    names = _DECLARED.get(id(route))
    if names is None:
        names = _DECLARED[id(route)] = frozenset(_walk(route.dependant))
    return names


def _walk(dependant: Any) -> set[str]:
    names = {str(f.alias) for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _walk(sub)
    return names


def _hint(name: str, allowed: frozenset[str]) -> str:
    renamed = RENAMED.get(name)
    if renamed in allowed:
        return f" (now {renamed})"
    close = difflib.get_close_matches(name, sorted(allowed), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def reject_unknown_params(request: Request) -> None:
    """A router dependency: 400 when the URL has a query parameter its route does not take."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = declared_query_params(route)
    unknown = [name for name in dict.fromkeys(request.query_params.keys()) if name not in allowed]
    if not unknown:
        return
    named = "; ".join(f"{name[:MAX_NAME]!r}{_hint(name, allowed)}" for name in unknown[:5])
    takes = ", ".join(sorted(allowed)) or "none"
    noun = "parameter" if len(unknown) == 1 else "parameters"
    path = route.path.replace(":path}", "}")
    raise BadRequest(f"unknown query {noun} {named}; {path} takes: {takes}")
