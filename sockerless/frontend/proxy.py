"""Pass a hijacked stream through to a backend that hijacks itself (attach, exec start).

The frontend upgrades the backend connection first, so a backend error (404, 409, 501) still
reaches the client as a normal error response; then it upgrades the client's connection and
copies bytes both ways until the backend closes. The client's half-close is passed on.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from sockerless.client import UpgradedStream
from sockerless.frontend.hijack import AttachedStream, HijackedConnection, open_attached_stream

__all__ = ["pipe_upgraded"]

_CHUNK = 1 << 16


async def pipe_upgraded(
    request: web.Request, open_upstream: contextlib.AbstractAsyncContextManager[UpgradedStream]
) -> web.StreamResponse:
    async with open_upstream as upstream:
        connection = await open_attached_stream(request, upstream.content_type)
        forward = asyncio.create_task(_client_to_backend(connection, upstream))
        try:
            while chunk := await upstream.reader.read(_CHUNK):
                await connection.write(chunk)
        except ConnectionResetError:
            pass  # the client went away
        finally:
            forward.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await forward
            connection.close()
    return connection.response


async def _client_to_backend(
    connection: AttachedStream | HijackedConnection, upstream: UpgradedStream
) -> None:
    while (data := await connection.read()) is not None:
        upstream.writer.write(data)
        await upstream.writer.drain()
    if upstream.writer.can_write_eof():
        upstream.writer.write_eof()
