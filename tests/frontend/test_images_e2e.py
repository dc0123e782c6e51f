"""Issue 21's done-when through the real docker CLI, on the simulator as ``sockerless up --simulate`` has
it: the backend prepares images into the simulator's ECR (found through ``GetAuthorizationToken``, a real
registry), and the simulator runs each function inside its image's root filesystem.

``docker pull`` of a local registry's busybox prepares it; ``docker run --rm IMG sh -c 'cat
/etc/os-release; echo hi; exit 3'`` prints the IMAGE's file (not this machine's) and exits 3; a second
pull uploads no blob to the ECR registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from sockerless.api.server import InternalAPIServer
from sockerless.backend import BackendRuntime
from sockerless.config import ServerConfig
from tests.conftest import needs_local_images
from tests.imagekit import OS_RELEASE
from tests.lambda_settings import SIMULATOR_OPTIONS, simulator_config

from .conftest import DockerCLI, serving

lambda_backend = pytest.importorskip("sockerless_lambda.backend", exc_type=ImportError)

pytestmark = pytest.mark.docker_cli


@pytest.fixture
def lambda_simulator_options() -> dict[str, Any]:
    needs_local_images()
    return {**SIMULATOR_OPTIONS, "runtime_model": "lambda", "ecr_registry": True}


@pytest_asyncio.fixture
async def backend_server(
    lambda_simulator: Any, short_dir: str, tmp_path: Path
) -> AsyncIterator[InternalAPIServer]:
    assert lambda_simulator.ecr_registry_url, "the simulator started no ECR registry"
    config = simulator_config(lambda_simulator, bootstrap=True, timeout=60, prepare_images=True)
    backend = lambda_backend.LambdaBackend(config, BackendRuntime(str(tmp_path / "lambda.sqlite3"), "e2e"))
    async with serving(backend, ServerConfig(socket=f"{short_dir}/backend.sock")) as server:
        yield server


async def _blobs(registry_url: str) -> set[str]:
    """Every blob digest the ECR registry's manifests name (config and layers), over all repositories."""
    names: set[str] = set()
    accept = "application/vnd.docker.distribution.manifest.v2+json"
    async with aiohttp.ClientSession(base_url=registry_url) as session:
        async with session.get("/v2/_catalog") as answer:
            repositories = (await answer.json()).get("repositories") or []
        for repository in repositories:
            async with session.get(f"/v2/{repository}/tags/list") as answer:
                tags = (await answer.json()).get("tags") or []
            for tag in tags:
                async with session.get(
                    f"/v2/{repository}/manifests/{tag}", headers={"Accept": accept}
                ) as answer:
                    manifest = await answer.json(content_type=None)
                names.add(manifest["config"]["digest"])
                names.update(layer["digest"] for layer in manifest["layers"])
    return names


def _uploads(storage: Path) -> int:
    """Blob files in the registry's storage (each upload that completed adds one)."""
    return sum(1 for path in storage.rglob("data") if "/blobs/sha256/" in str(path))


async def test_pull_then_run_inside_the_images_filesystem_and_a_second_pull_uploads_nothing(
    docker_cli: DockerCLI, busybox_image: str, lambda_simulator: Any
) -> None:
    pulled = await docker_cli("pull", busybox_image)
    assert pulled.code == 0, pulled.err
    assert "Pulling from busybox" in pulled.out and "sockerless bootstrap" in pulled.out
    ecr = lambda_simulator.ecr_registry_url
    blobs = await _blobs(ecr)
    assert len(blobs) == 3  # busybox's layer, the bootstrap's layer, the new config
    storage = lambda_simulator.ecr_registry_storage
    stored = _uploads(storage)
    assert stored >= 3  # the three blobs above (and nothing counted is a broken count)

    ran = await docker_cli("run", "--rm", busybox_image, "sh", "-c", "cat /etc/os-release; echo hi; exit 3")
    assert ran.code == 3, ran.err
    assert ran.out == OS_RELEASE.decode() + "hi\n"
    assert "runs on this machine" not in ran.err

    again = await docker_cli("pull", busybox_image)
    assert again.code == 0, again.err
    assert f"Status: Image is up to date for {busybox_image}" in again.out
    assert await _blobs(ecr) == blobs
    assert _uploads(storage) == stored  # no blob uploaded by the second pull


async def test_the_image_root_is_read_only_and_tmp_is_writable(
    docker_cli: DockerCLI, busybox_image: str
) -> None:
    ran = await docker_cli(
        "run",
        "--rm",
        busybox_image,
        "sh",
        "-c",
        "touch /x 2>/dev/null && echo root-writable; echo ok > /tmp/y && cat /tmp/y",
    )
    assert (ran.code, ran.out) == (0, "ok\n"), ran.err
