"""What every driver shares: the four call shapes and the hand-over to ``record.py``.

Runs in a throwaway venv (stdlib, ``openai`` and ``anthropic`` only; never ``tenantscope``).
``record.py`` passes everything through environment variables:

- ``CONFORMANCE_LIB``: the library spec's name; tenant ids are ``<lib>-<shape>``.
- ``CONFORMANCE_SHAPES``: comma-separated shapes to run (all four, or one per process).
- ``CONFORMANCE_OPENAI_BASE_URL`` / ``CONFORMANCE_ANTHROPIC_BASE_URL``: the fake provider.
- ``CONFORMANCE_OTLP_ENDPOINT``: the capturing receiver's root (``http://127.0.0.1:N``);
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set to it as well.
- ``CONFORMANCE_OPENAI_USAGE`` / ``CONFORMANCE_ANTHROPIC_USAGE``: the ``x-fake-usage`` values.
- ``CONFORMANCE_RESULT``: where to write the JSON result (shapes done, skipped, notes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

SHAPES = ("openai_chat", "openai_stream", "anthropic_message", "anthropic_stream")

LIB = os.environ["CONFORMANCE_LIB"]
SELECTED = [s for s in os.environ.get("CONFORMANCE_SHAPES", ",".join(SHAPES)).split(",") if s]
OPENAI_BASE_URL = os.environ["CONFORMANCE_OPENAI_BASE_URL"]
ANTHROPIC_BASE_URL = os.environ["CONFORMANCE_ANTHROPIC_BASE_URL"]
OTLP_ENDPOINT = os.environ["CONFORMANCE_OTLP_ENDPOINT"].rstrip("/")
OTLP_TRACES_ENDPOINT = f"{OTLP_ENDPOINT}/v1/traces"
OPENAI_USAGE = os.environ["CONFORMANCE_OPENAI_USAGE"]
ANTHROPIC_USAGE = os.environ["CONFORMANCE_ANTHROPIC_USAGE"]
RESULT_PATH = os.environ["CONFORMANCE_RESULT"]

OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-sonnet-4-5"
PROMPT = "Summarise the meeting notes in one sentence."


def tenant_id(shape: str) -> str:
    return f"{LIB}-{shape}"


def fake_headers(shape: str) -> dict[str, str]:
    """Per-call headers: the fixed usage, and the tenant so ``record.py`` can count requests."""
    usage = OPENAI_USAGE if shape.startswith("openai") else ANTHROPIC_USAGE
    return {"x-fake-usage": usage, "x-conformance-tenant": tenant_id(shape)}


# --- the four shapes ----------------------------------------------------------------------
def openai_chat(client: Any) -> str:
    resp = client.chat.completions.create(
        model=OPENAI_MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        extra_headers=fake_headers("openai_chat"),
    )
    return str(resp.id)


def openai_stream(client: Any) -> str:
    stream = client.chat.completions.create(
        model=OPENAI_MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=fake_headers("openai_stream"),
    )
    rid = ""
    for chunk in stream:
        rid = chunk.id or rid
    return rid


def anthropic_message(client: Any) -> str:
    msg = client.messages.create(
        model=ANTHROPIC_MODEL,
        max_tokens=1024,
        messages=[{"role": "user", "content": PROMPT}],
        extra_headers=fake_headers("anthropic_message"),
    )
    return str(msg.id)


def anthropic_stream(client: Any) -> str:
    """``messages.stream`` (the SDK's documented streaming helper), fully consumed."""
    with client.messages.stream(
        model=ANTHROPIC_MODEL,
        max_tokens=1024,
        messages=[{"role": "user", "content": PROMPT}],
        extra_headers=fake_headers("anthropic_stream"),
    ) as stream:
        for _ in stream:
            pass
        return str(stream.get_final_message().id)


def anthropic_stream_create(client: Any) -> str:
    """``messages.create(stream=True)``, fully consumed (for libraries without ``.stream``)."""
    stream = client.messages.create(
        model=ANTHROPIC_MODEL,
        max_tokens=1024,
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        extra_headers=fake_headers("anthropic_stream"),
    )
    rid = ""
    for event in stream:
        if getattr(event, "type", "") == "message_start":
            rid = event.message.id
    return rid


CALLS: dict[str, Callable[[Any], str]] = {
    "openai_chat": openai_chat,
    "openai_stream": openai_stream,
    "anthropic_message": anthropic_message,
    "anthropic_stream": anthropic_stream,
}


def default_openai() -> Any:
    import openai

    return openai.OpenAI(base_url=OPENAI_BASE_URL, api_key="test-key", max_retries=0)


def default_anthropic() -> Any:
    import anthropic

    return anthropic.Anthropic(base_url=ANTHROPIC_BASE_URL, api_key="test-key", max_retries=0)


@contextmanager
def no_wrap(shape: str, tenant: str) -> Iterator[None]:
    yield


def otel_app_span(shape: str, tenant: str) -> AbstractContextManager[Any]:
    """A user's own request span from the plain OTel tracer, carrying ``tenant.id``."""
    from opentelemetry import trace

    tracer = trace.get_tracer("conformance.app")
    return tracer.start_as_current_span("request", attributes={"tenant.id": tenant})


def run(
    *,
    make_openai: Callable[[], Any] | None = default_openai,
    make_anthropic: Callable[[], Any] | None = default_anthropic,
    wrap: Callable[[str, str], AbstractContextManager[Any]] = no_wrap,
    skipped: dict[str, str] | None = None,
    calls: dict[str, Callable[[Any], str]] | None = None,
    notes: list[str] | None = None,
    flush: Callable[[], None] | None = None,
) -> None:
    """Run the selected shapes, each inside ``wrap(shape, tenant)``, then ``flush``, then
    write the result for ``record.py``. A shape whose client factory is None is skipped."""
    skipped = dict(skipped or {})
    table = {**CALLS, **(calls or {})}
    done: dict[str, str] = {}
    clients: dict[str, Any] = {}
    for shape in SELECTED:
        if shape in skipped:
            continue
        kind = "openai" if shape.startswith("openai") else "anthropic"
        factory = make_openai if kind == "openai" else make_anthropic
        if factory is None:
            skipped.setdefault(shape, f"the library does not instrument {kind}")
            continue
        if kind not in clients:
            clients[kind] = factory()
        with wrap(shape, tenant_id(shape)):
            done[shape] = table[shape](clients[kind])
    if flush is not None:
        flush()
    with open(RESULT_PATH, "w") as fh:
        json.dump(
            {
                "done": done,
                "skipped": {s: r for s, r in skipped.items() if s in SELECTED},
                "notes": notes or [],
            },
            fh,
        )
