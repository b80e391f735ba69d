"""Auto-instrumentation of the ``openai`` and ``anthropic`` client libraries.

``instrument_openai()`` / ``instrument_anthropic()`` patch the client classes (every client,
sync and async, existing or future) so each model call becomes one OTel client span named
``<operation> <model>`` with the GenAI attributes tenantscope reads (``semconv.py``); the
tenant context is stamped on it by the SDK's span processor like on any other span.
``uninstrument_*()`` puts the original methods back exactly. Calling ``instrument_*()``
again replaces its settings.

Settings left as ``None`` follow ``tenantscope.init`` (read at call time): the tracer
provider it configured (else the global one), ``capture_content`` and
``inject_stream_usage``. The client libraries are imported lazily, inside the functions, so
``import tenantscope`` never needs them.
"""

from __future__ import annotations

import importlib.util
import logging

from opentelemetry.trace import TracerProvider

__all__ = [
    "instrument_all",
    "instrument_anthropic",
    "instrument_openai",
    "uninstrument_anthropic",
    "uninstrument_openai",
]

log = logging.getLogger("tenantscope.instrumentation")


def instrument_openai(
    *,
    tracer_provider: TracerProvider | None = None,
    capture_content: bool | None = None,
    inject_stream_usage: bool | None = None,
) -> None:
    """Trace ``openai`` chat completions, Responses API and embeddings calls.

    ``inject_stream_usage=True`` adds ``stream_options={"include_usage": True}`` to streamed
    chat completions that do not say otherwise, so their usage is known; the app then sees
    one more chunk (with no choices) at the end of each stream.
    ``capture_content=True`` records prompts and completions (truncated) as the
    ``gen_ai.input.messages`` / ``gen_ai.output.messages`` span attributes.
    Raises ImportError when ``openai`` is not installed.
    """
    from tenantscope.sdk._instrument import _openai

    _openai.instrument(_openai.new_options(tracer_provider, capture_content, inject_stream_usage))


def uninstrument_openai() -> None:
    """Restore the original ``openai`` methods (no-op when not instrumented)."""
    if importlib.util.find_spec("openai") is None:
        return
    from tenantscope.sdk._instrument import _openai

    _openai.uninstrument()


def instrument_anthropic(
    *,
    tracer_provider: TracerProvider | None = None,
    capture_content: bool | None = None,
    inject_stream_usage: bool | None = None,
) -> None:
    """Trace ``anthropic`` messages calls (``create``, ``parse``, ``stream``).

    ``inject_stream_usage`` is accepted for symmetry and ignored: Anthropic streams always
    report usage. Raises ImportError when ``anthropic`` is not installed.
    """
    del inject_stream_usage
    from tenantscope.sdk._instrument import _anthropic

    _anthropic.instrument(_anthropic.new_options(tracer_provider, capture_content))


def uninstrument_anthropic() -> None:
    """Restore the original ``anthropic`` methods (no-op when not instrumented)."""
    if importlib.util.find_spec("anthropic") is None:
        return
    from tenantscope.sdk._instrument import _anthropic

    _anthropic.uninstrument()


def instrument_all(
    *,
    tracer_provider: TracerProvider | None = None,
    capture_content: bool | None = None,
    inject_stream_usage: bool | None = None,
) -> list[str]:
    """Instrument every supported library that is installed; returns their names."""
    done: list[str] = []
    for name, instrument in (("openai", instrument_openai), ("anthropic", instrument_anthropic)):
        if importlib.util.find_spec(name) is None:
            continue
        try:
            instrument(
                tracer_provider=tracer_provider,
                capture_content=capture_content,
                inject_stream_usage=inject_stream_usage,
            )
        except Exception:  # an incompatible version must not break the app's startup
            log.warning("could not instrument %s", name, exc_info=True)
            continue
        done.append(name)
    return done
