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

    def __init_subclass__(cls, *, status: int | None = None, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotModified(SockerlessError, status=304):
    """The request asked for the state the object is already in (an empty body)."""


class InvalidParameter(SockerlessError, status=400):
    """A bad parameter or body."""


class AccessDenied(SockerlessError, status=403):
    """The cloud refused the caller's credentials."""


class NotFound(SockerlessError, status=404):
    """No such object."""


class Conflict(SockerlessError, status=409):
    """The object's state forbids the operation."""


class NotImplementedByBackend(SockerlessError, status=501):
    """The backend cannot do this at all."""

    @classmethod
    def for_operation(cls, backend: str, operation: str, hint: str = "") -> NotImplementedByBackend:
        message = f"This backend ({backend}) does not support {operation}."
        return cls(f"{message} {hint}" if hint else message)


class UpstreamError(SockerlessError, status=502):
    """The cloud provider failed after retries."""


class Unavailable(SockerlessError, status=503):
    """The cloud provider throttled us after retries, or we are shedding load."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamTimeout(SockerlessError, status=504):
    """Talking to the cloud provider timed out."""


#: This module's classes by status (those defined elsewhere keep the status of the class they extend).
_BY_STATUS: dict[int, type[SockerlessError]] = {cls.status: cls for cls in SockerlessError.__subclasses__()}


def error_for_status(status: int, message: str, retry_after: int | None = None) -> SockerlessError:
    """The error an answer of ``status`` carries, raised again on the caller's side with the same
    status and message (statuses without a class of their own, 401, 413, 500, keep theirs)."""
    cls = _BY_STATUS.get(status)
    if cls is Unavailable:
        return Unavailable(message, retry_after=retry_after)
    error = cls(message) if cls is not None else SockerlessError(message)
    error.status = status
    return error
