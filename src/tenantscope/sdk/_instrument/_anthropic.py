"""Instrumentation of the ``anthropic`` client (sync and async): ``messages.create``
(plain and ``stream=True``), ``messages.parse`` and the ``messages.stream`` helper.

Tokens. Anthropic reports ``input_tokens`` *without* cache reads and writes; the span
carries the OTel convention (input = uncached + cache read + cache write) and sets
``tenantscope.usage.input_includes_cache`` so the server does not add the cache again.
Thinking tokens (``output_tokens_details.thinking_tokens``) are part of ``output_tokens``.

Counted once. anthropic 2.x emits its own ``anthropic.messages.create`` client span for
every call (scope ``com.anthropic.sdk.python``), with usage attributes. Started inside our
span it would be a child carrying the same usage; the server's counting rule would then
count the child — whose ``gen_ai.usage.input_tokens`` already includes the cache but
without our flag, and whose status stays ok for a stream the app closed early. So while
one of our (recording) spans wraps a call, the client's own span is skipped: its lazy
``_tracer`` reads as ``None`` for that call only. Were that private hook to disappear in
a later release, the two spans would still count once (ancestor shadowing, and the same
``gen_ai.response.id``), only with the client's figures.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from tenantscope import semconv
from tenantscope.sdk import _estimate
from tenantscope.sdk._instrument._common import (
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_REQUEST_TOP_P,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_SYSTEM_INSTRUCTIONS,
    IN_LLM_SPAN,
    Attributes,
    LlmCall,
    Operation,
    Options,
    Patcher,
    StreamState,
    aclose_wrapper,
    close_wrapper,
    get,
    input_messages,
    output_messages,
    put_int,
    put_number,
    put_positive,
    put_str,
    text_of,
    traced_async,
    traced_sync,
    truncate,
    wrap_async,
    wrap_sync,
)

log = logging.getLogger("tenantscope.instrumentation")

SCOPE = "tenantscope.instrumentation.anthropic"

_patcher = Patcher()


def instrument(options: Options) -> None:
    _patcher.restore()  # again with new settings: the latest call wins
    from anthropic import _base_client, _streaming
    from anthropic.resources.messages import messages

    op = _Messages()
    for owner, is_async in ((messages.Messages, False), (messages.AsyncMessages, True)):
        wrap = wrap_async if is_async else wrap_sync
        for name in ("create", "parse"):
            _patcher.patch(owner, name, functools.partial(wrap, op=op, options=options))
        helper = functools.partial(_stream_helper, op=op, options=options, is_async=is_async)
        _patcher.patch(owner, "stream", helper)
    _patcher.patch(_streaming.Stream, "close", close_wrapper)
    _patcher.patch(_streaming.AsyncStream, "close", aclose_wrapper)
    _patcher.patch(_base_client.BaseClient, "_tracer", _skip_native_span)


def uninstrument() -> None:
    _patcher.restore()


def new_options(tracer_provider: Any, capture_content: bool | None) -> Options:
    return Options(SCOPE, tracer_provider=tracer_provider, capture_content=capture_content)


def _skip_native_span(original: Any) -> Any:
    if not isinstance(original, property) or original.fget is None:
        return original
    fget = original.fget

    def _tracer(self: Any) -> Any:
        if IN_LLM_SPAN.get():
            return None
        return fget(self)

    return property(_tracer, doc=original.__doc__)


def _stream_helper(
    original: Callable[..., Any], op: _Messages, options: Options, is_async: bool
) -> Callable[..., Any]:
    """``messages.stream(...)`` returns a manager that sends the request on ``__enter__``:
    wrap that deferred request, not the (request-less) call."""

    @functools.wraps(original)
    def stream(self: Any, *args: Any, **kwargs: Any) -> Any:
        manager = original(self, *args, **kwargs)
        try:
            key = f"_{type(manager).__name__}__api_request"
            request = manager.__dict__[key]  # async: an un-awaited coroutine
            manager.__dict__[key] = (
                traced_async(op, options, kwargs, request)
                if is_async
                else functools.partial(traced_sync, op, options, kwargs, request)
            )
        except Exception:
            log.debug("could not instrument an anthropic stream helper", exc_info=True)
        return manager

    return stream


def _usage(attributes: Attributes, usage: Any) -> None:
    if usage is None:
        return
    uncached = get(usage, "input_tokens")
    cache_read = get(usage, "cache_read_input_tokens") or 0
    cache_write = get(usage, "cache_creation_input_tokens") or 0
    if isinstance(uncached, int):
        attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] = uncached + cache_read + cache_write
        attributes[semconv.INPUT_INCLUDES_CACHE] = True
    put_int(attributes, semconv.GEN_AI_USAGE_OUTPUT_TOKENS, get(usage, "output_tokens"))
    put_positive(attributes, semconv.GEN_AI_USAGE_CACHE_READ, cache_read)
    put_positive(attributes, semconv.GEN_AI_USAGE_CACHE_WRITE, cache_write)
    thinking = get(get(usage, "output_tokens_details"), "thinking_tokens")
    put_positive(attributes, semconv.GEN_AI_USAGE_REASONING, thinking)


class _Messages(Operation):
    provider = "anthropic"
    operation = "chat"

    def request_attributes(self, kwargs: Mapping[str, Any], capture: bool) -> Attributes:
        attributes: Attributes = {}
        put_int(attributes, GEN_AI_REQUEST_MAX_TOKENS, kwargs.get("max_tokens"))
        put_number(attributes, GEN_AI_REQUEST_TEMPERATURE, kwargs.get("temperature"))
        put_number(attributes, GEN_AI_REQUEST_TOP_P, kwargs.get("top_p"))
        if capture:
            attributes[GEN_AI_INPUT_MESSAGES] = input_messages(kwargs.get("messages"))
            system = text_of(kwargs.get("system"))
            if system:
                attributes[GEN_AI_SYSTEM_INSTRUCTIONS] = truncate(system)
        return attributes

    def estimate_input(self, kwargs: Mapping[str, Any]) -> int:
        return _estimate.input_tokens(
            kwargs, messages="messages", extra=("system", "tools", "tool_choice")
        )

    def output_cap(self, kwargs: Mapping[str, Any]) -> int | None:
        return _estimate.max_output(kwargs, "max_tokens")  # required by the API

    def response_attributes(self, result: Any, call: LlmCall) -> Attributes:
        attributes: Attributes = {}
        put_str(attributes, semconv.GEN_AI_RESPONSE_ID, get(result, "id"))
        put_str(attributes, semconv.GEN_AI_RESPONSE_MODEL, get(result, "model"))
        _usage(attributes, get(result, "usage"))
        stop = get(result, "stop_reason")
        if isinstance(stop, str):
            attributes[GEN_AI_RESPONSE_FINISH_REASONS] = [stop]
        if call.capture:
            text = text_of(get(result, "content") or [])
            attributes[GEN_AI_OUTPUT_MESSAGES] = output_messages(text, stop)
        return attributes

    def new_stream_state(self, call: LlmCall) -> StreamState:
        return _MessageStream(call)


class _MessageStream(StreamState):
    """``message_start`` has the id, model and input usage; ``message_delta`` the final
    (cumulative) output usage and stop reason; ``message_stop`` ends the message."""

    __slots__ = ("model", "response_id", "stop_reason", "usage")

    def __init__(self, call: LlmCall) -> None:
        super().__init__(call)
        self.response_id: str | None = None
        self.model: str | None = None
        self.stop_reason: str | None = None
        self.usage: dict[str, Any] = {}

    def on_item(self, item: Any) -> None:
        kind = item.type
        if kind == "content_block_delta":
            self.call.first_token()
            self.output_token()
            if self.output_text is not None:
                text = getattr(item.delta, "text", None)
                if isinstance(text, str):
                    self.output_text.append(text)
        elif kind == "message_start":
            message = item.message
            self.response_id, self.model = message.id, message.model
            self._merge(message.usage)
        elif kind == "message_delta":
            self._merge(item.usage)
            self.output_total(getattr(item.usage, "output_tokens", None))
            self.stop_reason = getattr(item.delta, "stop_reason", None)
        elif kind == "message_stop":
            self.finished = True

    def _merge(self, usage: Any) -> None:
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "output_tokens_details",
        ):
            value = getattr(usage, name, None)
            if value is not None:
                self.usage[name] = value

    def attributes(self) -> Attributes:
        attributes: Attributes = {}
        put_str(attributes, semconv.GEN_AI_RESPONSE_ID, self.response_id)
        put_str(attributes, semconv.GEN_AI_RESPONSE_MODEL, self.model)
        _usage(attributes, self.usage or None)
        if self.stop_reason:
            attributes[GEN_AI_RESPONSE_FINISH_REASONS] = [self.stop_reason]
        return attributes
