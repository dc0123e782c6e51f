"""Image preparation between two real registries: a source (Docker Hub's stand-in) and a target (ECR's),
the target behind a proxy that counts every upload."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import signal
import sys
import tarfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from sockerless.errors import NotFound
from sockerless.references import parse_reference
from sockerless_lambda.ecr import PlainRegistry
from sockerless_lambda.prepare import BOOTSTRAP_PATH, ImagePreparer, bootstrap_layer
from sockerless_lambda.registry import DOCKER_MANIFEST, Credentials, RegistryClient
from tests.conftest import needs_local_images
from tests.imagekit import busybox_layer, file_layer, image, push_image, push_index
from tests.registry_proxy import RegistryProxy

REPOSITORY = "sockerless"


@pytest_asyncio.fixture
async def target(tmp_path: Path) -> AsyncIterator[RegistryProxy]:
    """The "ECR": a real registry behind a proxy that records every request."""
    needs_local_images()
    from sockerless_lambda_simulator.registry import LocalRegistry

    async with LocalRegistry(tmp_path / "target-registry") as registry, RegistryProxy(registry.url) as proxy:
        yield proxy


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


def preparer(session: aiohttp.ClientSession, target_url: str, architecture: str = "x86_64") -> ImagePreparer:
    return ImagePreparer(
        session, PlainRegistry(target_url), architecture=architecture, repository=REPOSITORY, backoff=0.01
    )


async def prepare(prep: ImagePreparer, reference: str) -> tuple[Any, list[dict[str, Any]]]:
    lines: list[dict[str, Any]] = []
    prepared = await prep.prepare(parse_reference(reference), Credentials(), lines.append)
    return prepared, lines


def uploads(proxy: RegistryProxy) -> int:
    return proxy.count("POST", r"/blobs/uploads/$")


async def test_a_pull_copies_the_layers_and_appends_the_bootstrap(busybox_image, target, session) -> None:
    prepared, lines = await prepare(preparer(session, target.url), busybox_image)
    client = RegistryClient(session, target.url)
    digest = prepared.uri.rpartition("@")[2]
    assert prepared.uri == f"{target.host}/{REPOSITORY}@{digest}"
    manifest = await client.get_manifest(REPOSITORY, digest)
    document = manifest.document()
    assert manifest.media_type == DOCKER_MANIFEST and "manifests" not in document
    layers = document["layers"]
    assert len(layers) == 2  # busybox + the bootstrap
    for layer in layers:
        assert await client.has_blob(REPOSITORY, layer["digest"])
    config = json.loads(await client.read_blob(REPOSITORY, document["config"]["digest"]))
    assert config["config"]["Entrypoint"] == [BOOTSTRAP_PATH] and config["config"]["Cmd"] is None
    assert config["config"]["Env"] == prepared.config["config"]["Env"]
    bootstrap = await bootstrap_layer("x86_64")
    assert config["rootfs"]["diff_ids"] == [*prepared.config["rootfs"]["diff_ids"], bootstrap.diff_id]
    assert len(config["history"]) == len(prepared.config["history"]) + 1
    assert layers[-1]["digest"] == bootstrap.digest
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(bootstrap.blob))) as tar:
        entry = tar.getmember(BOOTSTRAP_PATH.lstrip("/"))
        assert entry.mode == 0o755 and entry.mtime == 0 and entry.uid == 0
    statuses = [line["status"] for line in lines]
    assert statuses[0] == "Pulling from busybox"
    assert {"Pulling fs layer", "Downloading", "Download complete"} <= set(statuses)
    assert prepared.blobs_uploaded == 3  # the layer, the bootstrap, the new config


async def test_a_second_pull_uploads_nothing(busybox_image, target, session) -> None:
    first, _ = await prepare(preparer(session, target.url), busybox_image)
    before = (uploads(target), target.count("PATCH"), target.count("PUT"))
    assert before[0] == first.blobs_uploaded > 0
    second, lines = await prepare(preparer(session, target.url), busybox_image)
    assert second.uri == first.uri
    assert (uploads(target), target.count("PATCH"), target.count("PUT")) == before
    assert (second.blobs_uploaded, second.bytes_copied) == (0, 0)
    assert {
        line["status"] for line in lines if "id" in line and line["status"] != "Pulling from busybox"
    } <= {
        "Already exists",
        "Already exists (sockerless bootstrap)",
    }


async def test_a_layer_the_target_has_is_not_copied_again(source_registry, target, session) -> None:
    shared = busybox_layer()
    await push_image(source_registry.url, "one", "latest", image([shared, file_layer({"a": b"1"})]))
    await push_image(source_registry.url, "two", "latest", image([shared, file_layer({"b": b"2"})]))
    prep = preparer(session, target.url)
    await prepare(prep, f"{source_registry.host}/one:latest")
    second, lines = await prepare(prep, f"{source_registry.host}/two:latest")
    assert second.blobs_uploaded == 2  # its own layer and config; busybox and the bootstrap are there
    assert {"status": "Already exists", "id": shared.digest[7:19]} in lines


async def test_a_list_gives_the_image_of_the_functions_architecture(source_registry, target, session) -> None:
    amd = image([file_layer({"etc/arch": b"amd64"})])
    arm = image([file_layer({"etc/arch": b"arm64"})], architecture="arm64")
    await push_index(source_registry.url, "multi", "latest", {"amd64": amd, "arm64": arm})
    reference = f"{source_registry.host}/multi:latest"
    on_arm, _ = await prepare(preparer(session, target.url, "arm64"), reference)
    on_amd, _ = await prepare(preparer(session, target.url, "x86_64"), reference)
    assert (on_arm.platform_digest, on_arm.config["architecture"]) == (arm.digest, "arm64")
    assert (on_amd.platform_digest, on_amd.config["architecture"]) == (amd.digest, "amd64")
    assert on_arm.source_digest == on_amd.source_digest  # the list's: what Docker reports
    client = RegistryClient(session, target.url)
    arm_manifest = (await client.get_manifest(REPOSITORY, on_arm.uri.rpartition("@")[2])).document()
    assert arm_manifest["layers"][-1]["digest"] == (await bootstrap_layer("arm64")).digest


async def test_a_list_without_the_architecture_is_dockers_no_matching_manifest(
    source_registry, target, session
) -> None:
    await push_index(source_registry.url, "amdonly", "latest", {"amd64": image([file_layer({"a": b"1"})])})
    with pytest.raises(NotFound, match="no matching manifest for linux/arm64 in the manifest list entries"):
        await prepare(preparer(session, target.url, "arm64"), f"{source_registry.host}/amdonly:latest")


async def test_a_missing_image_writes_nothing(source_registry, target, session) -> None:
    with pytest.raises(NotFound, match=r"manifest for .*/nothing:latest not found: manifest unknown"):
        await prepare(preparer(session, target.url), f"{source_registry.host}/nothing:latest")
    assert target.requests == []


async def test_a_transient_source_failure_during_a_copy_is_retried(source_registry, target, session) -> None:
    layer = busybox_layer()
    await push_image(source_registry.url, "busybox", "latest", image([layer]))
    async with RegistryProxy(source_registry.url, fail_first={f"GET .*/blobs/{layer.digest}": 1}) as source:
        prepared, _ = await prepare(preparer(session, target.url), f"{source.host}/busybox:latest")
    assert source.count("GET", f"/blobs/{layer.digest}") == 2
    assert prepared.blobs_uploaded == 3


async def test_same_registry_layers_are_mounted_not_copied(busybox_image, source_registry, session) -> None:
    prepared, _ = await prepare(preparer(session, source_registry.url), busybox_image)
    bootstrap = await bootstrap_layer("x86_64")
    assert prepared.blobs_uploaded == 2  # the bootstrap and the config: the layer was mounted
    assert prepared.bytes_copied < len(bootstrap.blob) + 10_000


_KILLED_PREPARER = """
import asyncio, sys
import aiohttp
from sockerless.references import parse_reference
from sockerless_lambda.ecr import PlainRegistry
from sockerless_lambda.prepare import ImagePreparer
from sockerless_lambda.registry import Credentials

