"""Keys, sign-in, limits, headers and hostile input, against a real server.

Requests that must not count against the per-client failure limit of the others come from
their own loopback addresses (127.0.0.x), since the limit is per client address."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tenantscope.errors import ConfigError
from tenantscope.server.keys import hash_secret, split_token
from tenantscope.server.settings import Settings
from tests.conftest import RunningServer, seeded_server
from tests.server.test_access_matrix import ACME, FROM, GLOBEX, NOW, TO, seed_tenants

CSRF = "security-csrf-0123456789abcdef"
RANGE = {"from": FROM, "to": TO}


def client_from(srv: RunningServer, address: str, **kwargs: Any) -> httpx.Client:
    """A client whose requests come from this loopback address."""
    return httpx.Client(
        base_url=srv.url,
        transport=httpx.HTTPTransport(local_address=address),
        timeout=30,
        **kwargs,
    )


def jar(cookies: dict[str, str]) -> dict[str, str]:
    """A Cookie header (per-request cookies are deprecated in httpx)."""
    return {"cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data = tmp_path_factory.mktemp("security") / "data"
    with seeded_server(data, seed_tenants, max_body_bytes=256 * 1024) as running:
        yield running


@pytest.fixture
def anon(srv: RunningServer) -> Iterator[httpx.Client]:
    with client_from(srv, "127.0.0.2") as c:
        yield c


def key_id_of(token: str) -> str:
    parts = split_token(token)
    assert parts is not None
    return parts[1]


# --- keys --------------------------------------------------------------------------------------
def test_keys_are_stored_hashed(srv: RunningServer, anon: httpx.Client) -> None:
    token = srv.key("tenant", ACME.tenant_id)
    assert anon.get("/api/tenants", headers=bearer(token)).status_code == 200
    _, key_id, secret = split_token(token) or ("", "", "")
    data_dir = srv.services.settings.data_dir
    raw = b"".join(p.read_bytes() for p in sorted(data_dir.glob("config.db*")))
    assert key_id.encode() in raw  # the right file: the key is there
    assert hash_secret(secret).encode() in raw  # ...as its hash
    assert token.encode() not in raw and secret.encode() not in raw
    # and through SQL: no column holds the secret
    with sqlite3.connect(data_dir / "config.db") as db:
        rows = db.execute("SELECT * FROM api_keys").fetchall()
    assert rows and not any(secret in str(v) for row in rows for v in row)


def test_key_formats_and_mismatches_are_refused(srv: RunningServer, anon: httpx.Client) -> None:
    token = srv.key("reader")
    _, key_id, secret = split_token(token) or ("", "", "")
    assert token.startswith("tsr_")
    assert anon.get("/api/tenants", headers=bearer(token)).status_code == 200
    assert anon.get("/api/tenants", headers={"Authorization": f"bearer {token}"}).status_code == 200
    refused = [
        f"tsa_{key_id}_{secret}",  # the prefix of another role: no promotion to admin
        f"tst_{key_id}_{secret}",
        f"tsr_{key_id}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}",  # last char off
        f"tsr_{key_id}_{secret}x",  # longer
        f"tsr_{key_id}_{secret[:10]}",  # shorter
        f"tsr_{key_id}",
        f"tsr__{secret}",
        f"xyz_{key_id}_{secret}",
        secret,
        "tsr_" + "f" * 12 + "_" + secret,  # an unknown id
    ]
    for bad in refused:
        resp = anon.get("/api/tenants", headers=bearer(bad))
        assert resp.status_code == 401, (bad, resp.text)
        assert resp.headers["www-authenticate"] == "Bearer"
        assert "not valid" in resp.json()["error"]["message"]
    # non-ASCII bytes in the header: refused, not a crash
    resp = anon.get("/api/tenants", headers=[(b"authorization", b"Bearer tsr_\xe9\xff_\x80")])
    assert resp.status_code == 401


def test_x_api_key_header(srv: RunningServer, anon: httpx.Client) -> None:
    token = srv.key("tenant", ACME.tenant_id)
    resp = anon.get("/api/tenants", params=RANGE, headers={"x-api-key": token})
    assert resp.status_code == 200
    assert [r["tenant_id"] for r in resp.json()["items"]] == [ACME.tenant_id]
    assert anon.get("/api/tenants", headers={"x-api-key": "tsr_nope_nope"}).status_code == 401


def test_last_used_is_recorded(srv: RunningServer, anon: httpx.Client) -> None:
    token = srv.key("reader")
    key = srv.services.config.get_api_key(key_id_of(token))
    assert key is not None and key.last_used_at is None
    assert anon.get("/api/sla", headers=bearer(token)).status_code == 200
    key = srv.services.config.get_api_key(key_id_of(token))
    assert key is not None and key.last_used_at is not None
    listed = {k["key_id"]: k for k in srv.client.get("/api/keys").json()}
    assert listed[key_id_of(token)]["last_used_at"] is not None


def test_revocation_takes_effect(srv: RunningServer, anon: httpx.Client) -> None:
    token = srv.key("tenant", ACME.tenant_id)
    assert anon.get("/api/traces", headers=bearer(token)).status_code == 200
    # by the admin API: at once
    resp = srv.client.delete(f"/api/keys/{key_id_of(token)}")
    assert resp.status_code == 200 and resp.json()["active"] is False
    assert resp.json()["revoked_at"] is not None
    assert anon.get("/api/traces", headers=bearer(token)).status_code == 401
    assert srv.client.delete(f"/api/keys/{key_id_of(token)}").status_code == 404  # once
    # in the store (what the CLI does from another process): once the cache forgets it
    other = srv.key("reader")
    assert anon.get("/api/traces", headers=bearer(other)).status_code == 200
    assert srv.services.config.revoke_api_key(key_id_of(other))
    srv.services.keys.forget(key_id_of(other))
    assert anon.get("/api/traces", headers=bearer(other)).status_code == 401


def test_admin_key_api(srv: RunningServer, anon: httpx.Client) -> None:
    created = srv.client.post(
        "/api/keys", json={"role": "tenant", "tenant_id": GLOBEX.tenant_id, "name": "portal"}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    token = body["token"]
    assert token.startswith("tst_") and body["role"] == "tenant" and body["active"] is True
    assert body["tenant_id"] == GLOBEX.tenant_id and body["key_id"] == key_id_of(token)
    secret = split_token(token)[2]  # type: ignore[index]
    # it works, and reads its tenant only
    resp = anon.get("/api/tenants", params=RANGE, headers=bearer(token))
    assert [r["tenant_id"] for r in resp.json()["items"]] == [GLOBEX.tenant_id]
    # the list never shows a token, a secret or its hash
    listed = srv.client.get("/api/keys")
    assert listed.status_code == 200
    assert secret not in listed.text and hash_secret(secret) not in listed.text
    assert all("token" not in k and "secret_hash" not in k for k in listed.json())
    assert body["key_id"] in {k["key_id"] for k in listed.json()}
    # bad requests: clear 400s
    for bad in (
        {"role": "root"},
        {"role": "tenant"},  # a tenant key needs its tenant
        {"role": "reader", "tenant_id": ACME.tenant_id},
        {"role": "admin", "name": "x" * 500},
        {},
    ):
        resp = srv.client.post("/api/keys", json=bad)
        assert resp.status_code == 400, (bad, resp.status_code, resp.text)
        assert resp.json()["error"]["message"]
    assert srv.client.delete("/api/keys/doesnotexist").status_code == 404
    # only admin keys may manage keys
    for role, tenant in (("reader", None), ("tenant", ACME.tenant_id), ("ingest", None)):
        other = srv.key(role, tenant)
        for method, path in (("GET", "/api/keys"), ("POST", "/api/keys")):
            resp = anon.request(method, path, headers=bearer(other), json={"role": "admin"})
            assert resp.status_code == 403, (role, method, resp.text)
        assert anon.delete(f"/api/keys/{body['key_id']}", headers=bearer(other)).status_code == 403
    assert anon.get("/api/keys").status_code == 401
    still = anon.get("/api/tenants", headers=bearer(token))
    assert still.status_code == 200  # none of the refused revocations went through


def test_the_last_admin_key_cannot_be_revoked(tmp_path: Path) -> None:
    """Revoking the only active admin key (even with that key) would lock the operator
    out: refused with a 409 that says what to do, and the key keeps working."""
    with seeded_server(tmp_path / "data", seed_tenants) as running:
        c = running.client  # signed with the server's one admin key
        own = key_id_of(running.admin_key)
        assert [k["key_id"] for k in c.get("/api/keys").json() if k["role"] == "admin"] == [own]
        resp = c.delete(f"/api/keys/{own}")
        assert resp.status_code == 409, resp.text
        error = resp.json()["error"]
        assert error["code"] == "conflict"
        assert "last active admin key" in error["message"]
        assert "keys create --role admin" in error["message"]  # what to do instead
        assert c.get("/api/keys").status_code == 200  # still works
        # other keys may go while one admin key stays
        reader = key_id_of(running.key("reader"))
        assert c.delete(f"/api/keys/{reader}").status_code == 200
        # with a second admin key, the first may revoke itself (rotation)...
        second = c.post("/api/keys", json={"role": "admin", "name": "next"}).json()["token"]
        assert c.delete(f"/api/keys/{own}").status_code == 200
        assert c.get("/api/keys").status_code == 401
        # ...and the new one is now the last
        with httpx.Client(base_url=running.url, headers=bearer(second)) as new:
            resp = new.delete(f"/api/keys/{key_id_of(second)}")
            assert resp.status_code == 409 and "last active admin key" in resp.text
            assert new.get("/api/keys").status_code == 200


def test_anonymous_key_api_is_refused_before_the_body_is_read(anon: httpx.Client) -> None:
    resp = anon.post(
        "/api/keys", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 401, resp.text


# --- OTLP exporters ----------------------------------------------------------------------------
def _spans(tenant: str) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("security-test")
    with tracer.start_as_current_span("chat otel-exporter") as span:
        span.set_attribute("tenant.id", tenant)
        span.set_attribute("gen_ai.request.model", "gpt-4o")
        span.set_attribute("gen_ai.usage.input_tokens", 7)
        span.set_attribute("gen_ai.usage.output_tokens", 3)
    provider.shutdown()
    return list(memory.get_finished_spans())


def _stored_traces(srv: RunningServer, tenant: str) -> set[str]:
    # spans sent with another key: a read waits for them when it asks to be strict
    resp = srv.client.get(
        "/api/traces",
        params={"tenant_id": tenant, "limit": 1000},
        headers={"tenantscope-consistency": "strict"},
    )
    assert resp.status_code == 200
    return {t["trace_id"] for t in resp.json()["items"]}


def test_otlp_exporter_with_headers(srv: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    token = srv.key("ingest")
    endpoint = f"{srv.url}/v1/traces"
    spans = _spans("otel-headers-tenant")
    good = OTLPSpanExporter(endpoint=endpoint, headers={"authorization": f"Bearer {token}"})
    assert good.export(spans) is SpanExportResult.SUCCESS
    trace_id = format(spans[0].context.trace_id, "032x")
    assert trace_id in _stored_traces(srv, "otel-headers-tenant")
    # the standard environment variable, as OTEL_EXPORTER_OTLP_HEADERS=x-api-key=<key>
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-api-key={token}")
    spans = _spans("otel-env-tenant")
    assert OTLPSpanExporter().export(spans) is SpanExportResult.SUCCESS
    assert format(spans[0].context.trace_id, "032x") in _stored_traces(srv, "otel-env-tenant")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer%20{token}")
    assert OTLPSpanExporter().export(_spans("otel-env-tenant")) is SpanExportResult.SUCCESS
    # without a key, or with a reader key, the export fails
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_HEADERS")
    spans = _spans("otel-refused-tenant")
    assert OTLPSpanExporter(endpoint=endpoint).export(spans) is SpanExportResult.FAILURE
    reader = OTLPSpanExporter(endpoint=endpoint, headers={"x-api-key": srv.key("reader")})
    assert reader.export(spans) is SpanExportResult.FAILURE
    assert _stored_traces(srv, "otel-refused-tenant") == set()


# --- tenant-bound ingest keys ------------------------------------------------------------------
def _event(event_id: str, tenant: str | None, **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "event_id": event_id,
        "model": "gpt-4o",
        "input_tokens": 5,
        "output_tokens": 1,
        "timestamp": (NOW - timedelta(hours=1)).isoformat(),
        **more,
    }
    if tenant is not None:
        out["tenant_id"] = tenant
    return out


def test_bound_ingest_key_events(srv: RunningServer, anon: httpx.Client) -> None:
    token = srv.key("ingest", ACME.tenant_id)
    resp = anon.post(
        "/v1/events",
        headers=bearer(token),
        json=[
            _event("bound-ev-own", ACME.tenant_id, user_id="bound-user-own"),
            _event("bound-ev-foreign", GLOBEX.tenant_id, user_id="bound-user-foreign"),
            _event("bound-ev-none", None, user_id="bound-user-none"),
        ],
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["accepted"] == 2 and body["rejected"] == 1
    (err,) = body["errors"]
    assert err["field"] == "tenant_id"
    assert f"writes tenant {ACME.tenant_id!r} only" in err["message"]
    assert GLOBEX.tenant_id in err["message"]
    users = srv.client.get("/api/users", params={**RANGE, "tenant_id": ACME.tenant_id})
    ids = {u["id"] for u in users.json()["items"]}
    assert {"bound-user-own", "bound-user-none"} <= ids  # no tenant: the bound one
    globex = srv.client.get("/api/users", params={**RANGE, "tenant_id": GLOBEX.tenant_id})
    assert "bound-user-foreign" not in globex.text
    # a batch of nothing but another tenant's events: a 400 that says why
    resp = anon.post(
        "/v1/events", headers=bearer(token), json=[_event("bound-ev-2", GLOBEX.tenant_id)]
    )
    assert resp.status_code == 400
    assert f"writes tenant {ACME.tenant_id!r} only" in resp.json()["error"]["message"]


def _otlp_request(spans: list[tuple[str, str | None]]) -> bytes:
    """An ExportTraceServiceRequest with one span per (name, tenant)."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    start = int((NOW - timedelta(hours=1)).timestamp() * 1e9)
    for i, (name, tenant) in enumerate(spans):
        s = scope.spans.add()
        s.trace_id = bytes.fromhex(f"5ec0{i:028x}")
        s.span_id = bytes.fromhex(f"{i + 1:016x}")
        s.name = name
        s.start_time_unix_nano = start
        s.end_time_unix_nano = start + 1_000_000
        s.attributes.append(KeyValue(key="gen_ai.request.model", value=AnyValue(string_value="m")))
        if tenant is not None:
            s.attributes.append(KeyValue(key="tenant.id", value=AnyValue(string_value=tenant)))
    encoded: bytes = req.SerializeToString()
    return encoded


