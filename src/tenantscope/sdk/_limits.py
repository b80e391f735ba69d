"""Limit enforcement: asking the tenantscope server before an LLM call (issue 13).

``init(enforce_limits=True)`` makes every instrumented call POST ``/v1/limits/check`` first
(the contract is in docs/sdk.md, "Limits"); a denial raises :class:`TenantLimitExceeded`
instead of calling the provider, an allowance puts its reservation id on the call's span
(``tenantscope.reservation_id``) and the server settles it when it stores that span.
:func:`guard` does the same by hand for calls the SDK does not instrument.

What this module promises the host app: it raises nothing but ``TenantLimitExceeded``,
and no request waits longer than ``limits_timeout`` (connect, send and answer each get
what is left of it). A server that cannot be reached, answers 5xx, refuses the key
(401/403) or says something unexpected is handled by ``limits_policy``: ``open`` lets the
call go (counted in ``stats().limit_unreachable``, logged once), ``closed`` refuses it.

Requests go over ``http.client`` with one kept-alive connection per thread: no dependency
beyond the standard library, no lock between threads, and a check over loopback costs one
round trip, not a TCP handshake.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

from tenantscope import __version__, semconv
from tenantscope.sdk import _context, _runtime
from tenantscope.sdk._stats import Counters, log_once

if TYPE_CHECKING:
    import http.client

    from tenantscope.sdk._config import Config

__all__ = [
    "Limiter",
    "Permit",
    "TenantLimitExceeded",
]

RESERVATION_ID = semconv.RESERVATION_ID  # the server settles by it
LIMIT_CUT = semconv.LIMIT_CUT
USAGE_ESTIMATED = semconv.USAGE_ESTIMATED
CUT_ERROR_TYPE = "tenant_limit_exceeded"

# A stream without max_tokens whose first hold says nothing about output: extend by this
# many tokens at a time.
DEFAULT_EXTEND_STEP = 1024


class TenantLimitExceeded(Exception):
    """A tenant limit refused the call (or the limit service could not be asked and
    ``limits_policy`` is ``closed``); the provider was not called, or a stream was cut.

    ``limit``: the limit that decided, as the server describes it (``id``, ``name``,
    ``kind``, ``per``, ``measure``, ``limit``, ``used``, ``remaining``, ``period_end``...),
    or None when the server could not be asked. ``remaining``: what is left of that limit's
    measure (a decimal string), or None. ``retry_after``: whole seconds until a retry can
    succeed, or None when waiting will not help (the call alone exceeds the limit, or the
    service is unreachable). ``message``: one line a person can read. ``reason``:
    ``denied`` (a limit said no), ``cut`` (a stream ran past what its limits allow) or
    ``unreachable`` (no answer and the policy is closed).
    """

    def __init__(
        self,
        message: str,
        *,
        limit: Mapping[str, Any] | None = None,
        remaining: str | None = None,
        retry_after: int | None = None,
        reason: str = "denied",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.limit = dict(limit) if limit is not None else None
        self.remaining = remaining
        self.retry_after = retry_after
        self.reason = reason

    def __str__(self) -> str:
        if self.reason == "unreachable" or "retry" in self.message:
            return self.message  # the server's message already says when to retry
        if self.retry_after is not None:
            return f"{self.message} (retry after {self.retry_after} s)"
        return f"{self.message} (retrying will not help until the limit changes)"


# --- HTTP -----------------------------------------------------------------------------------
class _NoAnswer(Exception):
    """The server could not be asked, or its answer is unusable; ``kind`` keys the log."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class _Http:
    """JSON POSTs to one server, a kept-alive connection per thread, a hard deadline."""

    def __init__(self, endpoint: str, headers: Mapping[str, str], timeout: float) -> None:
        parts = urllib.parse.urlsplit(endpoint)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"tenantscope-python/{__version__}",
            **headers,
        }
        self._local = threading.local()

    def post(self, path: str, body: Mapping[str, Any]) -> tuple[int, Any]:
        """(status, decoded JSON or None). Raises ``_NoAnswer`` when no answer came within
        the timeout (refused, reset, slow)."""
        import http.client

        data = json.dumps(body, separators=(",", ":")).encode()
        deadline = time.monotonic() + self.timeout
        # the instrumentations of an app (urllib3, httpx...) must not trace our own calls
        token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            for attempt in (0, 1):
                conn, reused = self._connection()
                try:
                    status, raw, closing = self._exchange(conn, path, data, deadline)
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    self._drop()
                    # the server closed an idle kept-alive connection as we reused it: once
                    # more on a fresh one (a check that got lost only holds until its TTL)
                    if reused and attempt == 0 and time.monotonic() < deadline:
                        continue
                    raise _NoAnswer("unreachable", "the connection was closed") from None
                except TimeoutError:
                    self._drop()
                    raise _NoAnswer(
                        "timeout", f"no answer within {self.timeout:g} s (limits_timeout)"
                    ) from None
                except (OSError, http.client.HTTPException) as exc:
                    self._drop()
                    raise _NoAnswer("unreachable", f"{type(exc).__name__}: {exc}") from None
                if closing:
                    self._drop()
                try:
                    decoded = json.loads(raw) if raw else None
                except ValueError:
                    decoded = None
                return status, decoded
            raise _NoAnswer("unreachable", "the connection was closed")  # pragma: no cover
        finally:
            otel_context.detach(token)

    def _exchange(
        self, conn: http.client.HTTPConnection, path: str, data: bytes, deadline: float
    ) -> tuple[int, bytes, bool]:
        def left() -> float:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            return remaining

        if conn.sock is None:
            conn.timeout = left()
            conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(left())
        conn.request("POST", self.prefix + path, body=data, headers=self.headers)
        conn.sock.settimeout(left())
        response = conn.getresponse()
        conn.sock.settimeout(left())
        raw = response.read()
        return response.status, raw, response.will_close

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        import http.client

        local = self._local
        conn: http.client.HTTPConnection | None = getattr(local, "conn", None)
        # a forked child must not talk over its parent's socket
        if conn is not None and getattr(local, "pid", None) == os.getpid():
            return conn, conn.sock is not None
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=self.timeout)
        local.conn, local.pid = conn, os.getpid()
        return conn, False

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # a broken socket: nothing left to do with it
                pass


