"""``/containers/{id}/exec`` and ``/exec/...``: passed through to exec-capable backends, 501 otherwise.

On a backend without exec (Lambda) ``docker exec C ls`` prints
``Error response from daemon: This backend (lambda) does not support exec. CI runners require
exec-capable backends (ecs, cloudrun, aca, docker).`` and exits 1.
"""

from __future__ import annotations

from aiohttp import web

from sockerless.frontend.context import frontend_of
from sockerless.frontend.proxy import pipe_upgraded
from sockerless.frontend.unsupported import requires
from sockerless.models import unstructure
from sockerless.server import json_response, read_json

__all__ = ["create_exec", "inspect_exec", "resize_exec", "start_exec"]


@requires("exec")
async def create_exec(request: web.Request) -> web.StreamResponse:
    frontend = frontend_of(request)
    body = await read_json(request)
    exec_id = await frontend.detach(frontend.client.create_exec(request.match_info["id"], body))
    return json_response({"Id": exec_id}, 201)


@requires("exec")
async def start_exec(request: web.Request) -> web.StreamResponse:
    frontend = frontend_of(request)
    body = await read_json(request, required=False)
    return await pipe_upgraded(request, frontend.client.start_exec(request.match_info["id"], body))


async def inspect_exec(request: web.Request) -> web.StreamResponse:
    exec_instance = await frontend_of(request).client.inspect_exec(request.match_info["id"])
    return json_response(unstructure(exec_instance))


@requires("exec")
async def resize_exec(request: web.Request) -> web.StreamResponse:
    """Accepted and ignored, like a container resize."""
    return web.Response(status=200)
