"""``/containers/{id}/exec`` and ``/exec/...``: passed through to exec-capable backends.

On a backend without exec (Lambda), ``docker exec C ls`` prints ``Error response from daemon: This
backend (lambda) does not support exec. CI runners require exec-capable backends (ecs, cloudrun, aca,
docker).`` and exits 1; the frontend answers that from the capability report, before any backend call.
Creating and inspecting an exec instance are plain pass-throughs (:func:`forwarding` in :mod:`.app`).
"""

from __future__ import annotations

from aiohttp import web

from sockerless.api import container_routes as c
from sockerless.frontend.context import frontend_of
from sockerless.frontend.passthrough import long_lived_like, path_values
from sockerless.http.requests import read_json
from sockerless.http.upgrade import pipe_upgraded

__all__ = ["resize_exec", "start_exec"]


@long_lived_like(c.EXEC_START)
async def start_exec(request: web.Request) -> web.StreamResponse:
    """Upgraded on the backend first (its 404 or 409 reaches the client as an ordinary error), then
    here; the bytes then flow both ways until the backend closes."""
    frontend = frontend_of(request)
    frontend.require(c.EXEC_START.capability)
    body = await read_json(request, required=False)
    opening = frontend.client.upgrade(c.EXEC_START, path_values(c.EXEC_START, request), request.query, body)
    return await pipe_upgraded(request, opening)


async def resize_exec(request: web.Request) -> web.StreamResponse:
    """Accepted and ignored, like a container resize."""
    frontend_of(request).require("exec")
    return web.Response(status=200)