# --- decisions ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """The server's answer to a check or an extend."""

    allowed: bool
    reservation_id: str | None
    hold_output_tokens: int | None
    decided_by: Mapping[str, Any] | None
    remaining: str | None
    retry_after: int | None
    message: str
    warnings: tuple[str, ...]

    def error(self, reason: str = "denied") -> TenantLimitExceeded:
        return TenantLimitExceeded(
            self.message or "a tenant limit refused the call",
            limit=self.decided_by,
            remaining=self.remaining,
            retry_after=self.retry_after,
            reason=reason,
        )


def _decision(answer: Any) -> Decision:
    if not isinstance(answer, Mapping) or not isinstance(answer.get("allowed"), bool):
        raise _NoAnswer("answer", f"an answer without 'allowed': {str(answer)[:200]}")
    hold = answer.get("hold")
    output = hold.get("output_tokens") if isinstance(hold, Mapping) else None
    decided_by = answer.get("decided_by")
    rid = answer.get("reservation_id")
    retry_after = answer.get("retry_after")
    remaining = answer.get("remaining")
    warnings = answer.get("warnings")
    return Decision(
        allowed=answer["allowed"],
        reservation_id=rid if isinstance(rid, str) and rid else None,
        hold_output_tokens=output if _is_int(output) else None,
        decided_by=decided_by if isinstance(decided_by, Mapping) else None,
        remaining=None if remaining is None else str(remaining),
        retry_after=int(retry_after) if isinstance(retry_after, int | float) else None,
        message=str(answer.get("message") or ""),
        warnings=tuple(str(w) for w in warnings) if isinstance(warnings, list) else (),
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Limiter:
    """Asks the server; applies the policy when it cannot; counts."""

    def __init__(self, config: Config, counters: Counters) -> None:
        self.enforce = config.enforce_limits
        self.closed = config.limits_policy == "closed"
        self.timeout = config.limits_timeout
        self.default_tenant = config.tenant_id or ""
        self.endpoint = config.endpoint
        self.http = _Http(config.endpoint, config.export_headers(), config.limits_timeout)
        self.counters = counters

    # the three calls below raise TenantLimitExceeded only; None means "no answer, the
    # policy lets the call go"
    def check(self, body: Mapping[str, Any]) -> Decision | None:
        self._count("limit_checks")
        decision = self._ask("/v1/limits/check", body, "check")
        if decision is None:
            return None
        if not decision.allowed:
            self._count("limit_denied")
            raise decision.error()
        return decision

    def extend(self, reservation_id: str, output_tokens: int) -> Decision | None:
        """The extended hold; raises TenantLimitExceeded (reason ``cut``) when denied."""
        self._count("limit_extends")
        body = {"reservation_id": reservation_id, "output_tokens": output_tokens}
        decision = self._ask("/v1/limits/extend", body, "extend")
        if decision is not None and not decision.allowed:
            self._count("limit_denied")
            raise decision.error("cut")
        return decision

    def settle(self, body: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The server's answer, or None (failed: counted and logged, never raised: the
        call happened whatever the policy)."""
        return self._send("/v1/limits/settle", body, "settle")

    def release(self, reservation_id: str, *, happened: bool = False) -> None:
        """Drop the hold. ``happened``: the call ran (its span is not recorded), so its
        place in the rate window stays; else the call never ran and gives it back."""
        body = {"reservation_id": reservation_id, "happened": happened}
        self._send("/v1/limits/release", body, "release")

    def _ask(self, path: str, body: Mapping[str, Any], what: str) -> Decision | None:
        try:
            status, answer = self.http.post(path, body)
            if status != 200:
                raise _status_problem(status, answer)
            return _decision(answer)
        except _NoAnswer as problem:
            return self._no_answer(problem, what)
        except TenantLimitExceeded:
            raise
        except Exception as exc:  # a bug of ours must not break the app: policy decides
            return self._no_answer(_NoAnswer("internal", f"{type(exc).__name__}: {exc}"), what)

    def _send(self, path: str, body: Mapping[str, Any], what: str) -> Mapping[str, Any] | None:
        try:
            status, answer = self.http.post(path, body)
            if status != 200:
                raise _status_problem(status, answer)
            return answer if isinstance(answer, Mapping) else {}
        except Exception as exc:
            problem = exc if isinstance(exc, _NoAnswer) else _NoAnswer("internal", repr(exc))
            self._count("limit_unreachable")
            self._log(problem, what)
            return None

    def _no_answer(self, problem: _NoAnswer, what: str) -> Decision | None:
        self._count("limit_unreachable")
        self._log(problem, what)
        if not self.closed:
            return None
        raise TenantLimitExceeded(
            f"tenantscope: the limit service at {self.endpoint} could not be asked "
            f"({problem.detail}); limits_policy='closed' refuses calls until it answers",
            reason="unreachable",
        )

    def _log(self, problem: _NoAnswer, what: str) -> None:
        policy = "refused (limits_policy='closed')" if self.closed else "let through"
        if problem.kind in ("401", "403"):
            log_once(
                "limits:auth",
                "tenantscope: the limit service at %s refused the API key (HTTP %s: %s); "
                "check api_key / TENANTSCOPE_API_KEY (an ingest or admin key). Calls are %s "
                "and counted (stats().limit_unreachable)",
                self.endpoint,
                problem.kind,
                problem.detail,
                policy,
            )
            return
        log_once(
            f"limits:{what}:{problem.kind}",
            "tenantscope: could not %s a limit at %s (%s); calls are %s and counted "
            "(stats().limit_unreachable); further failures are not logged",
            what,
            self.endpoint,
            problem.detail,
            policy,
        )

    def _count(self, name: str) -> None:
        counters = self.counters
        with counters.lock:
            setattr(counters, name, getattr(counters, name) + 1)


def _status_problem(status: int, answer: Any) -> _NoAnswer:
    detail = f"HTTP {status}"
    error = answer.get("error") if isinstance(answer, Mapping) else None
    if isinstance(error, Mapping) and error.get("message"):
        detail += f": {error['message']}"
    if status in (401, 403):
        return _NoAnswer(str(status), detail)
    if status == 404:
        return _NoAnswer(
            "404", detail + " (an unknown or expired reservation, or a server without limits)"
        )
    return _NoAnswer("5xx" if status >= 500 else "4xx", detail)


# --- attribution and permits ----------------------------------------------------------------
def attribution(limiter: Limiter) -> dict[str, str]:
    """Tenant, workspace, feature and user of the current context, as spans get them (the
    context, else ``init``'s default tenant)."""
    values = _context.current_attributes()
    return {
        "tenant_id": values.get(semconv.TENANT_ID) or limiter.default_tenant,
        "workspace_id": values.get(semconv.WORKSPACE_ID, ""),
        "feature": values.get(semconv.FEATURE, ""),
        "user_id": values.get(semconv.USER_ID, ""),
    }


@dataclass
class Permit:
    """What an allowed call holds: the reservation to put on its span and, for a stream
    without an output cap, how much output is held so far and how to ask for more."""

    reservation_id: str | None
    limiter: Limiter | None = None
    input_estimate: int = 0
    # output tokens held; None: the request set an output cap, nothing to extend
    held_output: int | None = None
    step: int = DEFAULT_EXTEND_STEP
    # the reservation belongs to a guard, which settles or releases it
    from_guard: bool = False

    def budget(self) -> StreamBudget | None:
        if self.reservation_id is None or self.limiter is None or self.held_output is None:
            return None
        return StreamBudget(self.limiter, self.reservation_id, self.held_output, self.step)


class StreamBudget:
    """Output tokens counted on a stream against what its reservation holds."""

    __slots__ = ("counted", "held", "limiter", "reservation_id", "step")

    def __init__(self, limiter: Limiter, reservation_id: str, held: int, step: int) -> None:
        self.limiter = limiter
        self.reservation_id = reservation_id
        self.held = held
        self.step = max(1, step)
        self.counted = 0

    def add(self, tokens: int = 1) -> None:
        self.counted += tokens

    def at_least(self, total: int) -> None:
        """A cumulative figure the provider reported (Anthropic's message_delta)."""
        if total > self.counted:
            self.counted = total

    def exhausted(self) -> bool:
        # the hold is used up: the next token needs more (counted is approximate, one per
        # delta, so asking at the edge rather than past it keeps the overshoot small)
        return self.counted >= self.held

    def extend(self) -> None:
        """Hold another step; raises TenantLimitExceeded when a limit says no (or, with the
        closed policy, when the server cannot be asked)."""
        decision = self.limiter.extend(self.reservation_id, self.step)
        # allowed, or no answer under the open policy: go on for another step either way
        # (not asking again at every chunk while the server is away)
        if decision is not None and decision.hold_output_tokens is not None:
            self.held = max(self.held + self.step, decision.hold_output_tokens)
        else:
            self.held += self.step


# the guard whose block is running (instrumented calls in it use its reservation)
class PermitSource(Protocol):
    def permit_for_call(self) -> Permit: ...


_active_guard: ContextVar[PermitSource | None] = ContextVar("tenantscope_guard", default=None)


def current_limiter() -> Limiter | None:
    return _runtime.current().limiter


def permit_request(limiter: Limiter | None, body_of: Any) -> tuple[Permit | None, Any]:
    """Before an instrumented call: (a permit from the running guard, None) or
    (None, the check's body) when the server must be asked, or (None, None) when nothing
    is enforced. ``body_of`` builds the body (only when needed)."""
    active = _active_guard.get()
    if active is not None:
        return active.permit_for_call(), None
    if limiter is None or not limiter.enforce:
        return None, None
    body = body_of(limiter)
    if body is None:
        return None, None
    return None, body


def permit_from(limiter: Limiter, body: Mapping[str, Any]) -> Permit | None:
    """Check (raises TenantLimitExceeded when denied); the permit of an allowed call."""
    decision = limiter.check(body)
    if decision is None or decision.reservation_id is None:
        return None
    held: int | None = None
    step = DEFAULT_EXTEND_STEP
    if body.get("max_tokens") is None:
        held = decision.hold_output_tokens if decision.hold_output_tokens is not None else 0
        step = decision.hold_output_tokens or DEFAULT_EXTEND_STEP
    return Permit(
        decision.reservation_id,
        limiter,
        input_estimate=int(body.get("input_tokens") or 0),
        held_output=held,
        step=step,
    )


async def permit_from_async(limiter: Limiter, body: Mapping[str, Any]) -> Permit | None:
    # the round trip runs on a worker thread: the event loop never waits on the network
    return await asyncio.to_thread(permit_from, limiter, body)
