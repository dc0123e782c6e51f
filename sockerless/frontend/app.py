"""The Docker Engine API application: the route table and the middlewares around it.

The table is the one map of the Docker calls the frontend serves: most are one internal-API route each,
passed through (:func:`forwarding`); the rest name the module that decides more. Every route is served
unversioned and under ``/vX.Y/`` (see :mod:`.versions`). Errors leave in one place, the toolkit's
error middleware, as ``{"message": ...}`` with ``Content-Type: application/json`` exactly.
"""

from __future__ import annotations

import logging
from typing import Final

from aiohttp import web

from sockerless.api import container_routes as c
from sockerless.frontend import attach, containers, exec, images, networks, system
from sockerless.frontend.context import FRONTEND_KEY, FrontendContext
from sockerless.frontend.passthrough import forwarding
from sockerless.frontend.unsupported import unsupported_handler
from sockerless.frontend.versions import VERSION_PREFIX, api_version_guard
from sockerless.http import middlewares
from sockerless.http.middlewares import Handler

__all__ = ["MAX_BODY_BYTES", "create_app", "routes"]

log = logging.getLogger("sockerless.frontend")
# The same logger as the internal-API server's: the paths tell the two apart (the benchmarks read both).
access_log = logging.getLogger("sockerless.access")

#: The largest JSON body read (a create with a large environment fits easily); image loads stream.
MAX_BODY_BYTES: Final = 4 << 20


def routes() -> list[tuple[str, str, Handler]]:
    """Docker Engine API 1.44 as (method, path, handler); each is also served under ``/vX.Y``.

    Path parameters are named as in the internal routes (``{id}``), so a forwarded call finds them.
    """
    ctr = "/containers/{id}"
    table: list[tuple[str, str, Handler]] = [
        ("GET", "/_ping", system.ping),
        ("GET", "/version", system.version),
        ("GET", "/info", system.info),
        ("POST", "/auth", forwarding(c.AUTH)),
        ("GET", "/events", unsupported_handler("events")),
        ("GET", "/system/df", system.disk_usage),
        # containers
        ("POST", "/containers/create", containers.create_container),
        ("GET", "/containers/json", forwarding(c.LIST)),
        ("POST", "/containers/prune", forwarding(c.PRUNE)),
        ("GET", ctr + "/json", forwarding(c.INSPECT)),
        ("POST", ctr + "/start", forwarding(c.START)),
        ("POST", ctr + "/stop", forwarding(c.STOP)),
        ("POST", ctr + "/kill", forwarding(c.KILL)),
        ("POST", ctr + "/restart", forwarding(c.RESTART)),
        ("DELETE", ctr, forwarding(c.REMOVE)),
        ("POST", ctr + "/wait", containers.wait_container),
        ("GET", ctr + "/logs", containers.container_logs),
        ("POST", ctr + "/attach", attach.attach_container),
        ("GET", ctr + "/attach/ws", unsupported_handler("attach over websocket")),
        ("POST", ctr + "/resize", containers.resize_container),
        ("GET", ctr + "/top", unsupported_handler("container top")),
        ("GET", ctr + "/stats", unsupported_handler("container stats")),
        ("GET", ctr + "/changes", unsupported_handler("container changes")),
        ("GET", ctr + "/export", unsupported_handler("container export")),
        ("POST", ctr + "/update", unsupported_handler("container update")),
        ("POST", ctr + "/rename", unsupported_handler("container rename")),
        ("POST", ctr + "/pause", unsupported_handler("container pause")),
        ("POST", ctr + "/unpause", unsupported_handler("container unpause")),
        ("GET", ctr + "/archive", unsupported_handler("container archive")),
        ("PUT", ctr + "/archive", unsupported_handler("container archive")),
        # exec
        ("POST", ctr + "/exec", forwarding(c.EXEC_CREATE)),
        ("POST", "/exec/{id}/start", exec.start_exec),
        ("POST", "/exec/{id}/resize", exec.resize_exec),
        ("GET", "/exec/{id}/json", forwarding(c.EXEC_INSPECT)),
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
        ("DELETE", "/images/{name:.+}", images.remove_image),
    ]
    table.extend(networks.resource_routes())
    return table


def create_app(
    context: FrontendContext, *, token: str = "", inflight: middlewares.InFlight
) -> web.Application:
    """The Docker API application over ``context``; the caller owns the backend client.

    Outermost first: one access line per request, the error mapping, the bearer token (when one is
    configured), the API version bounds, and the count of requests in flight (long-lived ones apart).
    """
    stack = [
        middlewares.access_log(access_log),
        middlewares.errors(
            "internal error in the sockerless Docker frontend; see its log",
            log,
            passthrough=(ConnectionError,),
        ),
        *([middlewares.bearer_token(token)] if token else []),
        api_version_guard,
        inflight.middleware,
    ]
    app = web.Application(
        middlewares=stack, client_max_size=MAX_BODY_BYTES, handler_args={"max_field_size": 16384}
    )
    app[FRONTEND_KEY] = context
    for method, path, handler in routes():
        for prefix in ("", VERSION_PREFIX):
            if method == "GET":
                app.router.add_get(prefix + path, handler)  # and HEAD: the CLI pings with HEAD
            else:
                app.router.add_route(method, prefix + path, handler)
    return app
