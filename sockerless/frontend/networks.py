"""``/networks`` and ``/volumes``: passed through to backends that have them, 501 otherwise.

Two calls answer for what cannot exist on a backend without them, instead of 501. Inspecting one
network or volume answers 404 (there is no such object): ``docker inspect NAME`` walks containers,
images, networks and volumes and skips only "not found", so a 501 there would hide the real answer.
Pruning answers that nothing was deleted, which is so, and lets ``docker system prune`` go on.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from sockerless.errors import NotFound
from sockerless.frontend.context import FrontendContext, frontend_of
from sockerless.frontend.unsupported import unsupported
from sockerless.server import json_response, read_json

__all__ = ["network_routes", "volume_routes"]

Route = tuple[str, str, Any]


async def _pass(
    request: web.Request, method: str, path: str, *, body: bool = False, status: int | None = None
) -> web.StreamResponse:
    frontend = frontend_of(request)
    json_body = await read_json(request, required=False) if body else None
    call = frontend.client.request_json(method, path, params=dict(request.query), json_body=json_body)
    answered, data = await (frontend.detach(call) if method != "GET" else call)
    answered = status or answered
    if data is None:
        return web.Response(status=answered)
    return json_response(data, answered)


def _gate(frontend: FrontendContext, capability: str) -> None:
    if not getattr(frontend.capabilities, capability):
        raise unsupported(frontend, capability)


def _resource_routes(kind: str, capability: str, key: str) -> list[Route]:
    base = f"/{kind}s"

    async def listing(request: web.Request) -> web.StreamResponse:
        _gate(frontend_of(request), capability)
        return await _pass(request, "GET", base)

    async def create(request: web.Request) -> web.StreamResponse:
        _gate(frontend_of(request), capability)
        return await _pass(request, "POST", base, body=True, status=201)

    async def prune(request: web.Request) -> web.StreamResponse:
        if not getattr(frontend_of(request).capabilities, capability):
            # There is none to prune: "nothing deleted" is the true answer, and it keeps
            # `docker system prune` (which prunes networks after containers) working.
            return json_response({f"{kind.capitalize()}sDeleted": [], **_reclaimed(kind)})
        return await _pass(request, "POST", f"{base}/prune")

    async def inspect(request: web.Request) -> web.StreamResponse:
        frontend = frontend_of(request)
        name = request.match_info[key]
        if not getattr(frontend.capabilities, capability):
            raise NotFound(f"No such {kind}: {name}")
        return await _pass(request, "GET", f"{base}/{quote(name, safe='')}")

    async def remove(request: web.Request) -> web.StreamResponse:
        _gate(frontend_of(request), capability)
        name = quote(request.match_info[key], safe="")
        return await _pass(request, "DELETE", f"{base}/{name}", status=204)

    routes: list[Route] = [
        ("GET", base, listing),
        ("POST", f"{base}/create", create),
        ("POST", f"{base}/prune", prune),
        ("GET", f"{base}/{{{key}}}", inspect),
        ("DELETE", f"{base}/{{{key}}}", remove),
    ]
    if kind == "network":

        async def connect(request: web.Request) -> web.StreamResponse:
            _gate(frontend_of(request), capability)
            verb = request.match_info["verb"]
            name = quote(request.match_info[key], safe="")
            return await _pass(request, "POST", f"{base}/{name}/{verb}", body=True)

        routes.append(("POST", f"{base}/{{{key}}}/{{verb:connect|disconnect}}", connect))
    return routes


def _reclaimed(kind: str) -> dict[str, int]:
    return {"SpaceReclaimed": 0} if kind == "volume" else {}


def network_routes() -> list[Route]:
    return _resource_routes("network", "networks", "id")


def volume_routes() -> list[Route]:
    return _resource_routes("volume", "volumes", "name")
