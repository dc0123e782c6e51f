"""What the store keeps: a container's record (its creation, its state, the backend's own typed state)
and an image's record."""

from __future__ import annotations

import datetime as dt
from typing import Any, Generic, TypeVar

import attrs
from attrs import define

from sockerless.models import ContainerConfig, HostConfig

__all__ = ["ContainerRecord", "ImageRecord", "S"]

#: The backend's own per-container state: an attrs class of the plugin's (``None`` for a backend
#: without one). The store writes and reads it with the project's converter.
S = TypeVar("S")


@define
class ContainerRecord(Generic[S]):
    """Everything a backend knows about one container.

    What the container was created as (``id`` to ``image_id``) is written once, at create; ``name``
    changes only by a rename. The rest is its state, written by ``Store.save_state`` at every step of
    its life, with ``backend_state``; every such write counts up ``revision``.
    """

    id: str  # 64 hex
    name: str  # without the leading "/"
    created: dt.datetime
    image: str  # the reference as the user gave it (Config.Image)
    config: ContainerConfig
    host_config: HostConfig
    backend_state: S
    image_id: str = ""
    status: str = "created"  # created | running | exited | dead | removing
    exit_code: int = 0
    error: str = ""
    pid: int = 0
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    restart_count: int = 0
    #: How many times the store was asked to write this record since it was loaded or created (never
    #: stored): what is derived from the record, such as its cached views (:class:`sockerless.views.
    #: ViewCache`), is current while this has not changed.
    revision: int = attrs.field(default=0, eq=False, repr=False)

    @property
    def labels(self) -> dict[str, str]:
        return self.config.labels or {}


@define
class ImageRecord:
    reference: str  # normalised, e.g. "docker.io/library/alpine:latest" or "123.dkr.ecr...../repo:tag"
    id: str  # "sha256:<64 hex>"
    digest: str = ""  # "sha256:..." when known
    created: dt.datetime | None = None
    config: ContainerConfig = attrs.Factory(ContainerConfig)
    extra: dict[str, Any] = attrs.Factory(dict)
