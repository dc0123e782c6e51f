"""A backend that can attach, exec and follow itself: the frontend passes those streams through.

The backend here is a small aiohttp app speaking the internal API's upgrade protocol (the core
server cannot hijack yet); the clients are the real docker CLI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from sockerless.frontend import DockerFrontend
from sockerless.frontend.hijack import MULTIPLEXED_STREAM, HijackedConnection
from sockerless.listen import bind_unix
from sockerless.models import Capabilities, CapabilityReport, Container, ExecInstance, unstructure
from sockerless.server import json_response
from sockerless.streams import encode_frame

from .conftest import DockerCLI

pytestmark = pytest.mark.docker_cli

P = "/internal/v1"
CONTAINER_ID = "c" * 64
CAPABILITIES = Capabilities(exec=True, attach=True, logs=True, logs_follow=True, image_pull=True)


async def capabilities(request: web.Request) -> web.StreamResponse:
    return json_response(unstructure(CapabilityReport("streams", "1.0", CAPABILITIES)))


async def inspect(request: web.Request) -> web.StreamResponse:
    container = Container(id=CONTAINER_ID, name="/box", created="2024-01-01T00:00:00Z")
    container.state.status, container.state.running = "running", True
    return json_response(unstructure(container))


async def create_exec(request: web.Request) -> web.StreamResponse:
    return json_response({"Id": "e1"}, 201)


async def inspect_exec(request: web.Request) -> web.StreamResponse:
    return json_response(unstructure(ExecInstance(id="e1", exit_code=0, container_id=CONTAINER_ID)))


async def start_exec(request: web.Request) -> web.StreamResponse:
    """Echo stdin back on stdout, upper-cased, until the client half-closes."""
    await request.read()
    connection = await HijackedConnection.upgrade(request, MULTIPLEXED_STREAM)
    while (data := await connection.read()) is not None:
        await connection.write(encode_frame(1, data.upper()))
    connection.close()
    return connection.response


async def attach(request: web.Request) -> web.StreamResponse:
    connection = await HijackedConnection.upgrade(request, MULTIPLEXED_STREAM)
    await connection.write(encode_frame(1, b"from the backend's attach\n"))
    connection.close()
    return connection.response


async def wait(request: web.Request) -> web.StreamResponse:
    return json_response({"StatusCode": 0})


async def logs(request: web.Request) -> web.StreamResponse:
    assert request.query["follow"] == "1"
    response = web.StreamResponse(headers={"Content-Type": MULTIPLEXED_STREAM})
    await response.prepare(request)
    await response.write(encode_frame(1, b"followed by the backend\n"))
    await response.write_eof()
    return response


@pytest_asyncio.fixture
async def streaming_backend(short_dir: str) -> AsyncIterator[str]:
    app = web.Application()
    app.add_routes(
        [
            web.get(P + "/capabilities", capabilities),
            web.get(P + "/containers/{id}", inspect),
            web.post(P + "/containers/{id}/exec", create_exec),
            web.get(P + "/exec/{id}", inspect_exec),
            web.post(P + "/exec/{id}/start", start_exec),
            web.post(P + "/containers/{id}/attach", attach),
            web.get(P + "/containers/{id}/logs", logs),
            web.post(P + "/containers/{id}/wait", wait),
        ]
    )
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    listener = bind_unix(f"{short_dir}/streams.sock")
    await web.SockSite(runner, listener.sock).start()
    try:
        yield listener.description
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def frontend(streaming_backend: str, short_dir: str) -> AsyncIterator[DockerFrontend]:
    started = DockerFrontend(backend_url=streaming_backend, socket_path=f"{short_dir}/docker.sock")
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


async def test_exec_streams_both_ways_through_the_frontend(docker_cli: DockerCLI) -> None:
    result = await docker_cli("exec", "-i", "box", "cat", input=b"hello\nworld\n")
    assert result.code == 0, result.err
    assert result.out == "HELLO\nWORLD\n"


async def test_attach_is_passed_through(docker_cli: DockerCLI) -> None:
    result = await docker_cli("attach", "--no-stdin", "box")
    assert result.code == 0, result.err
    assert result.out == "from the backend's attach\n"


async def test_log_follow_is_passed_through(docker_cli: DockerCLI) -> None:
    result = await docker_cli("logs", "-f", "box")
    assert result.out == "followed by the backend\n"
