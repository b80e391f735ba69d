"""A local fake LLM provider speaking the OpenAI and Anthropic wire formats.

For tests, the example and the benchmark: the real ``openai`` / ``anthropic`` clients are
pointed at it (``base_url``) and get exactly the JSON and server-sent events the real APIs
send, with deterministic usage.

Routes: ``POST /v1/chat/completions`` (JSON, or SSE with ``stream``; a final usage chunk
when ``stream_options.include_usage``), ``POST /v1/responses`` (JSON or the ``response.*``
event stream), ``POST /v1/embeddings`` (float or base64), ``POST /v1/messages`` (Anthropic
JSON or the ``message_start`` … ``message_stop`` event stream), ``GET /healthz``.

Each request may choose its behaviour with headers (so a test can use ``extra_headers``):

- ``x-fake-behavior``: comma-separated tokens
  ``error-<status>`` (e.g. ``error-400``, ``error-429``, ``error-500``: the provider's JSON
  error body; 429 and 5xx carry ``retry-after`` / ``retry-after-ms``),
  ``rate-limit-once`` (429 on the first attempt, success on the client's retry),
  ``stream-error`` (a streamed response fails after its first content event) and
  ``stream-cut`` (a streamed response stops before its final events).
- ``x-fake-usage``: ``input=1000,output=200,cache_read=300,cache_write=100,reasoning=50``.
  ``input`` includes the cache tokens and ``output`` the reasoning tokens (the OTel
  convention); Anthropic responses report ``input_tokens`` without the cache, as its API does.
- ``x-fake-delay-ms`` (before the response or the first event), ``x-fake-chunk-delay-ms``
  (between streamed events), ``x-fake-chunks`` (number of content pieces).

Without ``x-fake-usage`` the usage is computed from the request: about one token per four
characters of the prompt plus three per message, and one output token per content piece.
Instance settings (``delay_ms``, ``ms_per_input_token``, ``model_delay_ms``) give defaults.

Usage::

    with FakeProvider.running() as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="test")

or as its own process: ``python -m tenantscope.testing.fake_provider --port 8900``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import math
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["FakeProvider", "FakeUsage", "RecordedRequest", "main"]

REPLY_WORDS = (
    "Summary: the team agreed on the plan, assigned owners for each action item "
    "and scheduled a follow-up review next week."
).split()

# Dated snapshots the real APIs answer with for an alias (request model -> response model).
SNAPSHOTS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
}

_OPENAI_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request: the fake provider was asked to fail."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
}
_ANTHROPIC_ERRORS = {
    400: ("invalid_request_error", "Invalid request: the fake provider was asked to fail."),
    401: ("authentication_error", "invalid x-api-key"),
    404: ("not_found_error", "model not found"),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


@dataclass(frozen=True)
class FakeUsage:
    """Token counts of one fake response, in the OTel convention (input includes cache,
    output includes reasoning)."""

    input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class _Plan:
    """What to answer to one request, from its headers and the instance defaults."""

    model: str
    stream: bool
    usage: FakeUsage
    pieces: list[str]
    delay_s: float
    chunk_delay_s: float
    behaviors: frozenset[str]
    error_status: int | None


@dataclass
class FakeProvider:
    """The fake provider's settings and, once started, its server."""

    host: str = "127.0.0.1"
    port: int = 0
    delay_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    ms_per_input_token: float = 0.0
    model_delay_ms: Mapping[str, float] = field(default_factory=dict)
    retry_after_ms: int = 5
    record: bool = True
    requests: list[RecordedRequest] = field(default_factory=list, init=False)
    _server: Any = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _ids: Iterator[int] = field(default_factory=itertools.count, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # --- lifecycle ------------------------------------------------------------------------
    @classmethod
    @contextmanager
    def running(cls, **settings: Any) -> Iterator[FakeProvider]:
        """Serve in a background thread on a free port for the duration of the block."""
        fake = cls(**settings)
        fake.start()
        try:
            yield fake
        finally:
            fake.stop()

    @property
    def base_url(self) -> str:
        """The server root: Anthropic's ``base_url``."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """OpenAI's ``base_url`` (the client appends paths to ``/v1``)."""
        return f"{self.base_url}/v1"

    def start(self) -> None:
        import uvicorn

        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), log_level="warning", lifespan="off", access_log=False)
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="fake-provider", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the fake provider did not start")
            time.sleep(0.01)
        self._server, self._thread = server, thread

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._server = self._thread = None

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/responses", self._responses, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/healthz", _healthz, methods=["GET"]),
            ]
        )

    # --- request handling -----------------------------------------------------------------
    def _next_id(self) -> str:
        with self._lock:
            n = next(self._ids)
        return f"{n:06d}{time.time_ns() % 10**12:012d}"

    async def _read(self, request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if self.record:
            recorded = RecordedRequest(
                request.method, request.url.path, dict(request.headers), body
            )
            with self._lock:
                self.requests.append(recorded)
        return body if isinstance(body, dict) else {}

    def _plan(
        self, request: Request, body: dict[str, Any], *, prompt_chars: int, messages: int
    ) -> _Plan:
        headers = request.headers
        behaviors = frozenset(
            b.strip() for b in headers.get("x-fake-behavior", "").split(",") if b.strip()
        )
        model = str(body.get("model") or "")
        n_pieces = _int(headers.get("x-fake-chunks"), len(REPLY_WORDS))
        pieces = [
            (" " if i else "") + REPLY_WORDS[i % len(REPLY_WORDS)] for i in range(max(1, n_pieces))
        ]
        usage = _parse_usage(headers.get("x-fake-usage")) or FakeUsage(
            input=3 * max(1, messages) + math.ceil(prompt_chars / 4), output=len(pieces)
        )
        delay_ms = _float(headers.get("x-fake-delay-ms"), None)
        if delay_ms is None:
            delay_ms = (
                self.model_delay_ms.get(model, self.delay_ms)
                + self.ms_per_input_token * usage.input
            )
        chunk_delay = _float(headers.get("x-fake-chunk-delay-ms"), self.chunk_delay_ms) or 0.0
        error_status = None
        for b in behaviors:
            if b.startswith("error-"):
                error_status = _int(b[len("error-") :], 500)
        if "rate-limit-once" in behaviors and headers.get("x-stainless-retry-count", "0") == "0":
            error_status = 429
        return _Plan(
            model=model,
            stream=bool(body.get("stream")),
            usage=usage,
            pieces=pieces,
            delay_s=delay_ms / 1000.0,
            chunk_delay_s=chunk_delay / 1000.0,
            behaviors=behaviors,
            error_status=error_status,
        )

    def _retry_headers(self, status: int) -> dict[str, str]:
        if status == 429 or status >= 500:
            return {
                "retry-after": str(max(1, math.ceil(self.retry_after_ms / 1000))),
                "retry-after-ms": str(self.retry_after_ms),
            }
        return {}

    # --- OpenAI ---------------------------------------------------------------------------
    def _openai_error(self, status: int) -> Response:
        kind, code, message = _OPENAI_ERRORS.get(status, ("server_error", None, f"HTTP {status}"))
        return JSONResponse(
            {"error": {"message": message, "type": kind, "param": None, "code": code}},
            status_code=status,
            headers={"x-request-id": f"req_{self._next_id()}", **self._retry_headers(status)},
        )

    async def _chat(self, request: Request) -> Response:
        body = await self._read(request)
        msgs = body.get("messages") or []
        plan = self._plan(request, body, prompt_chars=_text_len(msgs), messages=len(msgs))
        if plan.error_status is not None:
            await asyncio.sleep(plan.delay_s)
            return self._openai_error(plan.error_status)
        rid, created = f"chatcmpl-{self._next_id()}", int(time.time())
        model = SNAPSHOTS.get(plan.model, plan.model)
        if not plan.stream:
            await asyncio.sleep(plan.delay_s)
            return JSONResponse(
                {
                    "id": rid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": "".join(plan.pieces),
                                "refusal": None,
                                "annotations": [],
                            },
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": _chat_usage(plan.usage),
                    "service_tier": "default",
                    "system_fingerprint": "fp_fake",
                }
            )
        options = body.get("stream_options") or {}
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": rid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                out["usage"] = None
            return out

        async def events() -> AsyncIterator[bytes]:
            await asyncio.sleep(plan.delay_s)
            yield _sse(chunk({"role": "assistant", "content": "", "refusal": None}, None))
            for i, piece in enumerate(plan.pieces):
                if i:
                    await asyncio.sleep(plan.chunk_delay_s)
                yield _sse(chunk({"content": piece}, None))
                if i == 0 and "stream-error" in plan.behaviors:
                    err = {"message": "The server had an error.", "type": "server_error"}
                    yield _sse({"error": {**err, "param": None, "code": None}})
                    return
            if "stream-cut" in plan.behaviors:
                return
            yield _sse(chunk({}, "stop"))
            if include_usage:
                final = chunk({}, None)
                final["choices"] = []
                final["usage"] = _chat_usage(plan.usage)
                yield _sse(final)
            yield b"data: [DONE]\n\n"

        return _stream(events())

    async def _responses(self, request: Request) -> Response:
        body = await self._read(request)
        given = body.get("input")
        items = given if isinstance(given, list) else [given]
        chars = _text_len(items) + len(str(body.get("instructions") or ""))
        plan = self._plan(request, body, prompt_chars=chars, messages=len(items))
        if plan.error_status is not None:
            await asyncio.sleep(plan.delay_s)
            return self._openai_error(plan.error_status)
        rid, mid = f"resp_{self._next_id()}", f"msg_{self._next_id()}"
        model = SNAPSHOTS.get(plan.model, plan.model)
        text = "".join(plan.pieces)

        def response(status: str, *, done: bool) -> dict[str, Any]:
            content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
            message = {
                "type": "message",
                "id": mid,
                "status": "completed",
                "role": "assistant",
                "content": content,
            }
            return {
                "id": rid,
                "object": "response",
                "created_at": int(time.time()),
                "status": status,
                "error": None,
                "incomplete_details": None,
                "instructions": body.get("instructions"),
                "max_output_tokens": body.get("max_output_tokens"),
                "model": model,
                "output": [message] if done else [],
                "parallel_tool_calls": True,
                "previous_response_id": None,
                "reasoning": {"effort": None, "summary": None},
                "store": True,
                "temperature": 1.0,
                "text": {"format": {"type": "text"}},
                "tool_choice": "auto",
                "tools": [],
                "top_p": 1.0,
                "truncation": "disabled",
                "usage": _responses_usage(plan.usage) if done else None,
                "metadata": {},
            }

        if not plan.stream:
            await asyncio.sleep(plan.delay_s)
            return JSONResponse(response("completed", done=True))

        async def events() -> AsyncIterator[bytes]:
            seq = itertools.count()

            def event(kind: str, **fields: Any) -> bytes:
                return _sse({"type": kind, "sequence_number": next(seq), **fields}, event=kind)

            await asyncio.sleep(plan.delay_s)
            yield event("response.created", response=response("in_progress", done=False))
            yield event("response.in_progress", response=response("in_progress", done=False))
            item = {"type": "message", "id": mid, "status": "in_progress", "role": "assistant"}
            yield event("response.output_item.added", output_index=0, item={**item, "content": []})
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            where = {"item_id": mid, "output_index": 0, "content_index": 0}
            yield event("response.content_part.added", **where, part=part)
            for i, piece in enumerate(plan.pieces):
                if i:
                    await asyncio.sleep(plan.chunk_delay_s)
                yield event("response.output_text.delta", **where, delta=piece, logprobs=[])
                if i == 0 and "stream-error" in plan.behaviors:
                    message = "The server had an error."
                    yield event("error", code="server_error", message=message, param=None)
                    return
            if "stream-cut" in plan.behaviors:
                return
            yield event("response.output_text.done", **where, text=text, logprobs=[])
            yield event("response.content_part.done", **where, part={**part, "text": text})
            done_item = response("completed", done=True)["output"][0]
            yield event("response.output_item.done", output_index=0, item=done_item)
            yield event("response.completed", response=response("completed", done=True))

        return _stream(events())

    async def _embeddings(self, request: Request) -> Response:
        body = await self._read(request)
        given = body.get("input")
        inputs = given if isinstance(given, list) else [given]
        plan = self._plan(request, body, prompt_chars=_text_len(inputs), messages=0)
        await asyncio.sleep(plan.delay_s)
        if plan.error_status is not None:
            return self._openai_error(plan.error_status)
        dims = _int(str(body.get("dimensions") or ""), 8)
        data = []
        for i, _ in enumerate(inputs):
            vector = [round(math.sin(i + j + 1), 6) for j in range(dims)]
            embedding: Any = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        tokens = plan.usage.input
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": plan.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    # --- Anthropic ------------------------------------------------------------------------
    def _anthropic_error(self, status: int) -> Response:
        kind, message = _ANTHROPIC_ERRORS.get(status, ("api_error", f"HTTP {status}"))
        request_id = f"req_{self._next_id()}"
        return JSONResponse(
            {
                "type": "error",
                "error": {"type": kind, "message": message},
                "request_id": request_id,
            },
            status_code=status,
            headers={"request-id": request_id, **self._retry_headers(status)},
        )

    async def _messages(self, request: Request) -> Response:
        body = await self._read(request)
        msgs = body.get("messages") or []
        chars = _text_len(msgs) + _text_len(body.get("system"))
        plan = self._plan(request, body, prompt_chars=chars, messages=len(msgs))
        if plan.error_status is not None:
            await asyncio.sleep(plan.delay_s)
            return self._anthropic_error(plan.error_status)
        mid = f"msg_{self._next_id()}"
        model = SNAPSHOTS.get(plan.model, plan.model)
        usage = plan.usage
        uncached = max(0, usage.input - usage.cache_read - usage.cache_write)

        def message(content: list[dict[str, Any]], stop: str | None, output: int) -> dict[str, Any]:
            return {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": uncached,
                    "cache_creation_input_tokens": usage.cache_write,
                    "cache_read_input_tokens": usage.cache_read,
                    "cache_creation": {
                        "ephemeral_5m_input_tokens": usage.cache_write,
                        "ephemeral_1h_input_tokens": 0,
                    },
                    "output_tokens": output,
                    "service_tier": "standard",
                },
            }

        text = "".join(plan.pieces)
        if not plan.stream:
            await asyncio.sleep(plan.delay_s)
            return JSONResponse(
                message([{"type": "text", "text": text}], "end_turn", usage.output),
                headers={"request-id": f"req_{self._next_id()}"},
            )

        async def events() -> AsyncIterator[bytes]:
            def event(kind: str, **fields: Any) -> bytes:
                return _sse({"type": kind, **fields}, event=kind)

            await asyncio.sleep(plan.delay_s)
            yield event("message_start", message=message([], None, 1))
            yield event("content_block_start", index=0, content_block={"type": "text", "text": ""})
            yield event("ping")
            for i, piece in enumerate(plan.pieces):
                if i:
                    await asyncio.sleep(plan.chunk_delay_s)
                delta = {"type": "text_delta", "text": piece}
                yield event("content_block_delta", index=0, delta=delta)
                if i == 0 and "stream-error" in plan.behaviors:
                    err = {"type": "overloaded_error", "message": "Overloaded"}
                    yield event("error", error=err)
                    return
            if "stream-cut" in plan.behaviors:
                return
            yield event("content_block_stop", index=0)
            yield event(
                "message_delta",
                delta={"stop_reason": "end_turn", "stop_sequence": None},
                usage={
                    "input_tokens": uncached,
                    "cache_creation_input_tokens": usage.cache_write,
                    "cache_read_input_tokens": usage.cache_read,
                    "output_tokens": usage.output,
                },
            )
            yield event("message_stop")

        return _stream(events(), headers={"request-id": f"req_{self._next_id()}"})


