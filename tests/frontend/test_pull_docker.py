"""Issue 21's image preparation through the real docker CLI: ``docker pull`` of a local registry's image
shows Docker's progress, ``docker image inspect``/``images``/``rmi`` answer from the store, and a
``docker run`` of an image never pulled prepares it first. A second local registry is the "ECR"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from sockerless.api.server import InternalAPIServer
from sockerless.backend import BackendRuntime
from sockerless.config import ServerConfig
from tests.conftest import needs_local_images
from tests.lambda_settings import SIMULATOR_OPTIONS, simulator_config

from .conftest import DockerCLI, serving

lambda_backend = pytest.importorskip("sockerless_lambda.backend", exc_type=ImportError)

pytestmark = pytest.mark.docker_cli


@pytest.fixture
def lambda_simulator_options() -> dict[str, Any]:
    return {**SIMULATOR_OPTIONS, "runtime_model": "lambda"}


@pytest_asyncio.fixture
async def ecr(tmp_path: Path) -> AsyncIterator[Any]:
    needs_local_images()
    from sockerless_lambda_simulator.registry import LocalRegistry

    async with LocalRegistry(tmp_path / "ecr") as registry:
        yield registry


@pytest_asyncio.fixture
async def backend_server(
    lambda_simulator: Any, ecr: Any, short_dir: str, tmp_path: Path
) -> AsyncIterator[InternalAPIServer]:
    config = simulator_config(
        lambda_simulator, bootstrap=True, timeout=60, prepare_images=True, registry_url=ecr.url
    )
    backend = lambda_backend.LambdaBackend(config, BackendRuntime(str(tmp_path / "lambda.sqlite3"), "pull"))
    async with serving(backend, ServerConfig(socket=f"{short_dir}/backend.sock")) as server:
        yield server


async def test_docker_pull_shows_the_preparation_and_a_second_pull_is_up_to_date(
    docker_cli: DockerCLI, busybox_image: str
) -> None:
    first = await docker_cli("pull", busybox_image)
    assert first.code == 0, first.err
    lines = first.out.splitlines()
    assert lines[0] == "latest: Pulling from busybox"
    assert any(line.endswith(": Pull complete") for line in lines)
    assert any("sockerless bootstrap" in line for line in lines)
    assert lines[-3].startswith("Digest: sha256:")
    assert lines[-2:] == [f"Status: Downloaded newer image for {busybox_image}", busybox_image]
    second = await docker_cli("pull", busybox_image)
    assert second.code == 0, second.err
    assert f"Status: Image is up to date for {busybox_image}" in second.out
    assert lines[-3] in second.out.splitlines()  # the same source digest


async def test_docker_image_inspect_shows_the_source_config_and_rmi_removes_it(
    docker_cli: DockerCLI, busybox_image: str
) -> None:
    assert (await docker_cli("pull", busybox_image)).code == 0
    inspected = await docker_cli(
        "image", "inspect", "--format", "{{json .Config.Cmd}} {{.Os}}", busybox_image
    )
    assert inspected.code == 0, inspected.err
    assert inspected.out.strip() == '["sh"] linux'
    listed = await docker_cli("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert busybox_image in listed.out.split()
    removed = await docker_cli("rmi", busybox_image)
    assert removed.code == 0, removed.err
    assert f"Untagged: {busybox_image}" in removed.out and "Deleted: sha256:" in removed.out
    gone = await docker_cli("image", "inspect", busybox_image)
    assert gone.code == 1 and "No such image" in gone.err


async def test_docker_run_of_an_image_never_pulled_prepares_it(
    docker_cli: DockerCLI, busybox_image: str
) -> None:
    ran = await docker_cli("run", "--rm", busybox_image, "sh", "-c", "echo hi; exit 3")
    assert (ran.code, ran.out) == (3, "hi\n"), ran.err
    inspected = await docker_cli("image", "inspect", "--format", "{{.Architecture}}", busybox_image)
    assert inspected.out.strip() == "amd64"


async def test_docker_pull_of_a_missing_image_is_dockers_error(
    docker_cli: DockerCLI, source_registry: Any
) -> None:
    missing = f"{source_registry.host}/nothing:latest"
    pulled = await docker_cli("pull", missing)
    assert pulled.code == 1
    assert f"manifest for {missing} not found: manifest unknown" in pulled.err
