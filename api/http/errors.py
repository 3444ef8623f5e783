"""One exception class per Kubernetes answer that callers treat differently, so policy is a type check.

A Conflict means "look again", never "retry the same write"; only ServerError, TooManyRequests, Unreachable and
NotServed are retried by the I/O seam.
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
    """404 for one object: it does not exist (or no longer)."""

    status = 404


class NotServed(ApiError):
    """404 for a whole resource type: its CRD is not installed, or, for a second or two after an apiserver restart,
    not loaded yet. Not a NotFound, so no caller mistakes it for "the object was deleted"; retried like a 503."""

    status = 404


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


class TooLarge(ApiError):
    """413, or etcd's "request is too large" (a 500): the object will not fit however often it is sent."""

    status = 413


class Unreachable(ApiError):
    """No HTTP answer at all: connection refused or reset, DNS, TLS, timeout."""


RETRYABLE: tuple[type[ApiError], ...] = (ServerError, TooManyRequests, Unreachable, NotServed)
_NOT_SERVED = ("404 page not found", "the server could not find the requested resource")

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
    elif status == 413 or "request is too large" in message:
        cls = TooLarge
    elif status >= 500:
        cls = ServerError
    elif status == 404 and any(sign in message for sign in _NOT_SERVED):
        cls = NotServed
        message = f"resource type not served (its CRD is not installed, or loading after a restart): {message.strip()}"
    else:
        cls = _BY_STATUS.get(status, ApiError)
    return cls(message, status=status, reason=reason, details=status_body.get("details"))
