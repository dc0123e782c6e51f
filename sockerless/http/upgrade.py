"""Docker's connection hijack, client side: ask a server for ``Upgrade: tcp`` and pipe the result.

aiohttp's client speaks no such upgrade, so the request is written on a connection of our own:
a Unix socket, plain TCP, or TLS for an ``https://`` server (verified with the caller's context, so a
bearer token never travels in clear to a TLS port). An answer other than 101 is raised as the
error it carries; after a 101 the bytes flow both ways (:func:`pipe_upgraded`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web
from attrs import frozen

from sockerless.errors import SockerlessError, Unavailable, UpstreamError, error_for_status
from sockerless.http.hijack import AttachedStream, HijackedConnection, open_attached_stream
from sockerless.wire import encode_json

__all__ = ["UpgradeTarget", "UpgradedStream", "open_upgraded", "pipe_upgraded"]

_CHUNK = 1 << 16
_ERROR_BODY_LIMIT = 1 << 16
_ERROR_READ_SECONDS = 10.0


@frozen
class UpgradeTarget:
    """Where to connect: a Unix socket, or a host and port (with TLS when ``ssl`` is set)."""

    url: str  # for messages
    socket_path: str | None = None
    host: str = ""
    port: int = 0
    ssl: ssl.SSLContext | None = None
    connect_timeout: float = 5.0


class UpgradedStream:
    """A connection the server upgraded: raw bytes both ways."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, content_type: str) -> None:
        self.reader = reader
        self.writer = writer
        self.content_type = content_type


@contextlib.asynccontextmanager
async def open_upgraded(
    target: UpgradeTarget, path: str, *, headers: Mapping[str, str], body: Any = None
) -> AsyncIterator[UpgradedStream]:
    """POST ``path`` (with its query) asking for ``Upgrade: tcp``; an answer other than 101 raises."""
    try:
        if target.socket_path is not None:
            opening = asyncio.open_unix_connection(target.socket_path)
        else:
            opening = asyncio.open_connection(
                target.host,
                target.port,
                ssl=target.ssl,
                server_hostname=target.host if target.ssl is not None else None,
            )
        reader, writer = await asyncio.wait_for(opening, target.connect_timeout)
    except ssl.SSLError as exc:
        raise UpstreamError(f"TLS with {target.url} failed: {exc}") from None
    except (OSError, TimeoutError) as exc:
        raise Unavailable(f"cannot reach {target.url}: {exc.strerror or exc}; is it running?") from None
    try:
        payload = encode_json(body) if body is not None else b""
        head = [
            f"POST {path} HTTP/1.1",
            "Host: backend" if target.socket_path is not None else f"Host: {target.host}:{target.port}",
            "Connection: Upgrade",
            "Upgrade: tcp",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            *(f"{key}: {value}" for key, value in headers.items()),
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        status, answer_headers = await _read_head(reader, target.url)
        if status != 101:
            raise await _error(reader, status, answer_headers, target.url)
        content_type = answer_headers.get("content-type", "application/vnd.docker.raw-stream")
        yield UpgradedStream(reader, writer, content_type)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, asyncio.CancelledError):
            await writer.wait_closed()


async def pipe_upgraded(
    request: web.Request, upstream_opening: contextlib.AbstractAsyncContextManager[UpgradedStream]
) -> web.StreamResponse:
    """Upgrade the upstream first (so its 404, 409 or 501 reaches the client as an ordinary error),
    then the client's connection, and copy bytes both ways until the upstream closes. The client's
    half-close is passed on where the upstream connection can carry one (not over TLS)."""
    async with upstream_opening as upstream:
        connection = await open_attached_stream(request, upstream.content_type)
        forward = asyncio.create_task(_client_to_upstream(connection, upstream))
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


async def _client_to_upstream(
    connection: AttachedStream | HijackedConnection, upstream: UpgradedStream
) -> None:
    while (data := await connection.read()) is not None:
        upstream.writer.write(data)
        await upstream.writer.drain()
    if upstream.writer.can_write_eof():
        upstream.writer.write_eof()


async def _read_head(reader: asyncio.StreamReader, url: str) -> tuple[int, dict[str, str]]:
    """Status and headers (lower-case names) of an HTTP/1.1 answer; the body stays in ``reader``."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, ssl.SSLError):
        raise UpstreamError(f"{url} closed the connection before answering") from None
    status_line, *header_lines = raw.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise UpstreamError(f"{url} sent an invalid HTTP answer")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _error(
    reader: asyncio.StreamReader, status: int, headers: Mapping[str, str], url: str
) -> SockerlessError:
    """The error a declined upgrade carries in its (small, JSON) body."""
    length = headers.get("content-length", "")
    body = b""
    with contextlib.suppress(asyncio.IncompleteReadError, OSError, TimeoutError, ssl.SSLError):
        if length.isdigit():
            body = await asyncio.wait_for(
                reader.readexactly(min(int(length), _ERROR_BODY_LIMIT)), _ERROR_READ_SECONDS
            )
    message = ""
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        data = json.loads(body) if body else None
        if isinstance(data, Mapping):
            message = str(data.get("message", ""))
    return error_for_status(status, message or f"{url} answered {status}")
