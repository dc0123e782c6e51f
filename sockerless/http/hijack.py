"""Docker's connection hijack, server side: answer ``101 UPGRADED`` and use the raw connection.

After ``prepare()`` the transport is taken over with a protocol of our own, because aiohttp's
request handler closes the whole connection when the client half-closes its side, which the
docker CLI does at once when it has no stdin to send. Our protocol keeps the connection open on
that EOF (``eof_received`` returns True), buffers what the client sends up to a bound (reading pauses
beyond it until the handler reads), and hands the loss of the connection back to aiohttp's handler
so that it cancels the request and forgets the connection.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Final

from aiohttp import web

__all__ = [
    "MULTIPLEXED_STREAM",
    "RAW_STREAM",
    "AttachedStream",
    "HijackedConnection",
    "open_attached_stream",
]

MULTIPLEXED_STREAM: Final = "application/vnd.docker.multiplexed-stream"
RAW_STREAM: Final = "application/vnd.docker.raw-stream"
#: Bytes from the client held before reading pauses (the handler reads them at its own pace).
_READ_BUFFER_LIMIT: Final = 256 * 1024


class _HijackedProtocol(asyncio.Protocol):
    def __init__(self, original: asyncio.BaseProtocol, transport: asyncio.Transport) -> None:
        self._original = original
        self._transport = transport
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._eof = False
        self._readable = asyncio.Event()
        self._reading_paused = False
        self.lost = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        self._readable.set()
        if self._buffered > _READ_BUFFER_LIMIT and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._readable.set()
        return True  # the client half-closed: keep our side open for the output

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._readable.set()
        self.lost.set()
        self._writable.set()
        # aiohttp's handler still owns the request: let it cancel the handler and drop the connection.
        self._original.connection_lost(exc)

    async def read(self) -> bytes | None:
        while not self._chunks:
            if self._eof:
                return None
            self._readable.clear()
            await self._readable.wait()
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._reading_paused and self._buffered <= _READ_BUFFER_LIMIT // 2:
            self._reading_paused = False
            self._transport.resume_reading()
        return data

    async def writable(self) -> None:
        await self._writable.wait()


class AttachedStream:
    """Output to a client that did not ask for an upgrade: a plain streamed 200, as Docker answers it."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response

    async def write(self, data: bytes) -> None:
        try:
            await self.response.write(data)
        except ConnectionError:
            raise ConnectionResetError("the client closed the attached connection") from None

    async def read(self) -> bytes | None:
        return None  # no upgrade, no input

    def close(self) -> None:
        """Nothing to do: aiohttp ends the response when the handler returns it."""


class HijackedConnection:
    """An upgraded connection: :meth:`write` goes straight to the client, :meth:`read` reads its input.

    The handler returns :attr:`response`; aiohttp closes the connection after that.
    """

    def __init__(
        self, response: web.StreamResponse, transport: asyncio.Transport, protocol: _HijackedProtocol
    ) -> None:
        self.response = response
        self._transport = transport
        self._protocol = protocol

    @classmethod
    async def upgrade(cls, request: web.Request, content_type: str) -> HijackedConnection:
        response = web.StreamResponse(
            status=101,
            reason="UPGRADED",
            headers={"Content-Type": content_type, "Connection": "Upgrade", "Upgrade": "tcp"},
        )
        response.force_close()
        await response.prepare(request)
        transport: Any = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client went away during the upgrade")
        original = transport.get_protocol()
        protocol = _HijackedProtocol(original, transport)
        transport.set_protocol(protocol)
        # Bytes the client sent right behind the request are still buffered by aiohttp.
        tail = getattr(original, "_message_tail", b"")
        if tail:
            protocol.data_received(bytes(tail))
        return cls(response, transport, protocol)

    @property
    def lost(self) -> asyncio.Event:
        """Set when the client has closed the connection (or it broke)."""
        return self._protocol.lost

    async def write(self, data: bytes) -> None:
        if self._protocol.lost.is_set() or self._transport.is_closing():
            raise ConnectionResetError("the client closed the attached connection")
        self._transport.write(data)
        await self._protocol.writable()

    async def read(self) -> bytes | None:
        """The next bytes from the client, or None once it has closed its side."""
        return await self._protocol.read()

    def close(self) -> None:
        """Close the connection once everything written has been sent."""
        self._transport.close()


async def open_attached_stream(
    request: web.Request, content_type: str
) -> AttachedStream | HijackedConnection:
    """Hijack the connection when the client asks for ``Upgrade: tcp`` (the CLI, the SDK's attach);
    otherwise stream a plain 200."""
    if "upgrade" in request.headers.get("Connection", "").lower():
        return await HijackedConnection.upgrade(request, content_type)
    response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
    await response.prepare(request)
    return AttachedStream(response)
