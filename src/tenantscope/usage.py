"""Read usage back from a tenantscope server: ``get_tenant_usage`` and ``list_traces``.

These are explicit calls by the app, so unlike the rest of the SDK they raise: a server
error answer becomes ``UsageQueryError`` (with the server's ``status``, ``code`` and
``message``), a server that cannot be reached becomes ``UsageQueryError`` too (status 0).
The endpoint and API key are the ones ``tenantscope.init`` resolved, unless given here
(or, without ``init``, ``TENANTSCOPE_ENDPOINT`` / ``TENANTSCOPE_API_KEY``).

Times: a ``datetime`` (naive means UTC), an RFC 3339 string, or epoch seconds.
Money is ``Decimal``, exact to the server's nine decimal places.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from tenantscope import __version__
from tenantscope.errors import TenantscopeError
from tenantscope.sdk._config import resolve_one
from tenantscope.sdk._setup import current_config

__all__ = [
    "TenantUsage",
    "TraceList",
    "TraceSummary",
    "UsageQueryError",
    "get_tenant_usage",
    "list_traces",
]

TimeArg = datetime | str | int | float | None


class UsageQueryError(TenantscopeError):
    """The server refused the query (``status`` 4xx/5xx) or could not be reached (0)."""

    def __init__(self, message: str, *, status: int, code: str, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class TenantUsage:
    tenant_id: str
    token_count: int
    request_count: int
    session_count: int
    total_cost: Decimal
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class TraceSummary:
    trace_id: str
    name: str
    tenant_id: str
    user_id: str
    session_id: str
    start_time: datetime | None
    duration_ms: float
    spans: int
    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: Decimal | None
    status: str
    models: tuple[str, ...]


@dataclass(frozen=True)
class TraceList:
    items: tuple[TraceSummary, ...]
    next_cursor: str | None

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def get_tenant_usage(
    tenant_id: str,
    start_time: TimeArg = None,
    end_time: TimeArg = None,
    *,
    endpoint: str | None = None,
    api_key: str | None = None,
    timeout: float = 10.0,
) -> TenantUsage:
    """Tokens, requests, sessions and exact cost of one tenant between two times (default:
    the last 7 days). A tenant with no usage gets zeros."""
    path = "/api/tenants/" + urllib.parse.quote(tenant_id, safe="") + "/usage"
    body = _get(
        path,
        {"from": _time(start_time), "to": _time(end_time)},
        endpoint=endpoint,
        api_key=api_key,
        timeout=timeout,
    )
    return TenantUsage(
        tenant_id=str(body["tenant_id"]),
        token_count=int(body["token_count"]),
        request_count=int(body["request_count"]),
        session_count=int(body["session_count"]),
        total_cost=_money(body.get("total_cost")) or Decimal(0),
        start=_parse_time(body.get("start")),
        end=_parse_time(body.get("end")),
    )


def list_traces(
    tenant_id: str | None = None,
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    model: str | None = None,
    feature: str | None = None,
    status: str | None = None,
    start_time: TimeArg = None,
    end_time: TimeArg = None,
    limit: int | None = None,
    cursor: str | None = None,
    endpoint: str | None = None,
    api_key: str | None = None,
    timeout: float = 10.0,
) -> TraceList:
    """Traces, newest first, with filters; pass ``next_cursor`` back as ``cursor`` for the
    next page."""
    body = _get(
        "/api/traces",
        {
            "tenant_id": tenant_id,
            "user_id": user_id,
            "session_id": session_id,
            "model": model,
            "feature": feature,
            "status": status,
            "from": _time(start_time),
            "to": _time(end_time),
            "limit": None if limit is None else str(limit),
            "cursor": cursor,
        },
        endpoint=endpoint,
        api_key=api_key,
        timeout=timeout,
    )
    items = tuple(_trace(item) for item in body.get("items", []))
    return TraceList(items=items, next_cursor=body.get("next_cursor"))


def _trace(item: Mapping[str, Any]) -> TraceSummary:
    return TraceSummary(
        trace_id=str(item["trace_id"]),
        name=str(item.get("name", "")),
        tenant_id=str(item.get("tenant_id", "")),
        user_id=str(item.get("user_id", "")),
        session_id=str(item.get("session_id", "")),
        start_time=_parse_time(item.get("start_time")),
        duration_ms=float(item.get("duration_ms") or 0.0),
        spans=int(item.get("spans") or 0),
        requests=int(item.get("requests") or 0),
        input_tokens=int(item.get("input_tokens") or 0),
        output_tokens=int(item.get("output_tokens") or 0),
        total_tokens=int(item.get("total_tokens") or 0),
        cost_usd=_money(item.get("cost_usd")),
        status=str(item.get("status", "")),
        models=tuple(str(m) for m in item.get("models") or ()),
    )


def _get(
    path: str,
    params: Mapping[str, str | None],
    *,
    endpoint: str | None,
    api_key: str | None,
    timeout: float,
) -> dict[str, Any]:
    config = current_config()
    base = endpoint or (config.endpoint if config else resolve_one("endpoint", None, os.environ))
    key = api_key or (config.api_key if config else resolve_one("api_key", None, os.environ))
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    url = base.rstrip("/") + path + ("?" + query if query else "")
    headers = {"Accept": "application/json", "User-Agent": f"tenantscope-python/{__version__}"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise _server_error(exc) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UsageQueryError(
            f"cannot reach the tenantscope server at {base}: {reason}",
            status=0,
            code="unreachable",
        ) from None
    try:
        body = json.loads(raw)
    except ValueError:
        raise UsageQueryError(
            f"the server at {base} did not answer JSON (is it a tenantscope server?)",
            status=200,
            code="bad_response",
        ) from None
    if not isinstance(body, dict):
        raise UsageQueryError("unexpected answer from the server", status=200, code="bad_response")
    return body


def _server_error(exc: urllib.error.HTTPError) -> UsageQueryError:
    code, message, details = "http_error", f"HTTP {exc.code} {exc.reason}", None
    try:
        body = json.loads(exc.read())
        error = body["error"]
        code = str(error.get("code", code))
        message = str(error.get("message", message))
        details = error.get("details")
    except Exception:  # not our JSON error shape: keep the HTTP status line
        pass
    return UsageQueryError(
        f"{message} ({code}, HTTP {exc.code})", status=exc.code, code=code, details=details
    )


def _time(value: TimeArg) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, bool):
        raise TypeError("a time must be a datetime, an RFC 3339 string or epoch seconds")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return value
    raise TypeError("a time must be a datetime, an RFC 3339 string or epoch seconds")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _money(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None
