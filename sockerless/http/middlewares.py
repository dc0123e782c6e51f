"""The middlewares both servers stack, each a small function around the handler (as aiohttp's own).

Outermost first: :func:`access_log` (one line per request), :func:`errors` (the one place an
exception becomes an answer), :func:`bearer_token` (when a token is configured) and
:class:`InFlight` (back-pressure on short requests; what shutdown drains).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware

from sockerless.errors import SockerlessError, Unavailable
from sockerless.http.responses import error_response
from sockerless.observability import RequestContext, bind_request, unbind_request

__all__ = [
    "Handler",
    "InFlight",
    "access_log",
    "bearer_token",
    "errors",
    "long_lived",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

_LONG_LIVED_ATTRIBUTE = "sockerless_long_lived"
#: aiohttp's own 4xx answers, in Docker's shape.
_HTTP_MESSAGES = {404: "page not found", 405: "method not allowed", 413: "request body too large"}


def long_lived(predicate: Callable[[web.Request], bool]) -> Callable[[H], H]:
    """Mark a handler whose requests may last as long as a container runs (wait, attach, a followed
    log) when ``predicate`` holds: :class:`InFlight` does not count them against its limit."""

    def mark(handler: H) -> H:
        setattr(handler, _LONG_LIVED_ATTRIBUTE, predicate)
        return handler

    return mark


def _is_long_lived(request: web.Request) -> bool:
    predicate = getattr(request.match_info.handler, _LONG_LIVED_ATTRIBUTE, None)
    return predicate is not None and bool(predicate(request))


def errors(
    internal_message: str,
    logger: logging.Logger,
    passthrough: tuple[type[BaseException], ...] = (ConnectionResetError,),
) -> Middleware:
    """A :mod:`sockerless.errors` exception as its status and message; aiohttp's own 4xx in the same
    shape; anything unexpected logged with its traceback and answered 500 with ``internal_message``
    (never a trace in the body). Cancellation and ``passthrough`` (a client gone) go through."""

    @web.middleware
    async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except SockerlessError as exc:
            headers = {}
            if isinstance(exc, Unavailable) and exc.retry_after is not None:
                headers["Retry-After"] = str(exc.retry_after)
            return error_response(exc.status, exc.message, headers)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_response(exc.status, _HTTP_MESSAGES.get(exc.status, exc.reason))
        except asyncio.CancelledError:
            raise
        except passthrough:
            raise
        except Exception:
            fields = {"method": request.method, "path": request.path}
            logger.exception("unexpected error", extra={"fields": fields})
            return error_response(500, internal_message)

    return error_middleware


def access_log(logger: logging.Logger) -> Middleware:
    """One structured line per request: method, path, status, duration and cloud request IDs."""

    @web.middleware
    async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        context = RequestContext(method=request.method, path=request.path)
        token = bind_request(context)
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except asyncio.CancelledError:
            status = 499  # the client went away
            raise
        finally:
            unbind_request(token)
            if logger.isEnabledFor(logging.INFO):  # no line to build at a higher log level
                _log_request(logger, context, status, time.perf_counter() - started)

    return access_middleware


def _log_request(logger: logging.Logger, context: RequestContext, status: int, seconds: float) -> None:
    fields: dict[str, Any] = {
        "method": context.method,
        "path": context.path,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
    }
    if context.cloud_request_ids:
        fields["cloud_request_ids"] = context.cloud_request_ids
    logger.info("request", extra={"fields": fields})


def bearer_token(token: str) -> Middleware:
    """Refuse requests without ``Authorization: Bearer <token>`` (compared in constant time)."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def token_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        supplied = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(supplied, expected):
            return error_response(401, "unauthorized: a valid bearer token is required")
        return await handler(request)

    return token_middleware


class InFlight:
    """Requests being served: short ones are limited (beyond ``limit``, 503 with Retry-After), and
    :meth:`drained` tells shutdown when none of any kind is left."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.short = 0
        self.active = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    async def drained(self) -> None:
        await self._quiet.wait()

    @property
    def middleware(self) -> Middleware:
        @web.middleware
        async def inflight_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            if _is_long_lived(request):
                return await self._counted(handler, request)
            if self.short >= self.limit:
                return error_response(503, "the server is busy; retry shortly", {"Retry-After": "1"})
            self.short += 1
            try:
                return await self._counted(handler, request)
            finally:
                self.short -= 1

        return inflight_middleware

    async def _counted(self, handler: Handler, request: web.Request) -> web.StreamResponse:
        self.active += 1
        self._quiet.clear()
        try:
            return await handler(request)
        finally:
            self.active -= 1
            if not self.active:
                self._quiet.set()
