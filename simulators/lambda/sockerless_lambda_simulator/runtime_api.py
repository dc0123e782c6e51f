"""A minimal HTTP/1.1 server for one environment's Lambda Runtime API, on 127.0.0.1.

Not aiohttp: a runtime reports an error of a streaming response in HTTP *trailers*
(``Lambda-Runtime-Function-Error-Type`` / ``-Error-Body``), and aiohttp's server parses request trailers
but drops them. The Runtime API is four routes spoken by one runtime, so a small keep-alive server on
asyncio streams that reads chunked bodies with their trailers is the simplest thing that works.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from http import HTTPStatus

from attrs import define, frozen

__all__ = ["HttpError", "RuntimeApiServer", "RuntimeRequest", "RuntimeResponse"]

log = logging.getLogger(__name__)

_MAX_HEAD_BYTES = 64 * 1024
_READ_CHUNK = 64 * 1024


class HttpError(Exception):
    """A request this server cannot parse: answered with ``status`` and the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@define
class RuntimeRequest:
    """One request: its head, and a body read on demand (``chunks()`` or ``read()``)."""

    method: str
    path: str
    headers: Mapping[str, str]
    """Header names lower-cased."""
    _reader: asyncio.StreamReader
    _chunked: bool
    _length: int
    trailers: dict[str, str]
    """Filled once a chunked body was read to its end; names lower-cased."""
    _consumed: bool = False

    async def _part(self, length: int, cut: str) -> AsyncIterator[bytes]:
        """The next ``length`` bytes of the body as they arrive; HttpError ``cut`` if it ends first."""
        remaining = length
        while remaining > 0:
            data = await self._reader.read(min(remaining, _READ_CHUNK))
            if not data:
                raise HttpError(400, cut)
            remaining -= len(data)
            yield data

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive (chunked or Content-Length)."""
        self._consumed = True
        if not self._chunked:
            async for data in self._part(self._length, "the body ended before its Content-Length"):
                yield data
            return
        while True:
            size_line = await self._reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise HttpError(400, "bad chunk size") from None
            if size == 0:
                break
            async for data in self._part(size, "the body ended inside a chunk"):
                yield data
            if await self._reader.readexactly(2) != b"\r\n":
                raise HttpError(400, "a chunk does not end with CRLF")
        while True:
            line = (await self._reader.readuntil(b"\r\n"))[:-2]
            if not line:
                return
            name, _, value = line.decode("latin-1").partition(":")
            self.trailers[name.strip().lower()] = value.strip()

    async def read(self, limit: int) -> tuple[bytes, bool]:
        """The whole body, at most ``limit`` bytes kept: (bytes, whether it was longer)."""
        body = bytearray()
        over = False
        async for chunk in self.chunks():
            if len(body) + len(chunk) > limit:
                over = True
                continue
            body += chunk
        return bytes(body), over

    async def discard(self) -> None:
        """Read what is left of the body, so the connection can carry the next request."""
        if not self._consumed:
            async for _ in self.chunks():
                pass


@frozen
class RuntimeResponse:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = {}

    @classmethod
    def json(cls, status: int, document: object) -> RuntimeResponse:
        return cls(status, json.dumps(document).encode(), {"Content-Type": "application/json"})

    @classmethod
    def error(cls, status: int, error_type: str, message: str) -> RuntimeResponse:
        return cls.json(status, {"errorMessage": message, "errorType": error_type})


Handler = Callable[[RuntimeRequest], Awaitable[RuntimeResponse]]


class RuntimeApiServer:
    """Listens on 127.0.0.1 (a free port); each request goes to ``handler``."""

    def __init__(self, handler: Handler, name: str) -> None:
        self._handler = handler
        self._name = name
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                try:
                    request = await _read_head(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                except HttpError as exc:
                    await _write(writer, RuntimeResponse.error(exc.status, "InvalidRequest", str(exc)), False)
                    return
                if request is None:
                    return
                if request.headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                try:
                    response = await self._handler(request)
                    await request.discard()
                except HttpError as exc:
                    await _write(writer, RuntimeResponse.error(exc.status, "InvalidRequest", str(exc)), False)
                    return
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                keep_alive = request.headers.get("connection", "").lower() != "close"
                await _write(writer, response, keep_alive)
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("Runtime API of %s: a request failed", self._name)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _read_head(reader: asyncio.StreamReader) -> RuntimeRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    except asyncio.LimitOverrunError:
        raise HttpError(431, "request head too large") from None
    if len(head) > _MAX_HEAD_BYTES:
        raise HttpError(431, "request head too large")
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ", 2)
    except ValueError:
        raise HttpError(400, "bad request line") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise HttpError(400, "bad Content-Length") from None
    path = target.split("?", 1)[0]
    return RuntimeRequest(method.upper(), path, headers, reader, chunked, length, {})


async def _write(writer: asyncio.StreamWriter, response: RuntimeResponse, keep_alive: bool) -> None:
    reason = HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else ""
    lines = [f"HTTP/1.1 {response.status} {reason}", f"Content-Length: {len(response.body)}"]
    lines += [f"{name}: {value}" for name, value in response.headers.items()]
    if not keep_alive:
        lines.append("Connection: close")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
