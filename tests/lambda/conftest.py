"""Fixtures: a started LambdaBackend on the simulator (a real moto server behind it), and its API client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from sockerless.api.server import create_app
from sockerless.backend import BackendRuntime
from sockerless.streams import decode_frames
from sockerless_lambda.backend import LambdaBackend
from sockerless_lambda_simulator import LambdaSimulator
from tests.lambda_settings import CLOUDWATCH_PATH_BACKEND, simulator_config

API = "/internal/v1"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs:latest"
INSTANCE = "test-instance"


@pytest.fixture
def state_path(tmp_path: Path) -> str:
    return str(tmp_path / "lambda.sqlite3")


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    """Override per module or test to change the backend's settings."""
    return {}


@pytest_asyncio.fixture
async def backend(
    request: pytest.FixtureRequest,
    lambda_simulator: LambdaSimulator,
    state_path: str,
    config_overrides: dict[str, Any],
) -> AsyncIterator[LambdaBackend]:
    overrides = dict(config_overrides)
    if request.node.get_closest_marker("cloudwatch_path") is not None:
        overrides = {**CLOUDWATCH_PATH_BACKEND, **overrides}
    started = LambdaBackend(
        simulator_config(lambda_simulator, **overrides), BackendRuntime(state_path, INSTANCE)
    )
    await started.start()
    await started.background_done()  # tests that count AWS calls start from a quiet backend
    try:
        yield started
    finally:
        await started.close()


class Api:
    """The internal API as tests use it: the raw aiohttp test client plus a few Docker verbs."""

    def __init__(self, client: TestClient[Any, Any], backend: LambdaBackend) -> None:
        self.client = client
        self.backend = backend

    async def create(self, name: str | None = None, **body: Any) -> str:
        body.setdefault("Image", IMAGE)
        response = await self.client.post(
            f"{API}/containers", json=body, params={"name": name} if name else {}
        )
        assert response.status == 201, await response.text()
        return str((await response.json())["Id"])

    async def start(self, container_id: str) -> None:
        response = await self.client.post(f"{API}/containers/{container_id}/start")
        assert response.status == 204, await response.text()

    async def wait(self, container_id: str, condition: str = "not-running") -> dict[str, Any]:
        response = await self.client.post(
            f"{API}/containers/{container_id}/wait", params={"condition": condition}
        )
        assert response.status == 200, await response.text()
        return dict(await response.json())

    async def run(self, command: str, **body: Any) -> tuple[str, dict[str, Any]]:
        """Create, wait (next-exit) and start ``sh -c command``; returns the ID and the wait body."""
        container_id = await self.create(Cmd=["sh", "-c", command], **body)
        waiting = asyncio.create_task(self.wait(container_id, "next-exit"))
        await self.start(container_id)
        return container_id, await asyncio.wait_for(waiting, 30)

    def function_name(self, container_id: str) -> str:
        """The function the container runs on: shared by its image configuration on the bootstrap,
        its own (``skls-<24 hex of its ID>``) otherwise."""
        record = self.backend.store.get_container(container_id)
        assert record is not None, f"no container {container_id}"
        return record.backend_state.function_name

    async def inspect(self, container_id: str) -> dict[str, Any]:
        response = await self.client.get(f"{API}/containers/{container_id}")
        assert response.status == 200, await response.text()
        return dict(await response.json())

    async def logs(self, container_id: str, **query: str) -> list[tuple[int, bytes]]:
        """The frames of ``GET logs`` (stdout and stderr unless the query says otherwise)."""
        params = {"stdout": "1", "stderr": "1", **query}
        response = await self.client.get(f"{API}/containers/{container_id}/logs", params=params)
        assert response.status == 200, await response.text()
        frames, rest = decode_frames(await response.read())
        assert rest == b""
        return frames

    async def output(self, container_id: str, **query: str) -> str:
        return b"".join(data for _, data in await self.logs(container_id, **query)).decode()


@pytest_asyncio.fixture
async def api(backend: LambdaBackend, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]) -> Api:
    # No connection cap: hundreds of waits hold a connection each while starts still need one.
    unlimited = aiohttp.TCPConnector(limit=0)
    return Api(await aiohttp_client(create_app(backend), connector=unlimited), backend)


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 15.0, every: float = 0.05
) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds (no fixed sleeps racing the work)."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(every)


@pytest.fixture
def poll() -> Callable[..., Awaitable[None]]:
    """``await poll(check, timeout=...)``: bounded polling as a fixture ("lambda" cannot be imported)."""
    return eventually
