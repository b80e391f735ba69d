"""Limits: decisions per second of one server, the latency the SDK's check adds to a call,
and how far a hard cap is overshot under concurrency (issue 13).

    python bench/limits.py                          # all three parts, default sizes
    python bench/limits.py --only decisions --clients 64 --seconds 10
    python bench/limits.py --only latency --calls 400
    python bench/limits.py --only overshoot --callers 256

It starts its own `tenantscope serve` (a fresh data directory, an admin key made for it)
and, for the parts with LLM calls, the fake provider in a process of its own; limits are
configured through the server's API (`POST /api/limits`). It prints figures and asserts
nothing about time.

- decisions: one lean client (raw HTTP/1.1 over kept-alive asyncio connections, requests
  prepared once, so it takes little of the two cores it shares with the server) for a
  fixed time per mode: "check + span" — the check, then the call's span (with
  `tenantscope.reservation_id` and usage) sent over OTLP in batches every 0.2 s as the
  SDK's exporter does, settling the reservation when the server stores it (how an
  instrumented call settles), and how long until every reservation was settled;
  "check + settle" — the check, then `POST /v1/limits/settle` (how `guard()` settles);
  "check alone" — the decisions without settling.
- latency: the real `openai` client against the fake provider, one call at a time,
  blocks with enforcement off and on alternating (drift hits both alike): p50 / p95 per
  call and the difference. Goal: <= 1 ms added at p50.
- overshoot: N threads calling through the real `openai` client with enforcement on,
  all for one tenant with a $1 hard cap, until every one of them is refused. Then the
  stored spend vs the cap. Run twice: calls with `max_tokens` (each at most its cap;
  bound: never above the cap) and streams without `max_tokens` that extend their hold as
  they go (bound: each stream stops where its hold ends).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

import tenantscope
from tenantscope.sdk import _limits
from tenantscope.testing.server import free_port, make_key, start_serve, stop_serve

MESSAGES: list[Any] = [{"role": "user", "content": "Summarise the meeting in three bullets."}]
CAP_USD = Decimal("1")
GOAL_PAIRS = 5000
GOAL_ADDED_MS = 1.0


# --- processes ------------------------------------------------------------------------------
@contextmanager
def server() -> Iterator[tuple[str, str]]:
    data = Path(tempfile.mkdtemp(prefix="tenantscope-bench-limits-"))
    key = make_key(data, "benchmark")
    proc, url = start_serve(data, {"TENANTSCOPE_LOG_LEVEL": "warning"})
    try:
        yield url, key
    finally:
        stop_serve(proc)


@contextmanager
def fake_provider() -> Iterator[str]:
    port = free_port()
    args = [sys.executable, "-m", "tenantscope.testing.fake_provider", "--port", str(port)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the fake provider did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def add_limit(url: str, key: str, **fields: Any) -> None:
    resp = httpx.post(
        f"{url}/api/limits", json=fields, headers={"authorization": f"Bearer {key}"}, timeout=10
    )
    resp.raise_for_status()


def tenant_usage(url: str, key: str, tenant: str) -> dict[str, Any]:
    resp = httpx.get(
        f"{url}/api/tenants/{tenant}/usage",
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )
    resp.raise_for_status()
    out: dict[str, Any] = resp.json()
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- (a) decisions per second ---------------------------------------------------------------
# The client is a lean one (raw HTTP/1.1 on asyncio streams, requests prepared once): with
# Python HTTP clients in threads the load generator, sharing the two cores, took more CPU
# than the server and the figure measured the client.
def _request(path: str, body: bytes, key: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _answer(reader: Any) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return status, await reader.readexactly(length)


def _spans_body(rids: list[tuple[str, str]]) -> bytes:
    """An OTLP request with one LLM span per (tenant, reservation id)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    now = time.time_ns()
    spans = []
    for tenant, rid in rids:
        attrs = {
            "tenant.id": AnyValue(string_value=tenant),
            "gen_ai.provider.name": AnyValue(string_value="openai"),
            "gen_ai.request.model": AnyValue(string_value="gpt-4o-mini"),
            "gen_ai.usage.input_tokens": AnyValue(int_value=400),
            "gen_ai.usage.output_tokens": AnyValue(int_value=150),
            "tenantscope.reservation_id": AnyValue(string_value=rid),
        }
        spans.append(
            Span(
                trace_id=os.urandom(16),
                span_id=os.urandom(8),
                name="chat gpt-4o-mini",
                start_time_unix_nano=now - 400_000_000,
                end_time_unix_nano=now,
                attributes=[KeyValue(key=k, value=v) for k, v in attrs.items()],
            )
        )
    message = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
    )
    return message.SerializeToString()


