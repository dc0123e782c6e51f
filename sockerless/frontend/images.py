"""``/images/...``: pull, load, inspect, tag, removal and prune passed through; the list's filters and
the pull's reference decided here.

Image names contain ``/`` (``123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest``), so the routes
match them with ``{name:.+}`` and the backend gets them as a query parameter. ``X-Registry-Auth`` goes
to the backend as the pull's ``Auth`` and nowhere else (never logged).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import attrs
from aiohttp import web

from sockerless.api import resource_routes as r
from sockerless.errors import InvalidParameter
from sockerless.filters import parse_filters
from sockerless.frontend.context import frontend_of
from sockerless.frontend.passthrough import JSON_BODY, answer, copy_stream, progress_failure
from sockerless.frontend.unsupported import unsupported
from sockerless.http.responses import json_response
from sockerless.models import ImagePullRequest, ImageSummary
from sockerless.wire import encode_json, parse_time, unstructure

__all__ = [
    "create_image",
    "inspect_image",
    "list_images",
    "load_image",
    "prune_build_cache",
    "prune_images",
    "pull_reference",
    "remove_image",
    "tag_image",
]


_IMAGE_LIST_FILTERS = frozenset({"before", "dangling", "label", "reference", "since", "until"})


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


async def create_image(request: web.Request) -> web.StreamResponse:
    """``docker pull``: ``fromImage=docker.io/library/alpine&tag=latest`` (CLI) or ``fromImage=alpine``
    (SDK); the backend's NDJSON progress is passed on, its failures in the stream."""
    frontend = frontend_of(request)
    if request.query.get("fromSrc"):
        raise unsupported(frontend, "image import")
    from_image = request.query.get("fromImage", "")
    if not from_image:
        raise InvalidParameter("fromImage is required")
    pull = ImagePullRequest(
        reference=pull_reference(from_image, request.query.get("tag", "")),
        auth=request.headers.get("X-Registry-Auth", ""),
    )
    body = encode_json(unstructure(pull))
    response = await frontend.forward(r.PULL, {}, {}, body=body, headers=JSON_BODY)
    return await copy_stream(request, response, on_failure=progress_failure)


async def load_image(request: web.Request) -> web.StreamResponse:
    """``docker load``: the tar streams through to the backend as it arrives."""

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in request.content.iter_chunked(1 << 16):
            yield chunk

    headers = {"Content-Type": "application/x-tar"}
    response = await frontend_of(request).forward(r.LOAD, {}, {}, body=chunks(), headers=headers)
    return await copy_stream(request, response, on_failure=progress_failure)


async def inspect_image(request: web.Request) -> web.StreamResponse:
    return await answer(request, r.IMAGE_INSPECT, query={"name": request.match_info["name"]})


async def tag_image(request: web.Request) -> web.StreamResponse:
    query = {**request.query, "name": request.match_info["name"]}
    return await answer(request, r.TAG, query=query)


async def remove_image(request: web.Request) -> web.StreamResponse:
    """``docker rmi``: the backend untags and deletes, with Docker's conflicts and answer."""
    query = {**request.query, "name": request.match_info["name"]}
    return await answer(request, r.IMAGE_REMOVE, query=query)


async def prune_images(request: web.Request) -> web.StreamResponse:
    """``docker image prune [-a]`` (and ``docker system prune``): the backend decides what is unused."""
    return await answer(request, r.IMAGE_PRUNE)


async def prune_build_cache(request: web.Request) -> web.StreamResponse:
    """No backend builds (``POST /build`` is a 501), so there is no build cache: nothing deleted."""
    return json_response({"CachesDeleted": [], "SpaceReclaimed": 0})


async def list_images(request: web.Request) -> web.StreamResponse:
    """``docker images``: the images the backend knows (pulled, tagged or run), Docker's filters
    applied here. ``all`` and ``digests`` change nothing: there are no intermediate images, and
    every row carries its digests."""
    filters = parse_filters(request.query.get("filters"), _IMAGE_LIST_FILTERS)
    client = frontend_of(request).client
    rows = await client.list_images()
    # before/since name an image in any form Docker accepts: the backend resolves it, as for inspect.
    created = {row.id: row.created for row in rows}
    anchors = {
        ref: created.get((await client.inspect_image(ref)).id, 0)
        for ref in (*filters.get("before", []), *filters.get("since", []))
    }
    return json_response(unstructure(_select_images(rows, filters, anchors)))


def _select_images(
    rows: list[ImageSummary], filters: dict[str, list[str]], anchors: dict[str, int]
) -> list[ImageSummary]:
    """``anchors``: the creation time of each image ``before`` and ``since`` name."""
    for dangling in filters.get("dangling", []):
        if dangling not in ("true", "false", "1", "0"):
            raise InvalidParameter(f"invalid filter 'dangling={dangling}'")
        rows = [row for row in rows if (not row.repo_tags) == (dangling in ("true", "1"))]
    if "reference" in filters:
        # As Docker: a row keeps only the tags and digests that match, and goes if none does.
        patterns = [_reference_pattern(value) for value in filters["reference"]]

        def matching(refs: list[str]) -> list[str]:
            return [ref for ref in refs if any(p.fullmatch(n) for p in patterns for n in _names(ref))]

        rows = [
            attrs.evolve(row, repo_tags=matching(row.repo_tags), repo_digests=matching(row.repo_digests))
            for row in rows
        ]
        rows = [row for row in rows if row.repo_tags or row.repo_digests]
    for label in filters.get("label", []):
        key, sep, value = label.partition("=")
        rows = [row for row in rows if key in row.labels and (not sep or row.labels[key] == value)]
    for ref in filters.get("before", []):
        rows = [row for row in rows if row.created < anchors[ref]]
    for ref in filters.get("since", []):
        rows = [row for row in rows if row.created > anchors[ref]]
    for until in filters.get("until", []):
        limit = parse_time(until)
        if limit is not None:
            rows = [row for row in rows if row.created < limit.timestamp()]
    return rows


def _names(ref: str) -> tuple[str, str]:
    """What a ``reference`` filter matches of a tag or digest reference: all of it, and its name."""
    head, at, _ = ref.partition("@")
    colon = head.rfind(":")
    return ref, head[:colon] if not at and colon > head.rfind("/") else head


def _reference_pattern(pattern: str) -> re.Pattern[str]:
    """Docker matches references with Go's ``path.Match``: ``*`` and ``?`` stop at ``/``."""
    translated = "".join(
        "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char) for char in pattern
    )
    return re.compile(translated)
