"""Images: prepared for Lambda at pull (or at the first create), or recorded as references.

With ``lambda.prepare_images`` (the default) a pull runs :class:`~.prepare.ImagePreparer`: the image
is copied into ECR with the bootstrap added, and its record keeps the SOURCE image's config, ID
(its config digest), repo digest, size and platform, and the prepared image's URI, which every
function of the image runs. A create of an image not prepared yet prepares it first (no progress
shown), and gets the image's defaults (:func:`~.image_defaults.apply_image_defaults`). ``docker
rmi`` forgets the record only: the prepared copy stays in ECR (docs/images.md).

Without preparation (``prepare_images`` false, or the container label ``sockerless.lambda.prepare=
false``) what follows holds: Lambda pulls the image itself when a function is created, so sockerless
only records references.

``pull`` checks and normalises the reference, remembers it and reports Docker-style progress;
``inspect`` and the list answer from what was recorded (by a pull, a tag or a container create);
``remove`` and ``prune`` forget references with Docker's rules and answers. Nothing here calls AWS:
whether Lambda can pull the image (an ECR repository in the function's region) shows at container
create, and removing an image here never touches the registry or a function already created.

An image is its references: each is one record of the store, and the image goes when its last
reference goes. So no image is ever "dangling" (Docker's untagged image): ``image prune`` without
``-a`` has nothing to remove, and ``docker rmi -f`` of the last reference of an image a container
uses deletes the image's record (the container's function keeps the image it was created with).

The digest of a reference a pull recorded by tag is the image ID (the registry is not asked for its
manifest): ``RepoDigests`` shows it and it resolves to the image here, but the registry does not know
it, so a function created from a pin by it gets the tag it stands for (:meth:`ImageService.image_uri`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs

from sockerless.backend import Filters
from sockerless.errors import Conflict, InvalidParameter, NotFound, UpstreamError
from sockerless.events import EventBus
from sockerless.models import (
    ContainerConfig,
    ContainerCreateRequest,
    Image,
    ImageDeleteResponseItem,
    ImagePruneResponse,
    ImagePullRequest,
    ImageSummary,
    RootFS,
)
from sockerless.references import Reference, parse_reference
from sockerless.store import ImageRecord, Store
from sockerless.wire import converter, format_time, parse_time
from sockerless_lambda.image_defaults import apply_image_defaults
from sockerless_lambda.prepare import ImagePreparer, Prepared, SourceUnreachable
from sockerless_lambda.registry import Credentials, credentials_from_header

__all__ = ["PREPARE_LABEL", "ImageService", "image_id_for", "lambda_image_uri"]

log = logging.getLogger("sockerless.lambda.images")

#: A container label: ``false`` uses the image as it is (an ECR image implementing the Runtime API).
PREPARE_LABEL = "sockerless.lambda.prepare"
# In a record's extra: the prepared image Lambda runs; an image used unprepared (its registry unreachable).
_PREPARED_URI = "prepared_uri"
_AS_IS = "as_is"

# The reference a ``docker tag`` name points at, in the record of that name.
_TAG_OF = "tag_of"
_DOCKER_ARCH = {"x86_64": "amd64", "arm64": "arm64"}


def image_id_for(reference: str, digest: str = "") -> str:
    """The digest when known, else ``sha256`` of the normalised reference (stable across restarts)."""
    return digest or "sha256:" + hashlib.sha256(reference.encode()).hexdigest()


class ImageService:
    def __init__(
        self,
        store: Store[Any],
        *,
        architecture: str,
        events: EventBus,
        preparer: ImagePreparer | None = None,
        as_is_when_unfetchable: bool = False,
    ) -> None:
        self._store = store
        self._events = events
        self._architecture = _DOCKER_ARCH.get(architecture, architecture)
        self._preparer = preparer
        self._as_is_when_unfetchable = as_is_when_unfetchable
        self._preparing: dict[str, asyncio.Future[ImageRecord]] = {}

    async def remember(self, reference: str) -> ImageRecord:
        """The record of ``reference``, created if never pulled (container create records images too)."""
        parsed = parse_reference(reference)
        try:
            return self._store.resolve_image(str(parsed))
        except NotFound:
            pass
        image_id = image_id_for(str(parsed), parsed.digest)
        record = ImageRecord(
            reference=str(parsed),
            id=image_id,
            digest=image_id,  # the registry's when pinned, else the ID (see the module's docstring)
            created=dt.datetime.now(dt.UTC),
            config=ContainerConfig(),
            extra={"architecture": self._architecture},
        )
        await self._store.save_image(record)
        return record

    async def pull(self, request: ImagePullRequest) -> AsyncIterator[dict[str, Any]]:
        """Docker's progress lines of the preparation; without it, the registry is not contacted
        (Lambda pulls at function create)."""
        if self._preparer is not None:
            async for line in self._pull_prepared(request):
                yield line
            return
        parsed = parse_reference(request.reference)
        record = await self.remember(request.reference)  # before the first line: a client may not read on
        self._events.image("pull", str(parsed))
        yield {"status": f"Pulling from {parsed.path}", "id": parsed.tag or parsed.digest}
        yield {"status": f"Digest: {record.digest or record.id}"}
        yield {"status": f"Status: Image is up to date for {parsed}"}

    def inspect(self, name: str) -> Image:
        """The image ``name`` resolves to, with every tag and digest it has whichever one was asked."""
        record = self._store.resolve_image(name)
        tags, digests = _names(self._store.images_with_id(record.id))
        return Image(
            id=record.id,
            repo_tags=tags,
            repo_digests=digests,
            created=format_time(record.created),
            size=int(record.extra.get("size", 0)),
            config=record.config,
            architecture=str(record.extra.get("architecture", self._architecture)),
            os=str(record.extra.get("os", "linux")),
            root_fs=RootFS(layers=[str(d) for d in record.extra.get("diff_ids", [])]),
        )

    def summaries(self) -> list[ImageSummary]:
        """One row per image ID with every tag recorded for it, newest first (``docker images``)."""
        rows: list[ImageSummary] = []
        for image_id in {record.id for record in self._store.images()}:
            records = self._store.images_with_id(image_id)
            first = records[0]
            tags, digests = _names(records)
            rows.append(
                ImageSummary(
                    id=image_id,
                    created=int(first.created.timestamp()) if first.created else 0,
                    size=int(first.extra.get("size", 0)),
                    labels=dict(first.config.labels or {}),
                    repo_tags=tags,
                    repo_digests=digests,
                )
            )
        return sorted(rows, key=lambda row: (-row.created, row.id))

    async def tag(self, name: str, repo: str, tag: str) -> None:
        source = self._store.resolve_image(name)
        target = parse_reference(f"{repo}:{tag}")
        await self._store.save_image(
            ImageRecord(
                reference=str(target),
                id=source.id,
                # A new name has no digest of its own in a registry (Docker shows none for it).
                digest=source.digest
                if parse_reference(source.reference).repository == target.repository
                else "",
                created=source.created,
                config=source.config,
                # A local name the registry does not know: Lambda is to pull what it points at.
                extra={**source.extra, _TAG_OF: source.extra.get(_TAG_OF, source.reference)},
            )
        )
        self._events.image("tag", str(target))

    async def remove(self, name: str, *, force: bool) -> list[ImageDeleteResponseItem]:
        """``docker rmi``: a reference is untagged, an ID removes every reference; the image is deleted
        with its last reference. Docker's conflicts: a container using the image (409, unless forced;
        a running one even then when removing by ID), several repositories when asked by ID."""
        record = self._store.resolve_image(name)
        image_id, short_id = record.id, _short(record.id)
        using = [c for c in self._store.containers() if c.image_id == image_id]
        references = self._store.images_with_id(image_id)
        if _is_id_prefix(image_id, name):
            # In the order of Docker's checks: a running container, several repositories, a stopped one.
            running = [c for c in using if c.status == "running"]
            if running:
                raise _conflict(
                    short_id, f"image is being used by running container {running[0].id[:12]}", hard=True
                )
            if not force and len({parse_reference(r.reference).repository for r in references}) > 1:
                raise _conflict(short_id, "image is referenced in multiple repositories")
            if using and not force:
                raise _conflict(short_id, f"image is being used by stopped container {using[0].id[:12]}")
            return await self._forget(references, image_id)
        if not force and len(references) == 1 and using:
            raise Conflict(
                f'conflict: unable to remove repository reference "{name}" (must force) - '
                f"container {using[0].id[:12]} is using its referenced image {short_id}"
            )
        removed = parse_reference(record.reference)
        gone = [record]
        if not removed.digest:
            # As Docker: a repository's digest references go with its last tag.
            remaining = [r for r in references if r is not record]
            same = [r for r in remaining if parse_reference(r.reference).repository == removed.repository]
            if not any(
                parse_reference(r.reference).tag and not parse_reference(r.reference).digest for r in same
            ):
                gone.extend(same)
        return await self._forget(gone, image_id)

    async def prune(self, filters: Filters) -> ImagePruneResponse:
        """``docker image prune``: no image is dangling here (see the module's docstring), so only
        ``dangling=false`` (``-a``) removes anything: every image no container uses, that ``until``
        and ``label``/``label!`` select."""
        dangling_only = True
        for value in filters.get("dangling", []):
            if value not in ("true", "false", "1", "0"):
                raise InvalidParameter(f"invalid filter 'dangling={value}'")
            dangling_only = value in ("true", "1")
        if dangling_only:
            return ImagePruneResponse()
        limits = [parse_time(value) for value in filters.get("until", [])]
        deleted: list[ImageDeleteResponseItem] = []
        used = {c.image_id for c in self._store.containers()}
        for image_id in sorted({record.id for record in self._store.images()} - used):
            references = self._store.images_with_id(image_id)
            first = references[0]
            labels = first.config.labels or {}
            if any(
                limit is not None and (first.created is None or first.created >= limit) for limit in limits
            ):
                continue
            if not all(_label_matches(labels, wanted) for wanted in filters.get("label", [])):
                continue
            if any(_label_matches(labels, unwanted) for unwanted in filters.get("label!", [])):
                continue
            deleted.extend(await self._forget(references, image_id))
        return ImagePruneResponse(images_deleted=deleted)

    async def _forget(self, records: list[ImageRecord], image_id: str) -> list[ImageDeleteResponseItem]:
        """Delete ``records`` (references to ``image_id``) in one transaction; Docker's answer."""
        await self._store.delete_images([record.reference for record in records])
        answer = [
            ImageDeleteResponseItem(untagged=parse_reference(record.reference).familiar) for record in records
        ]
        for record in records:
            self._events.image("untag", record.reference)
        if not self._store.images_with_id(image_id):
            answer.append(ImageDeleteResponseItem(deleted=image_id))
            self._events.image("delete", image_id)
        return answer

    def image_uri(self, reference: str) -> str:
        """What Lambda is to pull for ``reference``, in a form Lambda accepts.

        A name given by ``docker tag`` is a local name the registry does not know: the reference it
        points at is pulled instead; so is the tag a pin by a digest this backend made stands for (the
        image ID a pull by tag reports). Lambda refuses a repository without a tag and
        ``repo:tag@sha256:...``: the first gets Docker's ``latest``, the second keeps only its digest.
        """
        try:
            wanted = parse_reference(reference)
        except InvalidParameter:
            return reference  # refused with Docker's message when the container's image is recorded
        try:
            record = self._store.resolve_image(reference)
        except NotFound:
            return _lambda_uri(wanted)
        made_here = record.digest == record.id == image_id_for(record.reference)
        if _TAG_OF in record.extra:
            return _lambda_uri(parse_reference(str(record.extra[_TAG_OF])))
        if wanted.digest and wanted.digest == record.digest and made_here:
            return _lambda_uri(parse_reference(record.reference))
        return _lambda_uri(wanted)

    # ------------------------------------------------------------------ preparation

    async def _pull_prepared(self, request: ImagePullRequest) -> AsyncIterator[dict[str, Any]]:
        """The preparation's progress as it happens, then Docker's closing lines."""
        parsed = parse_reference(request.reference)
        credentials = credentials_from_header(request.auth)
        try:
            before: ImageRecord | None = self._store.resolve_image(str(parsed))
        except NotFound:
            before = None
        lines: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        work = asyncio.ensure_future(self._prepare(parsed, credentials, lines.put_nowait))
        work.add_done_callback(lambda _done: lines.put_nowait(None))
        try:
            while (line := await lines.get()) is not None:
                yield line
            record = work.result()
        finally:
            if not work.done():  # the client went away: the preparation stops (a later one resumes it)
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
        self._events.image("pull", str(parsed))
        yield {"status": f"Digest: {record.digest or record.id}"}
        same = before is not None and (before.id, before.digest) == (record.id, record.digest)
        news = "Image is up to date" if same else "Downloaded newer image"
        yield {"status": f"Status: {news} for {parsed.familiar}"}

    async def _prepare(
        self, parsed: Reference, credentials: Credentials, emit: Callable[[dict[str, Any]], None]
    ) -> ImageRecord:
        """Prepare ``parsed`` and record it; an unreachable source registry fails, or with
        ``lambda.unfetchable_images`` as_is records the image to be used as it is, saying so."""
        assert self._preparer is not None
        try:
            prepared = await self._preparer.prepare(parsed, credentials, emit)
        except SourceUnreachable as exc:
            if not self._as_is_when_unfetchable:
                raise UpstreamError(
                    f"cannot pull {parsed.familiar}: {exc.message} (no network?; "
                    "lambda.unfetchable_images=as_is uses such images as they are)"
                ) from exc
            note = (
                f"{exc.message}: {parsed.familiar} is used as it is, unprepared (Lambda is to pull the "
                "reference itself; the embedded simulator runs the command on this machine, not in the image)"
            )
            emit({"status": note})
            log.warning(note, extra={"fields": {"image": str(parsed)}})
            record = await self.remember(str(parsed))
            if not record.extra.get(_AS_IS):
                record.extra = {**record.extra, _AS_IS: True}
                await self._store.save_image(record)
            return record
        record = _record_of(parsed, prepared, self._architecture)
        await self._store.save_image(record)
        return record

    async def for_create(self, request: ContainerCreateRequest) -> tuple[ContainerCreateRequest, str]:
        """The request with its image's defaults (Docker's create), and the image URI Lambda runs:
        the prepared image's, prepared now if it never was; as before when preparation is off."""
        config = request.config
        wanted = (config.labels or {}).get(PREPARE_LABEL, "true").lower() not in ("false", "0", "no")
        if self._preparer is None or not wanted:
            return request, self.image_uri(config.image)
        record = await self._prepared(config.image)
        uri = str(record.extra.get(_PREPARED_URI) or "") or self.image_uri(config.image)
        return attrs.evolve(request, config=apply_image_defaults(config, record.config)), uri

    async def _prepared(self, image: str) -> ImageRecord:
        """The record of ``image`` once prepared (a ``docker tag`` name: of what it names); concurrent
        creates of one image share one preparation."""
        parsed = parse_reference(image)
        try:
            record = self._store.resolve_image(str(parsed))
        except NotFound:
            record = None
        if record is not None and _TAG_OF in record.extra:
            return await self._prepared(str(record.extra[_TAG_OF]))
        if record is not None and (_PREPARED_URI in record.extra or record.extra.get(_AS_IS)):
            return record
        key = str(parsed)
        pending = self._preparing.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._prepare(parsed, Credentials(), lambda _line: None))
            self._preparing[key] = pending
            pending.add_done_callback(lambda _done: self._preparing.pop(key, None))
        return await asyncio.shield(pending)

    def count(self) -> int:
        """Images, as ``docker info`` counts them: by ID, not by reference."""
        return len({record.id for record in self._store.images()})


