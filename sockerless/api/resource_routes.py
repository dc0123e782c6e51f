"""The routes of images, networks and volumes."""

from __future__ import annotations

from typing import Any, Final

from sockerless.api.params import Filters, Flag, Param, Text
from sockerless.api.route import (
    ANY_OBJECT,
    PROGRESS_LINE,
    Answer,
    AnswerKind,
    Body,
    Route,
    empty_answer,
    json_answer,
)
from sockerless.models import (
    Image,
    ImageDeleteResponseItem,
    ImagePruneResponse,
    ImagePullRequest,
    ImageSummary,
)

__all__ = [
    "IMAGES",
    "IMAGE_INSPECT",
    "IMAGE_LIST",
    "IMAGE_PRUNE",
    "IMAGE_REMOVE",
    "LOAD",
    "NETWORKS",
    "NETWORK_CONNECT",
    "NETWORK_CREATE",
    "NETWORK_DISCONNECT",
    "NETWORK_INSPECT",
    "NETWORK_LIST",
    "NETWORK_PRUNE",
    "NETWORK_REMOVE",
    "PULL",
    "TAG",
    "VOLUMES",
    "VOLUME_CREATE",
    "VOLUME_INSPECT",
    "VOLUME_LIST",
    "VOLUME_PRUNE",
    "VOLUME_REMOVE",
]


def _image_transfer(verb: str, summary: str, body: Body, errors: tuple[int, ...]) -> Route:
    """Images coming in: ``POST /images/<verb>`` with capability ``image_<verb>``, calling
    ``<verb>_image`` and answering NDJSON progress."""
    return Route(
        f"Image{verb.capitalize()}",
        "POST",
        f"/images/{verb}",
        f"{verb}_image",
        summary,
        "Images",
        Answer(AnswerKind.PROGRESS, 200, PROGRESS_LINE),
        body=body,
        capability=f"image_{verb}",
        changes_state=True,
        errors=errors,
    )


PULL: Final = _image_transfer(
    "pull",
    "Pull (or record) an image; NDJSON progress",
    Body("request", ImagePullRequest),
    errors=(400, 404, 413, 501),
)
IMAGE_LIST: Final = Route(
    "ImageList",
    "GET",
    "/images",
    "list_images",
    "List the images the backend knows: one row per image ID, with all its tags",
    "Images",
    json_answer(list[ImageSummary]),
    cloud=False,
)
IMAGE_INSPECT: Final = Route(
    "ImageInspect",
    "GET",
    "/images/inspect",
    "inspect_image",
    "Inspect an image",
    "Images",
    json_answer(Image),
    query=(Param("name", Text(required=True), "Image reference (a query parameter: names contain /)"),),
    errors=(400, 404),
)
TAG: Final = Route(
    "ImageTag",
    "POST",
    "/images/tag",
    "tag_image",
    "Tag an image",
    "Images",
    empty_answer(201),
    query=(
        Param("name", Text(required=True), "Image to tag"),
        Param("repo", Text(required=True), "Repository of the new tag"),
        Param("tag", Text("latest"), "Tag (default latest)"),
    ),
    changes_state=True,
    errors=(400, 404, 409, 501),
)
LOAD: Final = _image_transfer(
    "load",
    "Load images from a tar archive",
    Body("body", {"type": "string", "format": "binary"}, media_type="application/x-tar"),
    errors=(400, 413, 501),
)
# Image removal and prune: added in 0.2; frontends before it never call them.
IMAGE_REMOVE: Final = Route(
    "ImageDelete",
    "DELETE",
    "/images",
    "remove_image",
    "Remove an image reference (a name) or every reference of an image (an ID); the image goes with "
    "its last reference. Docker's answer: the references untagged, then the image deleted",
    "Images",
    json_answer(list[ImageDeleteResponseItem]),
    query=(
        Param("name", Text(required=True), "Image reference or ID (a query parameter: names contain /)"),
        Param("force", Flag(), "Remove even if a stopped container uses it or it has several repositories"),
        Param("noprune", Flag(), "Accepted for Docker's sake: there are no parent images to keep"),
    ),
    changes_state=True,
    cloud=False,
    errors=(400, 404, 409, 501),
)
IMAGE_PRUNE: Final = Route(
    "ImagePrune",
    "POST",
    "/images/prune",
    "prune_images",
    "Remove unused images: dangling ones (none where an image is its references), or with "
    "dangling=false every image no container uses",
    "Images",
    json_answer(ImagePruneResponse),
    query=(
        Param(
            "filters",
            Filters({"dangling", "until", "label", "label!"}),
            "JSON filters; keys: dangling, until, label, label!",
        ),
    ),
    changes_state=True,
    cloud=False,
    errors=(400, 501),
)
IMAGES: Final = (PULL, IMAGE_LIST, IMAGE_INSPECT, TAG, LOAD, IMAGE_REMOVE, IMAGE_PRUNE)


