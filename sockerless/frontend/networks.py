"""``/networks`` and ``/volumes``: passed through; the backend answers, 501 included where it has none.

Inspecting one network or volume on a backend without them reaches the backend, which answers 404
(there is no such object): ``docker inspect NAME`` walks containers, images, networks and volumes and
goes on only past "not found". Pruning on such a backend is answered here, that nothing was deleted,
which is so, and which lets ``docker system prune`` go on.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sockerless.api import resource_routes as r
from sockerless.api.route import Route
from sockerless.frontend.context import frontend_of
from sockerless.frontend.passthrough import answer, forwarding
from sockerless.http.middlewares import Handler
from sockerless.http.responses import json_response

__all__ = ["resource_routes"]


def _pruning(route: Route, nothing_deleted: dict[str, Any]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        capability = route.capability
        if capability is not None and not getattr(frontend_of(request).capabilities, capability):
            return json_response(nothing_deleted)
        return await answer(request, route)

    handler.__name__ = route.call
    return handler


def resource_routes() -> list[tuple[str, str, Handler]]:
    """Docker's network and volume calls as (method, path, handler); the paths name their parameters
    as the internal routes do (``{id}``, ``{name}``), so they pass straight through."""
    return [
        ("GET", "/networks", forwarding(r.NETWORK_LIST)),
        ("POST", "/networks/create", forwarding(r.NETWORK_CREATE)),
        ("POST", "/networks/prune", _pruning(r.NETWORK_PRUNE, {"NetworksDeleted": []})),
        ("GET", "/networks/{id}", forwarding(r.NETWORK_INSPECT)),
        ("DELETE", "/networks/{id}", forwarding(r.NETWORK_REMOVE)),
        ("POST", "/networks/{id}/connect", forwarding(r.NETWORK_CONNECT)),
        ("POST", "/networks/{id}/disconnect", forwarding(r.NETWORK_DISCONNECT)),
        ("GET", "/volumes", forwarding(r.VOLUME_LIST)),
        ("POST", "/volumes/create", forwarding(r.VOLUME_CREATE)),
        ("POST", "/volumes/prune", _pruning(r.VOLUME_PRUNE, {"VolumesDeleted": [], "SpaceReclaimed": 0})),
        ("GET", "/volumes/{name}", forwarding(r.VOLUME_INSPECT)),
        ("DELETE", "/volumes/{name}", forwarding(r.VOLUME_REMOVE)),
    ]