def test_bound_ingest_key_spans(srv: RunningServer, anon: httpx.Client) -> None:
    token = srv.key("ingest", GLOBEX.tenant_id)
    body = _otlp_request(
        [("bound-own", GLOBEX.tenant_id), ("bound-foreign", ACME.tenant_id), ("bound-none", None)]
    )
    resp = anon.post(
        "/v1/traces",
        content=body,
        headers={**bearer(token), "content-type": "application/x-protobuf"},
    )
    assert resp.status_code == 200, resp.text
    answer = ExportTraceServiceResponse.FromString(resp.content)
    assert answer.partial_success.rejected_spans == 1
    message = answer.partial_success.error_message
    assert f"writes tenant {GLOBEX.tenant_id!r} only" in message and ACME.tenant_id in message
    traces = srv.client.get("/api/traces", params={**RANGE, "limit": 1000}).json()["items"]
    by_name = {t["name"]: t["tenant_id"] for t in traces if t["name"].startswith("bound-")}
    assert by_name == {"bound-own": GLOBEX.tenant_id, "bound-none": GLOBEX.tenant_id}


def test_bound_ingest_key_cannot_touch_another_tenants_trace(
    srv: RunningServer, anon: httpx.Client
) -> None:
    ts = (NOW - timedelta(minutes=30)).isoformat()
    trace = "b0b0b0b0" + "e" * 24
    # globex's trace: its root carries the tenant, the LLM call inherits it
    seeded = srv.client.post(
        "/v1/events",
        json=[
            _event("gx-root", GLOBEX.tenant_id, trace_id=trace, span_id="a" * 16, timestamp=ts),
            {
                **_event("gx-llm", None, trace_id=trace, span_id="b" * 16, timestamp=ts),
                "parent_span_id": "a" * 16,
                "cost_usd": "0.5",
            },
        ],
    )
    assert seeded.json()["accepted"] == 2, seeded.text
    before = srv.client.get(f"/api/tenants/{GLOBEX.tenant_id}/usage", params=RANGE).json()
    acme_ingest = srv.key("ingest", ACME.tenant_id)
    attacks = [
        # a span with globex's root span id: globex's LLM call now inherits acme
        {"event_id": "atk-reuse", "trace_id": trace, "span_id": "a" * 16, "timestamp": ts},
        # an LLM call under globex's LLM call: globex's is shadowed (no longer counted)
        {
            **_event("atk-child", None, trace_id=trace, span_id="c" * 16, timestamp=ts),
            "parent_span_id": "b" * 16,
            "cost_usd": "0",
        },
    ]
    for attack in attacks:
        resp = anon.post("/v1/events", headers=bearer(acme_ingest), json=[attack])
        assert resp.status_code in (200, 400), resp.text
    after = srv.client.get(f"/api/tenants/{GLOBEX.tenant_id}/usage", params=RANGE).json()
    assert after == before
    acme_reader = srv.key("tenant", ACME.tenant_id)
    seen = anon.get(f"/api/traces/{trace}", headers=bearer(acme_reader))
    assert "gx-llm" not in seen.text


