"""Event ids are unique within their tenant, and every item of a request is accounted for
once (issue 11, items 1 and 2), through a real server."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from tenantscope import semconv
from tests.conftest import RunningServer
from tests.ingest.test_otlp import request as otlp_request
from tests.server.test_ingest_http import llm_span


def _event(event_id: str, tenant: str | None = None, tokens: int = 1000) -> dict[str, Any]:
    out: dict[str, Any] = {
        "event_id": event_id,
        "model": "gpt-4o-mini",
        "provider": "openai",
        "input_tokens": tokens,
        "output_tokens": 10,
        "timestamp": (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat(),
    }
    if tenant is not None:
        out["tenant_id"] = tenant
    return out


def _post(server: RunningServer, key: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    resp = httpx.post(
        f"{server.url}/v1/events", json=events, headers={"authorization": f"Bearer {key}"}
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _tokens(server: RunningServer, tenant: str) -> int:
    usage = server.client.get(f"/api/tenants/{tenant}/usage").json()
    return int(usage["token_count"])


def test_another_tenants_event_id_is_another_event(server: RunningServer) -> None:
    x, y = server.key("ingest", "tenant-x"), server.key("ingest", "tenant-y")
    assert _post(server, x, [_event("inv-2026-0001")])["accepted"] == 1
    # tenant y's own invoice with the same number: stored, and nothing said of x's
    out = _post(server, y, [_event("inv-2026-0001", tokens=50_000)])
    assert (out["accepted"], out["duplicates"]) == (1, 0)
    assert _tokens(server, "tenant-y") == 50_010
    assert _tokens(server, "tenant-x") == 1_010
    # each tenant's retry is still a duplicate of its own
    assert _post(server, x, [_event("inv-2026-0001")])["duplicates"] == 1
    assert _post(server, y, [_event("inv-2026-0001", tokens=50_000)])["duplicates"] == 1
    # an admin key writing both tenants sees the same
    both = server.client.post(
        "/v1/events",
        json=[_event("inv-2026-0002", "tenant-x"), _event("inv-2026-0002", "tenant-y")],
    ).json()
    assert (both["accepted"], both["duplicates"]) == (2, 0)


def test_spans_with_the_same_explicit_event_id_in_two_tenants_both_count(
    server: RunningServer,
) -> None:
    for i, tenant in ((1, "span-a"), (2, "span-b")):
        call = llm_span(i, tenant, tokens=100, **{semconv.EVENT_ID: "call-7"})
        resp = server.client.post(
            "/v1/traces",
            content=otlp_request([call]).SerializeToString(),
            headers={"content-type": "application/x-protobuf"},
        )
        assert resp.status_code == 200, resp.text
    assert _tokens(server, "span-a") == 200 and _tokens(server, "span-b") == 200


def test_repeats_inside_a_request_are_duplicates_and_every_item_is_counted(
    server: RunningServer,
) -> None:
    out = server.client.post(
        "/v1/events",
        json=[
            _event("r-1", "t-a"),
            _event("r-1", "t-a"),  # a repeat: a duplicate
            _event("r-1", "t-b"),  # another tenant's event
            _event("r-2", "t-a"),
            {"event_id": "r-3", "input_tokens": -1},  # invalid
        ],
    ).json()
    assert (out["accepted"], out["duplicates"], out["rejected"]) == (3, 1, 1)


def test_concurrent_requests_account_for_every_item_once(server: RunningServer) -> None:
    """64 requests at once, each with repeats inside it and ids other requests and other
    tenants also send: accepted + duplicates is every item, accepted is what is stored."""
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def send(n: int) -> None:
        events = [_event(f"c-{(n + i) % 40}", f"t-{i % 3}", tokens=1) for i in range(30)]
        events += events[:5]  # repeats inside the request
        with httpx.Client(base_url=server.url, headers=server.client.headers, timeout=60) as client:
            body = client.post("/v1/events", json=events).json()
        with lock:
            answers.append(body)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 64
    assert all(a["accepted"] + a["duplicates"] == 35 and a["rejected"] == 0 for a in answers)
    stored = Counter(
        r["tenant_id"]
        for r in server.services.events.fetch(
            "SELECT tenant_id FROM records WHERE source = 'event'"
        )
    )
    accepted = sum(a["accepted"] for a in answers)
    assert sum(stored.values()) == accepted
    # every (tenant, id) pair sent is stored exactly once
    pairs = server.services.events.fetch(
        "SELECT tenant_id, event_id, count(*) AS n FROM records GROUP BY ALL HAVING n > 1"
    )
    assert pairs == []
    sent = {(f"t-{i % 3}", f"c-{(n + i) % 40}") for n in range(64) for i in range(30)}
    assert accepted == len(sent)
