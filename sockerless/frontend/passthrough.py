"""Passing the backend's answers on as they are: status, ``Content-Type`` and body.

The backend parses, checks and answers. A Docker call that is one internal-API route is sent on with
its query as received (only the parameters the route declares, unparsed) and its body bytes, and the
answer goes back unchanged, errors included (the client raises them again with their status and
message). What the frontend adds is what the clients need of a daemon's streams: headers at once, and
an orderly end when either side goes away.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

import aiohttp
from aiohttp import web

from sockerless.api.route import Route
from sockerless.frontend.context import FrontendContext, frontend_of
from sockerless.http.middlewares import Handler, long_lived
from sockerless.http.responses import JSON_CONTENT_TYPE, open_stream
from sockerless.wire import encode_json

__all__ = [
    "JSON_BODY",
    "answer",
    "copy_stream",
    "forwarding",
    "long_lived_like",
    "path_values",
    "progress_failure",
    "relay",
    "route_options",
]

log = logging.getLogger("sockerless.frontend")

H = TypeVar("H", bound=Handler)

#: The header of every JSON body sent on (a Docker body is passed as the bytes the client sent).
JSON_BODY: Final = {"Content-Type": JSON_CONTENT_TYPE}
_OCTETS: Final = "application/octet-stream"


def path_values(route: Route, request: web.Request) -> dict[str, str]:
    """The route's path parameters from the Docker path, which names them as the internal path does."""
    return {keyword: request.match_info[name] for name, keyword in route.path_args.items()}


def route_options(route: Route, query: Mapping[str, str]) -> Any:
    """The route's options (``AttachOptions``) read by the route's own parameter descriptions: the
    reading the backend's server does, for the few decisions the frontend has to take itself."""
    if route.options is None:
        raise ValueError(f"the route {route.operation_id} has no options")
    return route.options(**{param.keyword: param.parse(query) for param in route.query})


def long_lived_like(route: Route) -> Callable[[H], H]:
    """Mark a handler long-lived whenever the backend route it forwards to is (wait, attach, a
    followed log): such requests last as long as a container runs and are not counted as in flight."""
    predicate = route.long_lived
    if predicate is None:
        raise ValueError(f"the route {route.operation_id} is never long-lived")
    return long_lived(lambda request: predicate(request.query))


async def answer(
    request: web.Request,
    route: Route,
    *,
    query: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> web.Response:
    """Forward the request to ``route`` and pass the whole answer on. The Docker body (``body``, else the
    request's own when the route takes JSON) goes as received. A state change runs shielded: a client
    hanging up must not leave a create or a removal half done."""
    frontend = frontend_of(request)
    if body is None and route.body is not None and route.body.media_type == JSON_CONTENT_TYPE:
        body = await request.read() or None
    exchange = _exchange(
        frontend, route, path_values(route, request), request.query if query is None else query, body
    )
    status, content_type, data = await (frontend.shielded.run(exchange) if route.changes_state else exchange)
    headers = {"Content-Type": content_type} if data and content_type else {}
    return web.Response(status=status, body=data or None, headers=headers)


async def _exchange(
    frontend: FrontendContext,
    route: Route,
    values: Mapping[str, str],
    query: Mapping[str, str],
    body: bytes | None,
) -> tuple[int, str, bytes]:
    response = await frontend.forward(
        route, values, query, body=body, headers=JSON_BODY if body is not None else None
    )
    data = await frontend.client.read_body(response)
    return response.status, response.headers.get("Content-Type", ""), data


def forwarding(route: Route) -> Handler:
    """The handler of a Docker call that is exactly ``route``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await answer(request, route)

    handler.__name__ = route.call
    handler.__doc__ = route.summary
    return handler


def progress_failure(message: str) -> bytes:
    """Docker's in-stream error line, for a progress stream whose 200 is out already. It starts on a
    line of its own whatever the backend's last chunk ended with; JSON readers skip the blank."""
    error = {"errorDetail": {"message": message}, "error": message}
    return b"\r\n" + encode_json(error) + b"\r\n"


async def copy_stream(
    request: web.Request,
    response: aiohttp.ClientResponse,
    *,
    on_failure: Callable[[str], bytes] | None = None,
) -> web.StreamResponse:
    """Send the headers now, with the backend's ``Content-Type``, then the backend's bytes as they come,
    and end when the backend ends; releases ``response``.

    A backend failing mid-stream ends the stream (``on_failure`` may say why in it: the status is
    sent); a client going away ends it quietly, and leaving closes the backend request, which stops
    whatever the backend was doing for it.
    """

    async def copy(out: web.StreamResponse) -> None:
        try:
            async for chunk in response.content.iter_any():
                await out.write(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            message = f"the backend ended the stream early: {exc or type(exc).__name__}"
            log.warning(message, extra={"fields": {"method": request.method, "path": request.path}})
            if on_failure is not None:
                await out.write(on_failure(message))

    return await relay(request, response, copy)


async def relay(
    request: web.Request,
    response: aiohttp.ClientResponse,
    copy: Callable[[web.StreamResponse], Awaitable[None]],
    *,
    default_type: str = _OCTETS,
) -> web.StreamResponse:
    """Send the headers now, with the backend's ``Content-Type`` (``default_type`` when it has none),
    let ``copy`` write the body, then end the stream; releases ``response``.

    A client going away ends the stream quietly.
    """
    try:
        content_type = response.headers.get("Content-Type", default_type)
        out = await open_stream(request, {"Content-Type": content_type})
        try:
            await copy(out)
            await out.write_eof()
        except ConnectionError:
            pass  # the client went away: nothing is left to tell it
        return out
    finally:
        response.close()
