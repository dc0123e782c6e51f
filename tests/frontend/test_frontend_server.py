"""``DockerFrontend``: where it listens, who may talk to it (token, TLS, mutual TLS), and how it waits
for its backend."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from sockerless.api.server import InternalAPIServer
from sockerless.config import FrontendConfig, ServerConfig
from sockerless.errors import Unavailable
from sockerless.frontend import DockerFrontend
from sockerless.http.sockets import ListenError
from tests.teardown import each_ended

from .conftest import DOCKER, DockerCLI
from .local_backend import LocalBackend
from .pki import Pki, make_pki

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest_asyncio.fixture
async def started() -> AsyncIterator[list[DockerFrontend]]:
    """Frontends a test starts, stopped at its end whatever happens."""
    async with each_ended(DockerFrontend.stop) as frontends:
        yield frontends


async def start(frontends: list[DockerFrontend], frontend: DockerFrontend) -> DockerFrontend:
    frontends.append(frontend)
    await frontend.start()
    return frontend


async def test_the_unix_socket_is_owner_only_and_removed_at_stop(
    backend_server: InternalAPIServer, short_dir: str
) -> None:
    frontend = DockerFrontend(
        FrontendConfig(), socket_path=f"{short_dir}/d.sock", backend_url=backend_server.url
    )
    await frontend.start()
    try:
        assert frontend.address == f"unix://{short_dir}/d.sock"
        assert stat.S_IMODE(os.stat(f"{short_dir}/d.sock").st_mode) == 0o600
        assert frontend.capabilities.backend == "local"
    finally:
        await frontend.stop()
    assert not os.path.exists(f"{short_dir}/d.sock")


async def test_the_socket_mode_is_the_sections(
    backend_server: InternalAPIServer, short_dir: str, started: list[DockerFrontend]
) -> None:
    config = FrontendConfig(socket_mode="0660")
    await start(
        started, DockerFrontend(config, socket_path=f"{short_dir}/d.sock", backend_url=backend_server.url)
    )
    assert stat.S_IMODE(os.stat(f"{short_dir}/d.sock").st_mode) == 0o660


async def test_tcp_on_loopback_with_a_token(
    backend_server: InternalAPIServer, short_dir: str, started: list[DockerFrontend]
) -> None:
    config = FrontendConfig(tcp="127.0.0.1:0", token="t0k")
    frontend = await start(started, DockerFrontend(config, socket_path="", backend_url=backend_server.url))
    assert frontend.address.startswith("tcp://127.0.0.1:")
    base = frontend.address.replace("tcp://", "http://")
    async with aiohttp.ClientSession(base_url=base) as session:
        async with session.get("/_ping") as response:
            assert response.status == 401
            assert response.headers["Content-Type"] == "application/json"
        async with session.get("/_ping", headers={"Authorization": "Bearer t0k"}) as response:
            assert await response.text() == "OK"
    # The docker CLI sends the token from its config.json's HttpHeaders.
    config_dir = f"{short_dir}/cli"
    os.makedirs(config_dir)
    with open(f"{config_dir}/config.json", "w") as file:
        json.dump({"HttpHeaders": {"Authorization": "Bearer t0k"}}, file)
    result = await DockerCLI(frontend.address, config_dir)("version", "--format", "{{.Server.APIVersion}}")
    assert (result.code, result.out.strip()) == (0, "1.44"), result.err


async def test_a_public_address_without_a_token_is_refused(backend_server: InternalAPIServer) -> None:
    frontend = DockerFrontend(FrontendConfig(tcp="0.0.0.0:0"), socket_path="", backend_url=backend_server.url)
    with pytest.raises(ListenError, match="non-loopback"):
        await frontend.start()


def frontend_of_a_missing_backend(short_dir: str, backend_socket: str, wait: float) -> DockerFrontend:
    return DockerFrontend(
        FrontendConfig(),
        socket_path=f"{short_dir}/d.sock",
        backend_url=f"unix://{short_dir}/{backend_socket}",
        backend_wait=wait,
    )


async def test_start_waits_for_a_backend_that_is_still_starting(short_dir: str) -> None:
    frontend = frontend_of_a_missing_backend(short_dir, "late.sock", 30)
    starting = asyncio.create_task(frontend.start())
    await asyncio.sleep(0)  # the frontend is now retrying against a socket that does not exist yet
    backend = InternalAPIServer(LocalBackend(), ServerConfig(socket=f"{short_dir}/late.sock"))
    await backend.start()
    try:
        await asyncio.wait_for(starting, 30)
        assert frontend.capabilities.backend == "local"
        await frontend.stop()
    finally:
        await backend.stop()


async def test_start_gives_up_on_a_backend_that_never_answers(short_dir: str) -> None:
    frontend = frontend_of_a_missing_backend(short_dir, "never.sock", 0.3)
    with pytest.raises(Unavailable, match=r"did not answer within 0\.3 s"):
        await frontend.start()
    assert not os.path.exists(f"{short_dir}/d.sock")


# ---------------------------------------------------------------------------- TLS


def cert_dir(directory: Path, ca: str, cert: str = "", key: str = "") -> str:
    """A ``DOCKER_CERT_PATH`` directory: the CA the CLI trusts, and its client certificate if any."""
    directory.mkdir()
    shutil.copy(ca, directory / "ca.pem")
    if cert:
        shutil.copy(cert, directory / "cert.pem")
        shutil.copy(key, directory / "key.pem")
    return str(directory)


def mutual_tls_backend(pki: Pki) -> ServerConfig:
    """A backend on loopback TCP that asks its clients for a certificate the test CA signed."""
    return ServerConfig(
        tcp="127.0.0.1:0", tls_cert=pki.server_cert, tls_key=pki.server_key, tls_client_ca=pki.ca
    )


def tls_cli(frontend: DockerFrontend, short_dir: str, certs: str) -> DockerCLI:
    if not os.path.exists(DOCKER):
        pytest.skip("the docker CLI is not installed")
    config_dir = f"{certs}-config"
    os.makedirs(config_dir)
    env = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": certs}
    return DockerCLI(frontend.address, config_dir, env)


async def test_the_docker_cli_over_tls(
    backend_server: InternalAPIServer, short_dir: str, pki: Pki, started: list[DockerFrontend]
) -> None:
    config = FrontendConfig(tcp="127.0.0.1:0", tls_cert=pki.server_cert, tls_key=pki.server_key)
    frontend = await start(started, DockerFrontend(config, socket_path="", backend_url=backend_server.url))
    docker = tls_cli(frontend, short_dir, cert_dir(Path(short_dir) / "certs", pki.ca))
    assert (await docker("pull", IMAGE)).code == 0
    # An attach over TLS: the CLI half-closes it at once (no stdin), and the output must still come.
    result = await docker("run", "--rm", IMAGE, "sh", "-c", "echo over tls; exit 3")
    assert (result.code, result.out) == (3, "over tls\n"), result.err


async def test_the_docker_cli_over_mutual_tls_to_a_mutual_tls_backend(
    short_dir: str, pki: Pki, started: list[DockerFrontend]
) -> None:
    backend = InternalAPIServer(LocalBackend(), mutual_tls_backend(pki))
    await backend.start()
    try:
        config = FrontendConfig(
            tcp="127.0.0.1:0",
            tls_cert=pki.server_cert,
            tls_key=pki.server_key,
            tls_client_ca=pki.ca,
            backend_tls_ca=pki.ca,
            backend_tls_cert=pki.client_cert,
            backend_tls_key=pki.client_key,
        )
        frontend = await start(started, DockerFrontend(config, socket_path="", backend_url=backend.url))
        certs = cert_dir(Path(short_dir) / "certs", pki.ca, pki.client_cert, pki.client_key)
        docker = tls_cli(frontend, short_dir, certs)
        assert (await docker("pull", IMAGE)).code == 0
        result = await docker("run", "--rm", IMAGE, "sh", "-c", "echo over mutual tls; exit 4")
        assert (result.code, result.out) == (4, "over mutual tls\n"), result.err
        # A client certificate of another CA gets nowhere.
        strangers = cert_dir(Path(short_dir) / "strangers", pki.ca, pki.stranger_cert, pki.stranger_key)
        stranger = tls_cli(frontend, short_dir, strangers)
        refused = await stranger("version", "--format", "{{.Server.APIVersion}}")
        assert refused.code != 0 and refused.out.strip() == ""
    finally:
        for frontend in started:
            await frontend.stop()
        await backend.stop()


async def test_a_frontend_without_the_backends_client_certificate_says_why(short_dir: str, pki: Pki) -> None:
    backend = InternalAPIServer(LocalBackend(), mutual_tls_backend(pki))
    await backend.start()
    try:
        config = FrontendConfig(backend_tls_ca=pki.ca)
        untrusting = DockerFrontend(
            config, socket_path=f"{short_dir}/d.sock", backend_url=backend.url, backend_wait=2
        )
        with pytest.raises(Exception, match="TLS with the sockerless backend"):
            await untrusting.start()
        assert not os.path.exists(f"{short_dir}/d.sock")
    finally:
        await backend.stop()
