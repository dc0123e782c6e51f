"""The error hierarchy every layer raises and the one table that maps it to HTTP.

Domain code raises these; only the servers' error middleware turns them into
``{"message": ...}`` responses, using :attr:`SockerlessError.status`, and a client turns such an
answer back into the same class with :func:`error_for_status`.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "Conflict",
    "InvalidParameter",
    "NotFound",
    "NotImplementedByBackend",
    "NotModified",
    "SockerlessError",
    "Unavailable",
    "UpstreamError",
    "UpstreamTimeout",
    "error_for_status",
]


class SockerlessError(Exception):
    """Base class: an error with a Docker-style message and an HTTP status."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotModified(SockerlessError):
    """The request asked for the state the object is already in (304, empty body)."""

    status = 304


class InvalidParameter(SockerlessError):
    """A bad parameter or body (400)."""

    status = 400


class AccessDenied(SockerlessError):
    """The cloud refused the caller's credentials (403)."""

    status = 403


class NotFound(SockerlessError):
    """No such object (404)."""

    status = 404


class Conflict(SockerlessError):
    """The object's state forbids the operation (409)."""

    status = 409


class NotImplementedByBackend(SockerlessError):
    """The backend cannot do this at all (501)."""

    status = 501

    @classmethod
    def for_operation(cls, backend: str, operation: str, hint: str = "") -> NotImplementedByBackend:
        message = f"This backend ({backend}) does not support {operation}."
        return cls(f"{message} {hint}" if hint else message)


class UpstreamError(SockerlessError):
    """The cloud provider failed after retries (502)."""

    status = 502


class Unavailable(SockerlessError):
    """The cloud provider throttled us after retries, or we are shedding load (503)."""

    status = 503

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamTimeout(SockerlessError):
    """Talking to the cloud provider timed out (504)."""

    status = 504


_BY_STATUS: dict[int, type[SockerlessError]] = {
    cls.status: cls
    for cls in (
        NotModified,
        InvalidParameter,
        AccessDenied,
        NotFound,
        Conflict,
        NotImplementedByBackend,
        UpstreamError,
        Unavailable,
        UpstreamTimeout,
    )
}


def error_for_status(status: int, message: str, retry_after: int | None = None) -> SockerlessError:
    """The error an answer of ``status`` carries, raised again on the caller's side with the same
    status and message (statuses without a class of their own, 401, 413, 500, keep theirs)."""
    cls = _BY_STATUS.get(status)
    if cls is Unavailable:
        return Unavailable(message, retry_after=retry_after)
    error = cls(message) if cls is not None else SockerlessError(message)
    error.status = status
    return error
