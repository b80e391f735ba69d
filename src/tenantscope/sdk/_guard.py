"""``tenantscope.guard``: a limit check around a call the SDK does not instrument —
checked on entry, settled with the usage the block reports, released when it reports none
(the transport, policy and errors are ``_limits.py``'s)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any

from tenantscope.sdk._limits import (
    Decision,
    Limiter,
    Permit,
    _active_guard,
    attribution,
    current_limiter,
)
from tenantscope.sdk._stats import log_once

__all__ = ["Guard", "guard"]


# --- guard ----------------------------------------------------------------------------------
_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


class Guard:
    """A limit check around a call the SDK does not instrument; see :func:`guard`."""

    def __init__(
        self,
        *,
        tenant_id: str | None,
        workspace_id: str | None,
        feature: str | None,
        user_id: str | None,
        model: str | None,
        provider: str | None,
        estimate: int | str | Decimal | Mapping[str, Any] | None,
        ttl_s: int | None,
    ) -> None:
        self._given = {
            "tenant_id": tenant_id,
            "workspace_id": workspace_id,
            "feature": feature,
            "user_id": user_id,
        }
        self.model = model
        self.provider = provider
        self.ttl_s = ttl_s
        self._estimate = _estimate_fields(estimate)
        self.decision: Decision | None = None
        self.checked = False
        self.settled: Mapping[str, Any] | None = None
        self._limiter: Limiter | None = None
        self._usage: dict[str, Any] | None = None
        self._used_by_span = False
        self._done = False
        self._token: Any = None

    # --- what the block sees
    @property
    def reservation_id(self) -> str | None:
        """The reservation this block holds (None: no limit service was asked or answered,
        and the policy let the call go)."""
        return self.decision.reservation_id if self.decision is not None else None

    @property
    def remaining(self) -> str | None:
        """What is left of the tightest limit's measure, as the check answered."""
        return self.decision.remaining if self.decision is not None else None

    @property
    def warnings(self) -> tuple[str, ...]:
        """Soft thresholds the check reported (e.g. a budget at 82 %)."""
        return self.decision.warnings if self.decision is not None else ()

    def settle(
        self,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        cost_usd: str | Decimal | None = None,
        model: str | None = None,
        status: str = "ok",
        duration_ms: float | None = None,
        error_type: str = "",
        error_message: str = "",
    ) -> None:
        """Report the call's real usage. Inside the block it is sent when the block ends
        (as an error if the block raised); after the block, now. ``cost_usd`` (exact
        decimal) wins over the server's pricing of ``model`` and the tokens."""
        usage: dict[str, Any] = {
            "input_tokens": int(input_tokens),
            "output_tokens": int(output_tokens),
            "cache_read_tokens": int(cache_read_tokens),
            "cache_write_tokens": int(cache_write_tokens),
            "reasoning_tokens": int(reasoning_tokens),
            "cost_usd": None if cost_usd is None else str(Decimal(str(cost_usd))),
            "model": model or self.model,
            "status": status,
            "duration_ms": duration_ms,
            "error_type": error_type,
            "error_message": error_message,
        }
        self._usage = usage
        if self._done:
            self._settle_now(None)

    # --- context manager
    def __enter__(self) -> Guard:
        limiter = current_limiter()
        body = self._begin(limiter)
        if limiter is not None and body is not None:
            self.decision = limiter.check(body)
            self.checked = self.decision is not None
        self._token = _active_guard.set(self)
        return self

    async def __aenter__(self) -> Guard:
        limiter = current_limiter()
        body = self._begin(limiter)
        if limiter is not None and body is not None:
            self.decision = await asyncio.to_thread(limiter.check, body)
            self.checked = self.decision is not None
        self._token = _active_guard.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()
        self._finish(exc)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()
        if self._has_work():
            await asyncio.to_thread(self._finish, exc)
        else:
            self._finish(exc)

    # --- internals
    def permit_for_call(self) -> Permit:
        """An instrumented call inside the block: it carries this reservation on its span
        (whose arrival settles it), so the block does not settle or release it itself."""
        if self.reservation_id is not None:
            self._used_by_span = True
        return Permit(self.reservation_id, from_guard=True)

    def _begin(self, limiter: Limiter | None) -> dict[str, Any] | None:
        self._limiter = limiter
        if limiter is None:
            return None
        try:
            who = attribution(limiter)
            for name, value in self._given.items():
                if value is not None:
                    who[name] = str(value)
            input_tokens, max_tokens, cost = self._estimate
            body: dict[str, Any] = {
                **who,
                "provider": self.provider or "",
                "model": self.model or "",
                "input_tokens": input_tokens,
                "max_tokens": max_tokens,
                "estimated_cost_usd": cost,
            }
            if self.ttl_s is not None:
                body["ttl_s"] = int(self.ttl_s)
            return body
        except Exception as exc:
            _internal("guard", exc)
            return None

    def _leave(self) -> None:
        if self._token is not None:
            try:
                _active_guard.reset(self._token)
            except ValueError:  # exited in another context than entered: just clear it
                _active_guard.set(None)
            self._token = None

    def _has_work(self) -> bool:
        return self.reservation_id is not None and self._limiter is not None

    def _finish(self, exc: BaseException | None) -> None:
        self._done = True
        if not self._has_work():
            return
        if self._usage is not None:
            self._settle_now(exc)
        elif not self._used_by_span:
            # the call did not happen (or reported nothing): drop the hold
            assert self._limiter is not None and self.reservation_id is not None
            self._limiter.release(self.reservation_id)

    def _settle_now(self, exc: BaseException | None) -> None:
        limiter, rid, usage = self._limiter, self.reservation_id, self._usage
        if limiter is None or rid is None or usage is None:
            return
        if self._used_by_span:
            log_once(
                "limits:guard-double",
                "tenantscope: guard().settle() after an instrumented call in the same block:"
                " the call's span settles the reservation; the reported usage is ignored",
            )
            return
        body = {"reservation_id": rid, **usage}
        if exc is not None:
            body["status"] = "error"
            body["error_type"] = body["error_type"] or type(exc).__name__
            body["error_message"] = body["error_message"] or str(exc)[:1000]
        self._usage = None  # once
        self.settled = limiter.settle(body)


