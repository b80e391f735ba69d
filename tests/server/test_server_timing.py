"""Reads say how long they waited for answered records to reach the store."""

from __future__ import annotations

import re

from tests.conftest import RunningServer


def _timing(header: str) -> dict[str, float]:
    return {m[0]: float(m[1]) for m in re.findall(r"([\w-]+);dur=([\d.]+)", header)}


def test_reads_carry_server_timing_with_the_store_wait(server: RunningServer) -> None:
    sent = server.client.post(
        "/v1/events",
        json=[{"event_id": "st-1", "tenant_id": "acme", "model": "gpt-4o-mini"}],
    )
    assert sent.status_code == 200, sent.text
    for path in ("/api/tenants", "/api/traces", "/"):
        resp = server.client.get(path)
        assert resp.status_code == 200, (path, resp.text)
        timing = _timing(resp.headers["server-timing"])
        assert set(timing) == {"store-wait", "total"}, resp.headers["server-timing"]
        assert 0 <= timing["store-wait"] <= timing["total"]
    # a write or an unauthenticated answer waits for nothing and says nothing
    assert "server-timing" not in sent.headers
    assert "server-timing" not in server.client.get("/healthz").headers
