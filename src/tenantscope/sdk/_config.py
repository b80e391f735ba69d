"""The SDK's settings, declared once: name, type, default, environment variables.

Precedence for every setting: the argument given to ``tenantscope.init`` > the first
environment variable of its row that is set (``TENANTSCOPE_*`` first, then the standard
``OTEL_*`` one where it applies) > the default. Invalid values raise ``ConfigError`` naming
the setting and where the value came from; ``init`` is the one place the SDK raises.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tenantscope.errors import ConfigError

Kind = Literal["str", "url", "bool", "int", "float", "headers"]

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
TRACES_PATH = "/v1/traces"


@dataclass(frozen=True)
class Setting:
    name: str
    kind: Kind
    default: Any
    env: tuple[str, ...]
    doc: str
    minimum: float | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "endpoint",
        "url",
        DEFAULT_ENDPOINT,
        ("TENANTSCOPE_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        "base URL of the tenantscope server; traces go to `<endpoint>/v1/traces`, usage "
        "queries to `<endpoint>/api/...`",
    ),
    Setting(
        "traces_endpoint",
        "url",
        None,
        ("TENANTSCOPE_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        "full URL spans are posted to (an OTLP/HTTP collector); default `<endpoint>/v1/traces`",
    ),
    Setting(
        "api_key",
        "str",
        None,
        ("TENANTSCOPE_API_KEY",),
        "sent as `Authorization: Bearer <key>` with spans and usage queries",
    ),
    Setting(
        "headers",
        "headers",
        None,
        ("TENANTSCOPE_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"),
        "extra HTTP headers for the export; env format `k1=v1,k2=v2` (values URL-encoded)",
    ),
    Setting(
        "service_name",
        "str",
        None,
        ("TENANTSCOPE_SERVICE_NAME", "OTEL_SERVICE_NAME"),
        "`service.name` of the resource (when the SDK creates the tracer provider)",
    ),
    Setting(
        "environment",
        "str",
        None,
        ("TENANTSCOPE_ENVIRONMENT",),
        "`deployment.environment`, e.g. `production`",
    ),
    Setting(
        "tenant_id",
        "str",
        None,
        ("TENANTSCOPE_TENANT_ID",),
        "the tenant of spans started outside any tenant context (a process-wide default; "
        "the context wins)",
    ),
    Setting(
        "capture_content",
        "bool",
        False,
        ("TENANTSCOPE_CAPTURE_CONTENT",),
        "record prompts and completions on LLM spans (off: only usage and metadata)",
    ),
    Setting(
        "inject_stream_usage",
        "bool",
        False,
        ("TENANTSCOPE_INJECT_STREAM_USAGE",),
        "add `stream_options.include_usage` to OpenAI streaming calls so streams report "
        "tokens (changes the stream the app sees: one extra chunk without choices)",
    ),
    Setting(
        "disabled",
        "bool",
        False,
        ("TENANTSCOPE_DISABLED",),
        "make every SDK call a no-op; nothing is exported",
    ),
    Setting(
        "max_queue_size",
        "int",
        2048,
        ("TENANTSCOPE_MAX_QUEUE_SIZE",),
        "spans held in memory waiting for export; past it the oldest are dropped (counted)",
        minimum=1,
    ),
    Setting(
        "max_export_batch_size",
        "int",
        512,
        ("TENANTSCOPE_MAX_EXPORT_BATCH_SIZE",),
        "spans per export request",
        minimum=1,
    ),
    Setting(
        "export_interval",
        "float",
        1.0,
        ("TENANTSCOPE_EXPORT_INTERVAL",),
        "seconds between background exports (a full batch goes at once)",
        minimum=0.01,
    ),
    Setting(
        "export_timeout",
        "float",
        10.0,
        ("TENANTSCOPE_EXPORT_TIMEOUT",),
        "seconds one batch may take, retries with backoff included; then it is dropped",
        minimum=0.01,
    ),
    Setting(
        "shutdown_timeout",
        "float",
        5.0,
        ("TENANTSCOPE_SHUTDOWN_TIMEOUT",),
        "seconds `shutdown()` (and interpreter exit) waits for the last export",
        minimum=0.0,
    ),
    Setting(
        "compression",
        "str",
        "gzip",
        ("TENANTSCOPE_COMPRESSION",),
        "`gzip` or `none`",
    ),
    Setting(
        "spool",
        "bool",
        True,
        ("TENANTSCOPE_SPOOL",),
        "keep batches the collector cannot take on disk and send them when it answers again",
    ),
    Setting(
        "spool_dir",
        "str",
        "",
        ("TENANTSCOPE_SPOOL_DIR",),
        "where the spool lives (default: `~/.cache/tenantscope/spool`, or under"
        " `$XDG_CACHE_HOME`); one directory per service name, one per process inside it",
    ),
    Setting(
        "spool_max_mb",
        "int",
        256,
        ("TENANTSCOPE_SPOOL_MAX_MB",),
        "the spool's size limit per process (its own batches and those it took over), in MB",
        minimum=1,
    ),
    Setting(
        "spool_max_age_hours",
        "float",
        72.0,
        ("TENANTSCOPE_SPOOL_MAX_AGE_HOURS",),
        "spooled batches older than this are dropped (counted)",
        minimum=0.001,
    ),
    Setting(
        "spool_policy",
        "str",
        "drop_newest",
        ("TENANTSCOPE_SPOOL_POLICY",),
        "when the spool is full: `drop_newest` (keep what is there) or `drop_oldest`",
    ),
    Setting(
        "enforce_limits",
        "bool",
        False,
        ("TENANTSCOPE_ENFORCE_LIMITS",),
        "ask the server's limits (`POST <endpoint>/v1/limits/check`) before every "
        "instrumented LLM call; a denied call raises `tenantscope.TenantLimitExceeded`",
    ),
    Setting(
        "limits_timeout",
        "float",
        0.25,
        ("TENANTSCOPE_LIMITS_TIMEOUT",),
        "seconds a limit check may take at most (connect, send, answer); then "
        "`limits_policy` decides",
        minimum=0.001,
    ),
    Setting(
        "limits_policy",
        "str",
        "open",
        ("TENANTSCOPE_LIMITS_POLICY",),
        "when the limit service cannot be asked (down, slow, 5xx, key refused): `open` "
        "lets the call go (counted), `closed` refuses it with `TenantLimitExceeded`",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True)
class Config:
    endpoint: str = DEFAULT_ENDPOINT
    traces_endpoint: str = DEFAULT_ENDPOINT + TRACES_PATH
    api_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    service_name: str | None = None
    environment: str | None = None
    tenant_id: str | None = None
    capture_content: bool = False
    inject_stream_usage: bool = False
    disabled: bool = False
    max_queue_size: int = 2048
    max_export_batch_size: int = 512
    export_interval: float = 1.0
    export_timeout: float = 10.0
    shutdown_timeout: float = 5.0
    compression: str = "gzip"
    spool: bool = True
    spool_dir: str = ""
    spool_max_mb: int = 256
    spool_max_age_hours: float = 72.0
    spool_policy: str = "drop_newest"
    enforce_limits: bool = False
    limits_timeout: float = 0.25
    limits_policy: str = "open"

    def export_headers(self) -> dict[str, str]:
        out = dict(self.headers)
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
        return out


def load_config(given: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    """Resolve every setting; ``given`` holds the arguments that were passed (not None)."""
    unknown = set(given) - set(_BY_NAME)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        values[setting.name] = _resolve(setting, given, env)

    values["endpoint"] = values["endpoint"].rstrip("/")
    # An endpoint passed as an argument beats a traces endpoint from the environment.
    if "traces_endpoint" not in given and "endpoint" in given:
        values["traces_endpoint"] = None
    if values["traces_endpoint"] is None:
        values["traces_endpoint"] = values["endpoint"] + TRACES_PATH

    if values["compression"] not in ("gzip", "none"):
        raise ConfigError(f"compression must be 'gzip' or 'none', got {values['compression']!r}")
    if values["spool_policy"] not in ("drop_newest", "drop_oldest"):
        raise ConfigError(
            f"spool_policy must be 'drop_newest' or 'drop_oldest', got {values['spool_policy']!r}"
        )
    if values["limits_policy"] not in ("open", "closed"):
        raise ConfigError(
            f"limits_policy must be 'open' or 'closed', got {values['limits_policy']!r}"
        )
    if values["max_export_batch_size"] > values["max_queue_size"]:
        if _explicit(_BY_NAME["max_export_batch_size"], given, env):
            raise ConfigError(
                f"max_export_batch_size ({values['max_export_batch_size']}) must not exceed "
                f"max_queue_size ({values['max_queue_size']})"
            )
        values["max_export_batch_size"] = values["max_queue_size"]  # the default shrinks
    values["headers"] = dict(values["headers"] or {})
    return Config(**values)


def resolve_one(name: str, given: Any, env: Mapping[str, str]) -> Any:
    """One setting by the same rules (used by the usage queries)."""
    return _resolve(_BY_NAME[name], {} if given is None else {name: given}, env)


def _explicit(setting: Setting, given: Mapping[str, Any], env: Mapping[str, str]) -> bool:
    return setting.name in given or any(env.get(var, "").strip() for var in setting.env)


def _resolve(setting: Setting, given: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    if setting.name in given:
        return _check(setting, given[setting.name], "argument")
    for var in setting.env:
        raw = env.get(var)
        if raw is not None and (raw.strip() or setting.kind == "bool"):
            return _check(setting, _parse(setting, raw, var), f"${var}")
    return setting.default


def _parse(setting: Setting, raw: str, source: str) -> Any:
    text = raw.strip()
    try:
        if setting.kind == "bool":
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError("expected 1/0, true/false, yes/no or on/off")
        if setting.kind == "int":
            return int(text)
        if setting.kind == "float":
            return float(text)
        if setting.kind == "headers":
            return _parse_headers(text)
    except ValueError as exc:
        raise ConfigError(f"{setting.name}: bad value {raw!r} in {source}: {exc}") from None
    return text


def _parse_headers(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key=value, got {item.strip()!r}")
        out[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return out


def _check(setting: Setting, value: Any, source: str) -> Any:
    def bad(why: str) -> ConfigError:
        return ConfigError(f"{setting.name} ({source}): {why}, got {value!r}")

    if value is None:
        return setting.default
    kind = setting.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("expected True or False")
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("expected an integer")
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("expected a number")
        if not math.isfinite(value):
            raise bad("expected a finite number")
        value = float(value)
    elif kind == "headers":
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise bad("expected a mapping of str to str")
        value = dict(value)
    else:
        if not isinstance(value, str):
            raise bad("expected a string")
        if kind == "url":
            _check_url(value, bad)
    if setting.minimum is not None and value < setting.minimum:
        raise bad(f"must be at least {setting.minimum:g}")
    return value


def _check_url(value: str, bad: Callable[[str], ConfigError]) -> None:
    parts = urllib.parse.urlsplit(value.strip())
    if parts.scheme not in ("http", "https"):
        raise bad("expected an http:// or https:// URL")
    if not parts.hostname:
        raise bad("the URL has no host")
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise bad("the URL has a bad port") from None
