"""``GET /events``: the backend's event stream, passed on as it comes.

The backend keeps the events and applies ``since``, ``until`` and ``filters`` (see
:mod:`sockerless.events`); the frontend forwards the query as received and copies the lines. Headers
go out as soon as the backend has subscribed, so a client that has them misses no later event. A
backend without events (or older than them: its capability report does not name them) is a 501 here.

An event stream has no end of its own: at shutdown the frontend ends each one cleanly (the client sees
the end of the stream, as with ``until``) rather than holding the grace period and then cutting it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import aiohttp
from aiohttp import web

from sockerless.api.event_routes import EVENTS_ROUTE
from sockerless.frontend.context import frontend_of
from sockerless.frontend.passthrough import long_lived_like, path_values, relay
from sockerless.http.responses import JSON_CONTENT_TYPE

__all__ = ["ENDING_KEY", "end_event_streams", "events"]

log = logging.getLogger("sockerless.frontend")

#: Set when the frontend shuts down: every events stream ends.
ENDING_KEY: Final = web.AppKey("events_ending", asyncio.Event)


async def end_event_streams(app: web.Application) -> None:
    """The application's ``on_shutdown`` hook, ahead of the drain that waits for requests."""
    app[ENDING_KEY].set()


@long_lived_like(EVENTS_ROUTE)
async def events(request: web.Request) -> web.StreamResponse:
    frontend = frontend_of(request)
    response = await frontend.forward(EVENTS_ROUTE, path_values(EVENTS_ROUTE, request), request.query)

    async def copy(out: web.StreamResponse) -> None:
        await _copy(response, out, request.app[ENDING_KEY])

    return await relay(request, response, copy, default_type=JSON_CONTENT_TYPE)


async def _copy(response: aiohttp.ClientResponse, out: web.StreamResponse, shutdown: asyncio.Event) -> None:
    """The backend's bytes as they come, until it ends, fails, or the frontend shuts down."""
    ending: asyncio.Future[Any] = asyncio.ensure_future(shutdown.wait())
    reading: asyncio.Future[Any] | None = None
    try:
        while True:
            reading = asyncio.ensure_future(response.content.readany())
            await asyncio.wait({reading, ending}, return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                return  # shutting down: end here, between two of the backend's writes
            chunk = reading.result()
            if not chunk:
                return
            await out.write(chunk)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning(
            "the backend ended an events stream early",
            extra={"fields": {"error": str(exc) or type(exc).__name__}},
        )
    finally:
        ending.cancel()
        if reading is not None:
            reading.cancel()
