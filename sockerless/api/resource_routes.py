"""The routes of images, networks and volumes."""

from __future__ import annotations

from typing import Final

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
from sockerless.models import Image, ImagePullRequest, ImageSummary

__all__ = [
    "IMAGES",
    "IMAGE_INSPECT",
    "IMAGE_LIST",
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

_NETWORK_FILTERS: Final = Filters({"id", "name", "label", "driver", "scope", "type"})
_OBJECTS: Final = {"type": "array", "items": ANY_OBJECT}
PULL: Final = Route(
    "ImagePull",
    "POST",
    "/images/pull",
    "pull_image",
    "Pull (or record) an image; NDJSON progress",
    "Images",
    Answer(AnswerKind.PROGRESS, 200, PROGRESS_LINE),
    body=Body("request", ImagePullRequest),
    capability="image_pull",
    changes_state=True,
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
LOAD: Final = Route(
    "ImageLoad",
    "POST",
    "/images/load",
    "load_image",
    "Load images from a tar archive",
    "Images",
    Answer(AnswerKind.PROGRESS, 200, PROGRESS_LINE),
    body=Body("body", {"type": "string", "format": "binary"}, media_type="application/x-tar"),
    capability="image_load",
    changes_state=True,
    errors=(400, 413, 501),
)
IMAGES: Final = (PULL, IMAGE_LIST, IMAGE_INSPECT, TAG, LOAD)

_NETWORK: Final = {"id": "network_id"}
_VOLUME: Final = {"name": "name"}

NETWORK_CREATE: Final = Route(
    "NetworkCreate",
    "POST",
    "/networks",
    "create_network",
    "Create a network",
    "Networks",
    json_answer(ANY_OBJECT, 201),
    body=Body("body", ANY_OBJECT),
    capability="networks",
    changes_state=True,
    errors=(400, 409, 413, 501),
)
NETWORK_LIST: Final = Route(
    "NetworkList",
    "GET",
    "/networks",
    "list_networks",
    "List networks",
    "Networks",
    json_answer(_OBJECTS),
    query=(Param("filters", _NETWORK_FILTERS, "JSON filters"),),
    capability="networks",
    errors=(400, 501),
)
NETWORK_PRUNE: Final = Route(
    "NetworkPrune",
    "POST",
    "/networks/prune",
    "prune_networks",
    "Remove unused networks",
    "Networks",
    json_answer(ANY_OBJECT),
    query=(Param("filters", Filters({"label", "until"}), "JSON filters"),),
    capability="networks",
    changes_state=True,
    errors=(400, 501),
)
NETWORK_INSPECT: Final = Route(
    "NetworkInspect",
    "GET",
    "/networks/{id}",
    "inspect_network",
    "Inspect a network",
    "Networks",
    json_answer(ANY_OBJECT),
    path_args=_NETWORK,
    errors=(404, 501),
)
NETWORK_REMOVE: Final = Route(
    "NetworkDelete",
    "DELETE",
    "/networks/{id}",
    "remove_network",
    "Remove a network",
    "Networks",
    empty_answer(),
    path_args=_NETWORK,
    capability="networks",
    changes_state=True,
    errors=(404, 409, 501),
)
NETWORK_CONNECT: Final = Route(
    "NetworkConnect",
    "POST",
    "/networks/{id}/connect",
    "connect_network",
    "Connect a container to a network",
    "Networks",
    empty_answer(200),
    body=Body("body", ANY_OBJECT),
    path_args=_NETWORK,
    capability="networks",
    changes_state=True,
    errors=(400, 404, 409, 413, 501),
)
NETWORK_DISCONNECT: Final = Route(
    "NetworkDisconnect",
    "POST",
    "/networks/{id}/disconnect",
    "disconnect_network",
    "Disconnect a container from a network",
    "Networks",
    empty_answer(200),
    body=Body("body", ANY_OBJECT),
    path_args=_NETWORK,
    capability="networks",
    changes_state=True,
    errors=(400, 404, 409, 413, 501),
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

VOLUME_CREATE: Final = Route(
    "VolumeCreate",
    "POST",
    "/volumes",
    "create_volume",
    "Create a volume",
    "Volumes",
    json_answer(ANY_OBJECT, 201),
    body=Body("body", ANY_OBJECT),
    capability="volumes",
    changes_state=True,
    errors=(400, 409, 413, 501),
)
VOLUME_LIST: Final = Route(
    "VolumeList",
    "GET",
    "/volumes",
    "list_volumes",
    "List volumes",
    "Volumes",
    json_answer(ANY_OBJECT),
    query=(Param("filters", Filters({"name", "label", "driver", "dangling"}), "JSON filters"),),
    capability="volumes",
    errors=(400, 501),
)
VOLUME_PRUNE: Final = Route(
    "VolumePrune",
    "POST",
    "/volumes/prune",
    "prune_volumes",
    "Remove unused volumes",
    "Volumes",
    json_answer(ANY_OBJECT),
    query=(Param("filters", Filters({"label", "all"}), "JSON filters"),),
    capability="volumes",
    changes_state=True,
    errors=(400, 501),
)
VOLUME_INSPECT: Final = Route(
    "VolumeInspect",
    "GET",
    "/volumes/{name}",
    "inspect_volume",
    "Inspect a volume",
    "Volumes",
    json_answer(ANY_OBJECT),
    path_args=_VOLUME,
    errors=(404, 501),
)
VOLUME_REMOVE: Final = Route(
    "VolumeDelete",
    "DELETE",
    "/volumes/{name}",
    "remove_volume",
    "Remove a volume",
    "Volumes",
    empty_answer(),
    query=(Param("force", Flag(), "Remove even if in use"),),
    path_args=_VOLUME,
    capability="volumes",
    changes_state=True,
    errors=(400, 404, 409, 501),
)
VOLUMES: Final = (VOLUME_CREATE, VOLUME_LIST, VOLUME_PRUNE, VOLUME_INSPECT, VOLUME_REMOVE)
