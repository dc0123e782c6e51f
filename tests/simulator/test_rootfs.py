"""Unpacking image layers into a root filesystem (sockerless_lambda_simulator.rootfs), on tar files made here:
whiteouts, links, path escapes, device nodes, digests, and the cache's atomic, once-per-digest unpacking."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sockerless_lambda_simulator.isolation import Isolation, rooted_argv
from sockerless_lambda_simulator.rootfs import (
    InvalidLayer,
    LayerFiles,
    RootfsCache,
    resolve_inside,
    unpack_layers,
)
from tests.conftest import needs_local_images
from tests.imagekit import OS_RELEASE

Entry = tuple[tarfile.TarInfo, bytes | None]


def _file(name: str, content: bytes = b"", mode: int = 0o644) -> Entry:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(content), mode
    return info, content


def _dir(name: str, mode: int = 0o755) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    return info, None


def _link(name: str, target: str, *, hard: bool = False) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = (tarfile.LNKTYPE if hard else tarfile.SYMTYPE), target
    return info, None


def _device(name: str) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    return info, None


def _layer(directory: Path, name: str, entries: list[Entry], *, compress: bool = True) -> tuple[Path, str]:
    """A layer blob file of ``entries`` (in this order) and its diff_id."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, content in entries:
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    data = raw.getvalue()
    path = directory / name
    path.write_bytes(gzip.compress(data) if compress else data)
    return path, "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., tuple[Path, str]]:
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    counter = iter(range(1000))

    def build(*entries: Entry, compress: bool = True) -> tuple[Path, str]:
        return _layer(blobs, f"layer-{next(counter)}", list(entries), compress=compress)

    return build


def test_layers_apply_in_order_and_make_the_mount_points(tmp_path: Path, make: Callable[..., Any]) -> None:
    root = tmp_path / "root"
    unpack_layers(
        root,
        [
            make(_dir("etc"), _file("etc/a", b"lower"), _file("bin/tool", b"#!", 0o755)),
            make(_file("etc/a", b"upper"), compress=False),  # a plain tar is a layer too
        ],
    )
    assert (root / "etc/a").read_bytes() == b"upper"
    assert os.access(root / "bin/tool", os.X_OK)
    assert all((root / point).is_dir() for point in ("tmp", "dev", "proc"))


def test_a_whiteout_deletes_a_lower_file_and_an_opaque_whiteout_empties_a_directory(
    tmp_path: Path, make: Callable[..., Any]
) -> None:
    root = tmp_path / "root"
    unpack_layers(
        root,
        [
            make(_file("etc/gone", b"x"), _file("etc/kept", b"k"), _file("opt/d/a"), _file("opt/d/sub/b")),
            # The opaque marker after an entry of its own layer: that entry stays.
            make(_file("opt/d/new"), _file("opt/d/.wh..wh..opq"), _file("etc/.wh.gone")),
        ],
    )
    assert sorted(os.listdir(root / "etc")) == ["kept"]
    assert sorted(os.listdir(root / "opt/d")) == ["new"]


def test_a_whiteout_entry_is_never_a_file_of_the_tree(tmp_path: Path, make: Callable[..., Any]) -> None:
    root = tmp_path / "root"
    unpack_layers(root, [make(_dir("etc"), _file("etc/.wh.nothing-below"))])
    assert os.listdir(root / "etc") == []


def test_a_path_that_escapes_the_root_refuses_the_layer(tmp_path: Path, make: Callable[..., Any]) -> None:
    with pytest.raises(InvalidLayer, match="points outside the root filesystem"):
        unpack_layers(tmp_path / "root", [make(_file("etc/../../escaped", b"x"))])
    assert not (tmp_path / "escaped").exists()


def test_a_hard_link_that_escapes_the_root_refuses_the_layer(
    tmp_path: Path, make: Callable[..., Any]
) -> None:
    with pytest.raises(InvalidLayer, match="points outside"):
        unpack_layers(tmp_path / "root", [make(_link("etc/passwd", "../../etc/passwd", hard=True))])


def test_symlinks_on_the_way_are_followed_inside_the_root(tmp_path: Path, make: Callable[..., Any]) -> None:
    outside = tmp_path / "host"
    outside.mkdir()
    root = tmp_path / "root"
    unpack_layers(
        root,
        [
            make(
                _dir("usr/lib"),
                _link("lib", "/usr/lib"),  # absolute: read from the root, not the host
                _link("up", "../../../../../.."),  # climbs no higher than the root
                _link("host", str(outside)),
            ),
            make(_file("lib/x", b"1"), _file("up/y", b"2"), _file("host/z", b"3")),
        ],
    )
    assert (root / "usr/lib/x").read_bytes() == b"1"
    assert (root / "y").read_bytes() == b"2"
    assert (root / str(outside).lstrip("/") / "z").read_bytes() == b"3"
    assert os.listdir(outside) == []
    assert os.readlink(root / "lib") == "/usr/lib"  # the link itself is kept as the image has it
    assert resolve_inside(root, "/lib/x") == root / "usr/lib/x"


