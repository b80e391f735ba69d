"""Limits end to end over HTTP on a real server: the seeds' tiers, a $1 budget under 64
concurrent callers (threads and asyncio), settlement by stored spans, warnings at 80 %
and 100 % reaching a webhook once each, and tenant-bound keys."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from tenantscope.server.services import Services
from tests.alerts.receivers import Reply, serve_http
from tests.conftest import RunningServer, seeded_server
from tests.ingest.test_otlp import request, span

STRICT = {"tenantscope-consistency": "strict"}
TIERS = {"enterprise": 60, "professional": 30, "starter": 10}


def seed(svc: Services) -> None:
    for tier in TIERS:
        svc.config.set_tenant(f"{tier}-co", tier=tier)


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[RunningServer]:
    with seeded_server(tmp_path / "data", seed, limits_refresh_ms=200.0) as running:
        yield running


def create(srv: RunningServer, **fields: object) -> dict[str, object]:
    resp = srv.client.post("/api/limits", json=fields)
    assert resp.status_code == 201, resp.text
    body: dict[str, object] = resp.json()
    return body


def check(client: httpx.Client, tenant: str, **kw: object) -> dict[str, object]:
    resp = client.post("/v1/limits/check", json={"tenant_id": tenant, **kw})
    assert resp.status_code == 200, resp.text
    body: dict[str, object] = resp.json()
    return body


def spend(srv: RunningServer, tenant: str) -> str:
    resp = srv.client.get("/api/limits/status", params={"tenant_id": tenant}, headers=STRICT)
    assert resp.status_code == 200, resp.text
    (t,) = resp.json()["tenants"]
    (budget,) = [x for x in t["limits"] if x["kind"] == "budget"]
    return str(budget["used"])


def test_the_seeds_tiers_starter_refused_at_11_enterprise_takes_60(srv: RunningServer) -> None:
    for tier, rpm in TIERS.items():
        create(srv, name=f"{tier} calls", kind="rate", tier=tier, requests_per_minute=rpm)
    ingest = httpx.Client(
        base_url=srv.url, headers={"authorization": f"Bearer {srv.key('ingest')}"}
    )
    starter = [check(ingest, "starter-co", model="gpt-4o-mini") for _ in range(11)]
    assert [a["allowed"] for a in starter] == [True] * 10 + [False]
    refused = starter[10]
    assert refused["reservation_id"] is None
    assert refused["decided_by"]["name"] == "starter calls"  # type: ignore[index]
    assert refused["remaining"] == "0"
    assert 1 <= int(refused["retry_after"]) <= 60  # type: ignore[call-overload]
    assert refused["message"].startswith("call refused: rate limit 'starter calls'")  # type: ignore[union-attr]
    enterprise = [check(ingest, "enterprise-co", model="gpt-4o-mini") for _ in range(60)]
    assert all(a["allowed"] for a in enterprise)
    assert not check(ingest, "enterprise-co")["allowed"]
    metrics = srv.client.get("/metrics").text
    assert "tenantscope_limit_checks_total 72\n" in metrics
    assert "tenantscope_limit_refusals_total 2\n" in metrics
    # the refusals are recorded and counted per tenant and limit
    deadline = time.monotonic() + 10
    while True:
        status = srv.client.get("/api/limits/status", headers=STRICT).json()
        blocked = {t["tenant_id"]: t["blocked_by_limit"] for t in status["tenants"]}
        if blocked.get("starter-co") and blocked.get("enterprise-co"):
            break
        assert time.monotonic() < deadline, blocked
        time.sleep(0.1)
    assert blocked["starter-co"] == {"L3": 1} and blocked["enterprise-co"] == {"L1": 1}


def test_a_one_dollar_budget_holds_under_64_threads_and_64_tasks(srv: RunningServer) -> None:
    """Each call reserves $0.01 and costs $0.01: exactly 100 calls, exactly $1, whatever
    the interleaving; settled through /v1/limits/settle (records through ingest)."""
    create(srv, name="one dollar", kind="budget", tenant_id="race", amount_usd="1")
    token = srv.key("ingest")
    allowed: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(64)

    def thread_caller() -> None:
        with httpx.Client(base_url=srv.url, headers={"authorization": f"Bearer {token}"}) as c:
            barrier.wait()
            while True:
                d = check(c, "race", model="gpt-4o-mini", estimated_cost_usd="0.01")
                if not d["allowed"]:
                    if d["retry_after"] is not None and int(d["retry_after"]) > 60:  # type: ignore[call-overload]
                        return  # the budget is spent, not just held
                    time.sleep(0.05)
                    continue
                rid = str(d["reservation_id"])
                resp = c.post("/v1/limits/settle", json={"reservation_id": rid, "cost_usd": "0.01"})
                assert resp.status_code == 200, resp.text
                with lock:
                    allowed.append(rid)

    threads = [threading.Thread(target=thread_caller) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(allowed) == 100
    assert spend(srv, "race") == "1"

    # the same with 64 asyncio tasks on one loop, against a second tenant's dollar
    create(srv, name="async dollar", kind="budget", tenant_id="race-async", amount_usd="1")

    async def run() -> list[str]:
        got: list[str] = []
        async with httpx.AsyncClient(
            base_url=srv.url, headers={"authorization": f"Bearer {token}"}
        ) as c:

            async def task() -> None:
                while True:
                    resp = await c.post(
                        "/v1/limits/check",
                        json={"tenant_id": "race-async", "estimated_cost_usd": "0.01"},
                    )
                    d = resp.json()
                    if not d["allowed"]:
                        if d["retry_after"] > 60:
                            return
                        await asyncio.sleep(0.05)
                        continue
                    got.append(d["reservation_id"])
                    settled = await c.post(
                        "/v1/limits/settle",
                        json={"reservation_id": d["reservation_id"], "cost_usd": "0.01"},
                    )
                    assert settled.status_code == 200, settled.text

            await asyncio.gather(*(task() for _ in range(64)))
        return got

    assert len(asyncio.run(run())) == 100
    assert spend(srv, "race-async") == "1"


def test_a_span_carrying_the_reservation_settles_it(srv: RunningServer) -> None:
    create(srv, name="b", kind="budget", tenant_id="spans", amount_usd="0.01")
    ingest = httpx.Client(
        base_url=srv.url, headers={"authorization": f"Bearer {srv.key('ingest')}"}
    )
    d = check(ingest, "spans", model="gpt-4o", input_tokens=1000, max_tokens=500)
    assert d["allowed"] and d["hold"]["cost_usd"].startswith("0.0075")  # type: ignore[index]
    start = int((datetime.now(timezone.utc) - timedelta(seconds=1)).timestamp() * 1e9)
    s = span(
        trace_id=b"\x07" * 16,
        span_id=b"\x01" * 8,
        start_ns=start,
        end_ns=start + 1_000_000,
        attributes={
            "tenant.id": "spans",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 100,
            "tenantscope.reservation_id": d["reservation_id"],
        },
    )
    resp = ingest.post(
        "/v1/traces",
        content=request([s]).SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
    )
    assert resp.status_code == 200
    # gpt-4o: 1000 * 2.5 / 1M + 100 * 10 / 1M = 0.0035 (the hold was 0.0075)
    deadline = time.monotonic() + 10
    while srv.services.limiter.reservation(str(d["reservation_id"])) is not None:
        assert time.monotonic() < deadline, "the span did not settle the reservation"
        time.sleep(0.05)
    assert spend(srv, "spans") == "0.0035"
    # 0.0065 left: a call reserving 0.0075 no longer fits, one of 0.006 does
    assert not check(ingest, "spans", model="gpt-4o", input_tokens=1000, max_tokens=500)["allowed"]
    assert check(ingest, "spans", estimated_cost_usd="0.006")["allowed"]


def test_warnings_at_80_and_100_percent_reach_a_webhook_once_each(srv: RunningServer) -> None:
    hook = serve_http([Reply()])
    try:
        resp = srv.client.post(
            "/api/alerts/contacts",
            json={"name": "ops", "kind": "webhook", "settings": {"url": hook.url + "/hook"}},
        )
        assert resp.status_code == 201, resp.text
        contact = resp.json()["id"]
        create(
            srv,
            name="monthly",
            kind="budget",
            tenant_id="warned",
            amount_usd="1",
            thresholds=[80, 100],
            contact_ids=[contact],
        )
        ingest = httpx.Client(
            base_url=srv.url, headers={"authorization": f"Bearer {srv.key('ingest')}"}
        )

        def spend_some(cost: str) -> None:
            d = check(ingest, "warned", estimated_cost_usd=cost)
            assert d["allowed"], d
            r = ingest.post(
                "/v1/limits/settle", json={"reservation_id": d["reservation_id"], "cost_usd": cost}
            )
            assert r.status_code == 200

        def wait_for(n: int) -> list[dict[str, object]]:
            deadline = time.monotonic() + 20
            while hook.hits < n:
                assert time.monotonic() < deadline, f"{hook.hits} of {n} notifications"
                time.sleep(0.1)
            time.sleep(1.5)  # time for a repeat to show up, if one were sent
            return [json.loads(s.body) for s in hook.seen]

        spend_some("0.5")
        spend_some("0.35")  # 85 %
        first = wait_for(1)
        assert len(first) == 1 and first[0]["event"] == "warning"
        assert "80 %" in str(first[0]["rule"])
        spend_some("0.15")  # 100 %
        both = wait_for(2)
        assert len(both) == 2 and both[1]["event"] == "firing"
        assert "100 %" in str(both[1]["rule"]) and "blocked" in str(both[1]["summary"])
        assert not check(ingest, "warned", estimated_cost_usd="0.01")["allowed"]
        time.sleep(2)
        assert hook.hits == 2  # once per threshold per period
    finally:
        hook.server.shutdown()
        hook.server.server_close()


def test_a_bound_key_decides_the_tenant(srv: RunningServer) -> None:
    bound = httpx.Client(
        base_url=srv.url, headers={"authorization": f"Bearer {srv.key('ingest', 'mine')}"}
    )
    d = check(bound, "", estimated_cost_usd="0.01")
    assert d["allowed"]
    assert srv.services.limiter.reservation(str(d["reservation_id"])).tenant_id == "mine"  # type: ignore[union-attr]
    resp = bound.post("/v1/limits/check", json={"tenant_id": "theirs"})
    assert resp.status_code == 403 and "bound to tenant 'mine'" in resp.text
    other = httpx.Client(
        base_url=srv.url, headers={"authorization": f"Bearer {srv.key('ingest', 'theirs')}"}
    )
    resp = other.post("/v1/limits/settle", json={"reservation_id": d["reservation_id"]})
    assert resp.status_code == 403


def test_bad_input_says_what_to_fix(srv: RunningServer) -> None:
    resp = srv.client.post(
        "/v1/limits/check", json={"tenant_id": 5, "input_tokens": -1, "estimated_cost_usd": 0.1}
    )
    assert resp.status_code == 422
    assert set(resp.json()["error"]["details"]["fields"]) == {
        "tenant_id",
        "input_tokens",
        "estimated_cost_usd",
    }
    resp = srv.client.post("/v1/limits/settle", json={"reservation_id": "r_gone"})
    assert resp.status_code == 404 and "r_gone" in resp.text
    resp = srv.client.post("/api/limits", json={"kind": "rate"})
    assert resp.status_code == 422
    assert srv.client.get("/api/limits").json() == []


def test_a_blocked_call_is_a_trace_of_its_own_with_status_blocked(srv: RunningServer) -> None:
    create(srv, name="none left", kind="rate", tenant_id="tiny", requests_per_minute=1)
    ingest = httpx.Client(
        base_url=srv.url, headers={"authorization": f"Bearer {srv.key('ingest')}"}
    )
    assert check(ingest, "tiny", model="gpt-4o-mini")["allowed"]
    assert not check(ingest, "tiny", model="gpt-4o-mini", feature="search")["allowed"]
    deadline = time.monotonic() + 10
    while True:
        page = srv.client.get(
            "/api/traces", params={"tenant_id": "tiny", "status": "blocked"}, headers=STRICT
        ).json()
        if page["items"]:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    (trace,) = page["items"]
    assert trace["status"] == "blocked" and trace["requests"] == 0
    detail = srv.client.get(f"/api/traces/{trace['trace_id']}").json()
    (s,) = detail["roots"]
    assert s["status"] == "blocked" and s["error_type"] == "L1"
    assert s["error_message"].startswith("call refused: rate limit 'none left'")
    assert s["feature"] == "search" and s["billable_state"] == "ignored"
