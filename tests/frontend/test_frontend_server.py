"""``DockerFrontend``: where it listens, who may talk to it, and how it waits for its backend."""

from __future__ import annotations

import asyncio
import os
import stat

import aiohttp
import pytest

from sockerless.errors import Unavailable
from sockerless.frontend import DockerFrontend
from sockerless.listen import ListenError
from sockerless.server import InternalAPIServer

from .local_backend import LocalBackend


async def test_the_unix_socket_is_owner_only_and_removed_at_stop(
    backend_server: InternalAPIServer, short_dir: str
) -> None:
    frontend = DockerFrontend(backend_url=backend_server.address, socket_path=f"{short_dir}/d.sock")
    await frontend.start()
    try:
        assert frontend.address == f"unix://{short_dir}/d.sock"
        assert stat.S_IMODE(os.stat(f"{short_dir}/d.sock").st_mode) == 0o600
        assert frontend.capabilities.backend == "local"
    finally:
        await frontend.stop()
    assert not os.path.exists(f"{short_dir}/d.sock")


async def test_tcp_on_loopback_with_a_token(backend_server: InternalAPIServer) -> None:
    frontend = DockerFrontend(backend_url=backend_server.address, tcp="127.0.0.1:0", token="t0k")
    await frontend.start()
    try:
        assert frontend.address.startswith("tcp://127.0.0.1:")
        base = frontend.address.replace("tcp://", "http://")
        async with aiohttp.ClientSession(base_url=base) as session:
            async with session.get("/_ping") as response:
                assert response.status == 401
                assert response.headers["Content-Type"] == "application/json"
            async with session.get("/_ping", headers={"Authorization": "Bearer t0k"}) as response:
                assert await response.text() == "OK"
    finally:
        await frontend.stop()


async def test_a_public_address_without_a_token_is_refused(backend_server: InternalAPIServer) -> None:
    frontend = DockerFrontend(backend_url=backend_server.address, tcp="0.0.0.0:0")
    with pytest.raises(ListenError, match="non-loopback"):
        await frontend.start()


async def test_start_waits_for_a_backend_that_is_still_starting(short_dir: str) -> None:
    frontend = DockerFrontend(
        backend_url=f"unix://{short_dir}/late.sock", socket_path=f"{short_dir}/d.sock", backend_wait=30
    )
    starting = asyncio.create_task(frontend.start())
    await asyncio.sleep(0)  # the frontend is now retrying against a socket that does not exist
    backend = InternalAPIServer(LocalBackend(), socket_path=f"{short_dir}/late.sock")
    await backend.start()
    try:
        await asyncio.wait_for(starting, 30)
        assert frontend.capabilities.backend == "local"
        await frontend.stop()
    finally:
        await backend.stop()


async def test_start_gives_up_on_a_backend_that_never_answers(short_dir: str) -> None:
    frontend = DockerFrontend(
        backend_url=f"unix://{short_dir}/never.sock", socket_path=f"{short_dir}/d.sock", backend_wait=0.3
    )
    with pytest.raises(Unavailable, match=r"did not answer within 0\.3 s"):
        await frontend.start()
    assert not os.path.exists(f"{short_dir}/d.sock")


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="'sometimes' is not a valid AttachMode"):
        DockerFrontend(backend_url="unix:///x", attach_mode="sometimes")
    with pytest.raises(ValueError, match="follow_poll_interval"):
        DockerFrontend(backend_url="unix:///x", follow_poll_interval=0)
