"""``DockerFrontend``: the Docker API served on the ``frontend`` section's listener, in front of one backend.

It binds first (a bad address or certificate fails before anything waits), then reads the backend's
capabilities, retrying while the backend starts, and serves. It keeps nothing per container; what it
learnt at start (the capability report, the backend's version) is all the state it has.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from sockerless.api.client import DEFAULT_REQUEST_TIMEOUT, BackendClient
from sockerless.config import FrontendConfig
from sockerless.errors import SockerlessError, Unavailable
from sockerless.frontend.app import create_app
from sockerless.frontend.context import AttachMode, FrontendContext
from sockerless.http.listener import Listener
from sockerless.http.middlewares import InFlight
from sockerless.http.serving import HTTPServer, ShieldedTasks
from sockerless.http.tls import client_context
from sockerless.models import CapabilityReport, VersionInfo

__all__ = ["MAX_SHORT_REQUESTS", "DockerFrontend"]

log = logging.getLogger("sockerless.frontend")

#: Short requests served at once; beyond it, 503 with Retry-After (waits, attaches and follows are
#: not counted: each lasts as long as its container runs).
MAX_SHORT_REQUESTS = 512


class DockerFrontend:
    """Serves the Docker Engine API on a Unix socket or TCP (optionally TLS), in front of one backend.

    ``config`` is the ``frontend`` section, handed whole; ``socket_path`` is its socket as resolved by
    the caller (the section's default depends on the environment). ``start()`` listens, reads the
    backend's capabilities (retrying for ``backend_wait`` seconds), then serves; ``stop()`` stops
    accepting, lets requests finish within ``shutdown_grace`` seconds and closes the backend client.
    """

    def __init__(
        self,
        config: FrontendConfig,
        *,
        socket_path: str,
        backend_url: str,
        backend_token: str = "",
        backend_wait: float = 30.0,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        shutdown_grace: float = 10.0,
    ) -> None:
        self.config = config
        self.listener = Listener(config, section="frontend", socket_path=socket_path)
        self._backend_url = backend_url
        self._backend_token = backend_token
        self._backend_wait = backend_wait
        self._request_timeout = request_timeout
        self._grace = shutdown_grace
        self._attach_mode = AttachMode(config.attach)
        self._client: BackendClient | None = None
        self._context: FrontendContext | None = None
        self._server: HTTPServer | None = None

    @property
    def address(self) -> str:
        """``unix:///path`` or ``tcp://host:port`` once listening: a ``DOCKER_HOST`` value."""
        return self.listener.address

    @property
    def capabilities(self) -> CapabilityReport:
        """The backend's capability report, read at start-up."""
        if self._context is None:
            raise RuntimeError("the frontend is not started")
        return self._context.report

    async def start(self) -> None:
        config = self.config
        self.listener.bind()
        try:
            client = self._client = BackendClient(
                self._backend_url,
                token=self._backend_token,
                request_timeout=self._request_timeout,
                ssl_context=self._backend_tls(),
            )
            report = await self._read_capabilities(client)
            try:
                backend_version = await client.version()
            except SockerlessError:
                backend_version = VersionInfo(version=report.version)
            inflight, shielded = InFlight(MAX_SHORT_REQUESTS), ShieldedTasks()
            context = FrontendContext(client, report, backend_version, self._attach_mode, shielded)
            app = create_app(context, token=config.token, inflight=inflight)
            self._server = HTTPServer(
                app=app,
                listener=self.listener,
                grace=self._grace,
                inflight=inflight,
                shielded=shielded,
                log=log,
            )
            await self._server.start()
        except BaseException:
            await self.stop()
            raise
        self._context = context
        fields = {
            "address": self.address,
            "backend": report.backend,
            "backend_url": self._backend_url,
            "attach": self._attach_mode.value,
            "tls": self.listener.security,
        }
        log.info("serving the Docker API", extra={"fields": fields})

    async def stop_accepting(self) -> None:
        """No new connection; the requests open go on (the grace period starts)."""
        if self._server is not None:
            await self._server.stop_accepting()

    def hurry(self, within: float = 0.0) -> None:
        """End the grace period ``within`` seconds from now (a second Ctrl-C): what is open then is cut."""
        if self._server is not None:
            self._server.hurry(within)

    async def stop(self) -> None:
        """Idempotent; also what a failed start calls to leave nothing listening."""
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop()
        else:
            await self.listener.close()
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
        if self._context is not None:
            self._context = None
            log.info("stopped the Docker API", extra={"fields": {"backend_url": self._backend_url}})

    def _backend_tls(self) -> ssl.SSLContext | None:
        """The context verifying an https:// backend (and showing it our certificate), when configured;
        otherwise the client verifies with the system's CAs."""
        config = self.config
        if not (config.backend_tls_ca or config.backend_tls_cert):
            return None
        return client_context(config.backend_tls_ca, config.backend_tls_cert, config.backend_tls_key)

    async def _read_capabilities(self, client: BackendClient) -> CapabilityReport:
        """The backend may still be starting (``sockerless up`` starts both): retry a refused
        connection, backing off, until ``backend_wait`` seconds have passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._backend_wait
        delay = 0.05
        while True:
            try:
                return await client.capabilities()
            except Unavailable as exc:
                if loop.time() + delay > deadline:
                    raise Unavailable(
                        f"the backend did not answer within {self._backend_wait:g} s: {exc.message}"
                    ) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