async def _decisions(port: int, key: str, conns: int, seconds: float, mode: str) -> tuple[int, int]:
    import asyncio

    done = [0, 0]  # pairs, refused or failed
    to_settle: list[tuple[str, str]] = []
    end = time.monotonic() + seconds
    check_bodies = [
        json.dumps(
            {
                "tenant_id": f"{mode}-{t}",
                "model": "gpt-4o-mini",
                "input_tokens": 500,
                "max_tokens": 200,
            }
        ).encode()
        for t in range(20)
    ]
    checks = [_request("/v1/limits/check", b, key) for b in check_bodies]

    async def caller(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = 0
        while time.monotonic() < end:
            n += 1
            writer.write(checks[(i + n) % len(checks)])
            status, body = await _answer(reader)
            answer = json.loads(body) if status == 200 else {}
            if not answer.get("allowed"):
                done[1] += 1
                continue
            rid = answer["reservation_id"]
            if mode == "settle":
                settle = json.dumps(
                    {"reservation_id": rid, "input_tokens": 400, "output_tokens": 150}
                ).encode()
                writer.write(_request("/v1/limits/settle", settle, key))
                status, _ = await _answer(reader)
                if status != 200:
                    done[1] += 1
                    continue
            elif mode == "span":
                to_settle.append((f"{mode}-{(i + n) % len(checks)}", rid))
            done[0] += 1
        writer.close()

    async def span_sender() -> None:
        # what the SDK's exporter does: the calls' spans in batches, every 0.2 s
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while True:
            last = time.monotonic() >= end
            batch, to_settle[:] = list(to_settle), []
            for at in range(0, len(batch), 2000):
                body = _spans_body(batch[at : at + 2000])
                head = (
                    f"POST /v1/traces HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}"
                    f"\r\nContent-Type: application/x-protobuf\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                )
                writer.write(head.encode() + body)
                status, _ = await _answer(reader)
                if status != 200:
                    done[1] += len(batch[at : at + 2000])
            if last:
                break
            await asyncio.sleep(0.2)
        writer.close()

    tasks = [caller(i) for i in range(conns)]
    if mode == "span":
        tasks.append(span_sender())
    await asyncio.gather(*tasks)
    return done[0], done[1]


def bench_decisions(url: str, key: str, clients: int, seconds: float) -> None:
    import asyncio

    port = int(url.rsplit(":", 1)[1])
    # every tenant has a generous rate limit and budget: each check finds limits to judge
    add_limit(url, key, name="bench rate", kind="rate", requests_per_minute=10**7)
    add_limit(url, key, name="bench budget", kind="budget", amount_usd="1000000")
    print(f"\n(a) decisions: {clients} kept-alive connections of one client, {seconds:g} s each")
    for mode, label in (
        ("span", "check + span (OTLP)"),
        ("settle", "check + settle"),
        ("check", "check alone"),  # last: its reservations are never settled
    ):
        pairs, failed = asyncio.run(_decisions(port, key, clients, seconds, mode))
        extra = ""
        if mode == "span":
            settled_at = _wait_settled(url, key, "span-")
            extra = f"; every reservation settled {settled_at:.1f} s after the last check"
        print(
            f"  {label:22s} {pairs / seconds:8,.0f} /s   ({pairs:,} in {seconds:g} s,"
            f" {failed} refused or failed){extra}"
        )
    print(
        f"  goal: >= {GOAL_PAIRS:,} check+settle pairs/s on 2 cores (an instrumented call"
        " settles by its span: check + span)"
    )


def _wait_settled(url: str, key: str, prefix: str) -> float:
    """Seconds until the server holds no reservation of the tenants named ``prefix``…"""
    t0 = time.monotonic()
    headers = {"authorization": f"Bearer {key}"}
    while time.monotonic() - t0 < 120:
        status = httpx.get(f"{url}/api/limits/status", headers=headers, timeout=60).json()
        held = sum(
            float(figure.get("held") or 0)
            for tenant in status["tenants"]
            if tenant["tenant_id"].startswith(prefix)
            for figure in tenant["limits"]
        )
        if held == 0:
            break
        time.sleep(0.2)
    return time.monotonic() - t0


# --- (b) latency added per call -------------------------------------------------------------
def bench_latency(url: str, key: str, fake_url: str, calls: int, rounds: int) -> None:
    import openai
    from opentelemetry.sdk.trace import TracerProvider

    add_limit(
        url, key, name="latency rate", kind="rate", tenant_id="lat", requests_per_minute=10**6
    )
    client = openai.OpenAI(base_url=f"{fake_url}/v1", api_key="bench", max_retries=0)
    tenantscope.instrument_openai()
    provider = TracerProvider()
    samples: dict[bool, list[float]] = {False: [], True: []}
    checks: list[float] = []
    permit_from = _limits.permit_from

    def timed_permit(limiter: Any, body: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return permit_from(limiter, body)
        finally:
            checks.append((time.perf_counter() - t0) * 1000)

    _limits.permit_from = timed_permit  # the SDK calls it through the module

    def call() -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=100)

    for _ in range(rounds):
        for enforce in (False, True):
            tenantscope.init(
                endpoint=url, api_key=key, enforce_limits=enforce, tracer_provider=provider
            )
            with tenantscope.context(tenant_id="lat"):
                for _ in range(10):  # warm the connections
                    call()
                for _ in range(calls):
                    t0 = time.perf_counter()
                    call()
                    samples[enforce].append((time.perf_counter() - t0) * 1000)
            stats = tenantscope.stats()
            if enforce and (stats.limit_unreachable or stats.limit_denied):
                print(
                    f"  warning: {stats.limit_unreachable} unanswered, {stats.limit_denied} refused"
                )
            tenantscope.flush(10)
    _limits.permit_from = permit_from
    tenantscope.shutdown()
    tenantscope.uninstrument_openai()
    off, on = samples[False], samples[True]
    print(f"\n(b) latency per call (real openai client -> fake provider, {len(on):,} calls each)")
    print(
        f"  enforcement off   p50 {statistics.median(off):6.3f} ms   p95 {pct(off, 0.95):6.3f} ms"
    )
    print(f"  enforcement on    p50 {statistics.median(on):6.3f} ms   p95 {pct(on, 0.95):6.3f} ms")
    added50 = statistics.median(on) - statistics.median(off)
    added95 = pct(on, 0.95) - pct(off, 0.95)
    print(
        f"  added             p50 {added50:6.3f} ms   p95 {added95:6.3f} ms"
        f"   (goal: <= {GOAL_ADDED_MS:g} ms at p50)"
    )
    print(
        f"  the check itself  p50 {statistics.median(checks):6.3f} ms   p95"
        f" {pct(checks, 0.95):6.3f} ms   (estimate + POST /v1/limits/check, as the SDK sees it)"
    )


# --- (c) overshoot under concurrency ---------------------------------------------------------
def bench_overshoot(url: str, key: str, fake_url: str, callers: int) -> None:
    import openai
    from opentelemetry.sdk.trace import TracerProvider

    print(
        f"\n(c) overshoot: {callers} concurrent callers, one tenant, ${CAP_USD} hard cap (gpt-4o)"
    )
    tenantscope.instrument_openai()
    # ~8,000 bytes of prompt: the SDK's estimate (an upper bound) is >= the 2,000 input
    # tokens the fake provider reports for it
    prompt = [{"role": "user", "content": "Notes of the meeting, line by line. " * 230}]
    for variant, run in (
        ("max_tokens=1000, 1,000 output tokens each", _capped_call),
        ("streams without max_tokens, 1,500 output tokens each", _streamed_call),
    ):
        tenant = f"cap-{variant.split()[0].replace('=', '')}"
        add_limit(
            url, key, name=f"{tenant} cap", kind="budget", tenant_id=tenant, amount_usd=str(CAP_USD)
        )
        tenantscope.init(
            endpoint=url,
            api_key=key,
            enforce_limits=True,
            limits_timeout=10.0,  # a loaded server answers late: wait rather than let through
            export_interval=0.1,
            tracer_provider=TracerProvider(),
        )
        client = openai.OpenAI(
            base_url=f"{fake_url}/v1",
            api_key="bench",
            max_retries=0,
            http_client=openai.DefaultHttpxClient(
                limits=httpx.Limits(max_connections=callers, max_keepalive_connections=callers)
            ),
        )
        made = [0] * callers
        barrier = threading.Barrier(callers)
        work = functools.partial(_caller, barrier, tenant, run, client, prompt, made)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=work, args=(i,)) for i in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        tenantscope.flush(timeout=60)
        stats = tenantscope.stats()
        time.sleep(1.0)
        got = tenant_usage(url, key, tenant)
        spent = Decimal(got["total_cost"])
        over = spent - CAP_USD
        print(
            f"  {variant}: {sum(made):,} calls completed + cut in {elapsed:.1f} s,"
            f" {got['request_count']:,} stored"
        )
        print(
            f"    stored spend ${spent:.6f} vs cap ${CAP_USD}: "
            + (
                f"overshoot ${over:.6f} ({over / CAP_USD * 100:.2f} %)"
                if over > 0
                else f"under the cap by ${-over:.6f}"
            )
            + f"; {stats.limit_denied} refusals, {stats.limit_streams_cut} streams cut,"
            f" {stats.limit_unreachable} unanswered"
        )
    tenantscope.shutdown()
    tenantscope.uninstrument_openai()


def _caller(
    barrier: threading.Barrier,
    tenant: str,
    run: Callable[[Any, list[Any]], None],
    client: Any,
    prompt: list[Any],
    made: list[int],
    i: int,
) -> None:
    """One of the concurrent callers: calls until the cap has refused it for a second in
    a row (a refusal while others' holds are in flight may clear when they settle)."""
    barrier.wait()
    refused = 0
    with tenantscope.context(tenant_id=tenant):
        while refused < 20:
            try:
                run(client, prompt)
            except tenantscope.TenantLimitExceeded:
                refused += 1
                time.sleep(0.05)
                continue
            refused = 0
            made[i] += 1


def _capped_call(client: Any, prompt: list[Any]) -> None:
    client.chat.completions.create(
        model="gpt-4o",
        messages=prompt,
        max_tokens=1000,
        extra_headers={"x-fake-usage": "input=2000,output=1000"},
    )


def _streamed_call(client: Any, prompt: list[Any]) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=prompt,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-fake-usage": "input=2000,output=1500", "x-fake-chunks": "1500"},
    )
    for _ in stream:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--only", choices=["decisions", "latency", "overshoot"], action="append")
    parser.add_argument("--clients", type=int, default=32, help="(a) connections")
    parser.add_argument("--seconds", type=float, default=10.0, help="(a) per mode")
    parser.add_argument("--calls", type=int, default=300, help="(b) calls per block")
    parser.add_argument("--rounds", type=int, default=3, help="(b) off/on block pairs")
    parser.add_argument("--callers", type=int, default=256, help="(c) concurrent callers")
    args = parser.parse_args()
    parts = set(args.only or ["decisions", "latency", "overshoot"])
    print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}")
    with server() as (url, key):
        if "decisions" in parts:
            bench_decisions(url, key, args.clients, args.seconds)
        if parts & {"latency", "overshoot"}:
            with fake_provider() as fake_url:
                if "latency" in parts:
                    bench_latency(url, key, fake_url, args.calls, args.rounds)
                if "overshoot" in parts:
                    bench_overshoot(url, key, fake_url, args.callers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
