"""Fixtures: a backend served by the real internal-API server on a Unix socket, the Docker frontend in
front of it, and the clients (the real docker CLI, the Docker SDK for Python, a raw HTTP session)
pointed at the frontend."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import attrs
import pytest
import pytest_asyncio

from sockerless.api.server import InternalAPIServer
from sockerless.backend import Backend
from sockerless.config import FrontendConfig, ServerConfig
from sockerless.frontend import DockerFrontend

from .local_backend import LocalBackend
from .wire import Gate

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
#: Every CLI or SDK call gets this long; a hang fails the test instead of the run.
CLIENT_TIMEOUT = 60.0


@pytest.fixture
def short_dir() -> Iterator[str]:
    """A directory for sockets: Unix socket paths must stay under 108 bytes, pytest's are long."""
    path = tempfile.mkdtemp(prefix="skf-", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def gate(short_dir: str) -> Gate:
    return Gate(f"{short_dir}/gate")


@pytest.fixture
def backend_class() -> type[LocalBackend]:
    """Override in a module or parametrize to serve another LocalBackend (one that cannot follow)."""
    return LocalBackend


@pytest.fixture
def frontend_config() -> FrontendConfig:
    """Override in a module or parametrize to change the frontend's section."""
    return FrontendConfig()


@pytest_asyncio.fixture
async def backend_server(
    short_dir: str, backend_class: type[LocalBackend]
) -> AsyncIterator[InternalAPIServer]:
    # A short grace: a test that leaves a wait or a follow open does not hold its teardown for long.
    config = ServerConfig(socket=f"{short_dir}/backend.sock", shutdown_grace=1.0)
    async with serving(backend_class(), config) as server:
        yield server


@contextlib.asynccontextmanager
async def serving(backend: Backend, config: ServerConfig) -> AsyncIterator[InternalAPIServer]:
    """``backend`` behind a started internal API server, stopped on leaving."""
    server = InternalAPIServer(backend, config)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def local_backend(backend_server: InternalAPIServer) -> LocalBackend:
    backend = backend_server.backend
    assert isinstance(backend, LocalBackend)
    return backend


@pytest_asyncio.fixture
async def frontend(
    backend_server: InternalAPIServer, short_dir: str, frontend_config: FrontendConfig
) -> AsyncIterator[DockerFrontend]:
    started = DockerFrontend(
        frontend_config, socket_path=f"{short_dir}/docker.sock", backend_url=backend_server.url
    )
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


@attrs.frozen
class Result:
    code: int
    out: str
    err: str


class DockerCLI:
    """The real docker CLI against one daemon address, reading no user configuration."""

    def __init__(self, host: str, config_dir: str, extra_env: dict[str, str] | None = None) -> None:
        """``extra_env``: more of the CLI's environment (``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``)."""
        self.host = host
        self.config_dir = config_dir
        self.extra_env = extra_env or {}

    @property
    def env(self) -> dict[str, str]:
        return {
            "DOCKER_HOST": self.host,
            "DOCKER_CONFIG": self.config_dir,
            "HOME": self.config_dir,
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **self.extra_env,
        }

    async def __call__(
        self, *args: str, input: bytes | None = None, timeout: float = CLIENT_TIMEOUT
    ) -> Result:
        process = await asyncio.create_subprocess_exec(
            DOCKER,
            *args,
            stdin=asyncio.subprocess.DEVNULL if input is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(input), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            pytest.fail(f"docker {' '.join(args)} did not finish within {timeout} s")
        assert process.returncode is not None
        return Result(process.returncode, out.decode(), err.decode())


@pytest.fixture
def docker_cli(frontend: DockerFrontend, short_dir: str) -> DockerCLI:
    if not os.path.exists(DOCKER):
        pytest.skip("the docker CLI is not installed")
    config_dir = f"{short_dir}/docker-config"
    os.makedirs(config_dir, exist_ok=True)
    return DockerCLI(frontend.address, config_dir)


@pytest_asyncio.fixture
async def http(frontend: DockerFrontend) -> AsyncIterator[aiohttp.ClientSession]:
    """A raw HTTP session on the frontend's socket, for wire-level checks."""
    path = frontend.address.removeprefix("unix://")
    async with aiohttp.ClientSession(
        base_url="http://docker", connector=aiohttp.UnixConnector(path=path)
    ) as session:
        yield session


@pytest_asyncio.fixture
async def sdk(frontend: DockerFrontend) -> AsyncIterator[Any]:
    """The Docker SDK for Python; it blocks, so it is built and called through ``asyncio.to_thread``."""
    import docker

    client = await asyncio.to_thread(
        docker.DockerClient, base_url=frontend.address, timeout=int(CLIENT_TIMEOUT)
    )
    try:
        yield client
    finally:
        client.close()