# --- the failure limit -------------------------------------------------------------------------
def _sign_in(c: httpx.Client, key: str, **headers: str) -> httpx.Response:
    resp = c.post(
        "/login", data={"key": key, "csrf": CSRF}, headers={**jar({"ts_csrf": CSRF}), **headers}
    )
    c.cookies.clear()
    return resp


def test_bad_keys_are_rate_limited_per_client(srv: RunningServer) -> None:
    """Past 20 failures a minute, a client's failed attempts get 429 (with Retry-After);
    its valid keys still work, on the API and at sign-in: the limit charges failures, not
    use (an app and a person behind one address are not locked out by a guesser)."""
    good = srv.key("reader")
    with client_from(srv, "127.0.0.3") as attacker, client_from(srv, "127.0.0.4") as bystander:
        for i in range(20):
            resp = attacker.get("/api/tenants", headers=bearer(f"tsr_guess{i}_wrong"))
            assert resp.status_code == 401, (i, resp.text)
        resp = attacker.get("/api/tenants", headers=bearer("tsr_guess_again"))
        assert resp.status_code == 429
        assert 1 <= int(resp.headers["retry-after"]) <= 61
        assert "too many" in resp.json()["error"]["message"]
        # a valid key from that address still works, on the API and at sign-in
        assert attacker.get("/api/tenants", headers=bearer(good)).status_code == 200
        assert _sign_in(attacker, good).status_code == 303
        # a failed sign-in from there is limited, and says when to come back
        login = _sign_in(attacker, "tsr_nope_nope")
        assert login.status_code == 429 and 1 <= int(login.headers["retry-after"]) <= 61
        # other clients are not affected
        assert bystander.get("/api/tenants", headers=bearer(good)).status_code == 200
        assert bystander.get("/api/tenants", headers=bearer("tsr_x_y")).status_code == 401


