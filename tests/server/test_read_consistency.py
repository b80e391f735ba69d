"""What a read waits for: its own key's answered writes, everyone's older than the read lag,
and with ``Tenantscope-Consistency: strict`` every answered write (ingest/writer.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.conftest import RunningServer, seeded_server
from tests.server.test_security import _spans


def _tenants(srv: RunningServer, key: str, **headers: str) -> set[str]:
    resp = httpx.get(
        f"{srv.url}/api/tenants",
        params={"from": "2000-01-01T00:00:00Z"},
        headers={"authorization": f"Bearer {key}", **headers},
    )
    assert resp.status_code == 200, resp.text
    return {t["tenant_id"] for t in resp.json()["items"]}


def _send(srv: RunningServer, key: str, tenant: str) -> None:
    exporter = OTLPSpanExporter(
        endpoint=f"{srv.url}/v1/traces", headers={"authorization": f"Bearer {key}"}
    )
    assert exporter.export(_spans(tenant)) is SpanExportResult.SUCCESS


def test_reads_wait_for_their_own_writes_and_strict_reads_for_all(tmp_path: Path) -> None:
    # the writer lingers a minute unless a reader waits, and others' writes may lag a minute
    with seeded_server(
        tmp_path, lambda s: None, ingest_linger_ms=60_000, read_lag_ms=60_000
    ) as srv:
        sender, other = srv.key("admin", name="sender"), srv.key("admin", name="other")
        _send(srv, sender, "rc-first")
        # another key reads at once: it does not wait for the spans answered just now
        assert "rc-first" not in _tenants(srv, other)
        # the sender's own read waits for them (and makes the writer store them now)
        assert "rc-first" in _tenants(srv, sender)
        _send(srv, sender, "rc-second")
        assert "rc-second" not in _tenants(srv, other)
        # asked to be strict, any key's read waits for every answered span
        assert "rc-second" in _tenants(srv, other, **{"Tenantscope-Consistency": "strict"})
        resp = httpx.get(
            f"{srv.url}/api/tenants",
            headers={"authorization": f"Bearer {other}", "tenantscope-consistency": "eventual"},
        )
        assert resp.status_code == 400
        assert "send 'strict'" in resp.json()["error"]["message"]


def test_with_no_read_lag_every_read_waits_for_every_answered_write(tmp_path: Path) -> None:
    with seeded_server(tmp_path, lambda s: None, ingest_linger_ms=60_000, read_lag_ms=0) as srv:
        sender, other = srv.key("admin", name="sender"), srv.key("admin", name="other")
        _send(srv, sender, "rc-strict")
        assert "rc-strict" in _tenants(srv, other)
