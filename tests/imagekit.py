"""Small real images for tests, built without Docker and without the internet, pushed to a local registry.

A layer is a gzip'd tar made here; :func:`busybox_layer` holds Debian's static busybox (``busybox-static``)
with links for the usual commands and an ``/etc/os-release`` of its own, so a command that runs inside
the image's filesystem prints that file and not the host's. :func:`push_image` uploads the blobs and the
manifest with the distribution API's plain calls (``POST`` an upload, ``PUT`` it with its digest), as
``docker push`` does; :func:`push_index` makes a multi-platform image of several.

These are test fixtures, written for clarity: the product's registry client is the backend's own.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Mapping
from typing import Any

import aiohttp
from attrs import frozen

__all__ = [
    "BUSYBOX_COMMANDS",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "OS_RELEASE",
    "Image",
    "Layer",
    "busybox_available",
    "busybox_layer",
    "busybox_path",
    "file_layer",
    "image",
    "push_image",
    "push_index",
]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
BUSYBOX_INSTALL_HINT = "install Debian's busybox-static package: apt-get install -y busybox-static"

#: What the test image's ``/etc/os-release`` says (a host's never says it).
OS_RELEASE = b'NAME="sockerless test busybox"\nID=sockerless-test-busybox\n'
BUSYBOX_COMMANDS = ("sh", "echo", "cat", "sleep", "ls", "env", "pwd", "printf", "true", "false", "id", "head")
_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@frozen
class Layer:
    """A layer blob (gzip'd tar) with its digest and the digest of its uncompressed tar (diff_id)."""

    blob: bytes
    diff_id: str

    @property
    def digest(self) -> str:
        return _sha256(self.blob)

    @property
    def size(self) -> int:
        return len(self.blob)


@frozen
class Image:
    """An image's layers and config, and the manifest that names them."""

    layers: tuple[Layer, ...]
    config: bytes

    @property
    def config_digest(self) -> str:
        return _sha256(self.config)

    @property
    def manifest(self) -> bytes:
        document = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(self.config), "digest": self.config_digest},
            "layers": [
                {"mediaType": DOCKER_LAYER, "size": layer.size, "digest": layer.digest}
                for layer in self.layers
            ],
        }
        return json.dumps(document, indent=3).encode()

    @property
    def digest(self) -> str:
        return _sha256(self.manifest)


def busybox_path() -> str | None:
    for path in _BUSYBOX_PATHS:
        if os.access(path, os.X_OK):
            return path
    return None


def busybox_available() -> str | None:
    """Why no busybox image can be built here (None when it can)."""
    return None if busybox_path() else f"no static busybox on this machine ({BUSYBOX_INSTALL_HINT})"