def test_failed_sign_ins_are_rate_limited(srv: RunningServer) -> None:
    good = srv.key("admin")
    with client_from(srv, "127.0.0.5") as c:
        for i in range(20):
            assert _sign_in(c, f"tsa_x{i}_y").status_code == 401, i
        resp = _sign_in(c, "tsa_one_more")
        assert resp.status_code == 429
        assert "too many" in resp.text
        assert 1 <= int(resp.headers["retry-after"]) <= 61  # like the API's 429
        # the right key signs in all the same
        assert _sign_in(c, good).status_code == 303


def test_guessing_one_keys_secret_locks_that_key_from_that_address(srv: RunningServer) -> None:
    """No oracle for the key being guessed: after 20 wrong secrets for one key id from one
    address, that key is refused from there (valid or not) for the window. Other keys from
    that address, and that key from elsewhere, still work."""
    target = srv.key("reader")
    _, key_id, secret = split_token(target) or ("", "", "")
    other = srv.key("reader")
    with client_from(srv, "127.0.0.10") as attacker, client_from(srv, "127.0.0.11") as owner:
        for i in range(20):
            wrong = f"tsr_{key_id}_{secret[:-4]}{i:04d}"
            assert attacker.get("/api/sla", headers=bearer(wrong)).status_code == 401, i
        resp = attacker.get("/api/sla", headers=bearer(target))
        assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
        assert _sign_in(attacker, target).status_code == 429
        assert attacker.get("/api/sla", headers=bearer(other)).status_code == 200
        assert owner.get("/api/sla", headers=bearer(target)).status_code == 200


def test_forwarded_for_from_an_untrusted_client_is_ignored(tmp_path: Path) -> None:
    """No proxy is trusted by default (not even a loopback one): a client rotating
    X-Forwarded-For is still one client, and cannot spend another address's budget."""
    with seeded_server(tmp_path / "data", seed_tenants) as running:
        assert running.services.settings.trusted_proxies == ()
        good = running.key("reader")
        with httpx.Client(base_url=running.url) as rotating:  # from 127.0.0.1
            for i in range(20):
                forged = {"x-forwarded-for": f"198.51.100.{i}"}
                resp = rotating.get("/api/sla", headers={**bearer(f"tsr_{i}_x"), **forged})
                assert resp.status_code == 401, i
            resp = rotating.get(
                "/api/sla", headers={**bearer("tsr_z_z"), "x-forwarded-for": "198.51.100.99"}
            )
            assert resp.status_code == 429
            # nor does a forged scheme make the session cookie Secure-only
            login = _sign_in(rotating, good, **{"x-forwarded-proto": "https"})
            assert login.status_code == 303 and "secure" not in login.headers["set-cookie"].lower()


def test_behind_a_trusted_proxy_each_real_client_has_its_own_budget(tmp_path: Path) -> None:
    """With TENANTSCOPE_TRUSTED_PROXIES naming the proxy, the client is the address the
    proxy appended to X-Forwarded-For (the rightmost untrusted one): what a client puts in
    the header itself neither rotates its budget nor spends another client's."""
    proxy = "127.0.0.30"
    with seeded_server(tmp_path / "data", seed_tenants, trusted_proxies=(proxy,)) as running:
        good = running.key("reader")
        attacker, victim = "203.0.113.7", "198.51.100.9"
        with client_from(running, proxy) as via_proxy, client_from(running, "127.0.0.31") as direct:

            def get(token: str, forwarded: str, c: httpx.Client = via_proxy) -> httpx.Response:
                return c.get("/api/sla", headers={**bearer(token), "x-forwarded-for": forwarded})

            # the attacker sends its own X-Forwarded-For (a rotating one, the victim's);
            # the proxy appends the attacker's real address
            for i in range(10):
                assert get(f"tsr_{i}_x", f"192.0.2.{i}, {attacker}").status_code == 401
            for i in range(10):
                assert get(f"tsr_{i}_y", f"{victim}, {attacker}").status_code == 401
            assert get("tsr_last_x", f"192.0.2.200, {attacker}").status_code == 429
            # the victim behind the same proxy has its whole budget and its keys work
            assert get("tsr_v_x", victim).status_code == 401
            assert get(good, victim).status_code == 200
            # and the scheme the proxy saw counts: the session cookie is Secure
            login = _sign_in(
                via_proxy, good, **{"x-forwarded-for": victim, "x-forwarded-proto": "https"}
            )
            assert login.status_code == 303 and "secure" in login.headers["set-cookie"].lower()
            # a client that is not the proxy cannot claim to be someone else
            for i in range(20):
                assert get(f"tsr_{i}_d", victim, direct).status_code == 401
            assert get("tsr_d_d", attacker, direct).status_code == 429
            assert get("tsr_v_again", victim).status_code == 401  # the victim is untouched


# --- sign-in -----------------------------------------------------------------------------------
def _login(c: httpx.Client, key: str, nxt: str | None = None, csrf: str | None = CSRF) -> Any:
    data = {"key": key}
    if csrf is not None:
        data["csrf"] = csrf
    if nxt is not None:
        data["next"] = nxt
    resp = c.post("/login", data=data, headers={"cookie": f"ts_csrf={CSRF}"})
    c.cookies.clear()
    return resp


@pytest.fixture
def browserless(srv: RunningServer) -> Iterator[httpx.Client]:
    with client_from(srv, "127.0.0.6") as c:
        yield c


def test_sign_in_sets_a_safe_cookie(srv: RunningServer, browserless: httpx.Client) -> None:
    token = srv.key("tenant", ACME.tenant_id)
    page = browserless.get("/login")
    assert page.status_code == 200
    csrf_cookie = page.headers["set-cookie"]
    assert "ts_csrf=" in csrf_cookie and "HttpOnly" in csrf_cookie
    browserless.cookies.clear()
    resp = _login(browserless, token, "/traces")
    assert resp.status_code == 303 and resp.headers["location"] == "/traces"
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith("ts_session=")
    assert "HttpOnly" in cookie and re.search(r"SameSite=lax", cookie, re.I)
    assert "Path=/" in cookie and "Max-Age=" in cookie
    value = resp.cookies["ts_session"]
    assert token not in cookie and split_token(token)[2] not in value  # type: ignore[index]
    # the session reads the tenant's own data
    api = browserless.get("/api/tenants", params=RANGE, headers=jar({"ts_session": value}))
    assert [t["tenant_id"] for t in api.json()["items"]] == [ACME.tenant_id]
    # but it is no key for writes: no cross-site request can use it
    post = browserless.post(
        "/api/keys", json={"role": "admin"}, headers=jar({"ts_session": value, "ts_csrf": CSRF})
    )
    assert post.status_code == 401
    browserless.cookies.clear()


