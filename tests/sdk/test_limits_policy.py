"""SDK limit enforcement against a small real HTTP server that answers the limits contract
(docs/sdk.md, "Limits") the way a test needs: allow, deny, fail, hang. The decisions of the
real tenantscope server are tested in test_limits_server.py; this file tests what the SDK
does with each kind of answer (and with none), with the real ``openai`` / ``anthropic``
clients against the local fake provider."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tenantscope
from tenantscope.sdk import _estimate
from tenantscope.testing import FakeProvider
from tenantscope.testing.server import free_port

MESSAGES: list[Any] = [{"role": "user", "content": "Summarise the meeting."}]
DECIDED_BY = {
    "id": "L3",
    "name": "starter rate",
    "kind": "rate",
    "per": "tenant",
    "subject": "",
    "measure": "requests_per_minute",
    "limit": "10",
    "used": "10",
    "remaining": "0",
    "mode": "block",
    "period_end": None,
}


@dataclass
class Stub:
    """What the stub limit service answers, and what it was asked."""

    mode: str = "allow"  # allow | deny | status:<code> | hang
    hold_output: int = 64
    extends_allowed: int = 1_000_000
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    release_hang: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for p, body in self.requests if p == path]

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append((path, body))
            n = sum(1 for p, _ in self.requests if p == "/v1/limits/check")
        if self.mode.startswith("status:"):
            status = int(self.mode.split(":")[1])
            return status, {"error": {"code": "x", "message": f"stub says {status}"}}
        if path == "/v1/limits/check":
            if self.mode == "deny":
                return 200, {
                    "allowed": False,
                    "reservation_id": None,
                    "decided_by": DECIDED_BY,
                    "remaining": "0",
                    "retry_after": 23,
                    "message": "starter rate: 10 of 10 requests per minute used",
                    "warnings": [],
                }
            return 200, {
                "allowed": True,
                "reservation_id": f"r_{n}",
                "expires_at": "2030-01-01T00:00:00Z",
                "hold": {"cost_usd": "0.001", "tokens": 100, "output_tokens": self.hold_output},
                "decided_by": None,
                "remaining": None,
                "retry_after": None,
                "message": "allowed",
                "warnings": ["budget 'acme monthly' at 82 % (soft)"],
            }
        if path == "/v1/limits/extend":
            with self.lock:
                self.extends_allowed -= 1
                allowed = self.extends_allowed >= 0
            if allowed:
                return 200, {"allowed": True, "hold": {"output_tokens": self.hold_output}}
            return 200, {
                "allowed": False,
                "hold": None,
                "decided_by": {**DECIDED_BY, "kind": "budget", "name": "acme monthly"},
                "remaining": "0.0001",
                "retry_after": None,
                "message": "budget 'acme monthly' would be exceeded",
            }
        if path == "/v1/limits/settle":
            return 200, {"settled": True, "event_id": f"reservation:{body.get('reservation_id')}"}
        if path == "/v1/limits/release":
            return 200, {"released": True}
        return 404, {"error": {"code": "not_found", "message": "no such route"}}


@pytest.fixture
def stub() -> Iterator[Stub]:
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDK uses it

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length", 0)))
            body = json.loads(raw) if raw else {}
            if state.mode == "hang":
                with state.lock:
                    state.requests.append((self.path, body))
                state.release_hang.wait(10)
                return
            status, answer = state.answer(self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        state.release_hang.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider.running() as provider:
        yield provider


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(autouse=True)
def _instrumented() -> Iterator[None]:
    tenantscope.instrument_all()
    yield
    tenantscope.uninstrument_openai()
    tenantscope.uninstrument_anthropic()


def start(spans: InMemorySpanExporter, endpoint: str, **settings: Any) -> None:
    settings.setdefault("enforce_limits", True)
    # an answer that is merely slow on a loaded machine must not look like an outage
    settings.setdefault("limits_timeout", 5.0)
    tenantscope.init(
        endpoint=endpoint,
        api_key="tsi_test",
        span_processor=SimpleSpanProcessor(spans),
        **settings,
    )


def llm_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [
        s
        for s in spans.get_finished_spans()
        if (s.attributes or {}).get("tenantscope.span.kind") == "llm"
    ]


def provider_calls(fake: FakeProvider) -> int:
    return len(fake.requests)


def oai(fake: FakeProvider) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0)


# --- allowed and denied ----------------------------------------------------------------------
def test_allowed_call_sends_attribution_and_carries_the_reservation(
    stub: Stub, fake: FakeProvider, spans: InMemorySpanExporter
) -> None:
    start(spans, stub.url)
    with tenantscope.context(tenant_id="acme", workspace_id="w1", feature="summary", user_id="u1"):
        oai(fake).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_completion_tokens=300
        )
    (check,) = stub.bodies("/v1/limits/check")
    assert check["tenant_id"] == "acme"
    assert check["workspace_id"] == "w1"
    assert check["feature"] == "summary"
    assert check["user_id"] == "u1"
    assert check["provider"] == "openai"
    assert check["model"] == "gpt-4o-mini"
    assert check["max_tokens"] == 300
    # an upper bound: at least the bytes of the text (the provider's count is far lower)
    assert check["input_tokens"] >= len("Summarise the meeting.")
    (span,) = llm_spans(spans)
    assert (span.attributes or {})["tenantscope.reservation_id"] == "r_1"
    stats = tenantscope.stats()
    assert (stats.limit_checks, stats.limit_denied, stats.limit_unreachable) == (1, 0, 0)


def test_the_default_tenant_is_checked_and_a_call_without_tenant_too(
    stub: Stub, fake: FakeProvider, spans: InMemorySpanExporter
) -> None:
    start(spans, stub.url)
    # no tenant: asked as "" (a tenant-bound key makes it its tenant's, on the server)
    oai(fake).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    start(spans, stub.url, tenant_id="solo")
    oai(fake).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with tenantscope.context(tenant_id="acme"):
        oai(fake).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    checks = stub.bodies("/v1/limits/check")
    assert [c["tenant_id"] for c in checks] == ["", "solo", "acme"]
    assert checks[0]["max_tokens"] is None  # no cap in the request: the server's default


def test_denied_call_raises_without_calling_the_provider(
    stub: Stub, fake: FakeProvider, spans: InMemorySpanExporter
) -> None:
    stub.mode = "deny"
    start(spans, stub.url)
    before = provider_calls(fake)
    with tenantscope.context(tenant_id="techstart-inc"):
        with pytest.raises(tenantscope.TenantLimitExceeded) as info:
            oai(fake).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    exc = info.value
    assert exc.limit == DECIDED_BY
    assert exc.remaining == "0"
    assert exc.retry_after == 23
    assert exc.reason == "denied"
    assert "starter rate" in str(exc) and "retry after 23 s" in str(exc)
    assert provider_calls(fake) == before
    assert llm_spans(spans) == []
    assert tenantscope.stats().limit_denied == 1


def test_enforcement_off_asks_nothing(
    stub: Stub, fake: FakeProvider, spans: InMemorySpanExporter
) -> None:
    stub.mode = "deny"
    start(spans, stub.url, enforce_limits=False)
    with tenantscope.context(tenant_id="acme"):
        oai(fake).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert stub.requests == []
    (span,) = llm_spans(spans)
    assert "tenantscope.reservation_id" not in (span.attributes or {})


def test_anthropic_sends_its_required_max_tokens_and_is_refused(
    stub: Stub, fake: FakeProvider, spans: InMemorySpanExporter
) -> None:
    start(spans, stub.url)
    client = anthropic.Anthropic(base_url=fake.base_url, api_key="test", max_retries=0)
    with tenantscope.context(tenant_id="acme"):
        client.messages.create(
            model="claude-haiku-4-5", max_tokens=256, system="Be brief.", messages=MESSAGES
        )
        stub.mode = "deny"
        before = provider_calls(fake)
        with pytest.raises(tenantscope.TenantLimitExceeded):
            with client.messages.stream(
                model="claude-haiku-4-5", max_tokens=256, messages=MESSAGES
            ) as stream:
                stream.until_done()
        assert provider_calls(fake) == before
    check = stub.bodies("/v1/limits/check")[0]
    assert (check["provider"], check["model"], check["max_tokens"]) == (
        "anthropic",
        "claude-haiku-4-5",
        256,
    )
    assert check["input_tokens"] >= len("Be brief.") + len("Summarise the meeting.")


# --- when the limit service cannot be asked ----------------------------------------------------
def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_fail_open_lets_calls_through_counts_and_logs_once(
    fake: FakeProvider, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    start(spans, closed_port_url())
    with caplog.at_level(logging.WARNING, logger="tenantscope"):
        with tenantscope.context(tenant_id="acme"):
            for _ in range(3):
                oai(fake).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(llm_spans(spans)) == 3
    stats = tenantscope.stats()
    assert (stats.limit_checks, stats.limit_unreachable) == (3, 3)
    logged = [r for r in caplog.records if "limit" in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert "let through" in logged[0].getMessage()
    (span,) = llm_spans(spans)[:1]
    assert "tenantscope.reservation_id" not in (span.attributes or {})


def test_fail_closed_refuses_with_a_clear_error(
    fake: FakeProvider, spans: InMemorySpanExporter
) -> None:
    url = closed_port_url()
    start(spans, url, limits_policy="closed")
    before = provider_calls(fake)
    with tenantscope.context(tenant_id="acme"):
        with pytest.raises(tenantscope.TenantLimitExceeded) as info:
            oai(fake).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.reason == "unreachable"
    assert info.value.limit is None and info.value.retry_after is None
    assert url in str(info.value) and "could not be asked" in str(info.value)
    assert provider_calls(fake) == before
    assert tenantscope.stats().limit_unreachable == 1


@pytest.mark.parametrize("policy", ["open", "closed"])
@pytest.mark.parametrize("mode", ["hang", "status:500", "status:503", "status:401"])
def test_slow_failing_or_refusing_service_follows_the_policy(
    stub: Stub,
    fake: FakeProvider,
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    policy: str,
) -> None:
    stub.mode = mode
    start(spans, stub.url, limits_policy=policy, limits_timeout=0.2)
    with caplog.at_level(logging.WARNING, logger="tenantscope"):
        with tenantscope.context(tenant_id="acme"):
            if policy == "open":
                oai(fake).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                assert len(llm_spans(spans)) == 1
            else:
                with pytest.raises(tenantscope.TenantLimitExceeded) as info:
                    oai(fake).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                assert info.value.reason == "unreachable"
    assert tenantscope.stats().limit_unreachable == 1
    (record,) = [
        r.getMessage()
        for r in caplog.records
        if "limit service" in r.getMessage() or "could not check" in r.getMessage()
    ]
    if mode == "status:401":
        assert "refused the API key" in record and "TENANTSCOPE_API_KEY" in record
    elif mode == "hang":
        assert "limits_timeout" in record
    else:
        assert mode.split(":")[1] in record


def test_a_stale_kept_alive_connection_is_retried(
    stub: Stub, fake: FakeProvider, spans: InMemorySpanExporter
) -> None:
    start(spans, stub.url)
    client = oai(fake)
    with tenantscope.context(tenant_id="acme"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        # the service restarts between two calls (its side of the connection is gone)
        from tenantscope.sdk import _runtime

        limiter = _runtime.current().limiter
        assert limiter is not None
        conn = limiter.http._local.conn
        assert conn is not None and conn.sock is not None
        conn.sock.shutdown(2)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(stub.bodies("/v1/limits/check")) == 2
    assert tenantscope.stats().limit_unreachable == 0


# --- streams -----------------------------------------------------------------------------------
def test_stream_without_max_tokens_extends_then_is_cut(
    stub: Stub, fake: FakeProvider, spans: InMemorySpanExporter
) -> None:
    stub.hold_output = 5
    stub.extends_allowed = 2
    start(spans, stub.url)
    got: list[str] = []
    with tenantscope.context(tenant_id="acme"):
        stream = oai(fake).chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            extra_headers={"x-fake-chunks": "200"},
        )
        with pytest.raises(tenantscope.TenantLimitExceeded) as info:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    got.append(chunk.choices[0].delta.content)
    assert info.value.reason == "cut"
    assert "acme monthly" in str(info.value)
    # the hold was 5, extended twice by 5: the third extension was refused at 15
    assert [b["output_tokens"] for b in stub.bodies("/v1/limits/extend")] == [5, 5, 5]
    assert len(got) < 200
    (span,) = llm_spans(spans)
    attributes = dict(span.attributes or {})
    assert attributes["tenantscope.status"] == "cancelled"
    assert attributes["error.type"] == "tenant_limit_exceeded"
    assert attributes["tenantscope.limit.cut"] is True
    assert attributes["gen_ai.usage.output_tokens"] >= 15
    assert (
        attributes["gen_ai.usage.input_tokens"]
        == stub.bodies("/v1/limits/check")[0]["input_tokens"]
    )
    assert attributes["tenantscope.reservation_id"] == "r_1"
    stats = tenantscope.stats()
    assert (stats.limit_extends, stats.limit_streams_cut, stats.limit_denied) == (3, 1, 1)


def test_stream_with_max_tokens_never_extends(
    stub: Stub, fake: FakeProvider, spans: InMemorySpanExporter
) -> None:
    stub.hold_output = 5
    stub.extends_allowed = 0
    start(spans, stub.url)
    with tenantscope.context(tenant_id="acme"):
        stream = oai(fake).chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            max_tokens=500,
            extra_headers={"x-fake-chunks": "50"},
        )
        assert len([c for c in stream if c.choices and c.choices[0].delta.content]) == 50
    assert stub.bodies("/v1/limits/extend") == []
    (span,) = llm_spans(spans)
    assert "tenantscope.limit.cut" not in (span.attributes or {})


def test_anthropic_stream_is_cut_by_a_refused_extension(
    stub: Stub, fake: FakeProvider, spans: InMemorySpanExporter
) -> None:
    # Anthropic requires max_tokens, so its streams never extend; the Responses API does not
    stub.hold_output = 3
    stub.extends_allowed = 0
    start(spans, stub.url)
    with tenantscope.context(tenant_id="acme"):
        stream = oai(fake).responses.create(
            model="gpt-4o-mini", input="hi", stream=True, extra_headers={"x-fake-chunks": "40"}
        )
        with pytest.raises(tenantscope.TenantLimitExceeded):
            list(stream)
    (span,) = llm_spans(spans)
    assert (span.attributes or {})["tenantscope.status"] == "cancelled"
    assert len(stub.bodies("/v1/limits/extend")) == 1


def test_extension_unanswered_follows_the_policy(
    stub: Stub, fake: FakeProvider, spans: InMemorySpanExporter
) -> None:
    stub.hold_output = 4
    start(spans, stub.url)
    with tenantscope.context(tenant_id="acme"):
        stream = oai(fake).chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            extra_headers={"x-fake-chunks": "20"},
        )
        stub.mode = "status:503"  # after the check: the extensions fail
        assert len([c for c in stream if c.choices and c.choices[0].delta.content]) == 20
    (span,) = llm_spans(spans)
    assert (span.attributes or {}).get("tenantscope.status") is None  # ok
    # one step assumed per failed extension: 4 at a time, not one request per chunk
    assert len(stub.bodies("/v1/limits/extend")) == 5

    start(spans, stub.url, limits_policy="closed")
    stub.mode = "allow"
    with tenantscope.context(tenant_id="acme"):
        stream = oai(fake).chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            extra_headers={"x-fake-chunks": "20"},
        )
        stub.mode = "status:503"
        with pytest.raises(tenantscope.TenantLimitExceeded) as info:
            list(stream)
    assert info.value.reason == "unreachable"


# --- async ---------------------------------------------------------------------------------------
def test_async_clients_check_deny_and_cut(
    stub: Stub, fake: FakeProvider, spans: InMemorySpanExporter
) -> None:
    start(spans, stub.url)
    aoai = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0)
    aclaude = anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="test", max_retries=0)

    async def main() -> None:
        with tenantscope.context(tenant_id="acme"):
            await aoai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            await aclaude.messages.create(
                model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES
            )
            async with aclaude.messages.stream(
                model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES
            ) as stream:
                await stream.until_done()
            stub.hold_output, stub.extends_allowed = 3, 1
            stream = await aoai.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,
                extra_headers={"x-fake-chunks": "100"},
            )
            with pytest.raises(tenantscope.TenantLimitExceeded):
                async for _ in stream:
                    pass
            stub.mode = "deny"
            with pytest.raises(tenantscope.TenantLimitExceeded):
                await aoai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            with pytest.raises(tenantscope.TenantLimitExceeded):
                await aclaude.messages.create(
                    model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES
                )

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()
    # a refused call's request coroutine is closed, never left un-awaited
    assert not [w for w in caught if "never awaited" in str(w.message)]
    assert len(stub.bodies("/v1/limits/check")) == 6
    assert len(stub.bodies("/v1/limits/extend")) == 2
    statuses = [(s.attributes or {}).get("tenantscope.status") for s in llm_spans(spans)]
    assert statuses == [None, None, None, "cancelled"]
    assert all("tenantscope.reservation_id" in (s.attributes or {}) for s in llm_spans(spans))


# --- guard ---------------------------------------------------------------------------------------
def test_guard_checks_settles_and_releases(stub: Stub, spans: InMemorySpanExporter) -> None:
    start(spans, stub.url, enforce_limits=False)  # guard() asks whatever enforce_limits says
    with tenantscope.context(tenant_id="acme", user_id="u1"):
        with tenantscope.guard(model="gpt-4o", feature="report", estimate=5000) as g:
            assert g.reservation_id == "r_1"
            assert g.warnings == ("budget 'acme monthly' at 82 % (soft)",)
            g.settle(input_tokens=900, output_tokens=120, cost_usd="0.0031")
        with tenantscope.guard(estimate="0.25", ttl_s=60) as g2:
            assert g2.reservation_id is not None
        with tenantscope.guard(
            tenant_id="other", estimate={"input_tokens": 100, "output_tokens": 50}
        ):
            pass
    checks = stub.bodies("/v1/limits/check")
    assert [c["tenant_id"] for c in checks] == ["acme", "acme", "other"]
    assert checks[0]["user_id"] == "u1" and checks[0]["feature"] == "report"
    assert (checks[0]["input_tokens"], checks[0]["max_tokens"]) == (5000, 0)
    assert (checks[1]["estimated_cost_usd"], checks[1]["ttl_s"]) == ("0.25", 60)
    assert (checks[2]["input_tokens"], checks[2]["max_tokens"]) == (100, 50)
    (settle,) = stub.bodies("/v1/limits/settle")
    assert settle["reservation_id"] == "r_1"
    assert (settle["status"], settle["input_tokens"], settle["output_tokens"]) == ("ok", 900, 120)
    assert (settle["cost_usd"], settle["model"]) == ("0.0031", "gpt-4o")
    assert g.settled is not None and g.settled["settled"] is True
    assert [b["reservation_id"] for b in stub.bodies("/v1/limits/release")] == ["r_2", "r_3"]


def test_guard_on_error_settles_reported_usage_as_error_else_releases(
    stub: Stub, spans: InMemorySpanExporter
) -> None:
    start(spans, stub.url)
    with pytest.raises(RuntimeError):
        with tenantscope.guard(tenant_id="acme", estimate=100) as g:
            g.settle(input_tokens=10, output_tokens=2)
            raise RuntimeError("the provider broke")
    with pytest.raises(KeyError):
        with tenantscope.guard(tenant_id="acme", estimate=100):
            raise KeyError("nothing reported")
    (settle,) = stub.bodies("/v1/limits/settle")
    assert (settle["status"], settle["error_type"]) == ("error", "RuntimeError")
    assert "the provider broke" in settle["error_message"]
    assert [b["reservation_id"] for b in stub.bodies("/v1/limits/release")] == ["r_2"]


def test_guard_denied_raises_and_instrumented_calls_inside_use_its_reservation(
    stub: Stub, fake: FakeProvider, spans: InMemorySpanExporter
) -> None:
    start(spans, stub.url)
    with tenantscope.context(tenant_id="acme"):
        with tenantscope.guard(estimate=2000) as g:
            oai(fake).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        stub.mode = "deny"
        with pytest.raises(tenantscope.TenantLimitExceeded) as info:
            with tenantscope.guard(estimate=2000):
                pytest.fail("the block of a refused guard must not run")
    assert info.value.retry_after == 23
    # one check (the guard's), the span carries it, and the span (not the guard) settles it
    assert len(stub.bodies("/v1/limits/check")) == 2
    (span,) = llm_spans(spans)
    assert (span.attributes or {})["tenantscope.reservation_id"] == g.reservation_id
    assert stub.bodies("/v1/limits/release") == []
    assert stub.bodies("/v1/limits/settle") == []


def test_async_guard(stub: Stub, spans: InMemorySpanExporter) -> None:
    start(spans, stub.url)

    async def main() -> None:
        async with tenantscope.guard(tenant_id="acme", estimate=10) as g:
            g.settle(input_tokens=3, output_tokens=1)
        async with tenantscope.guard(tenant_id="acme", estimate=10):
            pass

    asyncio.run(main())
    assert len(stub.bodies("/v1/limits/settle")) == 1
    assert len(stub.bodies("/v1/limits/release")) == 1


def test_guard_before_init_or_unreachable_checks_nothing(spans: InMemorySpanExporter) -> None:
    with tenantscope.guard(tenant_id="acme", estimate=10) as g:
        g.settle(input_tokens=1)
    assert g.reservation_id is None and not g.checked
    start(spans, closed_port_url(), limits_policy="closed")
    with pytest.raises(tenantscope.TenantLimitExceeded):
        with tenantscope.guard(tenant_id="acme", estimate=10):
            pass
    with pytest.raises(ValueError, match="tokens"):
        tenantscope.guard(tenant_id="acme", estimate={"input_tokens": -1})


# --- the estimate --------------------------------------------------------------------------------
def test_estimate_is_at_least_the_utf8_bytes_of_every_text() -> None:
    text = "Résumé de la réunion — 会議の要約 🚀"
    kwargs = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": text}]},
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
    }
    got = _estimate.input_tokens(kwargs, messages="messages", extra=("tools",))
    assert got >= len(text.encode()) + len("Be brief.") + len("lookup")
    assert len(text.encode()) > len(text)  # the multibyte text: bytes, not characters


def test_estimate_gives_a_non_text_part_a_fixed_allowance() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 500_000}}
    kwargs = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, image]}]}
    got = _estimate.input_tokens(kwargs, messages="messages", extra=())
    assert _estimate.NON_TEXT_ALLOWANCE <= got < _estimate.NON_TEXT_ALLOWANCE + 100


def test_estimate_bounds_the_fake_providers_count(fake: FakeProvider) -> None:
    # the fake provider counts ~1 token per 4 characters + 3 per message, like real ones
    client = oai(fake)
    messages: list[Any] = [
        {"role": "system", "content": "You summarise meetings. " * 20},
        {"role": "user", "content": "Alice: ship it. Bob: next week. " * 50},
    ]
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert reply.usage is not None
    estimate = _estimate.input_tokens({"messages": messages}, messages="messages", extra=())
    assert estimate >= reply.usage.prompt_tokens


def test_a_call_whose_span_is_sampled_out_releases_its_hold_but_keeps_its_place(
    stub: Stub, fake: FakeProvider
) -> None:
    """No span will settle the reservation, so the SDK drops the hold at once; the call did
    run, so it asks the server to keep its place in the rate window (``happened``)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    tenantscope.init(
        endpoint=stub.url,
        api_key="tsi_test",
        enforce_limits=True,
        limits_timeout=5.0,
        tracer_provider=TracerProvider(sampler=ALWAYS_OFF),
    )
    with tenantscope.context(tenant_id="acme"):
        oai(fake).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
    assert stub.bodies("/v1/limits/release") == [{"reservation_id": "r_1", "happened": True}]