async def main():
    async with aiohttp.ClientSession() as session:
        target = PlainRegistry(sys.argv[2])
        prep = ImagePreparer(session, target, architecture="x86_64", repository="sockerless")
        await prep.prepare(parse_reference(sys.argv[1]), Credentials(), lambda line: None)

asyncio.run(main())
"""


async def test_a_preparation_killed_midway_leaves_no_manifest_and_the_next_completes(
    source_registry, target, session
) -> None:
    layers = [busybox_layer(), file_layer({"a": os.urandom(300_000)}), file_layer({"b": b"2"})]
    await push_image(source_registry.url, "three", "latest", image(layers))
    async with RegistryProxy(source_registry.url, hold_blob_after=2) as source:
        reference = f"{source.host}/three:latest"
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _KILLED_PREPARER, reference, target.url
        )
        try:
            await asyncio.wait_for(source.blob_held.wait(), 60)  # a bound, not a timing: it is held forever
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()
        assert target.count("PUT", "/manifests/") == 0
        async with session.get(f"{target.url}/v2/{REPOSITORY}/tags/list") as listed:
            tags = (await listed.json()).get("tags") if listed.status == 200 else None
        assert not tags
        source.hold_blob_after = None
        prepared, _ = await prepare(preparer(session, target.url), reference)
    client = RegistryClient(session, target.url)
    manifest = (await client.get_manifest(REPOSITORY, prepared.uri.rpartition("@")[2])).document()
    assert len(manifest["layers"]) == 4
    for blob in [manifest["config"], *manifest["layers"]]:
        assert await client.has_blob(REPOSITORY, blob["digest"])


async def test_preparation_time_and_bytes_copied_first_and_repeated(busybox_image, target, session) -> None:
    """The figures docs/images.md quotes (run with -s to see them)."""
    figures = []
    for attempt in ("first", "repeated"):
        began = time.perf_counter()
        prepared, _ = await prepare(preparer(session, target.url), busybox_image)
        figures.append((attempt, time.perf_counter() - began, prepared.bytes_copied, prepared.blobs_uploaded))
    for attempt, seconds, copied, blobs in figures:
        print(f"\npreparation {attempt}: {seconds * 1000:.0f} ms, {copied} bytes copied in {blobs} blobs")
    assert figures[0][2] > 0 and figures[1][2:] == (0, 0)
