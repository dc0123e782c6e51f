"""``/containers/...``: Docker's container calls, each turned into internal-API calls.

The frontend keeps no state: every answer comes from the backend, reshaped where Docker's
clients need it (inspect's ``LogConfig``, wait's and logs' headers sent at once). The create
call checks the image first, so that an image the backend never pulled answers Docker's
``No such image``, on which the CLI pulls and retries.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from aiohttp import web

from sockerless.backend import LogsOptions
from sockerless.errors import InvalidParameter, NotFound, SockerlessError, UpstreamError
from sockerless.frontend.autoremove import (
    AUTO_REMOVE_LABEL,
    defer_auto_remove,
    is_deferred,
    shows_auto_remove,
)
from sockerless.frontend.context import FrontendContext, frontend_of
from sockerless.frontend.follow import ExitWatcher, LogFollower
from sockerless.frontend.hijack import MULTIPLEXED_STREAM, RAW_STREAM
from sockerless.frontend.unsupported import requires, unsupported
from sockerless.models import WaitCondition, parse_time, unstructure
from sockerless.server import (
    JSON_CONTENT_TYPE,
    json_body_response,
    json_response,
    query_bool,
    query_int,
    read_json,
)
from sockerless.streams import encode_frame, format_log_time

__all__ = [
    "container_logs",
    "create_container",
    "default_tag",
    "inspect_container",
    "kill_container",
    "list_containers",
    "logs_options",
    "prune_containers",
    "remove_container",
    "resize_container",
    "restart_container",
    "start_container",
    "stop_container",
    "wait_container",
]

_AUTO_REMOVE_LABEL_JSON = json.dumps(AUTO_REMOVE_LABEL).encode()

log = logging.getLogger("sockerless.frontend.containers")


def _ref(request: web.Request) -> str:
    return request.match_info["id"]


def default_tag(reference: str) -> str:
    """``alpine`` -> ``alpine:latest``, as Docker names an image in its messages; digests stay."""
    if "@" in reference or ":" in reference.rsplit("/", 1)[-1]:
        return reference
    return reference + ":latest"


async def _require_image(frontend: FrontendContext, image: str) -> None:
    """Docker's create answers 404 for an image it does not have; the CLI then pulls and retries."""
    try:
        await frontend.client.inspect_image(image)
    except NotFound:
        raise NotFound(f"No such image: {default_tag(image)}") from None


