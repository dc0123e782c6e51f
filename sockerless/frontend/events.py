"""``GET /events``: the backend's event stream, passed on as it comes.

The backend keeps the events and applies ``since``, ``until`` and ``filters`` (see
:mod:`sockerless.events`); the frontend forwards the query as received and copies the lines. Headers
go out as soon as the backend has subscribed, so a client that has them misses no later event. A
backend without events (or older than them: its capability report does not name them) is a 501 here.
"""

from __future__ import annotations

from aiohttp import web

from sockerless.api.event_routes import EVENTS_ROUTE
from sockerless.frontend.context import frontend_of
from sockerless.frontend.passthrough import copy_stream, long_lived_like, path_values

__all__ = ["events"]


@long_lived_like(EVENTS_ROUTE)
async def events(request: web.Request) -> web.StreamResponse:
    frontend = frontend_of(request)
    response = await frontend.forward(EVENTS_ROUTE, path_values(EVENTS_ROUTE, request), request.query)
    return await copy_stream(request, response)
