"""Instrumentation of the ``openai`` client (sync and async): chat completions (``create``,
``parse`` and the ``stream`` helper, which calls ``create``), the Responses API and
embeddings.

OpenAI reports ``prompt_tokens`` / ``input_tokens`` including cached tokens and output
including reasoning tokens, which is already the OTel convention, so the figures are kept.
Streamed chat completions carry usage only in a final chunk the app must ask for with
``stream_options={"include_usage": True}``; the instrumentation adds it only when
``inject_stream_usage`` is on, since it changes the chunks the app sees.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
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
    truncate,
    wrap_async,
    wrap_sync,
)

SCOPE = "tenantscope.instrumentation.openai"

_patcher = Patcher()


def instrument(options: Options) -> None:
    _patcher.restore()  # again with new settings: the latest call wins
    from openai import _streaming
    from openai.resources import embeddings
    from openai.resources.chat.completions import completions
    from openai.resources.responses import responses

    chat, resp, embed = _Chat(), _Responses(), _Embeddings()
    for owner, op, is_async, names in (
        (completions.Completions, chat, False, ("create", "parse")),
        (completions.AsyncCompletions, chat, True, ("create", "parse")),
        (responses.Responses, resp, False, ("create", "parse")),
        (responses.AsyncResponses, resp, True, ("create", "parse")),
        (embeddings.Embeddings, embed, False, ("create",)),
        (embeddings.AsyncEmbeddings, embed, True, ("create",)),
    ):
        wrap = wrap_async if is_async else wrap_sync
        for name in names:
            _patcher.patch(owner, name, functools.partial(wrap, op=op, options=options))
    _patcher.patch(_streaming.Stream, "close", close_wrapper)
    _patcher.patch(_streaming.AsyncStream, "close", aclose_wrapper)
    # the stream helpers close the HTTP response, not the raw stream, when left early
    for sync_cls, async_cls in _helper_streams():
        _patcher.patch(sync_cls, "close", close_wrapper)
        _patcher.patch(async_cls, "close", aclose_wrapper)


def _helper_streams() -> list[tuple[type, type]]:
    try:
        from openai.lib.streaming.chat import AsyncChatCompletionStream, ChatCompletionStream
        from openai.lib.streaming.responses import AsyncResponseStream, ResponseStream
    except ImportError:  # moved in another release: closing early is then seen at GC
        return []
    return [
        (ChatCompletionStream, AsyncChatCompletionStream),
        (ResponseStream, AsyncResponseStream),
    ]


def uninstrument() -> None:
    _patcher.restore()


def new_options(
    tracer_provider: Any, capture_content: bool | None, inject_stream_usage: bool | None
) -> Options:
    return Options(
        SCOPE,
        tracer_provider=tracer_provider,
        capture_content=capture_content,
        inject_stream_usage=inject_stream_usage,
    )


def _request_common(kwargs: Mapping[str, Any], attributes: Attributes) -> None:
    max_tokens = kwargs.get("max_completion_tokens")
    if max_tokens is None or not isinstance(max_tokens, int):
        max_tokens = kwargs.get("max_tokens", kwargs.get("max_output_tokens"))
    put_int(attributes, GEN_AI_REQUEST_MAX_TOKENS, max_tokens)
    put_number(attributes, GEN_AI_REQUEST_TEMPERATURE, kwargs.get("temperature"))
    put_number(attributes, GEN_AI_REQUEST_TOP_P, kwargs.get("top_p"))


def _usage(attributes: Attributes, usage: Any, *, responses_api: bool) -> None:
    if usage is None:
        return
    if responses_api:
        input_tokens, output_tokens = get(usage, "input_tokens"), get(usage, "output_tokens")
        input_details = get(usage, "input_tokens_details")
        output_details = get(usage, "output_tokens_details")
    else:
        input_tokens, output_tokens = get(usage, "prompt_tokens"), get(usage, "completion_tokens")
        input_details = get(usage, "prompt_tokens_details")
        output_details = get(usage, "completion_tokens_details")
    put_int(attributes, semconv.GEN_AI_USAGE_INPUT_TOKENS, input_tokens)
    put_int(attributes, semconv.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens)
    cache_read = get(input_details, "cached_tokens")
    put_positive(attributes, semconv.GEN_AI_USAGE_CACHE_READ, cache_read)
    put_positive(
        attributes, semconv.GEN_AI_USAGE_CACHE_WRITE, get(input_details, "cache_write_tokens")
    )
    put_positive(
        attributes, semconv.GEN_AI_USAGE_REASONING, get(output_details, "reasoning_tokens")
    )
    if semconv.GEN_AI_USAGE_INPUT_TOKENS in attributes:
        attributes[semconv.INPUT_INCLUDES_CACHE] = True


# --- chat completions -----------------------------------------------------------------------
class _Chat(Operation):
    provider = "openai"
    operation = "chat"

    def prepare(self, kwargs: dict[str, Any], options: Options) -> dict[str, Any]:
        if kwargs.get("stream") is not True or not options.inject_stream_usage:
            return kwargs
        given = kwargs.get("stream_options")
        if isinstance(given, Mapping):
            if "include_usage" in given:  # the app decided
                return kwargs
            return {**kwargs, "stream_options": {**given, "include_usage": True}}
        return {**kwargs, "stream_options": {"include_usage": True}}

    def request_attributes(self, kwargs: Mapping[str, Any], capture: bool) -> Attributes:
        attributes: Attributes = {}
        _request_common(kwargs, attributes)
        if capture:
            attributes[GEN_AI_INPUT_MESSAGES] = input_messages(kwargs.get("messages"))
        return attributes

    def estimate_input(self, kwargs: Mapping[str, Any]) -> int:
        return _estimate.input_tokens(
            kwargs,
            messages="messages",
            extra=("tools", "functions", "tool_choice", "response_format", "prediction"),
        )

    def output_cap(self, kwargs: Mapping[str, Any]) -> int | None:
        return _estimate.max_output(kwargs, "max_completion_tokens", "max_tokens")

    def response_attributes(self, result: Any, call: LlmCall) -> Attributes:
        attributes: Attributes = {}
        put_str(attributes, semconv.GEN_AI_RESPONSE_ID, get(result, "id"))
        put_str(attributes, semconv.GEN_AI_RESPONSE_MODEL, get(result, "model"))
        _usage(attributes, get(result, "usage"), responses_api=False)
        choices = get(result, "choices") or []
        reasons = [r for r in (get(c, "finish_reason") for c in choices) if isinstance(r, str)]
        if reasons:
            attributes[GEN_AI_RESPONSE_FINISH_REASONS] = reasons
        if call.capture and choices:
            text = get(get(choices[0], "message"), "content")
            attributes[GEN_AI_OUTPUT_MESSAGES] = output_messages(
                text if isinstance(text, str) else "", reasons[0] if reasons else None
            )
        return attributes

    def new_stream_state(self, call: LlmCall) -> StreamState:
        return _ChatStream(call)


class _ChatStream(StreamState):
    __slots__ = ("model", "reasons", "response_id", "usage")

    def __init__(self, call: LlmCall) -> None:
        super().__init__(call)
        self.response_id: str | None = None
        self.model: str | None = None
        self.usage: Any = None
        self.reasons: list[str] = []

    def on_item(self, item: Any) -> None:
        if self.response_id is None:
            self.response_id = item.id
            self.model = item.model
        for choice in item.choices:
            delta = choice.delta
            if delta is not None and (delta.content or delta.tool_calls or delta.refusal):
                self.call.first_token()
                self.output_token()
                if self.output_text is not None and delta.content:
                    self.output_text.append(delta.content)
            if choice.finish_reason is not None:
                self.reasons.append(choice.finish_reason)
                self.finished = True
        usage = getattr(item, "usage", None)
        if usage is not None:
            self.usage = usage
            self.output_total(getattr(usage, "completion_tokens", None))

    def attributes(self) -> Attributes:
        attributes: Attributes = {}
        put_str(attributes, semconv.GEN_AI_RESPONSE_ID, self.response_id)
        put_str(attributes, semconv.GEN_AI_RESPONSE_MODEL, self.model)
        _usage(attributes, self.usage, responses_api=False)
        if self.reasons:
            attributes[GEN_AI_RESPONSE_FINISH_REASONS] = self.reasons
        return attributes


# --- Responses API --------------------------------------------------------------------------
class _Responses(Operation):
    provider = "openai"
    operation = "chat"

    def request_attributes(self, kwargs: Mapping[str, Any], capture: bool) -> Attributes:
        attributes: Attributes = {}
        _request_common(kwargs, attributes)
        if capture:
            attributes[GEN_AI_INPUT_MESSAGES] = input_messages(kwargs.get("input"))
            instructions = kwargs.get("instructions")
            if isinstance(instructions, str):
                attributes[GEN_AI_SYSTEM_INSTRUCTIONS] = truncate(instructions)
        return attributes

    def estimate_input(self, kwargs: Mapping[str, Any]) -> int:
        # a previous_response_id / conversation adds turns the server keeps: those are
        # not in the request and cannot be bounded here
        return _estimate.input_tokens(
            kwargs, messages="input", extra=("instructions", "tools", "tool_choice", "text")
        )

    def output_cap(self, kwargs: Mapping[str, Any]) -> int | None:
        return _estimate.max_output(kwargs, "max_output_tokens")

    def response_attributes(self, result: Any, call: LlmCall) -> Attributes:
        attributes = _response_fields(result)
        if call.capture:
            attributes[GEN_AI_OUTPUT_MESSAGES] = output_messages(_output_text(result))
        return attributes

    def new_stream_state(self, call: LlmCall) -> StreamState:
        return _ResponsesStream(call)


def _response_fields(response: Any) -> Attributes:
    attributes: Attributes = {}
    put_str(attributes, semconv.GEN_AI_RESPONSE_ID, get(response, "id"))
    put_str(attributes, semconv.GEN_AI_RESPONSE_MODEL, get(response, "model"))
    _usage(attributes, get(response, "usage"), responses_api=True)
    status = get(response, "status")
    if status == "failed":
        error = get(response, "error")
        attributes[semconv.ERROR_TYPE] = str(get(error, "code") or "response_failed")
    return attributes


def _output_text(response: Any) -> str:
    if not isinstance(response, dict):
        text = getattr(response, "output_text", None)
        if isinstance(text, str):
            return text
    parts = []
    for item in get(response, "output") or []:
        for content in get(item, "content") or []:
            text = get(content, "text")
            if get(content, "type") == "output_text" and isinstance(text, str):
                parts.append(text)
    return "".join(parts)


_RESPONSE_END_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class _ResponsesStream(StreamState):
    __slots__ = ("final", "response")

    def __init__(self, call: LlmCall) -> None:
        super().__init__(call)
        self.response: Any = None
        self.final = False

    def on_item(self, item: Any) -> None:
        kind = item.type
        if kind.endswith(".delta"):
            self.call.first_token()
            self.output_token()
            if self.output_text is not None and kind == "response.output_text.delta":
                self.output_text.append(item.delta)
        elif kind in _RESPONSE_END_EVENTS:
            self.response = item.response
            self.finished = True
        elif self.response is None and kind in ("response.created", "response.in_progress"):
            self.response = item.response

    def attributes(self) -> Attributes:
        return _response_fields(self.response) if self.response is not None else {}


# --- embeddings -----------------------------------------------------------------------------
class _Embeddings(Operation):
    provider = "openai"
    operation = "embeddings"

    def is_stream(self, kwargs: Mapping[str, Any]) -> bool:
        return False

    def estimate_input(self, kwargs: Mapping[str, Any]) -> int:
        return _estimate.input_tokens(kwargs, messages="input", extra=())

    def output_cap(self, kwargs: Mapping[str, Any]) -> int | None:
        return 0  # embeddings have no output tokens

    def response_attributes(self, result: Any, call: LlmCall) -> Attributes:
        attributes: Attributes = {}
        put_str(attributes, semconv.GEN_AI_RESPONSE_MODEL, get(result, "model"))
        usage = get(result, "usage")
        put_int(attributes, semconv.GEN_AI_USAGE_INPUT_TOKENS, get(usage, "prompt_tokens"))
        return attributes
