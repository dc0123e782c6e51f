"""``POST /containers/{id}/attach``: read-only attach, emulated from logs for backends without attach.

``docker run IMAGE CMD`` attaches before it starts the container and takes its output from the
attached connection, closed by the daemon when the container ends. A backend without attach but
with logs (Lambda) can give exactly that, output only: the frontend accepts the upgrade, follows
the logs (see :mod:`sockerless.frontend.follow`), writes them as Docker frames (raw for a Tty) and
closes the connection when the container has exited and its logs are final.

Refused with 501 before any upgrade: stdin (``docker run -i``), a backend without logs, and the
``strict`` attach mode. (A 501 after the upgrade would only print ``unable to upgrade to tcp``.)
"""

from __future__ import annotations

import logging

from aiohttp import web

from sockerless.backend import AttachOptions, LogsOptions
from sockerless.errors import SockerlessError
from sockerless.frontend.autoremove import is_deferred
from sockerless.frontend.context import frontend_of
from sockerless.frontend.follow import ExitWatcher, LogFollower
from sockerless.frontend.hijack import (
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    AttachedStream,
    HijackedConnection,
    open_attached_stream,
)
from sockerless.frontend.proxy import pipe_upgraded
from sockerless.frontend.unsupported import unsupported
from sockerless.models import Container, WaitCondition, parse_time
from sockerless.server import query_bool
from sockerless.streams import encode_frame

__all__ = ["attach_container", "attach_options"]

log = logging.getLogger("sockerless.frontend.attach")


def attach_options(request: web.Request) -> AttachOptions:
    return AttachOptions(
        stream=query_bool(request, "stream"),
        stdin=query_bool(request, "stdin"),
        stdout=query_bool(request, "stdout"),
        stderr=query_bool(request, "stderr"),
        logs=query_bool(request, "logs"),
        detach_keys=request.query.get("detachKeys", ""),
    )


def _follow_plan(container: Container, options: AttachOptions) -> tuple[LogsOptions, WaitCondition, bool]:
    """Which output the attach shows, which exit ends it, and whether any output is wanted.

    A container that has not run yet (``docker run``) or has run before (``docker start -a``)
    shows the output of its coming run; one that runs now shows what it prints from now on.
    """
    state = container.state
    wanted = options.stdout or options.stderr
    logs = LogsOptions(stdout=options.stdout, stderr=options.stderr)
    if options.logs:
        condition = WaitCondition.NOT_RUNNING if state.running else WaitCondition.NEXT_EXIT
        return logs, condition, wanted
    if state.running:
        return (
            LogsOptions(stdout=options.stdout, stderr=options.stderr, tail=0),
            WaitCondition.NOT_RUNNING,
            wanted,
        )
    return logs, WaitCondition.NEXT_EXIT, wanted


async def attach_container(request: web.Request) -> web.StreamResponse:
    frontend = frontend_of(request)
    options = attach_options(request)
    if frontend.capabilities.attach:
        upstream = frontend.client.attach_container(request.match_info["id"], dict(request.query))
        return await pipe_upgraded(request, upstream)
    if not frontend.emulates_attach:
        raise unsupported(frontend, "attach")
    if options.stdin:
        raise unsupported(frontend, "attaching stdin")
    container = await frontend.client.inspect_container(request.match_info["id"])
    logs, condition, wanted = _follow_plan(container, options)
    after = None
    if not options.logs and not container.state.running:
        after = parse_time(container.state.finished_at)  # output of an earlier run is not shown
    tty = container.config.tty
    remover = frontend.auto_remover
    async with ExitWatcher(frontend.client, container.id, condition, frontend.follow) as watcher:
        async with remover.reading(container.id):
            connection = await open_attached_stream(request, RAW_STREAM if tty else MULTIPLEXED_STREAM)
            follower = (
                LogFollower(frontend.client, container.id, logs, frontend.follow, watcher, after=after)
                if wanted
                else None
            )
            ended_by_exit = await _stream_output(connection, follower, watcher, tty=tty)
        try:
            if ended_by_exit and is_deferred(container):
                # Shielded: closing the connection below cancels this handler.
                await frontend.detach(remover.remove_if_unread(container.id))
        finally:
            connection.close()
    return connection.response


async def _stream_output(
    connection: AttachedStream | HijackedConnection,
    follower: LogFollower | None,
    watcher: ExitWatcher,
    *,
    tty: bool,
) -> bool:
    """Write the container's output until it ends; True if it ended because the container exited."""
    try:
        if follower is None:
            await watcher.exited.wait()
        else:
            async for line in follower.lines():
                await connection.write(line.data if tty else encode_frame(line.stream, line.data))
    except ConnectionResetError:
        return False  # the client detached; the container keeps running
    except SockerlessError as exc:
        # The 101 is sent: all that is left is to end the stream and say why in the log.
        log.warning(
            "attach ended early: the backend failed",
            extra={"fields": {"container": watcher.container_id, "error": exc.message}},
        )
        return False
    return watcher.exited.is_set()
