"""Where a server listens: one type for both servers, on a Unix socket, TCP, TLS or mutual TLS.

A :class:`Listener` is made from a listener section of the configuration (``server`` or
``frontend``, both a :class:`~sockerless.config.ListenerConfig`), binds before anything else starts
so that a bad address or certificate fails at once, serves an aiohttp runner, and removes its socket
file when it closes.
"""

from __future__ import annotations

import ssl

from aiohttp import web

from sockerless.config import ListenerConfig
from sockerless.http.sockets import (
    BACKLOG,
    Bound,
    bind_tcp,
    bind_unix,
    parse_file_mode,
    remove_socket_file,
    require_authentication,
)
from sockerless.http.tls import TLSTerminator, server_context

__all__ = ["Listener"]


class Listener:
    """A bound socket and, for TLS, the terminator that serves it (see :mod:`sockerless.http.tls`)."""

    def __init__(self, settings: ListenerConfig, *, section: str, socket_path: str = "") -> None:
        """``section`` names the settings in errors; ``socket_path`` replaces ``settings.socket``."""
        self.settings = settings
        self._section = section
        self._socket_path = socket_path or settings.socket
        self._bound: Bound | None = None
        self._context: ssl.SSLContext | None = None
        self._terminator: TLSTerminator | None = None

    def bind(self) -> None:
        """Bind now; a TCP address's authentication is checked first (a :class:`ListenError`), the
        TLS files are read (a :class:`TLSError`)."""
        settings = self.settings
        if not settings.tcp:
            self._bound = bind_unix(
                self._socket_path, mode=parse_file_mode(settings.socket_mode), group=settings.socket_group
            )
            return
        require_authentication(
            settings.tcp,
            token=settings.token,
            client_ca=settings.tls_client_ca,
            allow_public=settings.allow_public,
            section=self._section,
        )
        if settings.tls_cert:
            self._context = server_context(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
        self._bound = bind_tcp(settings.tcp)

    @property
    def address(self) -> str:
        """``unix:///path`` or ``tcp://host:port`` (a ``DOCKER_HOST`` value) once bound."""
        return self._require_bound().description

    @property
    def url(self) -> str:
        """The address as a client's URL: ``unix:///path``, ``http://host:port`` or ``https://host:port``."""
        address = self.address
        if address.startswith("tcp://"):
            scheme = "https://" if self._context is not None else "http://"
            return scheme + address.removeprefix("tcp://")
        return address

    @property
    def security(self) -> str:
        """``mutual TLS``, ``TLS`` or ``none``: what the log says about the listener."""
        if self._context is None:
            return "none"
        return "mutual TLS" if self.settings.tls_client_ca else "TLS"

    async def serve(self, runner: web.AppRunner) -> None:
        """Serve the (set-up) runner on the bound socket."""
        bound = self._require_bound()
        if self._context is None:
            await web.SockSite(runner, bound.sock, backlog=BACKLOG).start()
            return
        if runner.server is None:
            raise RuntimeError("the runner is not set up")
        self._terminator = TLSTerminator(bound.sock, self._context, runner.server)
        await self._terminator.start(BACKLOG)

    async def stop_accepting(self) -> None:
        """No new connections (aiohttp's sites stop accepting in ``runner.cleanup()``)."""
        if self._terminator is not None:
            await self._terminator.stop_accepting()

    async def close(self) -> None:
        """End what the terminator still carries and remove the socket file; idempotent."""
        if self._terminator is not None:
            terminator, self._terminator = self._terminator, None
            await terminator.close()
        if self._bound is not None:
            bound, self._bound = self._bound, None
            bound.sock.close()
            remove_socket_file(bound.socket_path)

    def _require_bound(self) -> Bound:
        if self._bound is None:
            raise RuntimeError("the listener is not bound")
        return self._bound