def lambda_image_uri(reference: str) -> str:
    """``reference`` in the form Lambda accepts (see :func:`_lambda_uri`); an invalid one as it is."""
    try:
        return _lambda_uri(parse_reference(reference))
    except InvalidParameter:
        return reference


def _lambda_uri(reference: Reference) -> str:
    """``repo:tag`` or ``repo@sha256:...`` (Lambda refuses both together, and a bare ``repo``), with the
    registry as the user wrote it (``alpine``, not ``docker.io/library/alpine``)."""
    return reference.familiar_name + (f"@{reference.digest}" if reference.digest else f":{reference.tag}")


def _record_of(parsed: Reference, prepared: Prepared, architecture: str) -> ImageRecord:
    """The store's record of a prepared image: the source's config, ID and digest; the prepared URI."""
    document = prepared.config
    return ImageRecord(
        reference=str(parsed),
        id=prepared.config_digest,
        digest=prepared.source_digest,
        created=parse_time(str(document.get("created") or "")) or dt.datetime.now(dt.UTC),
        config=converter.structure(document.get("config") or {}, ContainerConfig),
        extra={
            "architecture": str(document.get("architecture") or architecture),
            "os": str(document.get("os") or "linux"),
            "size": prepared.size,
            "diff_ids": list((document.get("rootfs") or {}).get("diff_ids") or []),
            "platform_digest": prepared.platform_digest,
            _PREPARED_URI: prepared.uri,
        },
    )


