"""``POST /containers/{id}/attach``: passed through where the backend attaches, read-only from its logs
where it cannot.

``docker run IMAGE CMD`` attaches before it starts the container, prints what arrives on the attached
connection and ends when the daemon closes it. A backend with logs but no attach (Lambda) can give
exactly that, output only. The backend owns the output, and follows it: the frontend opens the
backend's followed logs *before* it answers 101, so the backend has registered the follower before
the client (which waits for the 101) can send ``start``, and then copies the backend's bytes (frames,
raw for a Tty) until the backend ends the stream, and closes.

Which output: the coming run's for a container that is not running (``docker run``, ``docker start
-a``: ``condition=next-exit&tail=0``), what it prints from now on for a running one (``tail=0``), and
everything before that too with ``logs=1`` (``tail=all``). A backend that cannot follow
(``logs_follow: false``) is waited on instead (``wait`` opened before the 101), and its output of the
run is fetched once when the run has ended.

Refused with 501 before any upgrade (after one, the CLI prints only ``unable to upgrade to tcp``):
stdin, a backend without logs, and the ``strict`` attach mode.
"""

from __future__ import annotations

import datetime as dt
import logging

import aiohttp
from aiohttp import web

from sockerless.api import container_routes as c
from sockerless.backend import AttachOptions
from sockerless.errors import SockerlessError
from sockerless.frontend.context import FrontendContext, frontend_of
from sockerless.frontend.passthrough import long_lived_like, path_values, route_options
from sockerless.frontend.unsupported import unsupported
from sockerless.http.hijack import (
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    AttachedStream,
    HijackedConnection,
    open_attached_stream,
)
from sockerless.http.upgrade import pipe_upgraded
from sockerless.models import Container, WaitCondition
from sockerless.wire import format_time, parse_time

__all__ = ["attach_container", "logs_query"]

log = logging.getLogger("sockerless.frontend")

Connection = AttachedStream | HijackedConnection


def _flag(value: bool) -> str:
    return "1" if value else "0"


def logs_query(options: AttachOptions, *, running: bool) -> dict[str, str]:
    """The backend logs request that shows what an attach with ``options`` shows."""
    query = {"stdout": _flag(options.stdout), "stderr": _flag(options.stderr)}
    query["tail"] = "all" if options.logs else "0"
    if not options.stream:
        return query  # the output so far (logs=1) or nothing, then the end, as Docker does
    query["follow"] = "1"
    if not running:
        query["condition"] = WaitCondition.NEXT_EXIT.value
    return query


@long_lived_like(c.ATTACH)
async def attach_container(request: web.Request) -> web.StreamResponse:
    frontend = frontend_of(request)
    if frontend.capabilities.attach:
        opening = frontend.client.upgrade(c.ATTACH, path_values(c.ATTACH, request), request.query)
        return await pipe_upgraded(request, opening)
    if not frontend.attaches_from_logs:
        raise unsupported(frontend, "attach")
    options: AttachOptions = route_options(c.ATTACH, request.query)
    if options.stdin:
        raise unsupported(frontend, "attaching stdin")
    container = await frontend.client.inspect_container(request.match_info["id"])
    wants_output = options.stdout or options.stderr
    if not wants_output or (options.stream and not frontend.capabilities.logs_follow):
        return await _attach_after_exit(request, frontend, container, options)
    return await _attach_to_logs(request, frontend, container, options)


async def _attach_to_logs(
    request: web.Request, frontend: FrontendContext, container: Container, options: AttachOptions
) -> web.StreamResponse:
    """The backend follows; opened before the 101, so that nothing the coming run prints is missed."""
    query = logs_query(options, running=container.state.running)
    response = await frontend.forward(c.LOGS, {"ref": container.id}, query)
    try:
        content_type = response.headers.get("Content-Type", MULTIPLEXED_STREAM)
        connection = await open_attached_stream(request, content_type)
        try:
            await _copy(connection, response, container.id)
        finally:
            connection.close()
        return connection.response
    finally:
        response.close()


async def _attach_after_exit(
    request: web.Request, frontend: FrontendContext, container: Container, options: AttachOptions
) -> web.StreamResponse:
    """For a backend that cannot follow (and an attach that wants no output): the run's end is waited
    for (the wait opened before the 101, for the same reason as the logs), then the run's output is
    fetched once and written."""
    running = container.state.running
    condition = WaitCondition.NOT_RUNNING if running else WaitCondition.NEXT_EXIT
    async with frontend.client.wait_container(container.id, condition) as pending:
        connection = await open_attached_stream(
            request, RAW_STREAM if container.config.tty else MULTIPLEXED_STREAM
        )
        try:
            try:
                await pending.result()
            except SockerlessError as exc:
                _log_early_end(container.id, exc.message)
                return connection.response
            if options.stdout or options.stderr:
                query = {"stdout": _flag(options.stdout), "stderr": _flag(options.stderr)}
                since = None if options.logs else _run_start(container)
                if since is not None:
                    query["since"] = since
                response = await frontend.forward(c.LOGS, {"ref": container.id}, query)
                try:
                    await _copy(connection, response, container.id)
                finally:
                    response.close()
        except SockerlessError as exc:
            _log_early_end(container.id, exc.message)
        finally:
            connection.close()
    return connection.response


def _run_start(container: Container) -> str | None:
    """Where the output of the run being waited for starts, from the inspect made before the wait: the
    running run's start, or just after the previous run's end (the removed container of a ``--rm``
    cannot be inspected again). None: the container never ran, all its output is this run's."""
    state = container.state
    if state.running:
        return state.started_at
    finished = parse_time(state.finished_at)
    if finished is None:
        return None
    return format_time(finished + dt.timedelta(microseconds=1))


async def _copy(connection: Connection, response: aiohttp.ClientResponse, container_id: str) -> None:
    """The backend's bytes to the client until the backend ends; a client that left ends it too."""
    try:
        async for chunk in response.content.iter_any():
            await connection.write(chunk)
    except ConnectionResetError:
        pass  # the client detached; the container goes on
    except aiohttp.ClientError as exc:
        # The 101 is sent: all that is left is to end the stream and say why in the log.
        _log_early_end(container_id, str(exc) or type(exc).__name__)


def _log_early_end(container_id: str, reason: str) -> None:
    log.warning(
        "attach ended early: the backend failed",
        extra={"fields": {"container": container_id, "error": reason}},
    )
