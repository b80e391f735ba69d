"""The tenant context: who a piece of work is for, held in a ``contextvars.ContextVar``.

A ContextVar gives exactly the isolation requests need: every asyncio task runs in a copy of
its creator's context and every thread starts from an empty one, so a value set while
serving one request is never seen by another. The value is an immutable mapping of span
attribute names (``semconv``) to strings, replaced (never mutated) on every change, so the
span processor can stamp it on a span without copying or locking.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType, TracebackType
from typing import Any, Final, TypeVar, cast

from tenantscope import semconv

F = TypeVar("F", bound=Callable[..., Any])

_EMPTY: Final[Mapping[str, str]] = MappingProxyType({})
_current: ContextVar[Mapping[str, str]] = ContextVar("tenantscope_context", default=_EMPTY)

# keyword argument -> span attribute name
FIELDS: Final[dict[str, str]] = {
    "tenant_id": semconv.TENANT_ID,
    "user_id": semconv.USER_ID,
    "session_id": semconv.SESSION_ID,
    "workspace_id": semconv.WORKSPACE_ID,
    "feature": semconv.FEATURE,
    "billable_action": semconv.BILLABLE_ACTION,
    "customer_visible_label": semconv.CUSTOMER_VISIBLE_LABEL,
    "customer_id": semconv.CUSTOMER_ID,
}


def current_attributes() -> Mapping[str, str]:
    """The attributes of the current context (read-only)."""
    return _current.get()


def get_context() -> dict[str, str]:
    """The current context by keyword name, e.g. ``{"tenant_id": "apex-legal"}``."""
    values = _current.get()
    return {name: values[attr] for name, attr in FIELDS.items() if attr in values}


def _merged(base: Mapping[str, str], changes: Mapping[str, str | None]) -> Mapping[str, str]:
    out = dict(base)
    for name, value in changes.items():
        attr = FIELDS[name]
        if value is None:
            continue
        if value == "":
            out.pop(attr, None)
        else:
            out[attr] = _text(value)
    return MappingProxyType(out)


def _text(value: object) -> str:
    # ids are often ints or UUIDs; a wrong type must not fail the app's request
    return value if isinstance(value, str) else str(value)


def _set(name: str, value: str | None) -> None:
    # None and "" both clear the field for a setter (there is nothing to inherit)
    _current.set(_merged(_current.get(), {name: "" if value is None else value}))


def set_tenant_id(tenant_id: str | None) -> None:
    """Set the tenant of the current context (this task or thread and what it starts)."""
    _set("tenant_id", tenant_id)


def set_user_id(user_id: str | None) -> None:
    """Set the end user of the current context."""
    _set("user_id", user_id)


def set_session_id(session_id: str | None) -> None:
    """Set the session (conversation) of the current context."""
    _set("session_id", session_id)


def set_workspace_id(workspace_id: str | None) -> None:
    """Set the workspace (a tenant's sub-account, project or team) of the current context."""
    _set("workspace_id", workspace_id)


def set_feature(feature: str | None) -> None:
    """Set the product feature the current work belongs to (for per-feature costs)."""
    _set("feature", feature)


def set_customer_id(customer_id: str | None) -> None:
    """Set the tenant's own end customer of the current context (for per-customer costs
    within a tenant)."""
    _set("customer_id", customer_id)


class context:
    """Attribute the work inside to a tenant (and user, session, workspace, feature, the
    tenant's own customer...).

    A context manager and a decorator (sync and async functions). Fields left ``None``
    keep the enclosing value; ``""`` clears it. On exit the previous context is restored.
    """

    __slots__ = ("_changes", "_tokens")

    def __init__(
        self,
        tenant_id: str | None = None,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        workspace_id: str | None = None,
        feature: str | None = None,
        billable_action: str | None = None,
        customer_visible_label: str | None = None,
        customer_id: str | None = None,
    ) -> None:
        changes = {
            "tenant_id": tenant_id,
            "user_id": user_id,
            "session_id": session_id,
            "workspace_id": workspace_id,
            "feature": feature,
            "billable_action": billable_action,
            "customer_visible_label": customer_visible_label,
            "customer_id": customer_id,
        }
        self._changes: dict[str, str | None] = changes
        self._tokens: list[Token[Mapping[str, str]]] = []

    def __enter__(self) -> context:
        self._tokens.append(_current.set(_merged(_current.get(), self._changes)))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token = self._tokens.pop()
        try:
            _current.reset(token)
        except ValueError:
            # entered in another context (e.g. a generator resumed elsewhere): set back
            # the value seen at entry rather than fail the app
            _current.set(token.old_value if token.old_value is not Token.MISSING else _EMPTY)

    async def __aenter__(self) -> context:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        changes = self._changes

        # a fresh scope per call: one decorated function may run in many tasks at once
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with _from_changes(changes):
                    return await func(*args, **kwargs)

            return cast(F, run_async)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with _from_changes(changes):
                return func(*args, **kwargs)

        return cast(F, run)


def _from_changes(changes: dict[str, str | None]) -> context:
    scope = context.__new__(context)
    scope._changes = changes
    scope._tokens = []
    return scope
