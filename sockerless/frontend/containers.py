"""``/containers/...`` calls that need more than a plain pass-through (the others are
:func:`~sockerless.frontend.passthrough.forwarding` routes in :mod:`.app`).

* create: only a daemon's front door can check what the Docker clients act on (an image the backend
  does not know answers Docker's ``No such image`` so that the CLI pulls and retries; stdin refused
  where the CLI shows the message); the body then goes on as the client sent it;
* wait and logs: streams whose headers the clients need at once;
* resize: there is no terminal to resize, and ``docker run -it`` retries a 501;
* remove: Docker removes a link with the same call (``link=1``), which no backend has.
"""

from __future__ import annotations

import contextlib
import logging

import aiohttp
from aiohttp import web

from sockerless.api import container_routes as c
from sockerless.api.params import Flag, Integer
from sockerless.errors import InvalidParameter, NotFound
from sockerless.frontend.context import FrontendContext, frontend_of
from sockerless.frontend.passthrough import answer, copy_stream, long_lived_like, path_values
from sockerless.frontend.unsupported import unsupported
from sockerless.http.requests import decode_json
from sockerless.http.responses import JSON_CONTENT_TYPE, open_stream
from sockerless.wire import encode_json

__all__ = [
    "container_logs",
    "create_container",
    "default_tag",
    "remove_container",
    "resize_container",
    "wait_container",
]

log = logging.getLogger("sockerless.frontend")


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
    raw = await request.read()
    body = decode_json(raw) if raw else None
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
    return await answer(request, c.CREATE, body=raw)


@long_lived_like(c.WAIT)
async def wait_container(request: web.Request) -> web.StreamResponse:
    """Headers as soon as the backend holds the wait (``docker run`` sends start only then), the body
    when the condition holds. ``docker run -d`` drops the connection: leaving cancels the backend's
    wait. A backend that fails once the 200 is out is reported in the body, as Docker does."""
    frontend = frontend_of(request)
    response = await frontend.forward(c.WAIT, path_values(c.WAIT, request), request.query)
    try:
        out = await open_stream(request, {"Content-Type": JSON_CONTENT_TYPE})
        try:
            body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            message = f"the backend at {frontend.client.url} dropped the wait: {exc or type(exc).__name__}"
            log.warning(message, extra={"fields": {"path": request.path}})
            body = encode_json({"StatusCode": -1, "Error": {"Message": message}}) + b"\n"
        with contextlib.suppress(ConnectionError):  # `docker run -d` has what it wanted and left
            await out.write_eof(body)
        return out
    finally:
        response.close()


@long_lived_like(c.LOGS)
async def container_logs(request: web.Request) -> web.StreamResponse:
    """The backend's frames (raw for a Tty), followed by the backend itself when asked: one backend
    request per Docker request. Headers go at once: the SDK's blocking ``run()`` waits for them."""
    frontend = frontend_of(request)
    response = await frontend.forward(c.LOGS, path_values(c.LOGS, request), request.query)
    return await copy_stream(request, response)


async def resize_container(request: web.Request) -> web.StreamResponse:
    """Accepted and ignored: there is no terminal to resize (``docker run -it`` retries a 501)."""
    for name in ("h", "w"):
        Integer().parse(name, request.query.get(name))
    return web.Response(status=200)


async def remove_container(request: web.Request) -> web.StreamResponse:
    """Passed through, but for ``link=1``: ``docker rm --link /parent/alias`` removes a link, not the
    container (the name then has a "/", and no container has such a name)."""
    if Flag().parse("link", request.query.get("link")):
        raise unsupported(frontend_of(request), "container link removal")
    if "alias" in request.match_info:
        raise NotFound(f"No such container: {request.match_info['id']}/{request.match_info['alias']}")
    return await answer(request, c.REMOVE)
