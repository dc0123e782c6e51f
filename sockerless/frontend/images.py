"""``/images/...``: pull, inspect, tag, load; the list is empty (the backend has no image list).

Image names contain ``/`` (``123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest``), so the
routes match them with ``{name:.+}``. ``X-Registry-Auth`` goes to the backend as ``Auth`` and is
never logged.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from sockerless.client import PullStream
from sockerless.errors import InvalidParameter, SockerlessError
from sockerless.frontend.context import frontend_of
from sockerless.frontend.unsupported import requires, unsupported
from sockerless.models import ImagePullRequest, unstructure
from sockerless.server import JSON_CONTENT_TYPE, json_response

__all__ = [
    "create_image",
    "inspect_image",
    "list_images",
    "load_image",
    "pull_reference",
    "tag_image",
]


def pull_reference(from_image: str, tag: str) -> str:
    """Join ``fromImage`` and ``tag`` as Docker does: a ``sha256:...`` tag is a digest (``@``),
    any other replaces the tag ``fromImage`` may carry; no tag leaves the name as it is."""
    if not tag:
        return from_image
    if "@" in from_image:
        return from_image
    repository, _, last = from_image.rpartition("/")
    name = last.split(":", 1)[0]
    base = f"{repository}/{name}" if repository else name
    if ":" in tag and tag.split(":", 1)[0] in ("sha256", "sha384", "sha512"):
        return f"{base}@{tag}"
    return f"{base}:{tag}"


async def _ndjson(request: web.Request, stream: PullStream) -> web.StreamResponse:
    """Copy progress lines; a failure once the 200 is out becomes Docker's in-stream error line."""
    response = web.StreamResponse(status=200, headers={"Content-Type": JSON_CONTENT_TYPE})
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):
        try:
            async for line in stream.lines():
                await response.write(json.dumps(line).encode() + b"\r\n")
        except SockerlessError as exc:
            error = {"errorDetail": {"message": exc.message}, "error": exc.message}
            await response.write(json.dumps(error).encode() + b"\r\n")
        await response.write_eof()
    return response


async def create_image(request: web.Request) -> web.StreamResponse:
    """``docker pull``: ``fromImage=docker.io/library/alpine&tag=latest`` (CLI) or ``fromImage=alpine``."""
    frontend = frontend_of(request)
    if request.query.get("fromSrc"):
        raise unsupported(frontend, "image import")
    from_image = request.query.get("fromImage", "")
    if not from_image:
        raise InvalidParameter("fromImage is required")
    if not frontend.capabilities.image_pull:
        raise unsupported(frontend, "image_pull")
    pull = ImagePullRequest(
        reference=pull_reference(from_image, request.query.get("tag", "")),
        auth=request.headers.get("X-Registry-Auth", ""),
    )
    async with frontend.client.pull_image(pull) as stream:
        return await _ndjson(request, stream)


@requires("image_load")
async def load_image(request: web.Request) -> web.StreamResponse:
    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in request.content.iter_chunked(1 << 16):
            yield chunk

    async with frontend_of(request).client.load_image(chunks()) as stream:
        return await _ndjson(request, stream)


async def inspect_image(request: web.Request) -> web.StreamResponse:
    image = await frontend_of(request).client.inspect_image(request.match_info["name"])
    body: dict[str, Any] = unstructure(image)
    for key, value in (
        ("Parent", ""),
        ("Comment", ""),
        ("DockerVersion", ""),
        ("Author", ""),
        ("VirtualSize", image.size),
        ("GraphDriver", {"Name": "", "Data": None}),
        ("Metadata", {"LastTagTime": "0001-01-01T00:00:00Z"}),
    ):
        body.setdefault(key, value)
    return json_response(body)


async def tag_image(request: web.Request) -> web.StreamResponse:
    repo = request.query.get("repo", "")
    if not repo:
        raise InvalidParameter("repo is required")
    frontend = frontend_of(request)
    await frontend.detach(
        frontend.client.tag_image(request.match_info["name"], repo, request.query.get("tag", ""))
    )
    return web.Response(status=201)


async def list_images(request: web.Request) -> web.StreamResponse:
    """The internal API has no image list: images live in the registry the backend pulls from."""
    return json_response([])
