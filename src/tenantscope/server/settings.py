"""Server configuration, declared in one table: argument > TENANTSCOPE_* variable > default."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs

from tenantscope.errors import ConfigError


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("tenantscope", appauthor=False))


def _default_workers() -> int:
    # Decoding is most of ingest's work, and since OTLP requests are answered from the
    # write-ahead log the server process needs far less than a core: one worker per core
    # (on one core, decoding in the server process saves the hand-over)
    cores = os.cpu_count() or 1
    return 0 if cores < 2 else min(4, cores)


def _bytes(text: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


def _addresses(value: str | Iterable[str]) -> tuple[str, ...]:
    """Proxy addresses or networks (``10.0.0.5``, ``10.0.0.0/8``, ``::1``), separated by
    commas or spaces. Each is checked: a typo would otherwise trust nothing, silently.
    There is no wildcard: trusting every address lets every client pick its own."""
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    out = []
    for item in items:
        try:
            ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
        out.append(item.strip())
    return tuple(out)


def _flag(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def _names(value: str | Iterable[str]) -> tuple[str, ...]:
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    return tuple(item.strip() for item in items if item.strip())


# Signing algorithms JWT sign-in may accept. A JWKS holds public keys, so only asymmetric
# ones; a shared secret only HMAC ones. Never both at once: accepting HS256 next to a
# JWKS lets a token "signed" with the public key as an HMAC secret pass (algorithm
# confusion), and "none" is no signature at all.
JWKS_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
SECRET_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
# The shortest secret (for HS256; HS384 and HS512 need 48 and 64 bytes: _check_jwt).
MIN_JWT_SECRET = 32


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    default: Callable[[], Any]
    parse: Callable[[str], Any]
    help: str

    @property
    def env(self) -> str:
        return "TENANTSCOPE_" + self.name.upper()


OPTIONS: tuple[Option, ...] = (
    Option("data_dir", _default_data_dir, Path, "directory holding events.duckdb and config.db"),
    Option("host", lambda: "127.0.0.1", str, "address to listen on"),
    Option("port", lambda: 4318, int, "port (4318 is the OTLP/HTTP default)"),
    Option(
        "max_body_bytes",
        lambda: 16 * 1024 * 1024,
        _bytes,
        "largest accepted ingest body after decompression (e.g. 16MiB)",
    ),
    Option("max_events", lambda: 1000, int, "most native events in one POST /v1/events"),
    Option(
        "duckdb_memory_limit",
        lambda: "200MB",
        str,
        "DuckDB memory_limit for the event store (the server holds about 250 MB besides)",
    ),
    Option("duckdb_threads", lambda: 0, int, "DuckDB threads (0: one per core)"),
    Option(
        "duckdb_checkpoint_threshold",
        lambda: "128MB",
        str,
        "write-ahead log size at which DuckDB folds it into the event file",
    ),
    Option(
        "trace_window_hours",
        lambda: 6.0,
        float,
        "how far apart in time spans of one trace are still joined for attribution",
    ),
    Option(
        "ingest_workers",
        lambda: _default_workers(),
        int,
        "processes decoding OTLP beside the server (0: decode in the server process)",
    ),
    Option(
        "ingest_linger_ms",
        lambda: 500.0,
        float,
        "how long answered OTLP spans wait for more before one store batch takes them all",
    ),
    Option(
        "read_lag_ms",
        lambda: 1000.0,
        float,
        "a read waits until the spans its own key sent are stored, and those any key sent"
        " more than this long before it (0: every read waits for every answered span)",
    ),
    Option(
        "trusted_proxies",
        lambda: (),
        _addresses,
        "addresses or networks of reverse proxies whose X-Forwarded-For / -Proto are"
        " believed (default: none)",
    ),
    Option(
        "keep_alive_timeout_s",
        lambda: 5.0,
        float,
        "how long an idle kept-alive connection stays open after an answer",
    ),
    Option(
        "header_timeout_s",
        lambda: 10.0,
        float,
        "how long a client has to send a request's headers (from connecting, or from the"
        " previous answer); a connection that has not by then is closed",
    ),
    Option(
        "body_timeout_s",
        lambda: 30.0,
        float,
        "how long a client has to send a whole request body; later: 408 and the"
        " connection is closed",
    ),
    Option(
        "public_url",
        lambda: "",
        str,
        "the dashboard's address as users reach it (e.g. https://usage.example.com), for"
        " links in alert notifications (default: http://HOST:PORT)",
    ),
    Option(
        "alerts",
        lambda: True,
        _flag,
        "evaluate alert rules and send notifications in this server (off: a replica that"
        " only serves; the evaluator runs once per config store anyway, by lease)",
    ),
    Option(
        "limits_default_output_tokens",
        lambda: 1024,
        int,
        "output tokens a limit check reserves for a call that sets no max_tokens (and each"
        " extension of a stream that passes it)",
    ),
    Option(
        "limits_refresh_ms",
        lambda: 1000.0,
        float,
        "how often the limiter re-reads month-to-date spend from the store when records"
        " arrived (calls it reserved count at once, others within this time)",
    ),
    Option(
        "jwt_jwks_url",
        lambda: "",
        str,
        "sign-in with your identity provider: the JWKS URL whose keys sign its tokens"
        " (https; http only to a loopback address)",
    ),
    Option(
        "jwt_secret",
        lambda: "",
        str,
        f"sign-in with your identity provider: a shared HS256 secret (at least"
        f" {MIN_JWT_SECRET} bytes) instead of a JWKS URL",
    ),
    Option(
        "jwt_algorithms",
        lambda: (),
        _names,
        "signing algorithms accepted (default: RS256,ES256 with a JWKS URL, HS256 with a secret)",
    ),
    Option("jwt_issuer", lambda: "", str, "the iss tokens must carry (required for JWT sign-in)"),
    Option("jwt_audience", lambda: "", str, "the aud tokens must carry (required for JWT sign-in)"),
    Option(
        "jwt_tenant_claim",
        lambda: "tenant_id",
        str,
        "the claim naming the tenant; a dotted path (org.id) reads a nested claim",
    ),
    Option(
        "jwt_leeway_s",
        lambda: 30.0,
        float,
        "clock difference allowed to the identity provider on exp, nbf and iat",
    ),
    Option(
        "jwt_jwks_cache_s",
        lambda: 300.0,
        float,
        "how long fetched JWKS keys are used before the JWKS is read again (a token"
        " naming an unknown kid reads it at once)",
    ),
    Option("jwt_jwks_timeout_s", lambda: 5.0, float, "how long one fetch of the JWKS may take"),
    Option("log_level", lambda: "info", str, "debug, info, warning or error"),
    Option(
        "insecure_no_auth",
        lambda: False,
        _flag,
        "serve without API keys (every caller is admin); loopback addresses only",
    ),
)

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _check_jwt(values: dict[str, Any]) -> None:
    """JWT sign-in's options, checked together (and ``jwt_algorithms`` defaulted): off
    unless a JWKS URL or a secret is given, and then complete, since a token accepted from
    any issuer or for any audience would let another app's tokens sign in here."""
    url = str(values["jwt_jwks_url"]).strip()
    secret = str(values["jwt_secret"])
    values["jwt_jwks_url"] = url
    try:
        algorithms = _names(values["jwt_algorithms"])
    except (AttributeError, TypeError):
        raise ConfigError("TENANTSCOPE_JWT_ALGORITHMS must be a list of names") from None
    if not float(values["jwt_leeway_s"]) >= 0:
        raise ConfigError("TENANTSCOPE_JWT_LEEWAY_S must be 0 or more seconds")
    for name in ("jwt_jwks_cache_s", "jwt_jwks_timeout_s"):
        if not float(values[name]) > 0:
            raise ConfigError(f"TENANTSCOPE_{name.upper()} must be a positive number of seconds")
    claim = str(values["jwt_tenant_claim"]).strip()
    values["jwt_tenant_claim"] = claim
    if not url and not secret:
        values["jwt_algorithms"] = algorithms
        return
    if url and secret:
        raise ConfigError(
            "give TENANTSCOPE_JWT_JWKS_URL or TENANTSCOPE_JWT_SECRET, not both: tokens are"
            " checked either with the identity provider's public keys or with one shared secret"
        )
    if url:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(host)):
            raise ConfigError(
                "TENANTSCOPE_JWT_JWKS_URL must be an https:// URL (http:// only to a loopback"
                " address): whoever can change the keys on the way can sign in as any tenant"
            )
    allowed = JWKS_ALGORITHMS if url else SECRET_ALGORITHMS
    algorithms = algorithms or (("RS256", "ES256") if url else ("HS256",))
    wrong = [a for a in algorithms if a not in allowed]
    if wrong:
        what = "a JWKS URL" if url else "a shared secret"
        raise ConfigError(
            f"TENANTSCOPE_JWT_ALGORITHMS: {', '.join(wrong)} cannot be used with {what};"
            f" choose from {', '.join(sorted(allowed))}"
        )
    values["jwt_algorithms"] = algorithms
    if secret:
        # an HMAC key shorter than its hash output can be guessed offline from one token
        need = max(int(a[2:]) // 8 for a in algorithms)
        if len(secret.encode()) < need:
            raise ConfigError(
                f"TENANTSCOPE_JWT_SECRET must be at least {need} bytes for"
                f" {', '.join(algorithms)}: a shorter secret can be guessed offline from one"
                " token"
            )
    missing = [n for n in ("jwt_issuer", "jwt_audience") if not str(values[n]).strip()]
    if missing:
        raise ConfigError(
            "JWT sign-in needs "
            + " and ".join(f"TENANTSCOPE_{n.upper()}" for n in missing)
            + ": tokens for another app of the same identity provider must not sign in here"
        )
    values["jwt_issuer"] = str(values["jwt_issuer"]).strip()
    values["jwt_audience"] = str(values["jwt_audience"]).strip()
    if not claim or any(not part for part in claim.split(".")):
        raise ConfigError(
            "TENANTSCOPE_JWT_TENANT_CLAIM must name a claim (a dotted path like org.id"
            " reads a nested one)"
        )


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    host: str
    port: int
    max_body_bytes: int
    max_events: int
    duckdb_memory_limit: str
    duckdb_threads: int
    duckdb_checkpoint_threshold: str
    trace_window_hours: float
    ingest_workers: int
    ingest_linger_ms: float
    read_lag_ms: float
    trusted_proxies: tuple[str, ...]
    keep_alive_timeout_s: float
    header_timeout_s: float
    body_timeout_s: float
    public_url: str
    alerts: bool
    limits_default_output_tokens: int
    limits_refresh_ms: float
    jwt_jwks_url: str
    # kept out of repr: settings may be logged or shown in a traceback
    jwt_secret: str = field(repr=False)
    jwt_algorithms: tuple[str, ...]
    jwt_issuer: str
    jwt_audience: str
    jwt_tenant_claim: str
    jwt_leeway_s: float
    jwt_jwks_cache_s: float
    jwt_jwks_timeout_s: float
    log_level: str
    insecure_no_auth: bool

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **given: Any) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for opt in OPTIONS:
            if given.get(opt.name) is not None:
                values[opt.name] = given[opt.name]
            elif opt.env in env and env[opt.env] != "":
                try:
                    values[opt.name] = opt.parse(env[opt.env])
                except ValueError as exc:
                    raise ConfigError(f"{opt.env}={env[opt.env]!r} is not valid: {exc}") from None
            else:
                values[opt.name] = opt.default()
        unknown = set(given) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
        values["data_dir"] = Path(values["data_dir"]).expanduser()
        for name in ("keep_alive_timeout_s", "header_timeout_s", "body_timeout_s"):
            if not float(values[name]) > 0:
                raise ConfigError(
                    f"TENANTSCOPE_{name.upper()} must be a positive number of seconds"
                )
        if not 1 <= int(values["limits_default_output_tokens"]) <= 10**7:
            raise ConfigError(
                "TENANTSCOPE_LIMITS_DEFAULT_OUTPUT_TOKENS must be from 1 to 10,000,000"
            )
        if not float(values["limits_refresh_ms"]) > 0:
            raise ConfigError("TENANTSCOPE_LIMITS_REFRESH_MS must be a positive number")
        if not float(values["read_lag_ms"]) >= 0:
            raise ConfigError("TENANTSCOPE_READ_LAG_MS must be 0 or more milliseconds")
        try:  # given as an argument: a string or a list, checked like the variable
            values["trusted_proxies"] = _addresses(values["trusted_proxies"])
        except ValueError as exc:
            raise ConfigError(f"trusted proxies: {exc}") from None
        if values["insecure_no_auth"] and not is_loopback(str(values["host"])):
            raise ConfigError(
                f"--insecure-no-auth serves without keys, so it only binds to loopback;"
                f" refusing host {values['host']!r} (use 127.0.0.1, or create keys instead)"
            )
        url = str(values["public_url"]).strip().rstrip("/")
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError("TENANTSCOPE_PUBLIC_URL must start with http:// or https://")
        values["public_url"] = url
        _check_jwt(values)
        return cls(**values)

    @property
    def jwt_on(self) -> bool:
        """Is sign-in with the operator's identity provider (JWT) turned on?"""
        return bool(self.jwt_jwks_url or self.jwt_secret)

    @property
    def dashboard_url(self) -> str:
        """Where links in notifications point."""
        if self.public_url:
            return self.public_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def events_path(self) -> Path:
        return self.data_dir / "events.duckdb"

    @property
    def wal_path(self) -> Path:
        """The ingest write-ahead log (OTLP spans answered, not yet in events.duckdb)."""
        return self.data_dir / "wal"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "config.db"
