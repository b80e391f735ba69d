"""The limit check before an instrumented call (``init(enforce_limits=True)``): what it
asks, the permit it gets, and what happens to a reservation no span will settle. The
transport and policy are ``sdk/_limits.py``'s."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from tenantscope.sdk import _limits, _runtime
from tenantscope.sdk._limits import Limiter, Permit
from tenantscope.sdk._stats import internal_error, log_once

if TYPE_CHECKING:
    from tenantscope.sdk._instrument._common import Operation


def limit_body(op: Operation, kwargs: Mapping[str, Any], limiter: Limiter) -> Any:
    """The check of one call. Without a tenant it is still asked: a tenant-bound key makes
    it that tenant's, and limits for every tenant apply to "(no tenant)" too."""
    who = _limits.attribution(limiter)
    model = kwargs.get("model")
    return {
        **who,
        "provider": op.provider,
        "model": model if isinstance(model, str) else "",
        "input_tokens": op.estimate_input(kwargs),
        "max_tokens": op.output_cap(kwargs),
    }


def permit_request(op: Operation, kwargs: Mapping[str, Any]) -> tuple[Permit | None, Any]:
    """(a permit that needs no request, None) or (None, the check to make)."""
    limiter = _runtime.current().limiter
    if limiter is None:  # before init, or disabled: nothing is enforced
        return None, None
    try:
        return _limits.permit_request(limiter, lambda lim: limit_body(op, kwargs, lim))
    except Exception as exc:  # an estimate that failed must not fail the call
        internal_error("limit check", exc)
        return None, None


def gate(op: Operation, kwargs: Mapping[str, Any]) -> Permit | None:
    """Ask the limits before a call; raises TenantLimitExceeded (only) when refused."""
    permit, body = permit_request(op, kwargs)
    if body is None:
        return permit
    limiter = _runtime.current().limiter
    assert limiter is not None
    return _limits.permit_from(limiter, body)


async def gate_async(op: Operation, kwargs: Mapping[str, Any]) -> Permit | None:
    permit, body = permit_request(op, kwargs)
    if body is None:
        return permit
    limiter = _runtime.current().limiter
    assert limiter is not None
    return await _limits.permit_from_async(limiter, body)


def needs_release(permit: Permit | None) -> bool:
    return (
        permit is not None
        and not permit.from_guard
        and permit.reservation_id is not None
        and permit.limiter is not None
    )


def unspanned(permit: Permit | None) -> None:
    """A call with a reservation but no recording span (sampled out): no span will settle
    it, so release the hold now rather than let it block the tenant until it expires."""
    if permit is not None and needs_release(permit):
        assert permit.limiter is not None and permit.reservation_id is not None
        log_once(
            "limits:unspanned",
            "tenantscope: an LLM call's span is not recorded (sampling?): its limit "
            "reservation is released, and the call counts only if its usage reaches the "
            "server another way",
        )
        permit.limiter.release(permit.reservation_id, happened=True)


def discard(awaitable: Awaitable[Any]) -> None:
    # the request the app built was never sent: close it, or Python warns that the
    # coroutine was never awaited
    if inspect.iscoroutine(awaitable):
        awaitable.close()
