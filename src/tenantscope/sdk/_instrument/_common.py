"""Machinery shared by the OpenAI and Anthropic instrumentations.

One client span per call (``<operation> <model>``), following the OTel GenAI conventions
and ``tenantscope.semconv``. The host app must see exactly what it would see uninstrumented:
wrappers return the library's own objects (streams are instrumented in place by swapping
their item iterator) and nothing raised by instrumentation code reaches the app — every
extraction runs under ``try``/``except`` and is logged at debug level.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.util.types import AttributeValue

from tenantscope import __version__, semconv
from tenantscope.sdk import _context, _estimate, _limits, _runtime
from tenantscope.sdk._instrument._gates import discard, gate, gate_async, needs_release, unspanned
from tenantscope.sdk._limits import Permit, StreamBudget, TenantLimitExceeded
from tenantscope.sdk._stats import internal_error

log = logging.getLogger("tenantscope.instrumentation")

T = TypeVar("T")
Attributes = dict[str, AttributeValue]

# Captured prompt / completion text is cut to this many characters (each side), so one
# call cannot blow the span size limits of the exporter or the server.
MAX_CONTENT_CHARS = 8192
# Where an instrumented stream keeps its recorder (read by the patched ``close``).
STATE_ATTR = "_tenantscope_stream_state"
# Set while one of our spans wraps a call, so a client library's own span for the same
# call can be skipped (see the Anthropic instrumentation).
IN_LLM_SPAN: ContextVar[bool] = ContextVar("tenantscope_in_llm_span", default=False)


class Options:
    """An instrumentation's settings: explicit values win, else the SDK runtime's (read at
    call time, so ``tenantscope.init`` may run before or after ``instrument_*``)."""

    __slots__ = ("_capture", "_explicit", "_inject", "name", "tracer_provider")

    def __init__(
        self,
        name: str,
        *,
        tracer_provider: TracerProvider | None,
        capture_content: bool | None,
        inject_stream_usage: bool | None = None,
    ) -> None:
        self.name = name
        self.tracer_provider = tracer_provider
        self._capture = capture_content
        self._inject = inject_stream_usage
        self._explicit: Tracer | None = None

    def tracer(self) -> Tracer:
        if self.tracer_provider is None:
            return _runtime.current().tracer(self.name, __version__)
        if self._explicit is None:
            self._explicit = self.tracer_provider.get_tracer(self.name, __version__)
        return self._explicit

    @property
    def capture_content(self) -> bool:
        return self._capture if self._capture is not None else _runtime.current().capture_content

    @property
    def inject_stream_usage(self) -> bool:
        if self._inject is not None:
            return self._inject
        return _runtime.current().inject_stream_usage


class LlmCall:
    """The span of one model call and how it ends (once)."""

    __slots__ = ("_ended", "_first_token", "_start", "capture", "span")

    def __init__(self, span: Span, *, capture: bool) -> None:
        self.span = span
        self.capture = capture
        self._start = time.perf_counter()
        self._first_token = False
        self._ended = False

    @property
    def ended(self) -> bool:
        return self._ended

    def first_token(self) -> None:
        if not self._first_token:
            self._first_token = True
            ms = (time.perf_counter() - self._start) * 1000.0
            self.span.set_attribute(semconv.TTFT_MS, round(ms, 3))

    def succeed(self, attributes: Attributes) -> None:
        if self._ended:
            return
        self._ended = True
        # Success leaves the status UNSET, as the OTel instrumentation guidelines say.
        if attributes:
            self.span.set_attributes(attributes)
        self.span.end()

    def fail(self, error: BaseException, attributes: Attributes | None = None) -> None:
        if self._ended:
            return
        if not isinstance(error, Exception):
            # asyncio.CancelledError, KeyboardInterrupt, GeneratorExit: the app stopped it
            self.cancel(attributes)
            return
        self._ended = True
        span = self.span
        try:
            if attributes:
                span.set_attributes(attributes)
            span.set_attribute(semconv.ERROR_TYPE, error_type(error))
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:1000]))
        except Exception:  # never let a broken attribute hide the app's own error
            log.debug("could not record an error on its span", exc_info=True)
        span.end()

    def fail_incomplete(self, attributes: Attributes) -> None:
        """The provider ended a stream before its final event; the app saw no error."""
        if self._ended:
            return
        self._ended = True
        self.span.set_attributes({**attributes, semconv.ERROR_TYPE: "stream_incomplete"})
        self.span.set_status(Status(StatusCode.ERROR, "the stream ended before its final event"))
        self.span.end()

    def cancel(self, attributes: Attributes | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        self.span.set_attributes({**(attributes or {}), semconv.STATUS: "cancelled"})
        self.span.end()

    def cut(self, attributes: Attributes, reason: str) -> None:
        """A limit stopped the stream: cancelled (not billable by default), with the
        reason as the status message (the record's error message)."""
        if self._ended:
            return
        self._ended = True
        self.span.set_attributes({**attributes, semconv.STATUS: "cancelled"})
        self.span.set_status(Status(StatusCode.ERROR, reason[:1000]))
        self.span.end()


def error_type(error: BaseException) -> str:
    """The HTTP status of an API error (e.g. ``"429"``), else the exception's class name."""
    status = getattr(error, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        return str(status)
    return type(error).__name__


class Operation:
    """What a provider instrumentation tells the generic wrapper about one kind of call."""

    provider: str = ""
    operation: str = "chat"

    def request_attributes(self, kwargs: Mapping[str, Any], capture: bool) -> Attributes:
        return {}

    def prepare(self, kwargs: dict[str, Any], options: Options) -> dict[str, Any]:
        """The keyword arguments to call the original with (e.g. stream_options injected)."""
        return kwargs

    def is_stream(self, kwargs: Mapping[str, Any]) -> bool:
        return kwargs.get("stream") is True

    def response_attributes(self, result: Any, call: LlmCall) -> Attributes:
        return {}

    def new_stream_state(self, call: LlmCall) -> StreamState | None:
        return None

    def estimate_input(self, kwargs: Mapping[str, Any]) -> int:
        """An upper bound of the request's input tokens (``_estimate``)."""
        return _estimate.input_tokens(kwargs, messages="messages", extra=())

    def output_cap(self, kwargs: Mapping[str, Any]) -> int | None:
        """The request's output token cap, None when it sets none."""
        return _estimate.max_output(kwargs, "max_tokens")


def _start(
    op: Operation, options: Options, kwargs: dict[str, Any], permit: Permit | None = None
) -> LlmCall | None:
    tracer = options.tracer()
    capture = options.capture_content
    model = kwargs.get("model")
    model = model if isinstance(model, str) else ""
    attributes: Attributes = {
        semconv.GEN_AI_OPERATION_NAME: op.operation,
        semconv.GEN_AI_PROVIDER_NAME: op.provider,
        semconv.SPAN_KIND: "llm",
    }
    if model:
        attributes[semconv.GEN_AI_REQUEST_MODEL] = model
    if permit is not None and permit.reservation_id is not None:
        # the server settles the reservation with this span's real figures when it
        # stores it, failed and cancelled calls included
        attributes[_limits.RESERVATION_ID] = permit.reservation_id
    attributes.update(op.request_attributes(kwargs, capture))
    stamped = _stamped_context(options)
    if stamped:
        attributes = {**stamped, **attributes}  # ours win, as with the processor
    name = f"{op.operation} {model}" if model else op.operation
    span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
    if not span.is_recording():
        span.end()
        return None
    return LlmCall(span, capture=capture)


def _stamped_context(options: Options) -> Mapping[str, str]:
    """The tenant context, when the span goes to the provider ``init`` attached the SDK's
    span processor to. The processor would stamp it just after the start, in a second pass
    (lock, state check, cleaning); given with the start attributes it is cleaned in the
    same pass and the processor finds it there (~2 us less per call in a tight loop, the
    same attributes in the end). Other providers (an explicit one, or before ``init``)
    are left to their own processors, as before."""
    runtime = _runtime.current()
    provider = runtime.tracer_provider
    if provider is None or not runtime.enabled:
        return _NOTHING
    if options.tracer_provider is not None and options.tracer_provider is not provider:
        return _NOTHING
    return _context.current_attributes()


_NOTHING: Mapping[str, str] = {}


def _finish(
    op: Operation, call: LlmCall, result: T, streaming: bool, permit: Permit | None = None
) -> T:
    """Record the result on the span (or instrument the stream in place); never raises."""
    try:
        http_response = _http_response(result)
        if http_response is not None:
            # ``.with_raw_response`` / ``.with_streaming_response``: read the body only if
            # the library already did (reading it here would consume what the app wants).
            body = _read_body(http_response) if not streaming else None
            call.succeed(op.response_attributes(body, call) if body is not None else {})
            return result
        if streaming:
            state = op.new_stream_state(call)
            if state is not None:
                if permit is not None:
                    state.budget = permit.budget()
                    state.input_estimate = permit.input_estimate
                if instrument_stream(result, state):
                    return result
        call.succeed(op.response_attributes(result, call))
    except Exception:
        log.debug("could not record a %s response", op.provider, exc_info=True)
        call.succeed({})
    return result


# classes that define ``http_response`` themselves (a property or class attribute), by type
_CLASS_HAS_HTTP_RESPONSE: dict[type, bool] = {}


def _http_response(result: Any) -> Any:
    """``result.http_response`` (a raw-response wrapper), else None. Looks in the instance
    first: on a parsed response (a pydantic model) a plain ``getattr`` that misses goes
    through the model's ``__getattr__`` and an AttributeError, microseconds per call."""
    attributes = getattr(result, "__dict__", None)
    if attributes is None:
        return getattr(result, "http_response", None)
    value = attributes.get("http_response")
    if value is not None:
        return value
    cls = type(result)
    defined = _CLASS_HAS_HTTP_RESPONSE.get(cls)
    if defined is None:
        defined = any("http_response" in vars(k) for k in cls.__mro__)
        _CLASS_HAS_HTTP_RESPONSE[cls] = defined
    return getattr(result, "http_response", None) if defined else None


def _read_body(http_response: Any) -> Any:
    try:
        content = http_response.content  # raises when the body was not read yet
    except Exception:
        return None
    return json.loads(content) if content else None


def get(obj: Any, name: str) -> Any:
    """A field of a response model or of its decoded JSON."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def wrap_sync(original: Callable[..., Any], op: Operation, options: Options) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            streaming = op.is_stream(kwargs)
            kwargs = op.prepare(kwargs, options)
        except Exception:
            log.debug("could not start a %s span", op.provider, exc_info=True)
            return original(self, *args, **kwargs)
        return traced_sync(op, options, kwargs, lambda: original(self, *args, **kwargs), streaming)

    setattr(wrapper, "__wrapped_by_tenantscope__", True)  # noqa: B010
    return wrapper


def wrap_async(
    original: Callable[..., Awaitable[Any]], op: Operation, options: Options
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(original)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            streaming = op.is_stream(kwargs)
            kwargs = op.prepare(kwargs, options)
        except Exception:
            log.debug("could not start a %s span", op.provider, exc_info=True)
            return await original(self, *args, **kwargs)
        return await traced_async(op, options, kwargs, original(self, *args, **kwargs), streaming)

    setattr(wrapper, "__wrapped_by_tenantscope__", True)  # noqa: B010
    return wrapper


def _begin(
    op: Operation, options: Options, kwargs: dict[str, Any], permit: Permit | None
) -> LlmCall | None:
    """The call's span; None when it could not start (the call then runs without one)."""
    try:
        return _start(op, options, kwargs, permit)
    except Exception:
        log.debug("could not start a %s span", op.provider, exc_info=True)
        return None


def traced_sync(
    op: Operation,
    options: Options,
    kwargs: dict[str, Any],
    thunk: Callable[[], T],
    streaming: bool = True,
) -> T:
    """Run ``thunk`` (the request, e.g. a stream helper's) under a span for a call made
    with ``kwargs``. With limits enforced, ask first: TenantLimitExceeded instead of the
    call when a limit refuses."""
    permit = gate(op, kwargs)
    call = _begin(op, options, kwargs, permit)
    if call is None:
        try:
            return thunk()
        finally:
            unspanned(permit)
    token = otel_context.attach(trace.set_span_in_context(call.span))
    marker = IN_LLM_SPAN.set(True)
    try:
        result = thunk()
    except BaseException as exc:
        call.fail(exc)
        raise
    finally:
        IN_LLM_SPAN.reset(marker)
        otel_context.detach(token)
    return _finish(op, call, result, streaming, permit)


async def traced_async(
    op: Operation,
    options: Options,
    kwargs: dict[str, Any],
    awaitable: Awaitable[T],
    streaming: bool = True,
) -> T:
    """``traced_sync`` for a request made already, awaited here."""
    try:
        permit = await gate_async(op, kwargs)
    except BaseException:
        discard(awaitable)
        raise
    call = _begin(op, options, kwargs, permit)
    if call is None:
        try:
            return await awaitable
        finally:
            if needs_release(permit):
                await asyncio.to_thread(unspanned, permit)
    token = otel_context.attach(trace.set_span_in_context(call.span))
    marker = IN_LLM_SPAN.set(True)
    try:
        result = await awaitable
    except BaseException as exc:
        call.fail(exc)
        raise
    finally:
        IN_LLM_SPAN.reset(marker)
        otel_context.detach(token)
    return _finish(op, call, result, streaming, permit)


# --- streams --------------------------------------------------------------------------------
class StreamState:
    """Accumulates what a stream reports (usage, ids, finish) as the app reads it; ends the
    span when the stream is exhausted, fails, or is closed / dropped early (cancelled)."""

    __slots__ = ("budget", "call", "finished", "input_estimate", "output_text")

    def __init__(self, call: LlmCall) -> None:
        self.call = call
        self.finished = False  # the provider's final event was seen
        self.output_text: list[str] | None = [] if call.capture else None
        # output held by the call's reservation, when it must be extended as it streams
        self.budget: StreamBudget | None = None
        self.input_estimate = 0

    def output_token(self, tokens: int = 1) -> None:
        """Count output as it streams (one per content delta: close enough to decide when
        to extend the hold; the span's figures come from the provider's usage)."""
        budget = self.budget
        if budget is not None:
            budget.add(tokens)

    def output_total(self, total: object) -> None:
        """A cumulative output figure the provider reported mid-stream."""
        budget = self.budget
        if budget is not None and isinstance(total, int) and not isinstance(total, bool):
            budget.at_least(total)

    def extend(self) -> TenantLimitExceeded | None:
        """Hold more output; when a limit refuses, end the span as cut and return the error
        the stream raises (the caller closes the upstream)."""
        budget = self.budget
        if budget is None:
            return None
        try:
            budget.extend()
            return None
        except TenantLimitExceeded as error:
            self.cut(error)
            budget.limiter._count("limit_streams_cut")
            return error
        except Exception as exc:  # never let our bookkeeping break the app's stream
            internal_error("stream limit", exc)
            self.budget = None
            return None

    def cut(self, error: TenantLimitExceeded) -> None:
        if self.call.ended:
            return
        attributes = self._safe_attributes()
        estimated = False
        budget = self.budget
        if budget is not None:
            reported = attributes.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS)
            if not isinstance(reported, int) or reported < budget.counted:
                attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = budget.counted
                estimated = True
        if semconv.GEN_AI_USAGE_INPUT_TOKENS not in attributes and self.input_estimate:
            # the provider reports input at the end only (OpenAI): the upper bound the
            # reservation was made with stands in for it
            attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] = self.input_estimate
            estimated = True
        if estimated:
            attributes[_limits.USAGE_ESTIMATED] = True
        attributes[semconv.ERROR_TYPE] = _limits.CUT_ERROR_TYPE
        attributes[_limits.LIMIT_CUT] = True
        self.call.cut(attributes, str(error))

    def item(self, item: Any) -> None:
        try:
            self.on_item(item)
        except Exception:
            log.debug("could not read a stream item", exc_info=True)

    def on_item(self, item: Any) -> None:
        raise NotImplementedError

    def attributes(self) -> Attributes:
        return {}

    def _safe_attributes(self) -> Attributes:
        try:
            attributes = self.attributes()
            if self.output_text is not None:
                attributes[GEN_AI_OUTPUT_MESSAGES] = output_messages("".join(self.output_text))
            return attributes
        except Exception:
            log.debug("could not read a stream's attributes", exc_info=True)
            return {}

    def complete(self) -> None:
        if self.call.ended:
            return
        if self.finished:
            self.call.succeed(self._safe_attributes())
        else:
            self.call.fail_incomplete(self._safe_attributes())

    def cancel(self) -> None:
        if not self.call.ended:
            self.call.cancel(self._safe_attributes())

    def fail(self, error: BaseException) -> None:
        if not self.call.ended:
            self.call.fail(error, self._safe_attributes())


