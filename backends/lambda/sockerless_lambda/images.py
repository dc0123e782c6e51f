"""Images: Lambda pulls the image itself when a function is created, so sockerless only records references.

``pull`` checks and normalises the reference, remembers it and reports Docker-style progress;
``inspect`` and the list answer from what was recorded (by a pull, a tag or a container create). Nothing here
calls AWS: whether Lambda can pull the image (an ECR repository in the function's region) shows at
container create.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from typing import Any

from sockerless.errors import NotFound
from sockerless.events import EventBus
from sockerless.models import ContainerConfig, Image, ImagePullRequest, ImageSummary
from sockerless.references import parse_reference
from sockerless.store import ImageRecord, Store
from sockerless.wire import format_time

__all__ = ["ImageService", "image_id_for"]

_DOCKER_ARCH = {"x86_64": "amd64", "arm64": "arm64"}


def image_id_for(reference: str, digest: str = "") -> str:
    """The digest when known, else ``sha256`` of the normalised reference (stable across restarts)."""
    return digest or "sha256:" + hashlib.sha256(reference.encode()).hexdigest()


class ImageService:
    def __init__(self, store: Store[Any], *, architecture: str, events: EventBus) -> None:
        self._store = store
        self._events = events
        self._architecture = _DOCKER_ARCH.get(architecture, architecture)

    async def remember(self, reference: str) -> ImageRecord:
        """The record of ``reference``, created if never pulled (container create records images too)."""
        parsed = parse_reference(reference)
        try:
            return self._store.resolve_image(str(parsed))
        except NotFound:
            pass
        record = ImageRecord(
            reference=str(parsed),
            id=image_id_for(str(parsed), parsed.digest),
            digest=parsed.digest,
            created=dt.datetime.now(dt.UTC),
            config=ContainerConfig(),
            extra={"architecture": self._architecture},
        )
        await self._store.save_image(record)
        return record

    async def pull(self, request: ImagePullRequest) -> AsyncIterator[dict[str, Any]]:
        """Docker's progress lines; the registry is not contacted (Lambda pulls at function create)."""
        parsed = parse_reference(request.reference)
        record = await self.remember(request.reference)  # before the first line: a client may not read on
        self._events.image("pull", str(parsed))
        yield {"status": f"Pulling from {parsed.path}", "id": parsed.tag or parsed.digest}
        yield {"status": f"Digest: {record.digest or record.id}"}
        yield {"status": f"Status: Image is up to date for {parsed}"}

    def inspect(self, name: str) -> Image:
        record = self._store.resolve_image(name)
        tags, digests = _names(record)
        return Image(
            id=record.id,
            repo_tags=tags,
            repo_digests=digests,
            created=format_time(record.created),
            config=record.config,
            architecture=str(record.extra.get("architecture", self._architecture)),
        )

    def summaries(self) -> list[ImageSummary]:
        """One row per image ID with every tag recorded for it, newest first (``docker images``)."""
        rows: dict[str, ImageSummary] = {}
        for record in self._store.images():
            row = rows.get(record.id)
            if row is None:
                created = int(record.created.timestamp()) if record.created else 0
                labels = dict(record.config.labels or {})
                row = rows[record.id] = ImageSummary(id=record.id, created=created, labels=labels)
            tags, digests = _names(record)
            row.repo_tags.extend(tag for tag in tags if tag not in row.repo_tags)
            row.repo_digests.extend(digest for digest in digests if digest not in row.repo_digests)
        return sorted(rows.values(), key=lambda row: (-row.created, row.id))

    async def tag(self, name: str, repo: str, tag: str) -> None:
        source = self._store.resolve_image(name)
        target = parse_reference(f"{repo}:{tag}")
        await self._store.save_image(
            ImageRecord(
                reference=str(target),
                id=source.id,
                digest=source.digest,
                created=source.created,
                config=source.config,
                extra=dict(source.extra),
            )
        )

    def count(self) -> int:
        return len(list(self._store.images()))


def _names(record: ImageRecord) -> tuple[list[str], list[str]]:
    """The record's ``RepoTags`` (its tag, unless pinned by digest) and ``RepoDigests``."""
    parsed = parse_reference(record.reference)
    tags = [parsed.familiar] if parsed.tag and not parsed.digest else []
    digests = [f"{parsed.repository}@{record.digest}"] if record.digest else []
    return tags, digests