# --- helpers ------------------------------------------------------------------------------
async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _sse(data: object, *, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _stream(events: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> Response:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", **(headers or {})},
    )


def _text_len(value: object) -> int:
    """Characters of text anywhere in a request's messages / input (content blocks included)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_len(v) for v in value)
    if isinstance(value, dict):
        return sum(_text_len(value.get(k)) for k in ("content", "text", "input"))
    return 0


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def _float(value: str | None, default: float | None) -> float | None:
    try:
        return float(value) if value else default
    except ValueError:
        return default


def _parse_usage(text: str | None) -> FakeUsage | None:
    if not text:
        return None
    fields: dict[str, int] = {}
    for pair in text.split(","):
        key, _, value = pair.partition("=")
        fields[key.strip()] = _int(value.strip(), 0)
    return FakeUsage(
        input=fields.get("input", 0),
        output=fields.get("output", 0),
        cache_read=fields.get("cache_read", 0),
        cache_write=fields.get("cache_write", 0),
        reasoning=fields.get("reasoning", 0),
    )


def _chat_usage(usage: FakeUsage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input,
        "completion_tokens": usage.output,
        "total_tokens": usage.input + usage.output,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _responses_usage(usage: FakeUsage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input,
        "input_tokens_details": {"cached_tokens": usage.cache_read},
        "output_tokens": usage.output,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning},
        "total_tokens": usage.input + usage.output,
    }


def main(argv: list[str] | None = None) -> None:
    """Serve in the foreground (for a benchmark's separate process)."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m tenantscope.testing.fake_provider")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    fake = FakeProvider(
        host=args.host,
        port=args.port,
        delay_ms=args.delay_ms,
        chunk_delay_ms=args.chunk_delay_ms,
        record=False,  # a long-running process must not grow without bound
    )
    print(f"fake provider listening on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(fake.app(), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
