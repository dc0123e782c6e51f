"""An image's root filesystem: its layers unpacked in order into one directory, cached by manifest digest.

Layers are tar streams (gzip'd or plain) applied as OCI's image-layer spec says: an entry replaces what
lower layers had at its path, ``.wh.NAME`` deletes ``NAME`` of lower layers, ``.wh..wh..opq`` empties its
directory of what lower layers put there. Unpacking never writes outside the root: an entry whose name
escapes it (``../x``) refuses the layer, and a symlink met on the way to an entry is followed *inside*
the root (an absolute target is read from the root, ``..`` stops at it), never on the host. Device nodes
are skipped (a function cannot make them on Lambda either); ``/tmp``, ``/dev`` and ``/proc`` are created as
mount points.

A tree is unpacked into a temporary directory beside the cache entry and renamed into place when
complete, so a crash or a concurrent Init never sees half a tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import logging
import os
import posixpath
import shutil
import stat
import tarfile
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import IO

__all__ = ["InvalidLayer", "LayerFiles", "RootfsCache", "apply_layer", "resolve_inside", "unpack_layers"]

log = logging.getLogger(__name__)

MOUNT_POINTS = ("tmp", "dev", "proc")
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_SYMLINK_HOPS = 40  # Linux's own limit (ELOOP)
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class InvalidLayer(ValueError):
    """A layer that cannot be applied: a path that escapes the root, an unknown compression, a bad tar."""


def _inside(root: Path, parts: Iterable[str], *, follow_last: bool, hops: int = 0) -> Path:
    """The host path of ``parts`` under ``root``, following symlinks as a chroot would (absolute targets
    from ``root``, ``..`` never above it). Missing components are taken as plain names."""
    current = root
    pending = [part for part in parts if part not in ("", ".")]
    pending.reverse()
    while pending:
        part = pending.pop()
        if part == "..":
            current = current.parent if current != root else root
            continue
        candidate = current / part
        last = not pending
        if candidate.is_symlink() and (follow_last or not last):
            hops += 1
            if hops > _SYMLINK_HOPS:
                raise InvalidLayer(f"too many levels of symbolic links at {candidate.relative_to(root)}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = root
            more = [piece for piece in target.split("/") if piece not in ("", ".")]
            pending.extend(reversed(more))
            continue
        current = candidate
    return current


def resolve_inside(root: Path, path: str) -> Path:
    """Where ``path`` (as the root's own processes name it) is on this machine, symlinks followed inside."""
    return _inside(root, path.split("/"), follow_last=True)


def _member_parts(name: str) -> list[str]:
    """The components of an entry's name relative to the root; an escape refuses the layer."""
    normalized = posixpath.normpath(name.lstrip("/") or ".")
    if normalized == ".." or normalized.startswith("../"):
        raise InvalidLayer(f"the entry {name!r} points outside the root filesystem")
    return [part for part in normalized.split("/") if part not in ("", ".")]


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    else:
        shutil.rmtree(path)


def _parent_directory(root: Path, parts: list[str]) -> Path:
    """The host directory an entry goes in, created (0755) where lower layers had none."""
    parent = _inside(root, parts[:-1], follow_last=True)
    if not parent.is_dir():
        if parent.exists() or parent.is_symlink():
            where = "/".join(parts[:-1])
            raise InvalidLayer(f"{where} is not a directory, so {'/'.join(parts)} cannot be made")
        parent.mkdir(mode=0o755, parents=True)
    return parent


class _Hashing:
    """A read-only stream that hashes what is read through it (a layer's diff_id, checked at the end)."""

    def __init__(self, stream: IO[bytes] | gzip.GzipFile) -> None:
        self._stream = stream
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.digest.update(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _open_layer(blob: IO[bytes]) -> IO[bytes] | gzip.GzipFile:
    head = blob.read(4)
    blob.seek(0)
    if head.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=blob, mode="rb")
    if head == _ZSTD_MAGIC:
        raise InvalidLayer("zstd-compressed layers are not supported by the simulator (use gzip)")
    return blob


def apply_layer(root: Path, blob_path: Path, diff_id: str | None = None) -> None:
    """Apply one layer blob (a file: gzip'd or plain tar) onto the tree at ``root``, streamed."""
    written: set[tuple[str, ...]] = set()
    directory_modes: dict[Path, int] = {}
    with blob_path.open("rb") as blob, _open_layer(blob) as raw:
        stream = _Hashing(raw)
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    _apply_member(root, tar, member, written, directory_modes)
        except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as exc:
            if isinstance(exc, InvalidLayer):
                raise
            raise InvalidLayer(f"the layer {blob_path.name} is not a readable tar: {exc}") from exc
        stream.drain()
    if diff_id is not None and f"sha256:{stream.digest.hexdigest()}" != diff_id:
        raise InvalidLayer(f"the layer {blob_path.name} does not match its diff_id {diff_id}")
    # Modes last: a directory made read-only by the layer still took the entries under it.
    for path, mode in directory_modes.items():
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path, mode)


