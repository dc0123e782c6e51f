"""A function Lambda could not set up (``Failed``), end to end: the real docker CLI -> the frontend ->
the Lambda backend -> the simulator. The client sees the state's reason code and text in Docker's
error format, with the status the reason calls for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from sockerless.api.server import InternalAPIServer
from sockerless.backend import BackendRuntime
from sockerless.config import ServerConfig
from tests.lambda_settings import simulator_config

from .conftest import DockerCLI, serving

lambda_backend = pytest.importorskip("sockerless_lambda.backend", exc_type=ImportError)

pytestmark = pytest.mark.docker_cli

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest"
DENIED = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:denied"
ACCESS_DENIED = "Lambda does not have permission to access the ECR image. Check the ECR permissions."


@pytest_asyncio.fixture
async def backend_server(
    lambda_simulator: Any, short_dir: str, tmp_path: Path
) -> AsyncIterator[InternalAPIServer]:
    config = simulator_config(lambda_simulator)
    backend = lambda_backend.LambdaBackend(config, BackendRuntime(str(tmp_path / "lambda.sqlite3"), "states"))
    async with serving(backend, ServerConfig(socket=f"{short_dir}/backend.sock")) as server:
        yield server


# CreateFunction's own answer reads Failed only with no Pending (with one, as on AWS, the failure comes
# while Pending: the next test).
@pytest.mark.lambda_simulator(
    pending_seconds=0,
    state_rules=[{"state": "Failed", "image": "*:denied", "reason_code": "ImageAccessDenied"}],
)
async def test_docker_run_of_a_function_failed_at_create_exits_125_with_the_reason(
    docker_cli: DockerCLI,
) -> None:
    assert (await docker_cli("pull", DENIED)).code == 0

    ran = await docker_cli("run", "--name", "denied", DENIED, "true")

    assert ran.code == 125
    assert "Error response from daemon: lambda: function skls-" in ran.err
    assert f"is Failed (it failed to become active): ImageAccessDenied: {ACCESS_DENIED}" in ran.err
    listed = await docker_cli("ps", "-a", "--format", "{{.Names}}")
    assert listed.out == ""


@pytest.mark.lambda_simulator(
    pending_seconds=0.3, state_rules=[{"state": "Failed", "reason_code": "SubnetOutOfIPAddresses"}]
)
async def test_a_function_failed_while_pending_fails_the_run_then_docker_start(docker_cli: DockerCLI) -> None:
    assert (await docker_cli("pull", IMAGE)).code == 0

    ran = await docker_cli("run", "--name", "job", IMAGE, "true")

    assert ran.code == 125
    assert "Error waiting for container" in ran.err
    assert "is Failed (it failed to become active): SubnetOutOfIPAddresses: " in ran.err
    started = await docker_cli("start", "job")
    assert started.code == 1
    assert "Error response from daemon: lambda: function skls-" in started.err
    assert "SubnetOutOfIPAddresses" in started.err
