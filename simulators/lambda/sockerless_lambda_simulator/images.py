"""Function images in the simulator's ECR (a real registry on loopback): checked at CreateFunction, read
and unpacked at Init.

Lambda takes a single-platform image by tag or digest; a manifest list or OCI index is refused, and so is
an image that does not exist, both at CreateFunction with ``InvalidParameterValueException`` and the
wording AWS uses. Only what a run needs is read: the manifest, the image config (Entrypoint, Cmd, Env,
WorkingDir, User) and the layer blobs, streamed to files and checked against their digests before they
are unpacked (:mod:`.rootfs`). The registry speaks the plain distribution API without authentication, so
a few aiohttp calls do; the product's registry client, for any registry, is the backend's.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp
from attrs import frozen

from .errors import AwsError
from .rootfs import LayerFiles, RootfsCache

__all__ = ["EcrImages", "ImageConfig", "ImageProblem", "ImageReference", "PulledImage"]

log = logging.getLogger(__name__)

_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_LISTS = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
_ACCEPT = ", ".join((_DOCKER_MANIFEST, _OCI_MANIFEST, *_LISTS))
_CHUNK = 1 << 20
# ECR's authorization tokens are valid 12 hours.
_TOKEN_SECONDS = 12 * 3600
_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)


class ImageProblem(Exception):
    """The image cannot be run: ``missing`` (no such manifest), ``unsupported`` (a list/index or an
    unknown media type) or ``unavailable`` (the registry did not answer, a blob is wrong)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@frozen
class ImageReference:
    """``host/repository:tag`` or ``host/repository@sha256:...``."""

    host: str
    repository: str
    reference: str

    @classmethod
    def parse(cls, uri: str) -> ImageReference | None:
        host, slash, rest = uri.partition("/")
        if not slash or not rest:
            return None
        if "@" in rest:
            repository, _, reference = rest.partition("@")
        else:
            repository, colon, reference = rest.rpartition(":")
            if not colon or "/" in reference:
                return None
        return cls(host, repository, reference) if repository and reference else None


@frozen
class ImageConfig:
    """What the image's config says about how it runs."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str = ""
    user: str = ""
    diff_ids: tuple[str, ...] = ()
    """The sha256 of each uncompressed layer, checked as each is unpacked."""

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> ImageConfig:
        config = document.get("config") or {}
        env = []
        for item in config.get("Env") or ():
            key, _, value = str(item).partition("=")
            env.append((key, value))
        return cls(
            entrypoint=tuple(str(part) for part in config.get("Entrypoint") or ()),
            cmd=tuple(str(part) for part in config.get("Cmd") or ()),
            env=tuple(env),
            working_dir=str(config.get("WorkingDir") or ""),
            user=str(config.get("User") or ""),
            diff_ids=tuple(str(item) for item in (document.get("rootfs") or {}).get("diff_ids") or ()),
        )

    def argv(self, entrypoint: tuple[str, ...], command: tuple[str, ...]) -> tuple[str, ...]:
        """The function's ImageConfig over the image's own, as Docker overrides: a new EntryPoint drops
        the image's Cmd unless a Command is given too."""
        if entrypoint:
            return entrypoint + command
        return self.entrypoint + (command or self.cmd)


@frozen
class PulledImage:
    uri: str
    digest: str
    config: ImageConfig
    root: Path
    """The unpacked root filesystem (shared, never written: it is mounted read-only)."""


