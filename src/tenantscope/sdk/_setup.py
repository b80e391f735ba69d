"""``init`` / ``shutdown`` / ``flush`` / ``stats``: wiring the SDK into OpenTelemetry.

Provider choice: an explicit ``tracer_provider`` argument; else the global one when the app
already set an SDK ``TracerProvider`` (its other processors and exporters stay as they are;
ours is added next to them); else a new provider with our resource, set as the global one.
Each provider gets one ``Dispatch`` processor, ever; ``init`` swaps the pipeline behind it.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import TracerProvider as ApiTracerProvider

from tenantscope import semconv
from tenantscope.sdk import _runtime, _stats
from tenantscope.sdk._config import Config, load_config
from tenantscope.sdk._export import BatchExporter, HttpSender
from tenantscope.sdk._limits import Limiter
from tenantscope.sdk._processor import Dispatch, Pipeline
from tenantscope.sdk._spool import Spool, default_dir
from tenantscope.sdk._stats import Counters, ExportStats


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.config: Config | None = None
        self.pipeline: Pipeline | None = None
        self.counters = Counters()
        # providers we attached to -> their switch (weak: an app may drop a provider)
        self.switches: weakref.WeakKeyDictionary[TracerProvider, Dispatch] = (
            weakref.WeakKeyDictionary()
        )


_state = _State()


def init(
    *,
    endpoint: str | None = None,
    api_key: str | None = None,
    service_name: str | None = None,
    environment: str | None = None,
    tenant_id: str | None = None,
    capture_content: bool | None = None,
    inject_stream_usage: bool | None = None,
    disabled: bool | None = None,
    traces_endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    max_queue_size: int | None = None,
    max_export_batch_size: int | None = None,
    export_interval: float | None = None,
    export_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    compression: str | None = None,
    spool: bool | None = None,
    spool_dir: str | None = None,
    spool_max_mb: int | None = None,
    spool_max_age_hours: float | None = None,
    spool_policy: str | None = None,
    enforce_limits: bool | None = None,
    limits_timeout: float | None = None,
    limits_policy: str | None = None,
    tracer_provider: ApiTracerProvider | None = None,
    span_processor: SpanProcessor | None = None,
) -> Config:
    """Start the SDK (see docs/sdk.md for every setting and its environment variable).

    Raises ``tenantscope.errors.ConfigError`` for an invalid setting; nothing else the SDK
    does afterwards raises into the app. Calling it again replaces the previous setup.
    ``span_processor`` replaces the OTLP export (e.g. an ``InMemorySpanExporter`` behind a
    ``SimpleSpanProcessor``, or your own exporter): the tenant context is still stamped.
    ``tenant_id`` is a process-wide default tenant for spans started outside any tenant
    context (the context, and a tenant a span is started with, win).
    ``enforce_limits=True`` asks the server's limits before every instrumented call and
    raises ``tenantscope.TenantLimitExceeded`` when one refuses (docs/sdk.md, "Limits").
    """
    given = {
        name: value
        for name, value in {
            "endpoint": endpoint,
            "api_key": api_key,
            "service_name": service_name,
            "environment": environment,
            "tenant_id": tenant_id,
            "capture_content": capture_content,
            "inject_stream_usage": inject_stream_usage,
            "disabled": disabled,
            "traces_endpoint": traces_endpoint,
            "headers": headers,
            "max_queue_size": max_queue_size,
            "max_export_batch_size": max_export_batch_size,
            "export_interval": export_interval,
            "export_timeout": export_timeout,
            "shutdown_timeout": shutdown_timeout,
            "compression": compression,
            "spool": spool,
            "spool_dir": spool_dir,
            "spool_max_mb": spool_max_mb,
            "spool_max_age_hours": spool_max_age_hours,
            "spool_policy": spool_policy,
            "enforce_limits": enforce_limits,
            "limits_timeout": limits_timeout,
            "limits_policy": limits_policy,
        }.items()
        if value is not None
    }
    config = load_config(given, os.environ)
    if tracer_provider is not None and not isinstance(tracer_provider, TracerProvider):
        from tenantscope.errors import ConfigError

        raise ConfigError(
            "tracer_provider must be an opentelemetry.sdk.trace.TracerProvider, got "
            f"{type(tracer_provider).__name__}"
        )
    with _state.lock:
        # the previous pipeline finishes its export in the background: a second init must
        # not wait on a collector that is down
        _stop_pipeline(config.shutdown_timeout, background=True)
        _stats.reset_logged()
        _state.config = config
        _state.counters = Counters()
        if config.disabled:
            _runtime.replace(_runtime.Runtime(enabled=False))
            return config
        provider = _choose_provider(config, tracer_provider)
        exporter = span_processor or _batch_exporter(config, _state.counters)
        pipeline = Pipeline(
            exporter, _missing_resource(config, provider), default_tenant=config.tenant_id
        )
        _switch_for(provider).pipeline = pipeline
        _state.pipeline = pipeline
        _runtime.replace(
            _runtime.Runtime(
                tracer_provider=provider,
                enabled=True,
                capture_content=config.capture_content,
                inject_stream_usage=config.inject_stream_usage,
                limiter=Limiter(config, _state.counters),
            )
        )
    return config


def shutdown(timeout: float | None = None) -> None:
    """Export what is queued (waiting at most ``timeout`` seconds, default the
    ``shutdown_timeout`` setting) and stop; the SDK is back to its default state."""
    try:
        with _state.lock:
            config = _state.config
            wait = timeout if timeout is not None else (config.shutdown_timeout if config else 5.0)
            _stop_pipeline(wait)
            _state.config = None
            _runtime.replace(_runtime.Runtime())
    except Exception as exc:
        _stats.internal_error("shutdown", exc)


def flush(timeout: float = 5.0) -> bool:
    """Export what is queued now. True when it all went out within ``timeout`` seconds;
    False when the collector is unreachable, slow, or the SDK is not running. Never raises."""
    pipeline = _state.pipeline
    if pipeline is None:
        return _state.config is not None and _state.config.disabled
    try:
        return pipeline.force_flush(int(max(0.0, timeout) * 1000))
    except Exception as exc:
        _stats.internal_error("flush", exc)
        return False


def stats() -> ExportStats:
    """Counters of the export since ``init``: queued, exported and dropped spans."""
    with _stats.internal.lock:
        internal_errors = _stats.internal.internal_errors
    return dataclasses.replace(_state.counters.snapshot(), internal_errors=internal_errors)


def current_config() -> Config | None:
    """The configuration ``init`` resolved, or None before ``init`` / after ``shutdown``."""
    return _state.config


def _stop_pipeline(timeout: float, *, background: bool = False) -> None:
    pipeline, _state.pipeline = _state.pipeline, None
    for switch in list(_state.switches.values()):
        if switch.pipeline is pipeline:
            switch.pipeline = None
    if pipeline is None:
        return
    exporter = pipeline.exporter

    def stop() -> None:
        try:
            if isinstance(exporter, BatchExporter):
                exporter.shutdown_within(timeout)
            else:
                exporter.shutdown()
        except Exception as exc:
            _stats.internal_error("shutdown", exc)

    if background:
        threading.Thread(target=stop, name="tenantscope-stop", daemon=True).start()
    else:
        stop()


def _batch_exporter(config: Config, counters: Counters) -> BatchExporter:
    sender = HttpSender(
        config.traces_endpoint,
        config.export_headers(),
        timeout=config.export_timeout,
        compression=config.compression,
    )

    def spool() -> Spool:
        return Spool(
            Path(config.spool_dir).expanduser() if config.spool_dir else default_dir(),
            config.service_name or "unknown_service",
            max_bytes=config.spool_max_mb * 2**20,
            max_age_s=config.spool_max_age_hours * 3600,
            policy=config.spool_policy,
            counters=counters,
        )

    return BatchExporter(
        sender,
        max_queue_size=config.max_queue_size,
        max_export_batch_size=config.max_export_batch_size,
        export_interval=config.export_interval,
        shutdown_timeout=config.shutdown_timeout,
        counters=counters,
        spool=spool if config.spool else None,
    )


def _choose_provider(config: Config, given: ApiTracerProvider | None) -> TracerProvider:
    if isinstance(given, TracerProvider):
        return given
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider(resource=Resource.create(_resource_attributes(config)))
    # set_tracer_provider only takes effect once per process; if the app set a non-SDK
    # provider (e.g. a no-op) ours still serves the SDK's own spans and instrumentations
    trace.set_tracer_provider(provider)
    return provider


def _resource_attributes(config: Config) -> dict[str, Any]:
    # Resource.create also reads OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES; ours win
    attributes: dict[str, Any] = {}
    if config.service_name:
        attributes[semconv.SERVICE_NAME] = config.service_name
    if config.environment:
        attributes[semconv.DEPLOYMENT_ENVIRONMENT] = config.environment
        attributes[semconv.DEPLOYMENT_ENVIRONMENT_NAME] = config.environment
    return attributes


def _missing_resource(config: Config, provider: TracerProvider) -> dict[str, str]:
    """Resource attributes the provider lacks (it is the app's, or was created by an
    earlier ``init`` with other settings; a resource cannot change): stamped on spans."""
    have = provider.resource.attributes
    return {
        key: value for key, value in _resource_attributes(config).items() if have.get(key) != value
    }


def _switch_for(provider: TracerProvider) -> Dispatch:
    switch = _state.switches.get(provider)
    if switch is None:
        switch = Dispatch()
        provider.add_span_processor(switch)
        _state.switches[provider] = switch
    return switch


def _after_fork_in_child() -> None:
    # locks held by other threads at fork time stay locked in the child: replace them
    _state.lock = threading.RLock()
    _state.counters.lock = threading.Lock()
    _stats.internal.lock = threading.Lock()
    _stats.reset_after_fork()
    pipeline = _state.pipeline
    if pipeline is not None and isinstance(pipeline.exporter, BatchExporter):
        pipeline.exporter.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
