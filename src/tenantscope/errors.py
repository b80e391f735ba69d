"""One exception hierarchy; each error carries the HTTP status and a stable code.

The server's single exception handler turns these into ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

from typing import Any


class TenantscopeError(Exception):
    """Base class. ``status`` is the HTTP status a server answers with."""

    status: int = 500
    code: str = "internal_error"

    def __init__(
        self, message: str, *, details: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class BadRequest(TenantscopeError):
    status = 400
    code = "bad_request"


class ValidationFailed(BadRequest):
    """Input parsed but a field is wrong; ``details`` names the item and field."""

    code = "validation_failed"


class InvalidFields(TenantscopeError):
    """A definition (an alert rule, a contact point) with wrong fields: every wrong field
    is named at once in ``details["fields"]`` (field -> what to fix), so a form or a
    client can show them all."""

    status = 422
    code = "invalid_fields"

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__(
            "; ".join(f"{field}: {message}" for field, message in problems.items()),
            details={"fields": dict(problems)},
        )
        self.problems = dict(problems)


class Unauthorized(TenantscopeError):
    status = 401
    code = "unauthorized"


class LoginRequired(Unauthorized):
    """A dashboard page asked for without a session: the answer is the sign-in page."""

    def __init__(self, next_url: str) -> None:
        super().__init__("sign in to see this page")
        self.next_url = next_url


class Forbidden(TenantscopeError):
    status = 403
    code = "forbidden"


class TooManyRequests(TenantscopeError):
    status = 429
    code = "too_many_requests"


class NotFound(TenantscopeError):
    status = 404
    code = "not_found"


class Conflict(TenantscopeError):
    """The request is well formed but the current state forbids it (e.g. revoking the
    last active admin key)."""

    status = 409
    code = "conflict"


class RequestTimeout(TenantscopeError):
    """The client did not send its request body in time."""

    status = 408
    code = "request_timeout"


class PayloadTooLarge(TenantscopeError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(TenantscopeError):
    status = 415
    code = "unsupported_media_type"


class Unavailable(TenantscopeError):
    status = 503
    code = "unavailable"


class ConfigError(TenantscopeError):
    """Bad configuration given to the CLI or server at start."""

    status = 400
    code = "config_error"
