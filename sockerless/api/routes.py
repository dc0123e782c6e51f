"""The internal API, described once: every route with its parameters, body, answer and capability.

The server's routing and parsing (:mod:`.server`), the client (:mod:`.client`), ``docs/openapi.json``
and ``docs/internal-api.md`` (:mod:`.openapi`) all come from :data:`ROUTES`. Adding a verb is a
:class:`~.route.Route` in :mod:`.container_routes`, :mod:`.event_routes` or :mod:`.resource_routes`,
a method of the ``Backend`` protocol, and a one-line method of the client.
"""

from __future__ import annotations

from typing import Final

from sockerless.api.container_routes import CONTAINERS, EXEC, SYSTEM
from sockerless.api.event_routes import EVENTS
from sockerless.api.resource_routes import IMAGES, NETWORKS, VOLUMES
from sockerless.api.route import Route

__all__ = ["ROUTES", "route_named"]

#: Every route of the internal API, in the order the documents list them.
ROUTES: Final = (*SYSTEM, *EVENTS, *CONTAINERS, *EXEC, *IMAGES, *NETWORKS, *VOLUMES)
_BY_ID: Final = {route.operation_id: route for route in ROUTES}


def route_named(operation_id: str) -> Route:
    return _BY_ID[operation_id]
