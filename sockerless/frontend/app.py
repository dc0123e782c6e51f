"""The Docker Engine API application: routes, middlewares, and :class:`DockerFrontend`, which serves it.

Every route is served unversioned and under ``/vX.Y/`` up to :data:`API_VERSION`; a newer or
older version gets Docker's own 400. Errors leave in one place, :func:`error_middleware`, as
``{"message": ...}`` with ``Content-Type: application/json`` exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from typing import Any

from aiohttp import web

from sockerless.client import DEFAULT_REQUEST_TIMEOUT, BackendClient
from sockerless.errors import InvalidParameter, SockerlessError, Unavailable
from sockerless.frontend import attach, containers, exec, images, networks, system
from sockerless.frontend.autoremove import AutoRemover
from sockerless.frontend.context import (
    API_VERSION,
    FRONTEND_KEY,
    MIN_API_VERSION,
    AttachMode,
    FollowSettings,
    FrontendContext,
)
from sockerless.frontend.unsupported import Handler, unsupported_handler
from sockerless.listen import (
    BACKLOG,
    Listener,
    remove_socket_file,
)
from sockerless.models import CapabilityReport, VersionInfo
from sockerless.observability import flush_after_answer_lines
from sockerless.server import access_middleware, error_response, make_error_middleware
from sockerless.tls import Endpoint, TLSListener, client_context, start_site

__all__ = ["DEFAULT_SOCKET", "DockerFrontend", "create_app", "routes"]

log = logging.getLogger("sockerless.frontend")

DEFAULT_SOCKET = "/var/run/sockerless.sock"
_VERSION_PREFIX = r"/v{api_version:[0-9]+\.[0-9]+}"
_TOKEN_KEY = web.AppKey("sockerless_frontend_token", str)


def _version_tuple(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor)


# ---------------------------------------------------------------------------- middlewares


error_middleware = make_error_middleware(
    "internal error in the sockerless Docker frontend; see its log", log, passthrough=(ConnectionError,)
)


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The bearer token (when configured) and Docker's API version bounds."""
    token = request.app[_TOKEN_KEY]
    if token:
        supplied = request.headers.get("Authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
            return error_response(401, "unauthorized: a valid bearer token is required")
    requested = request.match_info.get("api_version")
    if requested is not None:
        version = _version_tuple(requested)
        if version > _version_tuple(API_VERSION):
            raise InvalidParameter(
                f"client version {requested} is too new. Maximum supported API version is {API_VERSION}"
            )
        if version < _version_tuple(MIN_API_VERSION):
            raise InvalidParameter(
                f"client version {requested} is too old. Minimum supported API version is "
                f"{MIN_API_VERSION}, please upgrade your client to a newer version"
            )
    return await handler(request)


# ---------------------------------------------------------------------------- routes


def routes() -> list[tuple[str, str, Handler]]:
    """Docker Engine API 1.44 as (method, path, handler); each is also served under ``/vX.Y``."""
    c = "/containers/{id}"
    table: list[tuple[str, str, Handler]] = [
        ("GET", "/_ping", system.ping),
        ("GET", "/version", system.version),
        ("GET", "/info", system.info),
        ("POST", "/auth", system.auth),
        ("GET", "/events", unsupported_handler("events")),
        ("GET", "/system/df", unsupported_handler("disk usage")),
        # containers
        ("POST", "/containers/create", containers.create_container),
        ("GET", "/containers/json", containers.list_containers),
        ("POST", "/containers/prune", containers.prune_containers),
        ("GET", c + "/json", containers.inspect_container),
        ("POST", c + "/start", containers.start_container),
        ("POST", c + "/stop", containers.stop_container),
        ("POST", c + "/kill", containers.kill_container),
        ("POST", c + "/restart", containers.restart_container),
        ("DELETE", c, containers.remove_container),
        ("POST", c + "/wait", containers.wait_container),
        ("GET", c + "/logs", containers.container_logs),
        ("POST", c + "/attach", attach.attach_container),
        ("GET", c + "/attach/ws", unsupported_handler("attach over websocket")),
        ("POST", c + "/resize", containers.resize_container),
        ("GET", c + "/top", unsupported_handler("container top")),
        ("GET", c + "/stats", unsupported_handler("container stats")),
        ("GET", c + "/changes", unsupported_handler("container changes")),
        ("GET", c + "/export", unsupported_handler("container export")),
        ("POST", c + "/update", unsupported_handler("container update")),
        ("POST", c + "/rename", unsupported_handler("container rename")),
        ("POST", c + "/pause", unsupported_handler("container pause")),
        ("POST", c + "/unpause", unsupported_handler("container unpause")),
        ("GET", c + "/archive", unsupported_handler("container archive")),
        ("PUT", c + "/archive", unsupported_handler("container archive")),
        # exec
        ("POST", c + "/exec", exec.create_exec),
        ("POST", "/exec/{id}/start", exec.start_exec),
        ("POST", "/exec/{id}/resize", exec.resize_exec),
        ("GET", "/exec/{id}/json", exec.inspect_exec),
        # images; names contain "/", hence {name:.+}
        ("GET", "/images/json", images.list_images),
        ("POST", "/images/create", images.create_image),
        ("POST", "/images/load", images.load_image),
        ("GET", "/images/search", unsupported_handler("image search")),
        ("POST", "/images/prune", images.prune_images),
        ("GET", "/images/get", unsupported_handler("image export")),
        ("POST", "/build", unsupported_handler("image build")),
        ("POST", "/build/prune", images.prune_build_cache),
        ("POST", "/session", unsupported_handler("image build")),
        ("POST", "/commit", unsupported_handler("image commit")),
        ("GET", "/images/{name:.+}/json", images.inspect_image),
        ("POST", "/images/{name:.+}/tag", images.tag_image),
        ("POST", "/images/{name:.+}/push", unsupported_handler("image push")),
        ("GET", "/images/{name:.+}/history", unsupported_handler("image history")),
        ("GET", "/images/{name:.+}/get", unsupported_handler("image export")),
        ("DELETE", "/images/{name:.+}", unsupported_handler("image removal")),
    ]
    table.extend(networks.network_routes())
    table.extend(networks.volume_routes())
    return table


def create_app(
    frontend: FrontendContext, *, token: str = "", max_body_bytes: int = 4 << 20
) -> web.Application:
    """The Docker API application over ``frontend``; the caller owns the backend client."""
    app = web.Application(
        middlewares=[access_middleware, error_middleware, guard_middleware],
        client_max_size=max_body_bytes,
        handler_args={"max_field_size": 16384},
    )
    app[FRONTEND_KEY] = frontend
    app[_TOKEN_KEY] = token
    for method, path, handler in routes():
        for prefix in ("", _VERSION_PREFIX):
            if method == "GET":
                app.router.add_get(prefix + path, handler)  # and HEAD: the CLI pings with HEAD
            else:
                app.router.add_route(method, prefix + path, handler)
    return app


# ---------------------------------------------------------------------------- serving it


class DockerFrontend:
    """Serves the Docker Engine API on a Unix socket or TCP, in front of one backend.

    ``start()`` listens, then reads the backend's capabilities (retrying until ``backend_wait``
    seconds have passed), then serves; ``stop()`` stops accepting, lets requests finish within
    ``shutdown_grace`` seconds, closes the backend client and removes the socket.
    """

    def __init__(
        self,
        *,
        backend_url: str,
        socket_path: str = DEFAULT_SOCKET,
        tcp: str = "",
        socket_mode: int = 0o600,
        socket_group: str = "",
        attach_mode: str = AttachMode.READ_ONLY.value,
        follow_poll_interval: float = 1.0,
        follow_max_interval: float = 5.0,
        emulate_follow: bool = True,
        token: str = "",
        backend_token: str = "",
        allow_public: bool = False,
        backend_wait: float = 30.0,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        shutdown_grace: float = 10.0,
        tls_cert: str = "",
        tls_key: str = "",
        tls_client_ca: str = "",
        backend_tls_ca: str = "",
        backend_tls_cert: str = "",
        backend_tls_key: str = "",
    ) -> None:
        if follow_poll_interval <= 0:
            raise ValueError("follow_poll_interval must be positive")
        self._backend_url = backend_url
        self._endpoint = Endpoint(
            socket_path, tcp, socket_mode, socket_group, token, allow_public, tls_cert, tls_key, tls_client_ca
        )
        self._attach_mode = AttachMode(attach_mode)
        self._follow = FollowSettings(
            interval=follow_poll_interval, max_interval=max(follow_poll_interval, follow_max_interval)
        )
        self._emulate_follow = emulate_follow
        self._backend_token = backend_token
        self._backend_wait = backend_wait
        self._request_timeout = request_timeout
        self._grace = shutdown_grace
        self._backend_tls = (backend_tls_ca, backend_tls_cert, backend_tls_key)
        self._client: BackendClient | None = None
        self._context: FrontendContext | None = None
        self._runner: web.AppRunner | None = None
        self._listener: Listener | None = None
        self._tls_listener: TLSListener | None = None

    @property
    def address(self) -> str:
        """``unix:///path`` or ``tcp://host:port`` once listening: a ``DOCKER_HOST`` value."""
        if self._listener is None:
            raise RuntimeError("the frontend is not listening")
        return self._listener.description

    @property
    def capabilities(self) -> CapabilityReport:
        """The backend's capability report, read at start-up."""
        if self._context is None:
            raise RuntimeError("the frontend is not started")
        return self._context.report

    async def _read_capabilities(self, client: BackendClient) -> CapabilityReport:
        """The backend may still be starting: retry a refused connection until ``backend_wait``."""
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

    async def start(self) -> None:
        ca, cert, key = self._backend_tls
        backend_tls = client_context(ca, cert, key) if ca or cert else None
        # Fail on a bad address or certificate before waiting for the backend.
        listener, tls = self._endpoint.bind("frontend")
        client = BackendClient(
            self._backend_url,
            token=self._backend_token,
            request_timeout=self._request_timeout,
            ssl_context=backend_tls,
        )
        try:
            report = await self._read_capabilities(client)
            try:
                backend_version = await client.version()
            except SockerlessError:
                backend_version = VersionInfo(version=report.version)
            context = FrontendContext(
                client=client,
                report=report,
                auto_remover=AutoRemover(client, self._follow),
                backend_version=backend_version,
                attach_mode=self._attach_mode,
                follow=self._follow,
                emulate_follow=self._emulate_follow,
            )
            self._runner = web.AppRunner(
                create_app(context, token=self._endpoint.token),
                handler_cancellation=True,
                # aiohttp waits this long for a request, then as long again once it cancelled it.
                shutdown_timeout=self._grace / 2,
                access_log=None,
            )
            await self._runner.setup()
            self._tls_listener = await start_site(self._runner, listener.sock, tls, backlog=BACKLOG)
        except BaseException:
            listener.sock.close()
            remove_socket_file(listener.socket_path)
            if self._runner is not None:
                runner, self._runner = self._runner, None
                await runner.cleanup()
            await client.close()
            raise
        self._client, self._context, self._listener = client, context, listener
        log.info(
            "serving the Docker API",
            extra={
                "fields": {
                    "address": listener.description,
                    "backend": report.backend,
                    "backend_url": self._backend_url,
                    "attach": self._attach_mode.value,
                    "tls": "mutual" if self._endpoint.tls_client_ca else "server" if tls else "none",
                }
            },
        )

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._grace  # one grace period for the requests and the detached work
        if self._tls_listener is not None:
            await self._tls_listener.stop_accepting()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self._tls_listener is not None:
            tls_listener, self._tls_listener = self._tls_listener, None
            await tls_listener.close()
        if self._context is not None:
            await self._context.auto_remover.close()
        if self._context is not None and self._context.detached:
            pending: list[Any] = list(self._context.detached)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*pending, return_exceptions=True), max(0.0, deadline - loop.time())
                )
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
        if self._listener is not None:
            remove_socket_file(self._listener.socket_path)
        flush_after_answer_lines()
        log.info("stopped the Docker API", extra={"fields": {"backend_url": self._backend_url}})