async def create_container(request: web.Request) -> web.StreamResponse:
    frontend = frontend_of(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidParameter("invalid create body: expected a JSON object")
    image = body.get("Image")
    if not isinstance(image, str) or not image:
        raise InvalidParameter("invalid create body: Image is required")
    if body.get("AttachStdin") is True and not frontend.capabilities.attach:
        # Refused here, where the CLI shows the message; at attach it would only print
        # "unable to upgrade to tcp, received 501" and leave the container behind.
        raise unsupported(frontend, "attaching stdin")
    await _require_image(frontend, image)
    name = request.query.get("name") or None
    body = defer_auto_remove(body, frontend.emulates_attach or frontend.emulates_follow)
    created = await frontend.detach(frontend.client.create_container(body, name))
    return json_response(unstructure(created), 201)


async def list_containers(request: web.Request) -> web.StreamResponse:
    limit = query_int(request, "limit")
    client = frontend_of(request).client
    body = await client.list_containers_json(
        all=query_bool(request, "all"),
        limit=limit if limit is not None and limit > 0 else None,
        filters=request.query.get("filters") or None,
    )
    # The backend's rows are Docker's rows: passed on as they came unless one shows the label of a
    # deferred --rm, which is the frontend's own (docker ps -a over 10 000 containers: 0.4-0.6 s
    # through models, a few ms passed on).
    if _AUTO_REMOVE_LABEL_JSON not in body:
        return json_body_response(body)
    rows = json.loads(body) if body else None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise UpstreamError(f"the backend at {client.url} sent an invalid container list")
    for row in rows:
        labels = row.get("Labels")
        if isinstance(labels, dict):
            labels.pop(AUTO_REMOVE_LABEL, None)
    return json_response(rows)


async def inspect_container(request: web.Request) -> web.StreamResponse:
    container = shows_auto_remove(await frontend_of(request).client.inspect_container(_ref(request)))
    # The SDK's blocking run() reads logs only from json-file or journald, whatever the real sink.
    container.host_config.log_config.type = "json-file"
    body: dict[str, Any] = unstructure(container)
    for key, value in (
        ("ResolvConfPath", ""),
        ("HostnamePath", ""),
        ("HostsPath", ""),
        ("MountLabel", ""),
        ("ProcessLabel", ""),
        ("AppArmorProfile", ""),
        ("ExecIDs", None),
        ("GraphDriver", {"Name": container.driver, "Data": None}),
    ):
        body.setdefault(key, value)
    return json_response(body)


async def start_container(request: web.Request) -> web.StreamResponse:
    frontend = frontend_of(request)
    await frontend.detach(frontend.client.start_container(_ref(request)))
    if frontend.emulates_attach or frontend.emulates_follow:
        with contextlib.suppress(SockerlessError):
            container = await frontend.client.inspect_container(_ref(request))
            if is_deferred(container):
                frontend.auto_remover.schedule_fallback(container.id)
    return web.Response(status=204)


async def stop_container(request: web.Request) -> web.StreamResponse:
    frontend = frontend_of(request)
    timeout, signal = query_int(request, "t"), request.query.get("signal") or None
    await frontend.detach(frontend.client.stop_container(_ref(request), timeout=timeout, signal=signal))
    return web.Response(status=204)


async def kill_container(request: web.Request) -> web.StreamResponse:
    frontend = frontend_of(request)
    signal = request.query.get("signal") or None
    await frontend.detach(frontend.client.kill_container(_ref(request), signal=signal))
    return web.Response(status=204)


async def restart_container(request: web.Request) -> web.StreamResponse:
    frontend = frontend_of(request)
    timeout = query_int(request, "t")
    await frontend.detach(frontend.client.restart_container(_ref(request), timeout=timeout))
    return web.Response(status=204)


async def remove_container(request: web.Request) -> web.StreamResponse:
    frontend = frontend_of(request)
    force, volumes = query_bool(request, "force"), query_bool(request, "v")
    await frontend.detach(frontend.client.remove_container(_ref(request), force=force, volumes=volumes))
    return web.Response(status=204)


async def resize_container(request: web.Request) -> web.StreamResponse:
    """Accepted and ignored: there is no terminal to resize (``docker run -it`` retries a 501)."""
    query_int(request, "h")
    query_int(request, "w")
    return web.Response(status=200)


async def prune_containers(request: web.Request) -> web.StreamResponse:
    frontend = frontend_of(request)
    result = await frontend.detach(frontend.client.prune_containers(request.query.get("filters") or None))
    return json_response(unstructure(result))


async def wait_container(request: web.Request) -> web.StreamResponse:
    """Headers as soon as the backend holds the wait (``docker run`` sends start only then), the
    body when the condition holds. ``docker run -d`` drops the connection: that cancels the wait."""
    condition = WaitCondition.from_query(request.query.get("condition"))
    async with frontend_of(request).client.wait_container(_ref(request), condition) as pending:
        response = web.StreamResponse(status=200, headers={"Content-Type": JSON_CONTENT_TYPE})
        await response.prepare(request)
        await response.write(b"")
        try:
            body = unstructure(await pending.result())
        except SockerlessError as exc:
            # The 200 is sent already: report the failure in the body, as Docker does.
            body = {"StatusCode": -1, "Error": {"Message": exc.message}}
        with contextlib.suppress(ConnectionError):
            await response.write(json.dumps(body).encode() + b"\n")
            await response.write_eof()
    return response


def logs_options(request: web.Request) -> LogsOptions:
    tail_raw = request.query.get("tail", "all")
    tail: int | None = None
    if tail_raw not in ("all", ""):
        try:
            tail = int(tail_raw)
        except ValueError:
            raise InvalidParameter(f"invalid tail {tail_raw!r}: expected 'all' or a number") from None
        tail = None if tail < 0 else tail
    stdout, stderr = query_bool(request, "stdout"), query_bool(request, "stderr")
    if not stdout and not stderr:
        raise InvalidParameter("you must choose at least one stream")
    since, until = request.query.get("since", ""), request.query.get("until", "")
    return LogsOptions(
        stdout=stdout,
        stderr=stderr,
        follow=query_bool(request, "follow"),
        timestamps=query_bool(request, "timestamps"),
        tail=tail,
        since=parse_time(since) if since not in ("", "0") else None,
        until=parse_time(until) if until not in ("", "0") else None,
    )


@requires("logs")
async def container_logs(request: web.Request) -> web.StreamResponse:
    frontend = frontend_of(request)
    options = logs_options(request)
    if options.follow and frontend.emulates_follow:
        return await _follow_logs(request, frontend, options)
    async with frontend.client.container_logs(_ref(request), options) as stream:
        response = web.StreamResponse(status=200, headers={"Content-Type": stream.content_type})
        await response.prepare(request)
        await response.write(b"")
        with contextlib.suppress(ConnectionError):
            async for chunk in stream.chunks():
                await response.write(chunk)
            await response.write_eof()
    return response


async def _follow_logs(
    request: web.Request, frontend: FrontendContext, options: LogsOptions
) -> web.StreamResponse:
    """``logs?follow=1`` for a backend that cannot follow: bounded polling until the container ends."""
    client = frontend.client
    container = await client.inspect_container(_ref(request))
    tty = container.config.tty
    remover = frontend.auto_remover
    async with ExitWatcher(client, container.id, WaitCondition.NOT_RUNNING, frontend.follow) as watcher:
        async with remover.reading(container.id):
            response = web.StreamResponse(
                status=200, headers={"Content-Type": RAW_STREAM if tty else MULTIPLEXED_STREAM}
            )
            await response.prepare(request)
            await response.write(b"")  # headers now: the SDK's blocking run() waits for them
            follower = LogFollower(client, container.id, options, frontend.follow, watcher)
            ended_by_exit = False
            try:
                async for line in follower.lines():
                    data = line.data
                    if options.timestamps:
                        data = format_log_time(line.timestamp).encode() + b" " + data
                    await response.write(data if tty else encode_frame(line.stream, data))
                ended_by_exit = watcher.exited.is_set()
            except ConnectionError:
                return response  # the client stopped following
            except SockerlessError as exc:
                log.warning(
                    "log follow ended early: the backend failed",
                    extra={"fields": {"container": container.id, "error": exc.message}},
                )
        if ended_by_exit and is_deferred(container):
            await frontend.detach(remover.remove_if_unread(container.id))
    with contextlib.suppress(ConnectionError):
        await response.write_eof()
    return response
