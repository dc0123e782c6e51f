"""The internal-API server: the routes of :mod:`.routes` served over one backend.

Every route gets the same handler (:func:`handler_for`): check the capability the route needs, read
the path, query and body as the route describes them, call the backend's method, and answer as the
route says. Handlers never talk to a cloud; errors become ``{"message": ...}`` in the toolkit's one
error middleware.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator
from typing import Any, Final

import attrs
from aiohttp import web

from sockerless.api.route import AnswerKind, Body, Route
from sockerless.api.routes import ROUTES
from sockerless.backend import Backend, ContainerLogs, LogsOptions, Session, unsupported
from sockerless.config import ServerConfig
from sockerless.errors import SockerlessError
from sockerless.http import middlewares
from sockerless.http.hijack import open_attached_stream
from sockerless.http.listener import Listener
from sockerless.http.requests import read_json
from sockerless.http.responses import (
    JSON_CONTENT_TYPE,
    encoded_json_response,
    json_response,
    open_stream,
    progress_response,
)
from sockerless.http.serving import HTTPServer, ShieldedTasks
from sockerless.streams import encode_frame, format_log_time
from sockerless.wire import Encoded, encode_json, structure, unstructure

__all__ = ["InternalAPIServer", "create_app", "handler_for"]

log = logging.getLogger("sockerless.server")
access_log = logging.getLogger("sockerless.access")

BACKEND_KEY: Final = web.AppKey("backend", Backend)
SHIELDED_KEY: Final = web.AppKey("shielded", ShieldedTasks)
#: Output gathered before a write when logs are not followed.
_LOGS_WRITE_BYTES: Final = 64 * 1024


# ---------------------------------------------------------------------------- one handler for every route


def handler_for(route: Route) -> middlewares.Handler:
    """The aiohttp handler of ``route``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        backend = request.app[BACKEND_KEY]
        if route.capability is not None and not getattr(backend.capabilities, route.capability):
            raise unsupported(backend.name, route.capability)
        arguments = await _arguments(route, request)
        method = getattr(backend, route.call)
        kind = route.answer.kind
        if kind is AnswerKind.WAIT:
            return await _wait(request, await method(**arguments))
        if kind is AnswerKind.LOGS:
            if arguments["options"].follow and not backend.capabilities.logs_follow:
                # The backend cannot follow: it answers with what it has, as its capabilities say.
                arguments["options"] = attrs.evolve(arguments["options"], follow=False)
            return await _logs(request, await method(**arguments), arguments["options"])
        if kind is AnswerKind.PROGRESS:
            lines = method(**arguments)
            return await progress_response(request, await lines if inspect.isawaitable(lines) else lines)
        if kind is AnswerKind.UPGRADE:
            return await _upgrade(request, await method(**arguments))
        result = method(**arguments)
        if inspect.isawaitable(result):
            result = await (request.app[SHIELDED_KEY].run(result) if route.changes_state else result)
        if kind is AnswerKind.EMPTY:
            return web.Response(status=route.answer.status)
        if isinstance(result, Encoded):  # a backend's cached view, encoded already
            return encoded_json_response(result.body, route.answer.status)
        return json_response(unstructure(result), route.answer.status)

    handle.__name__ = route.call
    if route.long_lived is not None:
        predicate = route.long_lived
        middlewares.long_lived(lambda request: predicate(request.query))(handle)
    return handle


async def _arguments(route: Route, request: web.Request) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        keyword: request.match_info[name] for name, keyword in route.path_args.items()
    }
    values = {param.keyword: param.parse(request.query) for param in route.query}
    if route.options is not None:
        arguments["options"] = route.options(**values)
    else:
        arguments.update(values)
    if route.body is not None:
        arguments[route.body.arg] = await _body(route.body, request)
    return arguments


async def _body(body: Body, request: web.Request) -> Any:
    if body.media_type != "application/json":

        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in request.content.iter_chunked(1 << 16):
                yield chunk

        return chunks()
    data = await read_json(request, required=body.required)
    return structure(data, body.model) if isinstance(body.model, type) else data


async def _wait(request: web.Request, pending: Any) -> web.StreamResponse:
    """Headers at once (``docker run`` sends start only after it has them), the body at the exit."""
    waiter = asyncio.ensure_future(pending)
    try:
        response = await open_stream(request, {"Content-Type": JSON_CONTENT_TYPE})
        try:
            body = unstructure(await waiter)
        except SockerlessError as exc:
            # The headers are gone already: report a failure in the body as Docker does.
            body = {"StatusCode": -1, "Error": {"Message": exc.message}}
        await response.write_eof(encode_json(body) + b"\n")  # one write: body and end
        return response
    finally:
        waiter.cancel()


async def _logs(request: web.Request, logs: ContainerLogs, options: LogsOptions) -> web.StreamResponse:
    """Followed lines go out one by one as they come, after headers sent at once. Without follow the
    lines are at hand: an output shorter than one write is a plain answer (headers, output and end in
    one send, and a failure while reading it is still an error status); a longer one streams."""
    content_type = (
        "application/vnd.docker.raw-stream" if logs.tty else "application/vnd.docker.multiplexed-stream"
    )
    headers = {"Content-Type": content_type}
    flush_at = 1 if options.follow else _LOGS_WRITE_BYTES
    response = await open_stream(request, headers) if options.follow else None
    pending: list[bytes] = []
    size = 0
    try:
        async for line in logs.lines:
            data = line.data
            if options.timestamps:
                data = format_log_time(line.timestamp).encode() + b" " + data
            frame = data if logs.tty else encode_frame(line.stream, data)
            pending.append(frame)
            size += len(frame)
            if size >= flush_at:
                if response is None:
                    response = await open_stream(request, headers)
                await response.write(b"".join(pending))
                pending, size = [], 0
    finally:
        aclose = getattr(logs.lines, "aclose", None)
        if aclose is not None:
            await aclose()
    if response is None:
        return web.Response(status=200, body=b"".join(pending), headers=headers)
    await response.write_eof(b"".join(pending))
    return response