def _apply_member(
    root: Path,
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    written: set[tuple[str, ...]],
    directory_modes: dict[Path, int],
) -> None:
    parts = _member_parts(member.name)
    if not parts:
        return  # the root itself: its mode is ours
    base = parts[-1]
    if base == _OPAQUE:
        directory = _inside(root, parts[:-1], follow_last=True)
        prefix = tuple(parts[:-1])
        if directory.is_dir():
            for child in directory.iterdir():
                if (*prefix, child.name) not in written:
                    _remove(child)
        return
    if base.startswith(_WHITEOUT):
        hidden = [*parts[:-1], base[len(_WHITEOUT) :]]
        if tuple(hidden) not in written:
            target = _inside(root, hidden, follow_last=False)
            if target.is_relative_to(root) and target != root:
                _remove(target)
        return
    if member.ischr() or member.isblk():
        return  # device nodes: skipped
    parent = _parent_directory(root, parts)
    path = parent / base
    written.add(tuple(parts))
    if member.isdir():
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            _remove(path)
        path.mkdir(mode=0o755, exist_ok=True)
        directory_modes[path] = member.mode & 0o7777
        _own(path, member)
        return
    if path.is_symlink() or path.exists():
        _remove(path)
    if member.issym():
        os.symlink(member.linkname, path)
        _own(path, member)
        return
    if member.islnk():
        source = _inside(root, _member_parts(member.linkname), follow_last=False)
        if not source.exists() and not source.is_symlink():
            raise InvalidLayer(f"the hard link {member.name!r} names {member.linkname!r}, which is missing")
        os.link(source, path, follow_symlinks=False)
        return
    if member.isfifo():
        os.mkfifo(path, member.mode & 0o777)
        return
    if not member.isfile():
        return  # another kind (a GNU sparse or volume header): nothing to place
    source_file = tar.extractfile(member)
    assert source_file is not None
    with source_file, path.open("wb") as target_file:
        shutil.copyfileobj(source_file, target_file, 1 << 20)
    os.chmod(path, member.mode & 0o7777)
    _own(path, member)
    with contextlib.suppress(OSError):
        os.utime(path, (member.mtime, member.mtime))


def _own(path: Path, member: tarfile.TarInfo) -> None:
    if os.geteuid() == 0:
        with contextlib.suppress(OSError):
            os.lchown(path, member.uid, member.gid)


def _make_mount_points(root: Path) -> None:
    for name in MOUNT_POINTS:
        point = root / name
        if point.is_symlink() or (point.exists() and not point.is_dir()):
            point.unlink()
        point.mkdir(mode=0o1777 if name == "tmp" else 0o755, exist_ok=True)


def unpack_layers(destination: Path, layers: Iterable[tuple[Path, str | None]]) -> None:
    """Apply ``layers`` ((blob file, diff_id or None), lowest first) into the new ``destination``."""
    destination.mkdir(mode=0o755)
    for blob_path, diff_id in layers:
        apply_layer(destination, blob_path, diff_id)
    _make_mount_points(destination)


LayerFiles = list[tuple[Path, str | None]]
"""Layer blobs on disk with their diff_id (None: unchecked), lowest first."""


class RootfsCache:
    """Root filesystems under ``directory``, one per manifest digest, unpacked once."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.unpacked = 0
        """How many trees this cache has unpacked (a second function of the same digest adds none)."""
        self._locks: dict[str, asyncio.Lock] = {}

    def remove_partial_trees(self) -> None:
        """Remove what an unpack cut short by a crash left (a state directory kept across runs)."""
        if self.directory.is_dir():
            for entry in self.directory.glob(".partial-*"):
                _remove_tree(entry)

    def path(self, digest: str) -> Path:
        return self.directory / digest.replace(":", "-")

    async def get(
        self, digest: str, layers: Callable[[Path], Awaitable[LayerFiles]], describe: str = ""
    ) -> Path:
        """The tree of ``digest``: cached, or made now. ``layers(scratch)`` is awaited to download the
        layer blobs into ``scratch`` and returns their (file, diff_id) list, lowest first."""
        final = self.path(digest)
        if final.is_dir():
            return final
        lock = self._locks.setdefault(digest, asyncio.Lock())
        async with lock:
            if final.is_dir():
                return final
            self.directory.mkdir(parents=True, exist_ok=True)
            work = self.directory / f".partial-{final.name}-{uuid.uuid4().hex[:8]}"
            work.mkdir()
            try:
                blobs = await layers(work / "blobs")
                tree = work / "rootfs"
                await asyncio.to_thread(unpack_layers, tree, blobs)
                try:
                    os.rename(tree, final)
                except OSError:
                    if not final.is_dir():  # not another process's tree of the same digest
                        raise
                else:
                    self.unpacked += 1
                    log.info("unpacked image %s (%s) into %s", describe or digest, digest, final)
            finally:
                await asyncio.to_thread(_remove_tree, work)
        return final


def _remove_tree(path: Path) -> None:
    """Remove a tree even where the layer made directories read-only (not a concern for root)."""

    def writable(function: object, failed: str, _exc: object) -> None:
        parent = os.path.dirname(failed)
        with contextlib.suppress(OSError):
            os.chmod(parent, stat.S_IRWXU)
            if os.path.isdir(failed) and not os.path.islink(failed):
                shutil.rmtree(failed, ignore_errors=True)
            else:
                os.unlink(failed)

    shutil.rmtree(path, onerror=writable)
