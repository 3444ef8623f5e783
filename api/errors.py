"""One exception class per Kubernetes answer that callers treat differently, so policy is a type check.

A Conflict means "look again", never "retry the same write"; only ServerError, TooManyRequests and Unreachable
are retried by the I/O seam.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An answer from the Kubernetes API (or the lack of one) that is not a success."""

    status: int = 0

    def __init__(self, message: str, *, status: int | None = None, reason: str = "", details: Any = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.reason = reason
        self.details = details


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404

    @property
    def type_not_served(self) -> bool:
        """The resource type itself is unknown to the server (its CRD is not installed), not one object missing."""
        return "could not find the requested resource" in self.message or "404 page not found" in self.message


class Conflict(ApiError):
    """409: the object changed since it was read (stale resourceVersion)."""

    status = 409


class AlreadyExists(ApiError):
    """409 with reason AlreadyExists: a create found the name taken."""

    status = 409


class Gone(ApiError):
    """410: the resourceVersion a watch or list asked for is too old; relist."""

    status = 410


class Invalid(ApiError):
    """422: the object failed validation (CRD schema); `message` names the field."""

    status = 422


class TooManyRequests(ApiError):
    status = 429


class ServerError(ApiError):
    status = 500


class Unreachable(ApiError):
    """No HTTP answer at all: connection refused or reset, DNS, TLS, timeout."""


RETRYABLE: tuple[type[ApiError], ...] = (ServerError, TooManyRequests, Unreachable)

_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def error_from_response(status: int, body: Any) -> ApiError:
    """Map an HTTP status and its (Kubernetes Status) body to the exception class callers act on."""
    status_body = body if isinstance(body, dict) else {}
    reason = str(status_body.get("reason", ""))
    message = str(status_body.get("message") or body or f"HTTP {status}")
    if status == 409 and reason == "AlreadyExists":
        cls: type[ApiError] = AlreadyExists
    elif status >= 500:
        cls = ServerError
    else:
        cls = _BY_STATUS.get(status, ApiError)
    return cls(message, status=status, reason=reason, details=status_body.get("details"))