def file_layer(
    files: Mapping[str, bytes | tuple[bytes, int]],
    *,
    links: Mapping[str, str] | None = None,
    whiteouts: tuple[str, ...] = (),
) -> Layer:
    """A layer of ``files`` (path → content, or (content, mode)), symlinks ``links`` (path → target) and
    whiteout entries (``.wh.NAME`` files deleting ``NAME`` of lower layers).
    Reproducible: fixed times and owners."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories: set[str] = set()
        names = [*files, *(links or {}), *whiteouts]
        for name in names:
            parts = name.strip("/").split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                directories.add("/".join(parts[:depth]))
        for directory in sorted(directories):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, value in sorted(files.items()):
            content, mode = value if isinstance(value, tuple) else (value, 0o644)
            info = tarfile.TarInfo(name.strip("/"))
            info.size, info.mode = len(content), mode
            tar.addfile(info, io.BytesIO(content))
        for name, target in sorted((links or {}).items()):
            info = tarfile.TarInfo(name.strip("/"))
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
            tar.addfile(info)
        for name in whiteouts:
            head, _, tail = name.strip("/").rpartition("/")
            info = tarfile.TarInfo(f"{head}/.wh.{tail}" if head else f".wh.{tail}")
            tar.addfile(info, io.BytesIO(b""))
    tar_bytes = raw.getvalue()
    return Layer(blob=gzip.compress(tar_bytes, mtime=0), diff_id=_sha256(tar_bytes))


def busybox_layer(extra: Mapping[str, bytes | tuple[bytes, int]] | None = None) -> Layer:
    """``/bin/busybox`` (this machine's static one), links ``/bin/sh``, ``/bin/echo``... to it, empty
    ``/tmp``, and :data:`OS_RELEASE` as ``/etc/os-release``; plus ``extra`` files."""
    path = busybox_path()
    if path is None:
        raise RuntimeError(busybox_available() or "no busybox")
    with open(path, "rb") as program:
        busybox = program.read()
    files: dict[str, bytes | tuple[bytes, int]] = {
        "bin/busybox": (busybox, 0o755),
        "etc/os-release": OS_RELEASE,
        "tmp/.keep": b"",
    }
    files.update(extra or {})
    links = {f"bin/{command}": "busybox" for command in BUSYBOX_COMMANDS}
    return file_layer(files, links=links)


def image(
    layers: list[Layer] | tuple[Layer, ...],
    *,
    architecture: str = "amd64",
    entrypoint: list[str] | None = None,
    cmd: list[str] | None = None,
    env: list[str] | None = None,
    working_dir: str = "",
    user: str = "",
    labels: dict[str, str] | None = None,
) -> Image:
    """An image of ``layers`` with a config Docker would write for these settings."""
    config: dict[str, Any] = {
        "Env": env if env is not None else [_PATH],
        "Cmd": cmd if cmd is not None else ["sh"],
    }
    if entrypoint:
        config["Entrypoint"] = entrypoint
    if working_dir:
        config["WorkingDir"] = working_dir
    if user:
        config["User"] = user
    if labels:
        config["Labels"] = labels
    document = {
        "architecture": architecture,
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "tests/imagekit.py"} for _ in layers],
    }
    return Image(layers=tuple(layers), config=json.dumps(document, sort_keys=True).encode())


async def _put_blob(session: aiohttp.ClientSession, base: str, repository: str, data: bytes) -> None:
    digest = _sha256(data)
    async with session.head(f"{base}/v2/{repository}/blobs/{digest}") as found:
        if found.status == 200:
            return
    async with session.post(f"{base}/v2/{repository}/blobs/uploads/") as started:
        if started.status != 202:
            raise RuntimeError(f"upload refused: {started.status} {await started.text()}")
        location = started.headers["Location"]
    if location.startswith("/"):
        location = base + location
    separator = "&" if "?" in location else "?"
    async with session.put(
        f"{location}{separator}digest={digest}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    ) as finished:
        if finished.status != 201:
            raise RuntimeError(f"upload of {digest} failed: {finished.status} {await finished.text()}")


async def _put_manifest(
    session: aiohttp.ClientSession, base: str, repository: str, reference: str, body: bytes, media_type: str
) -> None:
    async with session.put(
        f"{base}/v2/{repository}/manifests/{reference}", data=body, headers={"Content-Type": media_type}
    ) as answer:
        if answer.status != 201:
            raise RuntimeError(f"manifest refused: {answer.status} {await answer.text()}")


async def push_image(registry_url: str, repository: str, tag: str, pushed: Image) -> str:
    """Upload ``pushed`` to ``registry_url`` (``http://127.0.0.1:PORT``) as ``repository:tag``; its digest."""
    async with aiohttp.ClientSession() as session:
        for layer in pushed.layers:
            await _put_blob(session, registry_url, repository, layer.blob)
        await _put_blob(session, registry_url, repository, pushed.config)
        await _put_manifest(session, registry_url, repository, tag, pushed.manifest, DOCKER_MANIFEST)
    return pushed.digest


async def push_index(registry_url: str, repository: str, tag: str, images: Mapping[str, Image]) -> str:
    """Upload one image per architecture (``{"amd64": ..., "arm64": ...}``) and a manifest list naming
    them as ``repository:tag``; the list's digest."""
    entries = []
    for architecture, pushed in images.items():
        await push_image(registry_url, repository, pushed.digest, pushed)
        entries.append(
            {
                "mediaType": DOCKER_MANIFEST,
                "size": len(pushed.manifest),
                "digest": pushed.digest,
                "platform": {"architecture": architecture, "os": "linux"},
            }
        )
    body = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST, "manifests": entries}).encode()
    async with aiohttp.ClientSession() as session:
        await _put_manifest(session, registry_url, repository, tag, body, DOCKER_MANIFEST_LIST)
    return _sha256(body)