def test_sign_in_refusals(srv: RunningServer, browserless: httpx.Client) -> None:
    ingest = srv.key("ingest")
    resp = _login(browserless, ingest)
    assert resp.status_code == 401 and "ts_session" not in resp.headers.get("set-cookie", "")
    assert "ingest key can only send data" in resp.text
    resp = _login(browserless, "tsa_nothing_here")
    assert resp.status_code == 401 and "not valid" in resp.text
    assert "ts_session" not in resp.headers.get("set-cookie", "")
    good = srv.key("admin")
    # CSRF: missing, or not matching the cookie
    assert _login(browserless, good, csrf=None).status_code == 403
    assert _login(browserless, good, csrf="something-else").status_code == 403
    no_cookie = browserless.post("/login", data={"key": good, "csrf": CSRF})
    assert no_cookie.status_code == 403
    assert "reload the page" in no_cookie.text


def test_forged_expired_and_revoked_sessions_are_ignored(
    srv: RunningServer, browserless: httpx.Client
) -> None:
    token = srv.key("admin")
    key_id = key_id_of(token)
    signer = srv.services.sessions
    valid = signer.make(key_id)
    assert browserless.get("/tenants", headers=jar({"ts_session": valid})).status_code == 200
    kid, expires, sid, sig = valid.split(".")
    other_kid = key_id_of(srv.key("reader"))
    forged = [
        f"{kid}.{int(expires) + 999999}.{sid}.{sig}",  # a longer life, same signature
        f"{other_kid}.{expires}.{sid}.{sig}",  # another key id
        f"{kid}.{expires}.{'0' if sid[0] != '0' else '1'}{sid[1:]}.{sig}",  # another session id
        # another signature: the first character carries six whole bits, so this always
        # changes the signed bytes (the last one holds padding bits a decoder may ignore)
        f"{kid}.{expires}.{sid}.{'B' if sig[0] == 'A' else 'A'}{sig[1:]}",
        f"{kid}.{expires}.{sid}",
        "garbage",
        "",
        signer.make(key_id, seconds=-5),  # expired
        signer.make("no-such-key"),  # signed, but no such key
    ]
    for cookie in forged:
        page = browserless.get("/tenants", headers=jar({"ts_session": cookie}))
        assert page.status_code == 303, cookie
        assert page.headers["location"].startswith("/login?next=")
        api = browserless.get("/api/tenants", headers=jar({"ts_session": cookie}))
        assert api.status_code == 401, cookie
    browserless.cookies.clear()
    # a revoked key's session ends with it
    srv.client.delete(f"/api/keys/{key_id}")
    assert browserless.get("/tenants", headers=jar({"ts_session": valid})).status_code == 303
    browserless.cookies.clear()


def test_sign_out(srv: RunningServer, browserless: httpx.Client) -> None:
    token = srv.key("reader")
    session = _login(browserless, token).cookies["ts_session"]
    cookies = {"ts_session": session, "ts_csrf": CSRF}
    # without the form's CSRF token: refused
    assert browserless.post("/logout", headers=jar(cookies)).status_code == 403
    resp = browserless.post("/logout", data={"csrf": CSRF}, headers=jar(cookies))
    assert resp.status_code == 303 and resp.headers["location"] == "/login"
    cleared = resp.headers["set-cookie"]
    assert cleared.startswith("ts_session=") and re.search(
        r"Max-Age=0|expires=Thu, 01 Jan 1970", cleared
    )
    browserless.cookies.clear()
    # a copy of the signed-out cookie no longer works, on this server or after a restart
    copied = browserless.get("/tenants", headers=jar({"ts_session": session}))
    assert copied.status_code == 303
    browserless.cookies.clear()
    from tenantscope.server.sessions import REVOKED_FILE, SessionSigner, load_secret

    data = srv.services.settings.data_dir
    restarted = SessionSigner(load_secret(data), data / REVOKED_FILE)
    assert restarted.read(session) is None
    assert restarted.read(restarted.make("any-key")) == "any-key"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "//evil.com/x",
        "https://evil.com",
        "http://evil.com/login",
        "/\\evil.com",
        "\\\\evil.com",
        "/\t/evil.com",
        "javascript:alert(1)",
        "evil.com",
        "///evil.com",
    ],
)
def test_no_open_redirect(srv: RunningServer, browserless: httpx.Client, target: str) -> None:
    token = srv.key("reader")
    resp = _login(browserless, token, target)
    assert resp.status_code == 303
    location = resp.headers["location"]
    assert _stays_here(location), location
    # signed in already, the login page sends on to next= too
    session = resp.cookies["ts_session"]
    again = browserless.get("/login", params={"next": target}, headers=jar({"ts_session": session}))
    assert again.status_code == 303 and _stays_here(again.headers["location"])
    # the login form carries next= along to the POST above, where it is checked again
    page = browserless.get("/login", params={"next": target})
    assert re.search(r'name="next" value="/', page.text)
    browserless.cookies.clear()


def _stays_here(location: str) -> bool:
    """A browser would stay on this server: a path, not //host or a scheme."""
    cleaned = re.sub(r"[\t\n\r]", "", location)  # browsers drop these from URLs
    return cleaned.startswith("/") and not cleaned.startswith(("//", "/\\"))


def test_local_next_is_kept(srv: RunningServer, browserless: httpx.Client) -> None:
    resp = _login(browserless, srv.key("reader"), "/traces?tenant_id=acme-own&range=24h")
    assert resp.headers["location"] == "/traces?tenant_id=acme-own&range=24h"


def test_anonymous_page_is_sent_to_sign_in_and_back(browserless: httpx.Client) -> None:
    resp = browserless.get("/traces", params={"tenant_id": "acme-own", "range": "24h"})
    assert resp.status_code == 303
    assert resp.headers["location"] == "/login?next=" + quote(
        "/traces?tenant_id=acme-own&range=24h", safe=""
    )