def instrument_stream(stream: object, state: StreamState) -> bool:
    """Swap the library stream's item iterator for one that records into ``state``. The app
    keeps the very same stream object (type, iteration, context manager)."""
    attributes = getattr(stream, "__dict__", None)
    if attributes is None:
        return False
    inner = getattr(stream, "_iterator", None)  # may be created on first access
    if inner is None:
        return False
    if hasattr(inner, "__anext__"):
        attributes["_iterator"] = _aiterate(inner, state)
    elif hasattr(inner, "__next__"):
        attributes["_iterator"] = _iterate(inner, state)
    else:
        return False
    attributes[STATE_ATTR] = state
    return True


def _iterate(inner: Iterator[T], state: StreamState) -> Iterator[T]:
    # Holds the inner iterator and the state, never the stream: a reference back to the
    # stream would make a cycle and delay the close of a dropped stream to the cyclic GC.
    try:
        for item in inner:
            state.item(item)
            if state.budget is not None and state.budget.exhausted():
                error = state.extend()
                if error is not None:
                    close = getattr(inner, "close", None)
                    if close is not None:
                        close()  # closes the HTTP response: the provider stops generating
                    raise error
            yield item
    except GeneratorExit:
        state.cancel()
        close = getattr(inner, "close", None)
        if close is not None:
            close()
        raise
    except BaseException as exc:
        state.fail(exc)
        raise
    state.complete()


