"""Image preparation: any image made into one Lambda runs, without a Docker daemon (docs/images.md).

The source image's platform manifest (``linux/<arch>`` of a list or index) and config are read; its
layers are copied into the target repository (ECR) unless there already, streamed chunk by chunk; one
layer holding the bootstrap (``/opt/sockerless/bootstrap``) is appended; a new config names it as the
entrypoint; and a single-platform Docker v2 manifest is written LAST, tagged by a content hash of
(source manifest digest, bootstrap layer digest). A preparation cut short (a crash) leaves blobs no
manifest names yet, never a manifest naming a missing blob; the next one finds the blobs and goes on.
A repeated preparation finds the tag and uploads nothing.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import io
import json
import re
import tarfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
from attrs import define, frozen

from sockerless.errors import InvalidParameter, NotFound, SockerlessError
from sockerless.references import Reference
from sockerless_lambda.aws import AwsSettings
from sockerless_lambda.bootstrap import binary_path
from sockerless_lambda.config import LambdaConfig
from sockerless_lambda.ecr import EcrRegistry, PlainRegistry, TargetRegistry
from sockerless_lambda.registry import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    Credentials,
    Manifest,
    RegistryClient,
    RegistryUnreachable,
    registry_url,
    sha256_digest,
)

__all__ = [
    "BOOTSTRAP_PATH",
    "BootstrapLayer",
    "ImagePreparer",
    "Prepared",
    "SourceUnreachable",
    "bootstrap_layer",
    "docker_arch",
]

BOOTSTRAP_PATH = "/opt/sockerless/bootstrap"
Emit = Callable[[dict[str, Any]], None]

_DOCKER_ARCH = {"x86_64": "amd64", "arm64": "arm64"}
#: Layers copied at once (Docker's default for pulls is 3 concurrent downloads).
_CONCURRENT_LAYERS = 3
_ECR_HOST = re.compile(r"\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
# A registry that accepts no connection, or stops sending, within these is taken as failing (retried).
_CONNECT_SECONDS, _READ_SECONDS = 15.0, 120.0
# Layer media types and what a Docker v2 manifest calls them; zstd has no Docker v2 name.
_LAYER_TYPES = {
    DOCKER_LAYER: DOCKER_LAYER,
    "application/vnd.oci.image.layer.v1.tar+gzip": DOCKER_LAYER,
    "application/vnd.docker.image.rootfs.diff.tar": "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.oci.image.layer.v1.tar": "application/vnd.docker.image.rootfs.diff.tar",
}


def docker_arch(architecture: str) -> str:
    """``lambda.architecture`` (``x86_64``, ``arm64``) as image platforms name it (``amd64``...)."""
    return _DOCKER_ARCH.get(architecture, architecture)


class SourceUnreachable(RegistryUnreachable):
    """The image's own registry did not answer (no network): not the target's failure."""


@frozen
class BootstrapLayer:
    """The appended layer: a reproducible gzip'd tar of the bootstrap (its digest is stable)."""

    blob: bytes
    diff_id: str

    @property
    def digest(self) -> str:
        return sha256_digest(self.blob)