# --- headers -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    ["/", "/tenants", "/traces", "/sla", "/prices", "/tenant?tenant_id=nope", "/login", "/nope"],
)
def test_security_headers_on_html(srv: RunningServer, anon: httpx.Client, path: str) -> None:
    headers = {"accept": "text/html"}
    if path != "/login":  # signed in, the login page sends on
        headers["authorization"] = f"Bearer {srv.admin_key}"
    resp = anon.get(path, headers=headers)
    assert resp.headers["content-type"].startswith("text/html"), (path, resp.status_code)
    csp = resp.headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in directives["script-src"]
    assert "'unsafe-eval'" not in " ".join(directives.get("default-src", []))
    assert directives["frame-ancestors"] == ["'none'"]
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "DENY"
    # the pages keep the CSP's promise: no inline script that would need an exception
    for attrs in re.findall(r"<script([^>]*)>", resp.text):
        assert "src=" in attrs or "application/json" in attrs, attrs
    assert not re.search(r"\son[a-z]+=", resp.text)  # no inline event handlers


def test_health_answers_head(anon: httpx.Client, srv: RunningServer) -> None:
    """Load balancers probe with HEAD: 200, and no body."""
    for path in ("/healthz", "/readyz"):
        resp = anon.head(path)
        assert resp.status_code == 200, (path, resp.status_code)
        assert resp.content == b""
        with _raw(srv.url) as sock:
            sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
            answer, _ = _until_closed(sock, 10)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and body == b"", answer
    assert anon.get("/healthz").json() == {"status": "ok"}  # GET unchanged


def test_answers_other_than_static_files_are_not_stored(
    srv: RunningServer, anon: httpx.Client, browserless: httpx.Client
) -> None:
    """Tenants' figures and key tokens must not sit in a browser's or a proxy's cache:
    every answer says Cache-Control: no-store, errors included; static files (hashed
    URLs) are cached for good."""
    token = srv.key("reader")
    answers = {
        "api": anon.get("/api/tenants", params=RANGE, headers=bearer(token)),
        "api index": anon.get("/api", headers=bearer(token)),
        "api 401": anon.get("/api/tenants"),
        "api 404": anon.get("/api/nope", headers=bearer(token)),
        "api 400": anon.get("/api/tenants", params={"sort": "x"}, headers=bearer(token)),
        "keys list": srv.client.get("/api/keys"),
        "key created": srv.client.post("/api/keys", json={"role": "reader", "name": "cache"}),
        "events": srv.client.post("/v1/events", json=[_event("no-store-1", ACME.tenant_id)]),
        "usage": anon.get(f"/api/tenants/{ACME.tenant_id}/usage", headers=bearer(token)),
        "sign-in": _sign_in(browserless, token),
        "failed sign-in": _sign_in(browserless, "tsr_x_y"),
        "sign-out": browserless.post(
            "/logout", data={"csrf": CSRF}, headers=jar({"ts_csrf": CSRF})
        ),
        "openapi": anon.get("/openapi.json"),
        "healthz": anon.get("/healthz"),
        "metrics": srv.client.get("/metrics"),
    }
    browserless.cookies.clear()
    for what, resp in answers.items():
        assert resp.status_code < 500, (what, resp.status_code)
        assert resp.headers.get("cache-control") == "no-store", (what, resp.headers)
    static = anon.get("/static/app.js")
    assert "no-store" not in static.headers["cache-control"]
    assert "immutable" in static.headers["cache-control"]


# --- the API reference -------------------------------------------------------------------------
def _csp(resp: httpx.Response) -> dict[str, list[str]]:
    csp = resp.headers["content-security-policy"]
    return {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}


def test_api_reference_uses_only_this_server(anon: httpx.Client) -> None:
    """/docs is Swagger UI from an installed package, served from /static under the
    dashboard's policy: no CDN, no third-party script on this origin, works offline."""
    resp = anon.get("/docs")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    refs = re.findall(r'(?:src|href)="([^"]*)"', resp.text)
    assert refs, resp.text
    here = [r for r in refs if not r.startswith("data:")]  # the favicon is inline
    assert all(r.startswith("/") and not r.startswith("//") for r in here), refs
    outside = re.sub(r'"data:[^"]*"', '""', resp.text)  # an SVG names its namespace URL
    assert "http://" not in outside and "https://" not in outside
    # no inline script: the page keeps the policy it is sent with
    for attrs in re.findall(r"<script([^>]*)>", resp.text):
        assert "src=" in attrs, attrs
    directives = _csp(resp)
    for name in ("default-src", "script-src", "connect-src", "img-src", "style-src"):
        sources = directives[name]
        assert all(s in ("'self'", "'unsafe-inline'", "data:") for s in sources), (name, sources)
    assert directives["script-src"] == ["'self'"] and directives["frame-ancestors"] == ["'none'"]
    assert resp.headers["x-frame-options"] == "DENY"
    # every asset it names is here, with the right type
    types = {".js": "text/javascript", ".css": "text/css"}
    assets = [r for r in here if r.startswith("/static/")]
    assert {r.split("?")[0].rsplit(".", 1)[-1] for r in assets} >= {"js", "css"}
    for ref in assets:
        got = anon.get(ref)
        assert got.status_code == 200, ref
        kind = types["." + ref.split("?")[0].rsplit(".", 1)[-1]]
        assert got.headers["content-type"].startswith(kind), (ref, got.headers["content-type"])
        assert got.headers["x-content-type-options"] == "nosniff"
    assert any("swagger-ui" in r for r in assets)
    # the page reads the schema from this server
    assert anon.get("/openapi.json").status_code == 200


def test_no_other_api_reference_loads_from_a_cdn(anon: httpx.Client) -> None:
    """ReDoc (which FastAPI would load from a CDN, with Google Fonts) and Swagger's
    OAuth2 redirect page (inline script; no OAuth2 here) are not served."""
    for path in ("/redoc", "/docs/oauth2-redirect"):
        resp = anon.get(path)
        assert resp.status_code == 404, (path, resp.status_code)
        assert "cdn." not in resp.text and "googleapis" not in resp.text


# --- hostile input -----------------------------------------------------------------------------
HOSTILE = [
    "<script>alert('x')</script>",
    "quo\"te's",
    "租户-ü-🙂",
    "' OR 1=1 --",
    '"; DROP TABLE records; --',
    "a/b?c=d#e%2F&f",
]
PAYLOADS = [
    "' OR '1'='1",
    "x' UNION SELECT tenant_id FROM records --",
    "%' OR tenant_id LIKE '%",
    "*",
    "\\' OR 1=1 #",
    "acme-own' --",
]