async def _aiterate(inner: AsyncIterator[T], state: StreamState) -> AsyncIterator[T]:
    try:
        async for item in inner:
            state.item(item)
            if state.budget is not None and state.budget.exhausted():
                # the round trip on a worker thread: the event loop goes on meanwhile
                error = await asyncio.to_thread(state.extend)
                if error is not None:
                    aclose = getattr(inner, "aclose", None)
                    if aclose is not None:
                        await aclose()
                    raise error
            yield item
    except GeneratorExit:
        state.cancel()
        aclose = getattr(inner, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
    except BaseException as exc:
        state.fail(exc)
        raise
    state.complete()


def _state_of(stream: Any) -> StreamState | None:
    """The recorder of an instrumented stream, or of the one a stream helper reads
    (openai's ``ChatCompletionStream`` / ``ResponseStream`` keep it as ``_raw_stream``)."""
    state = stream.__dict__.get(STATE_ATTR)
    if state is None:
        raw = stream.__dict__.get("_raw_stream")
        state = getattr(raw, "__dict__", {}).get(STATE_ATTR)
    return state if isinstance(state, StreamState) else None


def close_wrapper(original: Callable[[Any], None]) -> Callable[[Any], None]:
    """``Stream.close`` (or a stream helper's) that first marks an unfinished instrumented
    stream cancelled."""

    @functools.wraps(original)
    def close(self: Any) -> None:
        state = _state_of(self)
        if state is not None:
            try:
                state.cancel()
            except Exception:
                log.debug("could not end a closed stream's span", exc_info=True)
        original(self)

    return close


def aclose_wrapper(original: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    @functools.wraps(original)
    async def close(self: Any) -> None:
        state = _state_of(self)
        if state is not None:
            try:
                state.cancel()
            except Exception:
                log.debug("could not end a closed stream's span", exc_info=True)
        await original(self)

    return close


# --- patching -------------------------------------------------------------------------------
class Patcher:
    """Replaces class attributes and puts the originals back exactly."""

    def __init__(self) -> None:
        self._saved: list[tuple[type, str, object]] = []

    @property
    def active(self) -> bool:
        return bool(self._saved)

    def patch(self, owner: type, name: str, make: Callable[[Any], Any]) -> None:
        try:
            original = owner.__dict__[name]
        except KeyError:
            log.debug("%s.%s not found; not instrumented", owner.__qualname__, name)
            return
        self._saved.append((owner, name, original))
        setattr(owner, name, make(original))

    def restore(self) -> None:
        while self._saved:
            owner, name, original = self._saved.pop()
            setattr(owner, name, original)


# --- attributes -----------------------------------------------------------------------------
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"


def truncate(text: str, limit: int = MAX_CONTENT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def text_of(content: object) -> str:
    """The text of a message's content: a string, or a list of text parts / blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(getattr(part, "text", None), str):
                parts.append(part.text)
        return "".join(parts)
    return ""


def input_messages(messages: object) -> str:
    """``gen_ai.input.messages`` (JSON, GenAI convention shape), truncated."""
    out = []
    if isinstance(messages, str):
        out.append({"role": "user", "parts": [{"type": "text", "content": messages}]})
    elif isinstance(messages, list | tuple):
        for message in messages:
            if isinstance(message, Mapping):
                role = str(message.get("role") or "user")
                text = text_of(message.get("content"))
                out.append({"role": role, "parts": [{"type": "text", "content": text}]})
    return truncate(json.dumps(out, ensure_ascii=False))


def output_messages(text: str, finish_reason: str | None = None) -> str:
    message: dict[str, object] = {
        "role": "assistant",
        "parts": [{"type": "text", "content": text}],
    }
    if finish_reason:
        message["finish_reason"] = finish_reason
    return truncate(json.dumps([message], ensure_ascii=False))


def put_int(attributes: Attributes, key: str, value: object) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        attributes[key] = value


def put_positive(attributes: Attributes, key: str, value: object) -> None:
    """Optional token details: absent means zero to the server, so zeros are not sent
    (fewer attributes is less work per span here and in the exporter)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        attributes[key] = value


def put_str(attributes: Attributes, key: str, value: object) -> None:
    if isinstance(value, str) and value:
        attributes[key] = value


def put_number(attributes: Attributes, key: str, value: object) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        attributes[key] = value