class EcrImages:
    """Images of the simulator's ECR registry at ``host`` (``127.0.0.1:PORT``); trees in ``cache``."""

    def __init__(self, host: str, cache: RootfsCache) -> None:
        self.host = host
        self.cache = cache
        self._session: aiohttp.ClientSession | None = None
        self._configs: dict[str, ImageConfig] = {}

    def authorization(self) -> dict[str, Any]:
        """ECR's GetAuthorizationToken answer for this registry: ``AWS:<password>`` (it takes any)."""
        token = base64.b64encode(f"AWS:{secrets.token_urlsafe(24)}".encode()).decode()
        expires = time.time() + _TOKEN_SECONDS
        data = {"authorizationToken": token, "expiresAt": expires, "proxyEndpoint": f"http://{self.host}"}
        return {"authorizationData": [data]}

    def names(self, uri: str) -> bool:
        """Whether ``uri`` is an image of this registry."""
        reference = ImageReference.parse(uri)
        return reference is not None and reference.host == self.host

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
        return self._session

    async def check(self, uri: str) -> None:
        """Refuse at CreateFunction what Lambda refuses there: an image that does not exist, a list/index."""
        try:
            await self._manifest(uri)
        except ImageProblem as problem:
            if problem.kind == "missing":
                raise AwsError(
                    "InvalidParameterValueException",
                    400,
                    f"Source image {uri} does not exist. Provide a valid source image.",
                ) from None
            if problem.kind == "unsupported":
                raise AwsError(
                    "InvalidParameterValueException",
                    400,
                    f"The image manifest, config or layer media type for the source image {uri} "
                    "is not supported.",
                ) from None
            # The registry did not answer: Init says so and runs the command on this machine.
            log.warning("could not check image %s at CreateFunction: %s", uri, problem)

    async def pull(self, uri: str) -> PulledImage:
        """The image's config and its unpacked root filesystem (cached by manifest digest)."""
        reference = ImageReference.parse(uri)
        assert reference is not None
        digest, manifest = await self._manifest(uri)
        config = self._configs.get(digest)
        if config is None:
            blob = await self._read_blob(reference, _descriptor(manifest.get("config")))
            try:
                config = ImageConfig.from_document(json.loads(blob))
            except (ValueError, AttributeError) as exc:
                raise ImageProblem("unsupported", f"the config of {uri} is not JSON: {exc}") from None
            self._configs[digest] = config
        layers = [_descriptor(layer) for layer in manifest.get("layers") or ()]
        diff_ids = config.diff_ids

        async def download(directory: Path) -> LayerFiles:
            await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
            files: LayerFiles = []
            for index, (layer_digest, _) in enumerate(layers):
                path = directory / f"{index:03d}-{layer_digest.replace(':', '-')}"
                await self._download(reference, layer_digest, path)
                files.append((path, diff_ids[index] if index < len(diff_ids) else None))
            return files

        root = await self.cache.get(digest, download, uri)
        return PulledImage(uri, digest, config, root)

    async def _manifest(self, uri: str) -> tuple[str, dict[str, Any]]:
        reference = ImageReference.parse(uri)
        if reference is None:
            raise ImageProblem("missing", f"{uri} is not an image reference")
        url = f"http://{reference.host}/v2/{reference.repository}/manifests/{reference.reference}"
        try:
            async with self._client().get(url, headers={"Accept": _ACCEPT}) as answer:
                body = await answer.read()
                if answer.status == 404:
                    raise ImageProblem("missing", f"{uri}: no such manifest")
                if answer.status != 200:
                    raise ImageProblem("unavailable", f"{uri}: the registry answered {answer.status}")
                media_type = answer.headers.get("Content-Type", "").split(";")[0].strip()
        except aiohttp.ClientError as exc:
            raise ImageProblem("unavailable", f"{uri}: the registry cannot be reached: {exc}") from None
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.reference.startswith("sha256:") and reference.reference != digest:
            raise ImageProblem("unavailable", f"{uri}: the manifest does not match its digest")
        try:
            manifest = json.loads(body)
        except ValueError:
            raise ImageProblem("unsupported", f"{uri}: the manifest is not JSON") from None
        media_type = str(manifest.get("mediaType") or media_type)
        if media_type in _LISTS or "manifests" in manifest:
            raise ImageProblem("unsupported", f"{uri} is a multi-platform list, not an image")
        if media_type not in (_DOCKER_MANIFEST, _OCI_MANIFEST) or manifest.get("schemaVersion") != 2:
            raise ImageProblem("unsupported", f"{uri}: manifest type {media_type!r} is not supported")
        return digest, manifest

    async def _read_blob(self, reference: ImageReference, descriptor: tuple[str, int]) -> bytes:
        digest, size = descriptor
        url = f"http://{reference.host}/v2/{reference.repository}/blobs/{digest}"
        try:
            async with self._client().get(url) as answer:
                if answer.status != 200:
                    raise ImageProblem("unavailable", f"blob {digest}: the registry answered {answer.status}")
                body = await answer.read()
        except aiohttp.ClientError as exc:
            raise ImageProblem("unavailable", f"blob {digest}: {exc}") from None
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest or (size and len(body) != size):
            raise ImageProblem("unavailable", f"blob {digest} does not match its digest")
        return body

    async def _download(self, reference: ImageReference, digest: str, path: Path) -> None:
        """Stream a blob to ``path`` (never whole in memory), checking its digest."""
        url = f"http://{reference.host}/v2/{reference.repository}/blobs/{digest}"
        hasher = hashlib.sha256()
        try:
            async with self._client().get(url) as answer:
                if answer.status != 200:
                    raise ImageProblem("unavailable", f"blob {digest}: the registry answered {answer.status}")
                handle = await asyncio.to_thread(path.open, "wb")
                try:
                    async for chunk in answer.content.iter_chunked(_CHUNK):
                        hasher.update(chunk)
                        await asyncio.to_thread(handle.write, chunk)
                finally:
                    await asyncio.to_thread(handle.close)
        except aiohttp.ClientError as exc:
            raise ImageProblem("unavailable", f"blob {digest}: {exc}") from None
        if "sha256:" + hasher.hexdigest() != digest:
            raise ImageProblem("unavailable", f"blob {digest} does not match its digest")


def _descriptor(value: Any) -> tuple[str, int]:
    if not isinstance(value, dict) or not isinstance(value.get("digest"), str):
        raise ImageProblem("unsupported", "the manifest names a blob without a digest")
    return str(value["digest"]), int(value.get("size") or 0)