def _resource_routes(
    kind: str,
    key: str,
    keyword: str,
    *,
    list_answer: Any,
    list_filters: Filters,
    prune_filters: Filters,
    remove_query: tuple[Param, ...] = (),
) -> tuple[Route, ...]:
    """The five routes networks and volumes share: create, list, prune, inspect and remove. Inspecting
    one needs no capability: a backend without any answers 404 (``docker inspect NAME`` goes on)."""
    plural, tag = f"{kind}s", f"{kind.capitalize()}s"
    one = {key: keyword}
    state = {"capability": plural, "changes_state": True}

    def route(
        operation: str, method: str, path: str, call: str, summary: str, answer: Answer, **more: Any
    ) -> Route:
        return Route(
            f"{kind.capitalize()}{operation}", method, f"/{plural}{path}", call, summary, tag, answer, **more
        )

    return (
        route(
            "Create",
            "POST",
            "",
            f"create_{kind}",
            f"Create a {kind}",
            json_answer(ANY_OBJECT, 201),
            body=Body("body", ANY_OBJECT),
            errors=(400, 409, 413, 501),
            **state,
        ),
        route(
            "List",
            "GET",
            "",
            f"list_{plural}",
            f"List {plural}",
            json_answer(list_answer),
            query=(Param("filters", list_filters, "JSON filters"),),
            capability=plural,
            errors=(400, 501),
        ),
        route(
            "Prune",
            "POST",
            "/prune",
            f"prune_{plural}",
            f"Remove unused {plural}",
            json_answer(ANY_OBJECT),
            query=(Param("filters", prune_filters, "JSON filters"),),
            errors=(400, 501),
            **state,
        ),
        route(
            "Inspect",
            "GET",
            f"/{{{key}}}",
            f"inspect_{kind}",
            f"Inspect a {kind}",
            json_answer(ANY_OBJECT),
            path_args=one,
            errors=(404, 501),
        ),
        route(
            "Delete",
            "DELETE",
            f"/{{{key}}}",
            f"remove_{kind}",
            f"Remove a {kind}",
            empty_answer(),
            query=remove_query,
            path_args=one,
            errors=(400, 404, 409, 501),
            **state,
        ),
    )


NETWORK_CREATE, NETWORK_LIST, NETWORK_PRUNE, NETWORK_INSPECT, NETWORK_REMOVE = _resource_routes(
    "network",
    "id",
    "network_id",
    list_answer={"type": "array", "items": ANY_OBJECT},
    list_filters=Filters({"id", "name", "label", "driver", "scope", "type"}),
    prune_filters=Filters({"label", "until"}),
)
NETWORK_CONNECT, NETWORK_DISCONNECT = (
    Route(
        f"Network{verb.capitalize()}",
        "POST",
        f"/networks/{{id}}/{verb}",
        f"{verb}_network",
        f"{verb.capitalize()} a container {'to' if verb == 'connect' else 'from'} a network",
        "Networks",
        empty_answer(200),
        body=Body("body", ANY_OBJECT),
        path_args={"id": "network_id"},
        capability="networks",
        changes_state=True,
        errors=(400, 404, 409, 413, 501),
    )
    for verb in ("connect", "disconnect")
)
NETWORKS: Final = (
    NETWORK_CREATE,
    NETWORK_LIST,
    NETWORK_PRUNE,
    NETWORK_INSPECT,
    NETWORK_REMOVE,
    NETWORK_CONNECT,
    NETWORK_DISCONNECT,
)
VOLUME_CREATE, VOLUME_LIST, VOLUME_PRUNE, VOLUME_INSPECT, VOLUME_REMOVE = _resource_routes(
    "volume",
    "name",
    "name",
    list_answer=ANY_OBJECT,
    list_filters=Filters({"name", "label", "driver", "dangling"}),
    prune_filters=Filters({"label", "all"}),
    remove_query=(Param("force", Flag(), "Remove even if in use"),),
)
VOLUMES: Final = (VOLUME_CREATE, VOLUME_LIST, VOLUME_PRUNE, VOLUME_INSPECT, VOLUME_REMOVE)
