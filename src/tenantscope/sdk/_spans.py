"""Manual spans: ``tenantscope.span(name, kind=...)`` and the handle it yields.

The handle never raises into the app: a bad value (a negative token count, a cost that is
not a number) is skipped, counted and logged once. The exception the app's own code raises
inside the span marks the span (OTel status ERROR, ``error.type``, an ``exception`` event)
and propagates unchanged.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any, Final, Literal, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from tenantscope import __version__, semconv
from tenantscope.sdk import _runtime
from tenantscope.sdk._stats import internal_error, log_once

F = TypeVar("F", bound=Callable[..., Any])
SpanKind = Literal["span", "llm", "embedding", "tool", "agent", "workflow", "task", "retrieval"]
Cost = Decimal | str | int | float

TRACER_NAME: Final = "tenantscope"
UNITS: Final = "tenantscope.usage.units"
_OPERATIONS: Final = {"agent": "invoke_agent", "tool": "execute_tool", "embedding": "embeddings"}


class SpanHandle:
    """What ``with tenantscope.span(...) as s`` gives: annotate the span and its usage."""

    __slots__ = ("_outcome", "span")

    def __init__(self, span: trace.Span) -> None:
        self.span = span  # the OpenTelemetry span, for anything not covered here
        self._outcome: str | None = None

    @property
    def trace_id(self) -> str:
        return format(self.span.get_span_context().trace_id, "032x")

    @property
    def span_id(self) -> str:
        return format(self.span.get_span_context().span_id, "016x")

    def set_attribute(self, key: str, value: AttributeValue) -> SpanHandle:
        try:
            self.span.set_attribute(key, value)
        except Exception as exc:
            internal_error("set_attribute", exc)
        return self

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> SpanHandle:
        try:
            self.span.set_attributes(attributes)
        except Exception as exc:
            internal_error("set_attributes", exc)
        return self

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> SpanHandle:
        """A timestamped event, e.g. ``add_event("sla-breach", {"actual_ms": 2400})``."""
        try:
            self.span.add_event(name, attributes=_clean(attributes))
        except Exception as exc:
            internal_error("add_event", exc)
        return self

    def record_usage(
        self,
        *,
        model: str | None = None,
        provider: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        cost_usd: Cost | None = None,
        units: int | float | None = None,
        input_includes_cache: bool = True,
        operation: str | None = None,
    ) -> SpanHandle:
        """The usage of a model call made inside this span (see docs/sdk.md).

        ``input_tokens`` includes cache reads and writes and ``output_tokens`` includes
        reasoning tokens, as the OTel GenAI convention says; pass
        ``input_includes_cache=False`` for figures as Anthropic's API reports them (cache
        separate) and they are summed here. ``cost_usd`` is kept exact (send a Decimal or a
        string for amounts a float cannot hold). Calling it again replaces the figures."""
        try:
            attrs = _usage_attributes(
                model=model,
                provider=provider,
                tokens={
                    semconv.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
                    semconv.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
                    semconv.GEN_AI_USAGE_CACHE_READ: cache_read_tokens,
                    semconv.GEN_AI_USAGE_CACHE_WRITE: cache_write_tokens,
                    semconv.GEN_AI_USAGE_REASONING: reasoning_tokens,
                },
                cost_usd=cost_usd,
                units=units,
                input_includes_cache=input_includes_cache,
                operation=operation,
            )
            self.span.set_attributes(attrs)
        except Exception as exc:
            internal_error("record_usage", exc)
        return self

    def set_success(self) -> SpanHandle:
        self._outcome = "ok"
        try:
            self.span.set_attribute(semconv.STATUS, "ok")
            self.span.set_status(Status(StatusCode.OK))
        except Exception as exc:
            internal_error("set_success", exc)
        return self

    def set_error(self, error: BaseException | str, *, error_type: str | None = None) -> SpanHandle:
        """Mark the span failed, from an exception or a message."""
        self._outcome = "error"
        try:
            _mark_error(self.span, error, error_type=error_type, status="error")
        except Exception as exc:
            internal_error("set_error", exc)
        return self


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, AttributeValue] | None:
    if not attributes:
        return None
    out: dict[str, AttributeValue] = {}
    for key, value in attributes.items():
        if isinstance(value, (str, bool, int, float)):
            out[key] = value
        elif isinstance(value, Decimal):
            out[key] = format(value, "f")
        elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
            out[key] = [str(v) for v in value]
        elif value is not None:
            out[key] = str(value)
    return out


def _usage_attributes(
    *,
    model: str | None,
    provider: str | None,
    tokens: dict[str, int | None],
    cost_usd: Cost | None,
    units: int | float | None,
    input_includes_cache: bool,
    operation: str | None,
) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {}
    if model:
        attrs[semconv.GEN_AI_REQUEST_MODEL] = str(model)
        attrs[semconv.GEN_AI_RESPONSE_MODEL] = str(model)
    if provider:
        attrs[semconv.GEN_AI_PROVIDER_NAME] = str(provider)
    if operation:
        attrs[semconv.GEN_AI_OPERATION_NAME] = str(operation)
    counts: dict[str, int] = {}
    for key, value in tokens.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            log_once(
                "usage:" + key,
                "tenantscope: record_usage: %s must be a non-negative int, got %r; ignored",
                key,
                value,
            )
            continue
        counts[key] = value
    input_key = semconv.GEN_AI_USAGE_INPUT_TOKENS
    if input_key in counts:
        if not input_includes_cache:
            counts[input_key] += counts.get(semconv.GEN_AI_USAGE_CACHE_READ, 0) + counts.get(
                semconv.GEN_AI_USAGE_CACHE_WRITE, 0
            )
        # the server reads Anthropic's figures as cache-additive unless told otherwise
        attrs[semconv.INPUT_INCLUDES_CACHE] = True
    attrs.update(counts)
    if cost_usd is not None:
        cost = exact_cost(cost_usd)
        if cost is None:
            log_once(
                "usage:cost",
                "tenantscope: record_usage: cost_usd must be a finite, non-negative amount,"
                " got %r; ignored",
                cost_usd,
            )
        else:
            # a string keeps the amount exact through OTLP (a double would not)
            attrs[semconv.GEN_AI_USAGE_COST] = cost
    if units is not None and not isinstance(units, bool) and isinstance(units, (int, float)):
        attrs[UNITS] = units
    return attrs


def exact_cost(value: object) -> str | None:
    """A cost as a plain decimal string (no exponent), or None if it is not an amount.

    A float goes through ``repr`` (``0.1`` -> ``"0.1"``, not the binary expansion)."""
    try:
        if isinstance(value, Decimal):
            dec = value
        elif isinstance(value, bool):
            return None
        elif isinstance(value, int):
            dec = Decimal(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                return None
            dec = Decimal(repr(value))
        elif isinstance(value, str):
            dec = Decimal(value.strip())
        else:
            return None
    except (InvalidOperation, ValueError):
        return None
    if not dec.is_finite() or dec < 0:
        return None
    text = format(dec, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _mark_error(
    span: trace.Span, error: BaseException | str, *, error_type: str | None, status: str
) -> None:
    if isinstance(error, BaseException):
        kind = error_type or type(error).__name__
        message = str(error) or kind
        span.record_exception(error)
    else:
        kind = error_type or "_OTHER"
        message = str(error)
    span.set_attribute(semconv.ERROR_TYPE, "cancelled" if status == "cancelled" else kind)
    span.set_attribute(semconv.STATUS, status)
    span.set_status(Status(StatusCode.ERROR, message))


class span:
    """Start a span around a block or a function (sync or async).

    ``kind`` says what the span is: ``llm`` (a model call; give its usage with
    ``record_usage``), ``embedding``, ``tool``, ``agent``, ``workflow``, ``task``,
    ``retrieval`` or ``span`` (generic). An exception inside marks the span as an error
    and propagates; a cancelled task marks it ``cancelled``.
    """

    __slots__ = ("_attributes", "_kind", "_name", "_stack")

    def __init__(
        self,
        name: str,
        kind: SpanKind | str = "span",
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        self._name = name
        self._kind = kind
        self._attributes = attributes
        self._stack: list[tuple[SpanHandle, object]] = []

    def _start(self) -> tuple[SpanHandle, object]:
        try:
            attrs = _clean(self._attributes) or {}
            kind = self._kind
            if kind and kind != "span":
                # the server reads "llm" (and "span") as an explicit kind; other values are
                # kept for display and left to its usage-based rule
                attrs.setdefault(semconv.SPAN_KIND, kind)
                operation = _OPERATIONS.get(kind)
                if operation:
                    attrs.setdefault(semconv.GEN_AI_OPERATION_NAME, operation)
            tracer = _runtime.current().tracer(TRACER_NAME, __version__)
            otel_span = tracer.start_span(self._name, attributes=attrs)
            token = otel_context.attach(trace.set_span_in_context(otel_span))
        except Exception as exc:
            internal_error("span start", exc)
            otel_span, token = trace.INVALID_SPAN, None
        return SpanHandle(otel_span), token

    @staticmethod
    def _finish(handle: SpanHandle, token: object, exc: BaseException | None) -> None:
        try:
            if exc is not None:
                cancelled = _is_cancellation(exc)
                _mark_error(
                    handle.span,
                    exc,
                    error_type=None,
                    status="cancelled" if cancelled else "error",
                )
            if token is not None:
                otel_context.detach(cast(Any, token))
            handle.span.end()
        except Exception as err:
            internal_error("span end", err)

    def __enter__(self) -> SpanHandle:
        entry = self._start()
        self._stack.append(entry)
        return entry[0]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        handle, token = self._stack.pop()
        self._finish(handle, token, exc)

    async def __aenter__(self) -> SpanHandle:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        template = self

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                handle, token = template._start()
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    template._finish(handle, token, exc)
                    raise
                template._finish(handle, token, None)
                return result

            return cast(F, run_async)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            handle, token = template._start()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                template._finish(handle, token, exc)
                raise
            template._finish(handle, token, None)
            return result

        return cast(F, run)


def _is_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, KeyboardInterrupt):
        return True
    # asyncio is not imported here (it is slow to import); no asyncio, no cancelled task
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(exc, asyncio.CancelledError)


def current_span() -> SpanHandle:
    """A handle on the span active here (a no-op handle when there is none)."""
    return SpanHandle(trace.get_current_span())
