"""The state store: containers and images, durable in SQLite (aiosqlite), indexed in memory.

INTERFACE STUB - being implemented. The signatures below are the contract.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import attrs
from attrs import define

from sockerless.models import ContainerConfig, HostConfig

__all__ = ["ContainerRecord", "ImageRecord", "Store"]


@define
class ContainerRecord:
    """Everything the backend knows about one container. ``backend_fields`` is the plugin's own
    (function name and ARN, invocation status, request ID, log stream, ...), stored as JSON."""

    id: str  # 64 hex
    name: str  # without the leading "/"
    created: dt.datetime
    image: str  # the reference as the user gave it (Config.Image)
    config: ContainerConfig
    host_config: HostConfig
    image_id: str = ""
    status: str = "created"  # created | running | exited | dead | removing
    exit_code: int = 0
    error: str = ""
    pid: int = 0
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    restart_count: int = 0
    backend_fields: dict[str, Any] = attrs.Factory(dict)

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


class Store:
    """Single-writer store. Reads are served from memory, writes are committed before they return."""

    @classmethod
    async def open(cls, path: str, *, synchronous: str = "normal") -> Store:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    # containers
    async def add_container(self, record: ContainerRecord) -> None:
        """Insert; raises Conflict (Docker's message) when the name is taken."""
        raise NotImplementedError

    async def save_container(self, record: ContainerRecord) -> None:
        """Update an existing record (all fields); raises NotFound if it was removed."""
        raise NotImplementedError

    async def delete_container(self, container_id: str) -> None:
        raise NotImplementedError

    def resolve_container(self, ref: str) -> ContainerRecord:
        """Full ID, unique ID prefix, or name with or without "/"; NotFound ("No such container: ref")."""
        raise NotImplementedError

    def get_container(self, container_id: str) -> ContainerRecord | None:
        raise NotImplementedError

    def containers(self) -> Iterable[ContainerRecord]:
        """All containers, newest first."""
        raise NotImplementedError

    # images
    async def save_image(self, record: ImageRecord) -> None:
        raise NotImplementedError

    def resolve_image(self, ref: str) -> ImageRecord:
        """By normalised reference, short name (alpine -> docker.io/library/alpine:latest), ID or ID prefix."""
        raise NotImplementedError

    def images(self) -> Iterable[ImageRecord]:
        raise NotImplementedError

    async def delete_image(self, reference: str) -> None:
        raise NotImplementedError