@pytest.fixture(scope="module")
def hostile(srv: RunningServer) -> RunningServer:
    events = []
    for i, h in enumerate(HOSTILE):
        events.append(
            _event(
                f"hostile-{i}",
                h,
                user_id=h + "-u",
                session_id=h + "-s",
                feature=h,
                timestamp=(NOW - timedelta(hours=1, minutes=i)).isoformat(),
            )
        )
    resp = srv.client.post("/v1/events", json=events)
    assert resp.json()["accepted"] == len(HOSTILE), resp.text
    return srv


def test_hostile_ids_are_stored_faithfully_and_filtered_exactly(hostile: RunningServer) -> None:
    c = hostile.client
    for h in HOSTILE:
        traces = c.get("/api/traces", params={**RANGE, "tenant_id": h}).json()["items"]
        assert [(t["tenant_id"], t["user_id"]) for t in traces] == [(h, h + "-u")]
        users = c.get("/api/users", params={**RANGE, "tenant_id": h}).json()["items"]
        assert [u["id"] for u in users] == [h + "-u"]
        sessions = c.get("/api/sessions", params={**RANGE, "tenant_id": h, "user_id": h + "-u"})
        assert [s["id"] for s in sessions.json()["items"]] == [h + "-s"]
        detail = c.get(f"/api/tenants/{quote(h, safe='')}", params=RANGE)
        assert detail.status_code == 200 and detail.json()["tenant_id"] == h
        usage = c.get(f"/api/tenants/{quote(h, safe='')}/usage", params=RANGE).json()
        assert usage["tenant_id"] == h and usage["request_count"] == 1
        by_feature = c.get("/api/breakdown", params={**RANGE, "by": "feature", "tenant_id": h})
        assert [r["key"] for r in by_feature.json()["items"]] == [h]


def test_injection_payloads_find_nothing(hostile: RunningServer) -> None:
    c = hostile.client
    before = c.get("/api/tenants", params={**RANGE, "limit": 1000}).json()["items"]
    for p in PAYLOADS:
        for path, params in (
            ("/api/traces", {"tenant_id": p}),
            ("/api/traces", {"user_id": p}),
            ("/api/traces", {"session_id": p}),
            ("/api/traces", {"model": p}),
            ("/api/traces", {"feature": p}),
            ("/api/users", {"tenant_id": p}),
            ("/api/sessions", {"tenant_id": p, "user_id": p}),
            ("/api/tenants", {"q": p}),
        ):
            resp = c.get(path, params={**RANGE, **params})
            assert resp.status_code == 200, (path, params, resp.text)
            assert resp.json()["items"] == [], (path, params)
        for path in (f"/api/tenants/{quote(p, safe='')}", f"/api/traces/{quote(p, safe='')}"):
            resp = c.get(path)
            assert resp.status_code in (400, 404), (path, resp.status_code, resp.text)
        breakdown = c.get("/api/breakdown", params={**RANGE, "by": "model", "tenant_id": p})
        assert breakdown.status_code == 200 and breakdown.json()["items"] == []
        for params in ({"sort": p}, {"order": p}, {"cursor": p}, {"by": p}):
            resp = c.get("/api/breakdown" if "by" in params else "/api/tenants", params=params)
            assert resp.status_code == 400, (params, resp.text)
    after = c.get("/api/tenants", params={**RANGE, "limit": 1000}).json()["items"]
    assert after == before  # nothing dropped, nothing changed


def test_a_tenant_key_for_a_hostile_id_sees_only_it(
    hostile: RunningServer, anon: httpx.Client
) -> None:
    for h in ("' OR 1=1 --", '"; DROP TABLE records; --'):
        token = hostile.key("tenant", h)
        resp = anon.get("/api/traces", params={**RANGE, "limit": 1000}, headers=bearer(token))
        assert {t["tenant_id"] for t in resp.json()["items"]} == {h}
        tenants = anon.get("/api/tenants", params=RANGE, headers=bearer(token)).json()["items"]
        assert [t["tenant_id"] for t in tenants] == [h]


@pytest.mark.parametrize("h", HOSTILE + PAYLOADS)
def test_hostile_ids_are_escaped_in_pages(hostile: RunningServer, h: str) -> None:
    c = hostile.client
    q = quote(h, safe="")
    for path in (
        f"/traces?tenant_id={q}&user_id={q}-u&range=7d",
        f"/traces?tenant_id={q}&session_id={q}&model={q}&feature={q}",
        f"/tenant?tenant_id={q}",
        f"/users?tenant_id={q}",
        f"/sessions?tenant_id={q}&user_id={q}",
        f"/tenants?q={q}",
        f"/traces/{q}",
        f"/login?next={q}",
    ):
        resp = c.get(path, headers={"accept": "text/html"})
        assert resp.status_code < 500, (path, resp.status_code, resp.text[:300])
        text = resp.text
        if any(ch in h for ch in "<>\"'&"):
            assert h not in text, (path, "unescaped")
        assert "<script>alert" not in text
    page = c.get("/tenant", params={**RANGE, "tenant_id": HOSTILE[0]})
    assert page.status_code == 200
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text


def test_oversized_ids_are_refused_clearly(srv: RunningServer) -> None:
    big = "t" * 10_240
    resp = srv.client.post("/v1/events", json=[_event("big-tenant", big)])
    assert resp.status_code == 400, resp.text
    assert "tenant_id" in resp.text
    assert srv.client.get("/api/traces", params={"tenant_id": big}).json()["items"] == []
    assert srv.client.get(f"/api/tenants/{big}").status_code == 404
    key = srv.client.post("/api/keys", json={"role": "tenant", "tenant_id": big})
    assert key.status_code == 400


# --- body limits -------------------------------------------------------------------------------
def test_request_bodies_are_bounded(srv: RunningServer, browserless: httpx.Client) -> None:
    form = {"key": "x" * 20_000, "csrf": CSRF}
    resp = browserless.post("/login", data=form, headers={"cookie": f"ts_csrf={CSRF}"})
    assert resp.status_code == 413
    resp = browserless.post("/logout", content=b"csrf=" + b"a" * 20_000)
    assert resp.status_code == 413
    big = b"[" + b" " * (300 * 1024) + b"]"
    resp = srv.client.post("/v1/events", content=big, headers={"content-type": "application/json"})
    assert resp.status_code == 413
    resp = srv.client.post(
        "/v1/traces", content=big, headers={"content-type": "application/x-protobuf"}
    )
    assert resp.status_code == 413
    browserless.cookies.clear()


