"""Answers both servers send: JSON, errors in Docker's shape, streams whose headers go out at once.

Docker's Go clients compare ``Content-Type`` with ``application/json`` exactly, so no charset is
ever added; an error body is always ``{"message": ...}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

from aiohttp import web

from sockerless.errors import SockerlessError
from sockerless.wire import encode_json

__all__ = [
    "JSON_CONTENT_TYPE",
    "encoded_json_response",
    "error_response",
    "json_response",
    "open_stream",
    "progress_response",
]

JSON_CONTENT_TYPE: Final = "application/json"


def json_response(data: Any, status: int = 200) -> web.Response:
    """``data`` encoded as JSON, with ``Content-Type: application/json`` exactly."""
    return encoded_json_response(encode_json(data), status)


def encoded_json_response(body: bytes, status: int = 200) -> web.Response:
    """JSON encoded already, with ``Content-Type: application/json`` exactly."""
    return web.Response(body=body, status=status, headers={"Content-Type": JSON_CONTENT_TYPE})


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """Docker's error shape; a 304 has no body at all."""
    if status == 304:
        return web.Response(status=304)
    response = json_response({"message": message}, status)
    response.headers.update(headers or {})
    return response


async def open_stream(
    request: web.Request, headers: Mapping[str, str], status: int = 200
) -> web.StreamResponse:
    """A streamed answer whose status and headers are sent now: clients act on them before the body
    (``docker run`` sends start only once its wait has its headers)."""
    response = web.StreamResponse(status=status, headers=headers)
    await response.prepare(request)
    await response.write(b"")
    return response


async def progress_response(
    request: web.Request, lines: AsyncIterator[dict[str, Any]], *, line_end: bytes = b"\n"
) -> web.StreamResponse:
    """NDJSON progress (pull, load). An error before the first line is an ordinary error answer;
    after it, the status is sent already, and the error becomes Docker's in-stream line
    ``{"errorDetail": {"message": M}, "error": M}``."""
    try:
        first: dict[str, Any] | None = await anext(lines)
    except StopAsyncIteration:
        first = None
    response = await open_stream(request, {"Content-Type": JSON_CONTENT_TYPE})
    try:
        if first is not None:
            await response.write(encode_json(first) + line_end)
            async for line in lines:
                await response.write(encode_json(line) + line_end)
    except SockerlessError as exc:
        error = {"errorDetail": {"message": exc.message}, "error": exc.message}
        await response.write(encode_json(error) + line_end)
    await response.write_eof()
    return response