@functools.cache
def _layer_of(path: Path, _size: int, _mtime_ns: int) -> BootstrapLayer:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for directory in ("opt", "opt/sockerless"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        data = path.read_bytes()
        info = tarfile.TarInfo(BOOTSTRAP_PATH.lstrip("/"))
        info.size, info.mode = len(data), 0o755  # mtime 0, uid/gid 0, no owner names: TarInfo's defaults
        tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    return BootstrapLayer(
        blob=gzip.compress(tar_bytes, compresslevel=9, mtime=0), diff_id=sha256_digest(tar_bytes)
    )


async def bootstrap_layer(architecture: str) -> BootstrapLayer:
    """The layer for ``architecture`` (``x86_64``/``arm64``), made once per binary (off the event loop)."""
    try:
        path = binary_path(architecture)
        stat = path.stat()
    except (FileNotFoundError, ValueError) as exc:
        raise SockerlessError(f"cannot prepare images: {exc}") from exc
    return await asyncio.to_thread(_layer_of, path, stat.st_size, stat.st_mtime_ns)


@define
class Prepared:
    """A prepared image: what the store records of the source, and the URI Lambda runs."""

    source_digest: str  # what was pulled (a list's or index's digest when it was one): RepoDigests
    platform_digest: str  # the single-platform manifest of the source
    config: dict[str, Any]  # the source image's config document
    config_digest: str  # the image ID, as Docker's
    size: int  # the layers' compressed sizes
    uri: str  # <registry host>/<repository>@sha256:...
    bytes_copied: int = 0
    blobs_uploaded: int = 0


class ImagePreparer:
    """Prepares images into ``repository`` of ``target`` for ``architecture`` (``x86_64``/``arm64``)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        target: TargetRegistry,
        *,
        architecture: str,
        repository: str,
        attempts: int = 4,
        backoff: float = 0.2,
    ) -> None:
        self._session = session
        self._target = target
        self._architecture = architecture
        self._platform = docker_arch(architecture)
        self._repository = repository
        self._attempts = attempts
        self._backoff = backoff
        self._owns_session = False

    @classmethod
    def open(cls, config: LambdaConfig, settings: AwsSettings) -> ImagePreparer:
        """The backend's preparer: into ``lambda.registry_url`` when set, else the account's ECR.
        Its HTTP session is its own (:meth:`close`)."""
        target: TargetRegistry = (
            PlainRegistry(config.registry_url) if config.registry_url else EcrRegistry(settings)
        )
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(sock_connect=_CONNECT_SECONDS, sock_read=_READ_SECONDS)
        )
        preparer = cls(session, target, architecture=config.architecture, repository=config.ecr_repository)
        preparer._owns_session = True
        return preparer

    async def close(self) -> None:
        await self._target.close()
        if self._owns_session:
            await self._session.close()

    def source_client(self, reference: Reference, credentials: Credentials) -> RegistryClient:
        return RegistryClient(
            self._session,
            registry_url(reference.domain),
            credentials,
            attempts=self._attempts,
            backoff=self._backoff,
        )

    async def resolve(
        self, reference: Reference, credentials: Credentials, emit: Emit
    ) -> tuple[RegistryClient, Manifest, Manifest, dict[str, Any]]:
        """The source's top manifest, its platform manifest and config (RegistryUnreachable when the
        registry cannot be reached: the caller decides whether to use the image as it is)."""
        if not credentials.given and _ECR_HOST.search(reference.domain):
            # An ECR image with no credentials from the client: the backend's own ECR token, when
            # the image is in the registry prepared images go to (the account's).
            place = await self._target.target()
            if place.url.split("://", 1)[-1] == reference.domain:
                credentials = place.credentials
        source = self.source_client(reference, credentials)
        try:
            top = await source.get_manifest(
                reference.path, reference.digest or reference.tag, display=reference.familiar
            )
        except RegistryUnreachable as exc:
            raise SourceUnreachable(exc.message, lasting=exc.lasting) from exc
        # As Docker: after the manifest is found (a missing one is the pull's error answer, no stream).
        emit({"status": f"Pulling from {reference.path}", "id": reference.tag or reference.digest})
        manifest = top
        if top.is_index:
            manifest = await source.get_manifest(reference.path, self._pick(top, reference))
        document = manifest.document()
        config_digest = str(document["config"]["digest"])
        config_bytes = await source.retrying(lambda: source.read_blob(reference.path, config_digest))
        config = json.loads(config_bytes)
        found = f"{config.get('os', 'linux')}/{config.get('architecture', '')}"
        if found != f"linux/{self._platform}":
            raise InvalidParameter(
                f"image {reference.familiar} is {found}: functions of architecture {self._architecture} "
                f"run linux/{self._platform} images (lambda.architecture)"
            )
        return source, top, manifest, config

    def _pick(self, index: Manifest, reference: Reference) -> str:
        for entry in index.document().get("manifests", []):
            platform = entry.get("platform") or {}
            if platform.get("os") == "linux" and platform.get("architecture") == self._platform:
                return str(entry["digest"])
        raise NotFound(
            f"no matching manifest for linux/{self._platform} in the manifest list entries "
            f"of {reference.familiar}"
        )

    async def prepare(self, reference: Reference, credentials: Credentials, emit: Emit) -> Prepared:
        source, top, manifest, config = await self.resolve(reference, credentials, emit)
        layers = list(manifest.document().get("layers", []))
        for layer in layers:
            if layer.get("mediaType") not in _LAYER_TYPES:
                raise InvalidParameter(
                    f"image {reference.familiar} has a layer of type {layer.get('mediaType')}, which a "
                    "Docker v2 manifest for Lambda cannot name (gzip or plain tar layers only)"
                )
        bootstrap = await bootstrap_layer(self._architecture)
        tag = "prepared-" + hashlib.sha256(f"{manifest.digest}\n{bootstrap.digest}".encode()).hexdigest()
        place = await self._target.target()
        await self._target.ensure_repository(self._repository)
        target = RegistryClient(
            self._session, place.url, place.credentials, attempts=self._attempts, backoff=self._backoff
        )
        prepared = Prepared(
            source_digest=top.digest,
            platform_digest=manifest.digest,
            config=config,
            config_digest=str(manifest.document()["config"]["digest"]),
            size=sum(int(layer.get("size", 0)) for layer in layers),
            uri="",
        )
        existing = await target.manifest_digest(self._repository, tag)
        if existing is not None:
            for layer in layers:
                emit({"status": "Already exists", "id": _short(layer["digest"])})
            emit({"status": "Already exists (sockerless bootstrap)", "id": _short(bootstrap.digest)})
            prepared.uri = f"{target.host}/{self._repository}@{existing}"
            return prepared
        copy = _Copy(source, target, reference.path, self._repository, emit, prepared)
        gate = asyncio.Semaphore(_CONCURRENT_LAYERS)

        async def one(layer: dict[str, Any]) -> None:
            async with gate:
                await copy.layer(str(layer["digest"]), int(layer.get("size", 0)))

        for layer in layers:
            emit({"status": "Pulling fs layer", "id": _short(layer["digest"])})
        await asyncio.gather(*(one(layer) for layer in layers))
        await copy.bytes_blob(bootstrap.blob, bootstrap.digest)
        emit({"status": "Added the sockerless bootstrap layer", "id": _short(bootstrap.digest)})
        new_config = _bootstrapped_config(config, bootstrap)
        await copy.bytes_blob(new_config, sha256_digest(new_config))
        body = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": DOCKER_CONFIG,
                "size": len(new_config),
                "digest": sha256_digest(new_config),
            },
            "layers": [
                {
                    "mediaType": _LAYER_TYPES[layer["mediaType"]],
                    "size": layer["size"],
                    "digest": layer["digest"],
                }
                for layer in layers
            ]
            + [{"mediaType": DOCKER_LAYER, "size": len(bootstrap.blob), "digest": bootstrap.digest}],
        }
        raw = json.dumps(body, indent=3).encode()
        written = Manifest(body=raw, media_type=DOCKER_MANIFEST, digest=sha256_digest(raw))
        # Last, once every blob it names is in place.
        digest = await target.put_manifest(self._repository, tag, written)
        prepared.uri = f"{target.host}/{self._repository}@{digest}"
        return prepared


class _Copy:
    """Blobs from the source repository into the target one, counted."""

    def __init__(
        self,
        source: RegistryClient,
        target: RegistryClient,
        source_repository: str,
        repository: str,
        emit: Emit,
        prepared: Prepared,
    ) -> None:
        self._source, self._target = source, target
        self._source_repository, self._repository = source_repository, repository
        self._emit = emit
        self._prepared = prepared

    async def layer(self, digest: str, size: int) -> None:
        short = _short(digest)
        if await self._target.has_blob(self._repository, digest):
            self._emit({"status": "Already exists", "id": short})
            return
        if self._source.base == self._target.base:
            location = await self._target.mount_blob(self._repository, digest, self._source_repository)
            if location is None:
                self._emit({"status": "Already exists", "id": short})
                return

        def progress(current: int) -> None:
            self._emit(
                {"status": "Downloading", "progressDetail": {"current": current, "total": size}, "id": short}
            )

        async def copy() -> None:
            chunks = self._source.stream_blob(self._source_repository, digest)
            sent = await self._target.upload_blob(self._repository, digest, chunks, progress=progress)
            self._prepared.bytes_copied += sent
            self._prepared.blobs_uploaded += 1

        await self._target.retrying(copy)
        self._emit({"status": "Download complete", "id": short})
        self._emit({"status": "Pull complete", "id": short})

    async def bytes_blob(self, data: bytes, digest: str) -> None:
        if await self._target.has_blob(self._repository, digest):
            return

        async def upload() -> None:
            sent = await self._target.upload_blob(self._repository, digest, _once(data))
            self._prepared.bytes_copied += sent
            self._prepared.blobs_uploaded += 1

        await self._target.retrying(upload)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _bootstrapped_config(config: dict[str, Any], bootstrap: BootstrapLayer) -> bytes:
    """The source config with the bootstrap as entrypoint (Cmd cleared), its layer's diff_id and a
    history entry appended; Env, WorkingDir and the rest kept."""
    document = json.loads(json.dumps(config))  # a copy
    settings = dict(document.get("config") or {})
    settings["Entrypoint"] = [BOOTSTRAP_PATH]
    settings["Cmd"] = None
    document["config"] = settings
    rootfs = dict(document.get("rootfs") or {"type": "layers"})
    rootfs["diff_ids"] = [*(rootfs.get("diff_ids") or []), bootstrap.diff_id]
    document["rootfs"] = rootfs
    history = list(document.get("history") or [])
    history.append(
        {
            "created": document.get("created", "1970-01-01T00:00:00Z"),
            "created_by": f"sockerless: the bootstrap as {BOOTSTRAP_PATH}, the entrypoint",
            "comment": "sockerless image preparation",
        }
    )
    document["history"] = history
    return json.dumps(document, separators=(",", ":")).encode()


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12]