# --- timeouts ----------------------------------------------------------------------------------
def _raw(url: str) -> socket.socket:
    parsed = urlparse(url)
    return socket.create_connection((parsed.hostname, parsed.port), timeout=10)


def _until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """What the server sends until it closes the connection, and after how many
    seconds; fails when it is still open after ``limit`` seconds."""
    start = time.monotonic()
    data = b""
    while True:
        left = limit - (time.monotonic() - start)
        if left <= 0:
            raise AssertionError(f"still open after {limit} s; received {data!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - start


def _one_response(sock: socket.socket) -> bytes:
    """One whole HTTP response (headers and a Content-Length body) from a kept-alive
    connection."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server with one-second timeouts."""
    data = tmp_path_factory.mktemp("timeouts") / "data"
    with seeded_server(
        data, seed_tenants, body_timeout_s=1.0, header_timeout_s=1.0, keep_alive_timeout_s=1.0
    ) as running:
        yield running


def _post_head(srv: RunningServer, length: int) -> bytes:
    return (
        f"POST /v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {srv.admin_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_timeout_defaults() -> None:
    s = Settings.load(env={}, data_dir=Path("/nonexistent"))
    assert (s.keep_alive_timeout_s, s.header_timeout_s, s.body_timeout_s) == (5.0, 10.0, 30.0)
    env = {"TENANTSCOPE_BODY_TIMEOUT_S": "2.5", "TENANTSCOPE_HEADER_TIMEOUT_S": "4"}
    s = Settings.load(env=env, data_dir=Path("/nonexistent"))
    assert (s.body_timeout_s, s.header_timeout_s) == (2.5, 4.0)


def test_a_stalled_upload_gets_408_and_is_closed(quick: RunningServer) -> None:
    with _raw(quick.url) as sock:
        sock.sendall(_post_head(quick, 1000) + b'[{"event_id": "stalled"')
        answer, after = _until_closed(sock, 10)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b'"request_timeout"' in answer and b"within 1 s" in answer
    assert b"connection: close" in answer.lower()
    assert 0.8 <= after <= 5, after
    assert quick.client.get("/healthz").status_code == 200  # and the server serves on


def test_a_trickled_upload_has_an_overall_deadline(quick: RunningServer) -> None:
    """A byte every 0.2 s keeps the connection busy, but the body must be complete within
    the deadline all the same."""
    with _raw(quick.url) as sock:
        sock.sendall(_post_head(quick, 1000))
        start = time.monotonic()
        answer = b""
        while time.monotonic() - start < 8 and not answer:
            try:
                sock.sendall(b" ")
            except OSError:
                break
            sock.settimeout(0.2)
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                pass
        elapsed = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert elapsed < 5, elapsed


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /healthz HTTP/1.1\r\nHost: t\r\n", b"GET /heal"],
    ids=["nothing", "headers-unfinished", "request-line-unfinished"],
)
def test_a_connection_without_a_whole_request_is_closed(quick: RunningServer, sent: bytes) -> None:
    with _raw(quick.url) as sock:
        sock.sendall(sent)
        answer, after = _until_closed(sock, 10)
    assert answer == b"" and after <= 5, (answer, after)


def test_headers_trickled_a_byte_at_a_time_are_cut_off(quick: RunningServer) -> None:
    """The slowloris case: a header byte every 0.2 s never completes a request, and the
    connection is closed at the header deadline all the same."""
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 200
    with _raw(quick.url) as sock:
        start = time.monotonic()
        closed = False
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            sock.settimeout(0.2)
            try:
                if sock.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed = True
                break
        assert closed and time.monotonic() - start < 5


def test_an_idle_kept_alive_connection_is_closed(quick: RunningServer) -> None:
    with _raw(quick.url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        answer, after = _until_closed(sock, 10)
    assert answer.startswith(b"HTTP/1.1 200") and b'{"status":"ok"}' in answer
    assert after <= 5, after


def test_a_slow_request_is_not_cut_off_by_the_header_deadline(quick: RunningServer) -> None:
    """The deadlines bound what the client sends, not how long the server works: headers
    in time, a body in time, one request after another on one connection."""
    with _raw(quick.url) as sock:
        for i in range(3):
            body = json.dumps([_event(f"in-time-{i}", ACME.tenant_id)]).encode()
            sock.sendall(_post_head(quick, len(body)))
            time.sleep(0.3)  # within the body deadline
            sock.sendall(body)
            answer = _one_response(sock)
            assert answer.startswith(b"HTTP/1.1 200") and b'"accepted":1' in answer, answer
            time.sleep(0.3)  # within the keep-alive and header timeouts


# --- insecure mode -----------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_insecure_mode_refuses_other_hosts(tmp_path: Path, host: str) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        Settings.load(env={}, data_dir=tmp_path, host=host, insecure_no_auth=True)
    with pytest.raises(ConfigError):
        Settings.load(
            env={"TENANTSCOPE_HOST": host, "TENANTSCOPE_INSECURE_NO_AUTH": "1"}, data_dir=tmp_path
        )
    assert Settings.load(env={}, data_dir=tmp_path, host=host).insecure_no_auth is False


def test_insecure_mode_serves_without_keys(tmp_path: Path) -> None:
    with (
        seeded_server(tmp_path / "data", seed_tenants, insecure_no_auth=True) as running,
        httpx.Client(base_url=running.url) as c,
    ):
        assert running.services.settings.host in ("127.0.0.1", "localhost", "::1")
        assert c.get("/api/tenants", params=RANGE).status_code == 200
        assert len(c.get("/api/tenants", params=RANGE).json()["items"]) == 3
        assert c.get("/tenants").status_code == 200
        ok = c.post("/v1/events", json=[_event("insecure-1", "insecure-tenant")])
        assert ok.status_code == 200 and ok.json()["accepted"] == 1


def test_public_routes_ignore_a_stale_key(srv: RunningServer) -> None:
    """A health check or the sign-in page sent with an old key still answers, and the
    key is not counted as a failed attempt."""
    with client_from(srv, "127.0.0.9") as client:
        for _ in range(30):
            assert client.get("/healthz", headers=bearer("tsr_0000_stale")).status_code == 200
        assert client.get("/login", headers=bearer("tsr_0000_stale")).status_code == 200
        good = srv.key("reader")
        assert client.get("/api/tenants", headers=bearer(good)).status_code == 200
