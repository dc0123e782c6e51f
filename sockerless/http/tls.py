"""TLS for the TCP listeners (optionally requiring client certificates) and for the frontend's backend client.

Only file paths are configured; certificates and keys are read when a server starts or a client is
made, and a file that cannot be used is a :class:`TLSError` naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable

__all__ = ["HANDSHAKE_TIMEOUT", "TLSError", "TLSTerminator", "client_context", "server_context"]


class TLSError(Exception):
    """A certificate, key or CA file cannot be used; the message names it and says why."""


def server_context(cert: str, key: str, client_ca: str = "") -> ssl.SSLContext:
    """TLS 1.2+ serving ``cert``/``key``; with ``client_ca``, clients must present a certificate it signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, cert, key)
    if client_ca:
        _load_ca(context, client_ca, "client CA")
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(ca: str = "", cert: str = "", key: str = "") -> ssl.SSLContext:
    """Verifies the server with ``ca`` (the system's CAs when empty); presents ``cert``/``key`` if given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca:
        _load_ca(context, ca, "CA")
    if cert or key:
        _load_chain(context, cert, key)
    return context


def _load_chain(context: ssl.SSLContext, cert: str, key: str) -> None:
    if not cert or not key:
        raise TLSError("a TLS certificate and its key go together: set both")
    try:
        context.load_cert_chain(cert, key)
    except OSError as exc:  # ssl.SSLError is an OSError too
        raise TLSError(f"cannot use the TLS certificate {cert} with the key {key}: {_reason(exc)}") from None


def _load_ca(context: ssl.SSLContext, ca: str, what: str) -> None:
    try:
        context.load_verify_locations(cafile=ca)
    except OSError as exc:
        raise TLSError(f"cannot use the TLS {what} file {ca}: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    return str(exc) if isinstance(exc, ssl.SSLError) or not exc.strerror else exc.strerror


# ---------------------------------------------------------------------------- serving TLS

#: A client must finish the TLS handshake within this many seconds, or it is dropped.
HANDSHAKE_TIMEOUT = 30.0
_CHUNK = 64 * 1024


class TLSTerminator:
    """Serves an HTTP server's protocol (aiohttp's ``runner.server``) over TLS on a listening socket.

    Why not asyncio's own TLS (``ssl=`` on the site): its transport cannot stay open once the client
    half-closes. On the peer's ``close_notify`` or end of input, ``asyncio.sslproto.SSLProtocol`` starts
    its shutdown at once (``_do_read`` -> ``_start_shutdown``); what ``eof_received`` returns is ignored
    ("has no effect when using ssl"). The docker CLI half-closes an attach as soon as it has no stdin
    to send (Go's ``tls.Conn.CloseWrite`` sends ``close_notify``), and the container's output would
    never arrive. Here each connection is decrypted with an ``ssl.MemoryBIO`` pair and handed to the
    protocol over a socket pair, where the half-close is an ordinary EOF and the answer still goes out.
    Nothing listens in plain text: the socket pair has no address. See ``docs/architecture.md``.
    """

    def __init__(
        self, sock: socket.socket, context: ssl.SSLContext, protocol_factory: Callable[[], asyncio.Protocol]
    ) -> None:
        self._sock = sock
        self._context = context
        self._protocol_factory = protocol_factory
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, backlog: int = 1024) -> None:
        self._server = await asyncio.start_server(self._accepted, sock=self._sock, backlog=backlog)

    async def stop_accepting(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.close()

    async def close(self) -> None:
        """Stop accepting, then end the connections left (the HTTP server has drained its requests)."""
        await self.stop_accepting()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await _TLSConnection(reader, writer, self._context).serve(self._protocol_factory)
        except (OSError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError):
            pass  # a client that went away or failed the handshake: nothing to answer
        except asyncio.CancelledError:
            pass  # closed by close(): the connection ends here (asyncio would log a cancelled callback)
        finally:
            self._connections.discard(task)
            writer.close()


class _TLSConnection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, context: ssl.SSLContext
    ) -> None:
        self._reader, self._writer = reader, writer
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)

    def _send_pending(self) -> None:
        pending = self._outgoing.read()
        if pending:
            self._writer.write(pending)

    async def _receive(self) -> bool:
        data = await self._reader.read(_CHUNK)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()
        return bool(data)

    async def _handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                self._send_pending()
                await self._writer.drain()
                if not await self._receive():
                    raise ConnectionResetError("the client left during the TLS handshake") from None
            except ssl.SSLError:
                # The alert that says why (no client certificate, an unknown CA) is still in the
                # outgoing buffer: without it the client sees only a closed connection.
                self._send_pending()
                with contextlib.suppress(OSError):
                    await self._writer.drain()
                raise
            else:
                self._send_pending()
                await self._writer.drain()
                return

    async def serve(self, protocol_factory: Callable[[], asyncio.Protocol]) -> None:
        await asyncio.wait_for(self._handshake(), HANDSHAKE_TIMEOUT)
        ours, theirs = socket.socketpair()
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(protocol_factory, theirs)
        except BaseException:
            ours.close()
            theirs.close()
            raise
        inner_reader, inner_writer = await asyncio.open_connection(sock=ours)
        try:
            upstream = asyncio.create_task(self._client_to_server(inner_writer))
            try:
                await self._server_to_client(inner_reader)
            finally:
                upstream.cancel()
                await asyncio.gather(upstream, return_exceptions=True)
        finally:
            inner_writer.close()

    async def _client_to_server(self, inner: asyncio.StreamWriter) -> None:
        """Decrypt what the client sends; its end of input (close_notify or a bare FIN) is a half-close."""
        while True:
            ended = False
            try:
                # What is decrypted already goes first: a request may come along with the handshake.
                while data := self._tls.read(_CHUNK):
                    inner.write(data)
                ended = True  # read() gives b"" at the end of the client's input
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                ended = True
            self._send_pending()  # TLS 1.3 may answer (key updates)
            await inner.drain()
            if ended:
                if inner.can_write_eof():
                    inner.write_eof()
                return
            await self._receive()

    async def _server_to_client(self, inner: asyncio.StreamReader) -> None:
        """Encrypt the server's answer until it closes, then say goodbye (close_notify) if we still can."""
        while data := await inner.read(_CHUNK):
            self._tls.write(data)
            self._send_pending()
            await self._writer.drain()
        with contextlib.suppress(ssl.SSLError):
            self._tls.unwrap()
        self._send_pending()
        with contextlib.suppress(OSError):
            await self._writer.drain()