def test_hard_links_share_the_file_and_device_nodes_are_skipped(
    tmp_path: Path, make: Callable[..., Any]
) -> None:
    root = tmp_path / "root"
    unpack_layers(
        root,
        [
            make(
                _file("bin/busybox", b"bb", 0o755),
                _link("bin/sh", "bin/busybox", hard=True),
                _device("dev/null"),
            )
        ],
    )
    assert os.stat(root / "bin/sh").st_ino == os.stat(root / "bin/busybox").st_ino
    assert os.listdir(root / "dev") == []


def test_a_read_only_directory_still_takes_its_entries(tmp_path: Path, make: Callable[..., Any]) -> None:
    root = tmp_path / "root"
    unpack_layers(root, [make(_dir("ro", 0o555), _file("ro/f", b"x"))])
    assert (root / "ro/f").read_bytes() == b"x"
    assert (root / "ro").stat().st_mode & 0o777 == 0o555


def test_a_layer_that_does_not_match_its_diff_id_is_refused(tmp_path: Path, make: Callable[..., Any]) -> None:
    blob, _ = make(_file("etc/a"))
    with pytest.raises(InvalidLayer, match="does not match its diff_id"):
        unpack_layers(tmp_path / "root", [(blob, "sha256:" + "0" * 64)])


def test_a_blob_that_is_not_a_tar_is_refused(tmp_path: Path) -> None:
    blob = tmp_path / "garbage"
    blob.write_bytes(gzip.compress(b"not a tar at all" * 100))
    with pytest.raises(InvalidLayer, match="not a readable tar"):
        unpack_layers(tmp_path / "root", [(blob, None)])


async def test_the_cache_unpacks_a_digest_once_for_concurrent_callers(
    tmp_path: Path, make: Callable[..., Any]
) -> None:
    layer = make(_file("etc/os-release", b"ID=test\n"))
    cache = RootfsCache(tmp_path / "cache")
    downloads = 0

    async def download(_: Path) -> LayerFiles:
        nonlocal downloads
        downloads += 1
        return [layer]

    roots = await asyncio.gather(*(cache.get("sha256:" + "a" * 64, download) for _ in range(5)))

    assert len(set(roots)) == 1
    assert (roots[0] / "etc/os-release").read_bytes() == b"ID=test\n"
    assert (cache.unpacked, downloads) == (1, 1)
    assert os.listdir(cache.directory) == [roots[0].name]  # no partial tree left behind


async def test_a_failed_unpack_leaves_no_tree(tmp_path: Path, make: Callable[..., Any]) -> None:
    bad = make(_file("../escape"))
    cache = RootfsCache(tmp_path / "cache")

    async def download(_: Path) -> LayerFiles:
        return [bad]

    with pytest.raises(InvalidLayer):
        await cache.get("sha256:" + "b" * 64, download)

    assert os.listdir(cache.directory) == []
    assert cache.unpacked == 0


@pytest.mark.parametrize("isolation", list(Isolation))
def test_a_command_enters_the_tree_read_only_with_its_own_tmp(tmp_path: Path, isolation: Isolation) -> None:
    # Both ways in: as root (a mount namespace) and as a user namespace's root (what runs without root).
    needs_local_images()
    if isolation is Isolation.MOUNT_NAMESPACE and os.geteuid() != 0:
        pytest.skip("a mount namespace of its own needs root")
    from tests.imagekit import busybox_layer

    layer = busybox_layer()
    blob = tmp_path / "busybox.tgz"
    blob.write_bytes(layer.blob)
    root, tmp = tmp_path / "root", tmp_path / "env-tmp"
    tmp.mkdir()
    unpack_layers(root, [(blob, layer.diff_id)])
    script = "cat /etc/os-release; touch /x 2>/dev/null || echo read-only; echo y > /tmp/y; pwd; echo $$"
    argv = rooted_argv(isolation, root, str(tmp), "/etc", ("sh", "-c", script))

    process = subprocess.Popen(argv, env={"PATH": "/bin"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = process.communicate(timeout=60)
    out = stdout.decode().splitlines()

    assert process.returncode == 0, stderr
    assert out[:2] == OS_RELEASE.decode().splitlines()
    # Each step execs the next: the process started is the command (the pid the simulator signals).
    assert out[2:] == ["read-only", "/etc", str(process.pid)]
    assert (tmp / "y").read_text() == "y\n"
    assert not (root / "x").exists()


def test_a_tree_cut_short_by_a_crash_is_removed_at_start(tmp_path: Path) -> None:
    cache = RootfsCache(tmp_path / "cache")
    partial = cache.directory / ".partial-sha256-cccc-1234abcd" / "rootfs" / "etc"
    partial.mkdir(parents=True)

    cache.remove_partial_trees()

    assert os.listdir(cache.directory) == []