def _estimate_fields(
    estimate: int | str | Decimal | Mapping[str, Any] | None,
) -> tuple[int, int | None, str | None]:
    """(input_tokens, max_tokens, estimated_cost_usd) of a guard's ``estimate``."""
    if estimate is None:
        return 0, None, None
    if isinstance(estimate, bool):
        raise TypeError("estimate must be tokens (int), a cost (str/Decimal) or a mapping")
    if isinstance(estimate, int):
        return _tokens(estimate, "estimate"), 0, None
    if isinstance(estimate, str | Decimal | float):
        return 0, 0, _cost(estimate)
    if isinstance(estimate, Mapping):
        unknown = set(estimate) - {"input_tokens", "output_tokens", "cost_usd"}
        if unknown:
            raise TypeError(f"unknown estimate field(s): {', '.join(sorted(unknown))}")
        output = estimate.get("output_tokens")
        cost = estimate.get("cost_usd")
        return (
            _tokens(estimate.get("input_tokens") or 0, "input_tokens"),
            None if output is None else _tokens(output, "output_tokens"),
            None if cost is None else _cost(cost),
        )
    raise TypeError("estimate must be tokens (int), a cost (str/Decimal) or a mapping")


def _tokens(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a whole number of tokens >= 0, got {value!r}")
    return value


def _cost(value: object) -> str:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"cost_usd must be a decimal amount, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"cost_usd must be a decimal amount >= 0, got {value!r}")
    return str(amount)


def _internal(where: str, exc: BaseException) -> None:
    from tenantscope.sdk._stats import internal_error

    internal_error(where, exc)


def guard(
    tenant_id: str | None = None,
    *,
    estimate: int | str | Decimal | Mapping[str, Any] | None = None,
    model: str | None = None,
    provider: str | None = None,
    feature: str | None = None,
    workspace_id: str | None = None,
    user_id: str | None = None,
    ttl_s: int | None = None,
) -> Guard:
    """Check a tenant's limits around a call the SDK does not instrument.

    ``with tenantscope.guard(tenant_id="acme", model="gpt-4o", estimate=...) as g:`` (or
    ``async with``) asks the server on entry and raises :class:`TenantLimitExceeded` when a
    limit refuses; inside, ``g.reservation_id`` is the hold and ``g.settle(input_tokens=...,
    output_tokens=..., cost_usd=...)`` reports what the call really used. On exit the usage
    is settled (as ``error`` if the block raised); without a ``settle`` the hold is
    released (the call did not happen). Instrumented calls inside the block use this
    reservation (no second check) and settle it through their spans.

    ``estimate`` is the call's maximum: an ``int`` is tokens (held as input tokens of
    ``model``), a ``str`` / ``Decimal`` is a cost in USD, and a mapping may give
    ``input_tokens``, ``output_tokens`` (the output cap) and ``cost_usd`` together (a cost
    wins over pricing the tokens). None: a request of unknown size (the server holds its
    default output estimate). Tenant, workspace, feature and user default to the current
    context (and ``init``'s ``tenant_id``). Works whenever the SDK is initialised, with or
    without ``enforce_limits``; before ``init`` (or disabled) it checks nothing.
    """
    return Guard(
        tenant_id=tenant_id,
        workspace_id=workspace_id,
        feature=feature,
        user_id=user_id,
        model=model,
        provider=provider,
        estimate=estimate,
        ttl_s=ttl_s,
    )