async def _upgrade(request: web.Request, session: Session) -> web.StreamResponse:
    """The backend accepted the attach or exec start: answer 101 and let its session run."""
    connection = await open_attached_stream(request, session.content_type)
    try:
        await session.run(connection)
    finally:
        connection.close()
    return connection.response


# ---------------------------------------------------------------------------- the application


def create_app(
    backend: Backend,
    *,
    token: str = "",
    inflight: middlewares.InFlight | None = None,
    max_body_bytes: int = 1 << 20,
) -> web.Application:
    """The internal-API application for ``backend``; the caller owns the backend's start and close."""
    inflight = inflight or middlewares.InFlight(512)
    stack = [
        middlewares.access_log(access_log),
        middlewares.errors("internal error; see the backend log", log),
        *([middlewares.bearer_token(token)] if token else []),
        inflight.middleware,
    ]
    app = web.Application(
        middlewares=stack,
        client_max_size=max_body_bytes,
        # Docker IDs and filters fit easily; a longer line is answered by aiohttp itself in text/plain.
        handler_args={"max_field_size": 16384, "max_line_size": 65536},
    )
    app[BACKEND_KEY] = backend
    app[SHIELDED_KEY] = ShieldedTasks()
    for route in ROUTES:
        app.router.add_route(route.method, route.full_path, handler_for(route))
    return app


class InternalAPIServer:
    """Serves one backend on the ``server`` section's listener, with graceful shutdown.

    ``start()`` binds (a bad address or certificate fails before any cloud client starts), starts the
    backend and then serves; ``stop()`` stops accepting, lets in-flight requests finish within
    ``shutdown_grace`` seconds, closes the backend and removes the socket.
    """

    def __init__(self, backend: Backend, config: ServerConfig, *, socket_path: str = "") -> None:
        """``socket_path`` replaces ``config.socket`` (``sockerless up`` serves on a private one)."""
        self.backend = backend
        self.config = config
        self.listener = Listener(config, section="server", socket_path=socket_path)
        inflight = middlewares.InFlight(config.max_inflight_requests)
        app = create_app(backend, token=config.token, inflight=inflight, max_body_bytes=config.max_body_bytes)
        self._server = HTTPServer(
            app=app,
            listener=self.listener,
            grace=config.shutdown_grace,
            inflight=inflight,
            shielded=app[SHIELDED_KEY],
            log=log,
        )
        self._backend_started = False
        self._settled = False

    @property
    def address(self) -> str:
        """``unix:///path`` or ``tcp://host:port`` once listening."""
        return self.listener.address

    @property
    def url(self) -> str:
        """The address as a client's URL: ``unix:///path``, ``http://host:port`` or ``https://host:port``."""
        return self.listener.url

    async def start(self) -> None:
        self.listener.bind()
        try:
            await self.backend.start()
            self._backend_started = True
            await self._server.start()
        except BaseException:
            await self.stop()
            raise
        fields = {"backend": self.backend.name, "address": self.address, "tls": self.listener.security}
        log.info("serving", extra={"fields": fields})

    @property
    def grace(self) -> float:
        """``server.shutdown_grace``: how long a stop waits for runs and requests in flight."""
        return self._server.grace

    def hurry(self) -> None:
        """Stop waiting now (a second Ctrl-C): what is still in flight is released or cut."""
        self._server.hurry()

    def in_flight(self) -> tuple[int, int]:
        """What a stop waits for: the backend's runs in flight, and the requests (waits and followed
        logs among them)."""
        runs = self.backend.runs_in_flight() if self._backend_started else 0
        return runs, self._server.requests_in_flight

    async def settle(self) -> None:
        """The first half of a stop: no new connection; the backend's runs and the requests in flight
        get the grace period to end, then the backend releases its clients (each pending wait
        answered, each followed log ended), so the requests still open end cleanly. Idempotent."""
        if self._settled:
            return
        self._settled = True
        await self._server.stop_accepting()
        if not self._backend_started:
            return
        runs, requests = self.in_flight()
        if runs or requests:
            fields = {
                "runs": runs,
                "requests": requests,
                "at_most_seconds": round(self._server.remaining(), 1),
            }
            log.info("stopping: waiting for what is in flight", extra={"fields": fields})
        quiet = asyncio.gather(self.backend.runs_ended(), self._server.drained())
        if not await self._server.within_grace(quiet):
            runs, requests = self.in_flight()
            log.info(
                "stopping: the grace period is over; the backend releases its clients",
                extra={"fields": {"runs": runs, "requests": requests}},
            )
        await self.backend.release_clients()

    async def stop(self) -> None:
        await self.settle()
        await self._server.stop()
        if self._backend_started:
            self._backend_started = False
            await self.backend.close()
        log.info("stopped", extra={"fields": {"backend": self.backend.name}})
