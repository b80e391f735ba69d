"""The fake provider speaks the providers' wire formats (checked at the HTTP level here;
the client libraries parse it in tests/sdk/instrument)."""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tenantscope.testing import FakeProvider
from tests.conftest import free_port

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}
CLAUDE = {
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hello there"}],
}
USAGE = {"x-fake-usage": "input=1000,output=200,cache_read=300,cache_write=100,reasoning=50"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider.running() as provider:
        yield provider


@pytest.fixture
def http(fake: FakeProvider) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.base_url, timeout=10) as client:
        yield client


def _events(body: str) -> list[tuple[str | None, str]]:
    out = []
    for block in body.strip().split("\n\n"):
        event = None
        data = ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data = line[len("data: ") :]
        out.append((event, data))
    return out


def test_chat_completion_json(http: httpx.Client) -> None:
    body = http.post("/v1/chat/completions", json=CHAT, headers=USAGE).json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "gpt-4o-mini-2024-07-18"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == 1000
    assert body["usage"]["completion_tokens"] == 200
    assert body["usage"]["total_tokens"] == 1200
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 300
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 50


def test_default_usage_is_deterministic(http: httpx.Client) -> None:
    first = http.post("/v1/chat/completions", json=CHAT).json()["usage"]
    second = http.post("/v1/chat/completions", json=CHAT).json()["usage"]
    assert first == second
    assert first["prompt_tokens"] == 3 + 3  # 3 per message + ceil(11 chars / 4)


def test_chat_stream_with_and_without_usage_chunk(http: httpx.Client) -> None:
    plain = _events(
        http.post(
            "/v1/chat/completions", json={**CHAT, "stream": True}, headers={"x-fake-chunks": "2"}
        ).text
    )
    assert plain[-1] == (None, "[DONE]")
    chunks = [json.loads(data) for _, data in plain[:-1]]
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == [
        "",
        "Summary:",
        " the",
        None,
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)

    with_usage = _events(
        http.post(
            "/v1/chat/completions",
            json={**CHAT, "stream": True, "stream_options": {"include_usage": True}},
            headers=USAGE,
        ).text
    )
    chunks = [json.loads(data) for _, data in with_usage[:-1]]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 1000


def test_responses_stream_events(http: httpx.Client) -> None:
    body = {"model": "gpt-4o-mini", "input": "hi", "stream": True}
    events = _events(http.post("/v1/responses", json=body, headers={"x-fake-chunks": "2"}).text)
    kinds = [e for e, _ in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    payloads = [json.loads(d) for _, d in events]
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    assert payloads[-1]["response"]["usage"]["output_tokens"] == 2
    assert payloads[0]["response"]["usage"] is None


def test_embeddings_float_and_base64(http: httpx.Client) -> None:
    floats = http.post("/v1/embeddings", json={"model": "m", "input": ["a", "b"]}).json()
    b64 = http.post(
        "/v1/embeddings", json={"model": "m", "input": ["a", "b"], "encoding_format": "base64"}
    ).json()
    decoded = struct.unpack("<8f", base64.b64decode(b64["data"][1]["embedding"]))
    assert decoded == pytest.approx(floats["data"][1]["embedding"], abs=1e-6)
    assert floats["usage"]["prompt_tokens"] == floats["usage"]["total_tokens"]


def test_anthropic_message_reports_input_without_cache(http: httpx.Client) -> None:
    body = http.post("/v1/messages", json=CLAUDE, headers=USAGE).json()
    assert body["type"] == "message" and body["id"].startswith("msg_")
    assert body["model"] == "claude-haiku-4-5-20251001"
    assert body["usage"]["input_tokens"] == 600
    assert body["usage"]["cache_read_input_tokens"] == 300
    assert body["usage"]["cache_creation_input_tokens"] == 100
    assert body["usage"]["output_tokens"] == 200


def test_anthropic_stream_events(http: httpx.Client) -> None:
    events = _events(
        http.post(
            "/v1/messages", json={**CLAUDE, "stream": True}, headers={**USAGE, "x-fake-chunks": "2"}
        ).text
    )
    assert [e for e, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, delta = json.loads(events[0][1]), json.loads(events[-2][1])
    assert start["message"]["usage"]["input_tokens"] == 600
    assert delta["usage"]["output_tokens"] == 200
    assert delta["delta"]["stop_reason"] == "end_turn"


@pytest.mark.parametrize(
    ("path", "body", "status", "kind"),
    [
        ("/v1/chat/completions", CHAT, 400, "invalid_request_error"),
        ("/v1/chat/completions", CHAT, 500, "server_error"),
        ("/v1/messages", CLAUDE, 400, "invalid_request_error"),
        ("/v1/messages", CLAUDE, 529, "overloaded_error"),
    ],
)
def test_error_bodies(
    http: httpx.Client, path: str, body: dict[str, object], status: int, kind: str
) -> None:
    response = http.post(path, json=body, headers={"x-fake-behavior": f"error-{status}"})
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == kind and error["message"]
    if path == "/v1/messages":
        assert response.json()["type"] == "error"


def test_rate_limits(http: httpx.Client, fake: FakeProvider) -> None:
    limited = http.post("/v1/chat/completions", json=CHAT, headers={"x-fake-behavior": "error-429"})
    assert limited.status_code == 429
    assert limited.headers["retry-after-ms"] == str(fake.retry_after_ms)
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    once = {"x-fake-behavior": "rate-limit-once"}
    assert http.post("/v1/messages", json=CLAUDE, headers=once).status_code == 429
    retried = {**once, "x-stainless-retry-count": "1"}
    assert http.post("/v1/messages", json=CLAUDE, headers=retried).status_code == 200


def test_delay_is_applied(http: httpx.Client) -> None:
    started = time.perf_counter()
    http.post("/v1/chat/completions", json=CHAT, headers={"x-fake-delay-ms": "200"})
    assert time.perf_counter() - started >= 0.2


def test_requests_are_recorded(http: httpx.Client, fake: FakeProvider) -> None:
    http.post("/v1/chat/completions", json={**CHAT, "temperature": 0.5})
    last = fake.requests[-1]
    assert last.path == "/v1/chat/completions" and last.body["temperature"] == 0.5


def test_runs_as_its_own_process() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tenantscope.testing.fake_provider", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=CHAT)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        assert response.json()["object"] == "chat.completion"
    finally:
        proc.terminate()
        proc.wait(10)