def _names(records: list[ImageRecord]) -> tuple[list[str], list[str]]:
    """``RepoTags`` and ``RepoDigests`` of the image these records refer to, in Docker's short form
    (``alpine:latest``, ``alpine@sha256:...``), sorted as Docker sorts them."""
    tags: set[str] = set()
    digests: set[str] = set()
    for record in records:
        parsed = parse_reference(record.reference)
        if parsed.tag and not parsed.digest:
            tags.add(parsed.familiar)
        digest = parsed.digest or record.digest
        if digest:
            digests.add(f"{parsed.familiar_name}@{digest}")
    return sorted(tags), sorted(digests)


def _short(image_id: str) -> str:
    """Docker's ``stringid.TruncateID``: the hex after the algorithm, 12 characters of it."""
    return image_id.partition(":")[2][:12]


def _is_id_prefix(image_id: str, name: str) -> bool:
    """Docker's test whether ``docker rmi NAME`` names the image by its ID rather than a reference."""
    return image_id.startswith(name) or image_id.partition(":")[2].startswith(name)


def _conflict(short_id: str, reason: str, *, hard: bool = False) -> Conflict:
    forced = "cannot be forced" if hard else "must be forced"
    return Conflict(f"conflict: unable to delete {short_id} ({forced}) - {reason}")


def _label_matches(labels: dict[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)
