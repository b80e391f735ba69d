"""The JSON API over a real server: conventions, every endpoint, bad parameters."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tenantscope.query.params import encode_cursor
from tests.conftest import RunningServer
from tests.query.seed import CALLS, HOSTILE, seed

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
MONEY = re.compile(r"^\d+\.\d{9,12}$")


@pytest.fixture
def api(server: RunningServer) -> Iterator[RunningServer]:
    seed(server.services)
    yield server


def get(srv: RunningServer, path: str, **params: object) -> dict:  # type: ignore[type-arg]
    resp = srv.client.get(path, params=params)
    assert resp.status_code == 200, resp.text
    body: dict = resp.json()  # type: ignore[type-arg]
    return body


def test_tenants_json_conventions(api: RunningServer) -> None:
    body = get(api, "/api/tenants", sort="cost")
    assert set(body) == {"items", "next_cursor"}
    first = body["items"][0]
    assert first["tenant_id"] == "apex-legal"
    assert first["cost_usd"] == "0.100000000"
    assert MONEY.match(first["cost_usd"])
    assert RFC3339.match(first["last_seen"])
    assert isinstance(first["input_tokens"], int)
    assert {"sessions", "traces", "requests", "error_rate", "p50_ms", "p95_ms"} <= set(first)


def test_tenant_routes(api: RunningServer) -> None:
    d = get(api, "/api/tenants/apex-legal")
    assert (
        d["config"]["sla_p95_ms"] == 2000 and d["config"]["monthly_budget_usd"] == "500.000000000"
    )
    u = get(api, "/api/tenants/apex-legal/usage")
    assert set(u) == {
        "tenant_id",
        "token_count",
        "request_count",
        "session_count",
        "total_cost",
        "start",
        "end",
    }
    assert u["total_cost"] == "0.100000000"
    # hostile ids travel safely in the path
    from urllib.parse import quote

    h = get(api, f"/api/tenants/{quote(HOSTILE, safe='')}/usage")
    assert h["tenant_id"] == HOSTILE and h["total_cost"] == "0.000000000001"
    r = api.client.get("/api/tenants/nobody")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_time_params_accept_rfc3339_and_epoch(api: RunningServer) -> None:
    import time

    now = int(time.time())
    a = get(api, "/api/tenants/apex-legal/usage", **{"from": now - 86400 * 2, "to": now + 3600})
    b = get(
        api,
        "/api/tenants/apex-legal/usage",
        **{
            "from": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 86400 * 2)),
            "to": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now + 3600)),
        },
    )
    assert a["request_count"] == b["request_count"] == 4


def test_traces_and_trace_detail(api: RunningServer) -> None:
    page = get(api, "/api/traces", tenant_id="apex-legal", limit=2)
    assert len(page["items"]) == 2 and page["next_cursor"]
    more = get(api, "/api/traces", tenant_id="apex-legal", limit=2, cursor=page["next_cursor"])
    assert len(more["items"]) == 2
    tid = page["items"][0]["trace_id"]
    detail = get(api, f"/api/traces/{tid}")
    root = detail["roots"][0]
    assert root["children"][0]["kind"] == "llm"
    assert MONEY.match(detail["cost_usd"])
    assert api.client.get("/api/traces/" + "0" * 32).status_code == 404


def test_users_sessions_breakdown_series_sla(api: RunningServer) -> None:
    users = get(api, "/api/users", tenant_id="apex-legal", sort="cost")
    assert [u["id"] for u in users["items"]] == ["bob", "alice"]
    sessions = get(api, "/api/sessions", tenant_id="apex-legal")
    assert {s["id"] for s in sessions["items"]} == {"s1", "s2"}
    bd = get(api, "/api/breakdown", by="model")
    assert bd["items"][0]["key"] == "claude-3-5-sonnet" and MONEY.match(bd["total_cost_usd"])
    for by in ("provider", "feature", "user", "workspace", "billable_action"):
        assert "items" in get(api, "/api/breakdown", by=by)
    ts = get(api, "/api/timeseries", metric="cost", interval="hour", group_by="tenant")
    assert ts["series"][0]["key"] == "apex-legal"
    assert RFC3339.match(ts["series"][0]["points"][0]["t"])
    for metric in ("tokens", "requests", "error_rate", "p95_latency"):
        assert get(api, "/api/timeseries", metric=metric, interval="day")["series"]
    sla = {r["tenant_id"]: r for r in get(api, "/api/sla")["items"]}
    assert sla["apex-legal"]["compliant"] is False


@pytest.mark.parametrize(
    ("path", "params", "needle"),
    [
        ("/api/tenants", {"sort": "color"}, "sort"),
        ("/api/tenants", {"from": "yesterday"}, "from"),
        ("/api/tenants", {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        ("/api/tenants", {"limit": 0}, "limit"),
        ("/api/tenants", {"limit": 5000}, "limit"),
        ("/api/tenants", {"cursor": "@@@"}, "cursor"),
        # hand-made cursors: an offset past 64 bits, a time at the end of datetime
        ("/api/users", {"cursor": encode_cursor({"o": 2**70})}, "cursor"),
        (
            "/api/traces",
            {"cursor": encode_cursor({"t": "9999-12-31T23:59:59.999999", "id": "f"})},
            "cursor",
        ),
        ("/api/breakdown", {"by": "color"}, "by"),
        ("/api/breakdown", {}, "by"),
        ("/api/timeseries", {"metric": "joy"}, "metric"),
        ("/api/timeseries", {"interval": "minute"}, "interval"),
        ("/api/traces", {"status": "meh"}, "status"),
    ],
)
def test_bad_parameters_are_400_with_a_message_naming_them(
    api: RunningServer, path: str, params: dict[str, object], needle: str
) -> None:
    resp = api.client.get(path, params=params)
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert needle in err["message"]


TIME_BOUNDS = "between 1970-01-01T00:00:00Z and 2200-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/timeseries", {"to": "9999-12-31T23:59:59Z"}, "to"),
        ("/api/tenants", {"to": "0001-01-02"}, "to"),
        ("/api/sessions", {"from": "0001-01-01T00:00:00Z"}, "from"),
        ("/api/tenants/apex-legal/usage", {"from": "0001-01-01T00:00:00+01:00"}, "from"),
        ("/api/tenants/apex-legal", {"to": "9999-12-31T23:59:59-01:00"}, "to"),
        ("/api/traces", {"to": "1e20"}, "to"),
        ("/api/users", {"from": "-1"}, "from"),
        ("/api/breakdown", {"by": "model", "from": "1969-12-31T23:59:59Z"}, "from"),
        ("/api/sla", {"to": "2200-01-01T00:00:01Z"}, "to"),
    ],
)
def test_out_of_range_times_are_400_naming_the_accepted_range(
    api: RunningServer, path: str, params: dict[str, str], field: str
) -> None:
    resp = api.client.get(path, params=params)
    assert resp.status_code == 400, resp.text
    message = resp.json()["error"]["message"]
    assert message.startswith(f"{field}: ") and TIME_BOUNDS in message, message
    # the connection is still good (a 500 here used to drop it)
    assert api.client.get("/api/tenants").status_code == 200


def test_the_bounds_of_the_time_range_are_accepted(api: RunningServer) -> None:
    everything = {"from": "0", "to": "2200-01-01T00:00:00Z"}
    items = get(api, "/api/tenants", **everything)["items"]
    assert sum(t["requests"] for t in items) == len(CALLS)
    days = get(api, "/api/timeseries", interval="day", **{"from": "0", "to": "1980-01-01"})
    assert len(days["series"][0]["points"]) == 3652


@pytest.mark.parametrize(
    ("path", "params", "needle"),
    [
        ("/api/traces", {"tenant": "apex-legal"}, "'tenant' (now tenant_id)"),
        ("/api/tenants", {"colour": "red"}, "'colour'"),
        ("/api/users", {"tenant_id": "apex-legal", "sort_by": "cost"}, "did you mean sort?"),
        ("/api/tenants/apex-legal/usage", {"tenant_id": "x"}, "'tenant_id'"),
        ("/api/keys", {"role": "admin"}, "/api/keys takes: none"),
    ],
)
def test_unknown_query_parameters_are_400(
    api: RunningServer, path: str, params: dict[str, str], needle: str
) -> None:
    """A parameter a route does not take is refused, never silently ignored."""
    resp = api.client.get(path, params=params)
    assert resp.status_code == 400, resp.text
    message = resp.json()["error"]["message"]
    assert message.startswith("unknown query parameter") and needle in message, message


def test_injection_payloads_are_data(api: RunningServer) -> None:
    payload = "x' OR '1'='1"
    assert get(api, "/api/traces", tenant_id=payload)["items"] == []
    assert get(api, "/api/tenants", q=payload)["items"] == []
    assert get(api, "/api/users", tenant_id="'; DROP TABLE records; --")["items"] == []
    assert get(api, "/api/tenants")["items"]


def test_health_and_openapi_document_every_route(api: RunningServer) -> None:
    assert get(api, "/healthz") == {"status": "ok"}
    links = get(api, "/api")["links"]
    assert links["tenants"] == f"{api.url}/api/tenants"
    assert get(api, "/readyz")["status"] == "ready"
    assert "tenantscope_ingest_records_total" in api.client.get("/metrics").text
    spec = get(api, "/openapi.json")
    documented = set(spec["paths"])
    from tenantscope.server.app import create_app

    routes = {
        r.path  # type: ignore[attr-defined]
        for r in create_app(services=api.services).routes
        if getattr(r, "include_in_schema", False)
    }
    assert routes <= documented
    for path in ("/v1/traces", "/v1/events", "/api/tenants/{tenant_id}/usage", "/api/sla"):
        assert path in documented
    assert api.client.get("/docs").status_code == 200
    r = api.client.get("/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
