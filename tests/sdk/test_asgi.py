"""The ASGI middleware on a real Starlette app: per-request tenant context from headers or
a resolver, never leaking between concurrent requests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

import tenantscope
from tenantscope import semconv
from tenantscope.sdk.asgi import TenantscopeMiddleware
from tests.conftest import free_port


async def whoami(request: Request) -> JSONResponse:
    # a span per request, after yielding to the loop so concurrent requests interleave
    await asyncio.sleep(float(request.query_params.get("sleep", "0")))
    with tenantscope.span("handler") as s:
        s.set_attribute("expected", request.query_params.get("expect", ""))
    return JSONResponse(tenantscope.get_context())


def sync_whoami(request: Request) -> JSONResponse:
    # sync endpoints run in a thread pool: the context must follow them there
    return JSONResponse(tenantscope.get_context())


def leak(request: Request) -> JSONResponse:
    tenantscope.set_tenant_id("set-inside-a-request")
    return JSONResponse({})


async def ws(socket: WebSocket) -> None:
    await socket.accept()
    await socket.send_json(tenantscope.get_context())
    await socket.close()


def make_app(**options: Any) -> Starlette:
    app = Starlette(
        routes=[
            Route("/", whoami),
            Route("/sync", sync_whoami),
            Route("/leak", leak),
            WebSocketRoute("/ws", ws),
        ]
    )
    app.add_middleware(TenantscopeMiddleware, **options)
    return app


def test_headers_set_the_context() -> None:
    with TestClient(make_app()) as client:
        got = client.get(
            "/", headers={"X-Tenant-Id": "apex-legal", "x-user-id": "u1", "X-Session-Id": "s"}
        ).json()
        assert got == {"tenant_id": "apex-legal", "user_id": "u1", "session_id": "s"}
        assert client.get("/sync", headers={"X-Tenant-Id": "t2"}).json() == {"tenant_id": "t2"}
        assert client.get("/").json() == {}
        # what a handler sets does not outlive its request
        client.get("/leak", headers={"X-Tenant-Id": "t3"})
        assert client.get("/").json() == {}
        with client.websocket_connect("/ws", headers={"X-Tenant-Id": "ws-tenant"}) as socket:
            assert socket.receive_json() == {"tenant_id": "ws-tenant"}


def test_customer_header_sets_the_tenants_own_customer() -> None:
    with TestClient(make_app()) as client:
        got = client.get("/", headers={"X-Tenant-Id": "acme", "X-Customer-Id": "end-42"}).json()
        assert got == {"tenant_id": "acme", "customer_id": "end-42"}
    with TestClient(make_app(customer_header=None)) as client:
        assert client.get("/", headers={"X-Customer-Id": "end-42"}).json() == {}


def test_custom_headers_and_resolver() -> None:
    def resolve(scope: Mapping[str, Any]) -> dict[str, Any]:
        # e.g. from the authenticated principal; wins over the headers
        return {"tenant_id": "from-auth", "feature": scope["path"].strip("/") or "home"}

    app = make_app(tenant_header="X-Org", workspace_header="X-Workspace", resolve=resolve)
    with TestClient(app) as client:
        got = client.get("/", headers={"X-Org": "ignored", "X-Workspace": "w9"}).json()
    assert got == {"tenant_id": "from-auth", "workspace_id": "w9", "feature": "home"}


def test_async_resolver_and_failing_resolver(caplog: pytest.LogCaptureFixture) -> None:
    async def resolve(scope: Mapping[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"tenant_id": scope["query_string"].decode().partition("=")[2], "user_id": 7}

    with TestClient(make_app(resolve=resolve)) as client:
        assert client.get("/?t=abc").json() == {"tenant_id": "abc", "user_id": "7"}

    def broken(scope: Mapping[str, Any]) -> dict[str, Any]:
        raise KeyError("no principal")

    with TestClient(make_app(resolve=broken)) as client:
        for _ in range(2):
            response = client.get("/", headers={"X-Tenant-Id": "still-from-header"})
            assert response.status_code == 200  # attribution never takes the app down
            assert response.json() == {"tenant_id": "still-from-header"}
    assert sum("resolve" in r.getMessage() for r in caplog.records) == 1


@contextmanager
def uvicorn_server(app: Starlette) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_concurrent_requests_on_uvicorn_keep_their_tenants(memory: InMemorySpanExporter) -> None:
    async def run(url: str) -> list[tuple[str, dict[str, str]]]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:

            async def one(i: int) -> tuple[str, dict[str, str]]:
                tenant = f"tenant-{i % 37}"
                response = await client.get(
                    "/",
                    params={"expect": tenant, "sleep": str((i % 5) / 1000)},
                    headers={"X-Tenant-Id": tenant, "X-User-Id": f"user-{i}"},
                )
                return tenant, response.json()

            return await asyncio.gather(*(one(i) for i in range(200)))

    with uvicorn_server(make_app()) as url:
        results = asyncio.run(run(url))
    for tenant, got in results:
        assert got["tenant_id"] == tenant
    spans = [s for s in memory.get_finished_spans() if s.name == "handler"]
    assert len(spans) == 200
    for s in spans:
        attrs = s.attributes or {}
        assert attrs[semconv.TENANT_ID] == attrs["expected"]
