"""The internal-API client the frontend forwards with: addresses, errors mapped back by status, and a
query passed on as received."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from sockerless import errors
from sockerless.api import container_routes as c
from sockerless.api.client import BackendClient, parse_backend_url
from sockerless.errors import error_for_status
from sockerless.http.sockets import bind_unix


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("unix:///run/x.sock", ("http://backend", "/run/x.sock")),
        ("http://127.0.0.1:9000", ("http://127.0.0.1:9000", None)),
        ("tcp://localhost:9000", ("http://localhost:9000", None)),
        ("https://backend.example:9443", ("https://backend.example:9443", None)),
    ],
)
def test_backend_urls(url: str, expected: tuple[str, str | None]) -> None:
    assert parse_backend_url(url) == expected


@pytest.mark.parametrize("url", ["unix://", "ftp://x", "/run/x.sock", "http://"])
def test_bad_backend_urls(url: str) -> None:
    with pytest.raises(ValueError, match="invalid backend URL"):
        parse_backend_url(url)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (304, errors.NotModified),
        (400, errors.InvalidParameter),
        (403, errors.AccessDenied),
        (404, errors.NotFound),
        (409, errors.Conflict),
        (501, errors.NotImplementedByBackend),
        (502, errors.UpstreamError),
        (503, errors.Unavailable),
        (504, errors.UpstreamTimeout),
    ],
)
def test_errors_come_back_as_their_class(status: int, cls: type[errors.SockerlessError]) -> None:
    error = error_for_status(status, "m")
    assert type(error) is cls
    assert (error.status, error.message) == (status, "m")


def test_other_statuses_keep_their_status() -> None:
    error = error_for_status(401, "unauthorized")
    assert (type(error), error.status) == (errors.SockerlessError, 401)
    assert error_for_status(503, "busy", retry_after=2).retry_after == 2  # type: ignore[attr-defined]


async def serve(app: web.Application, path: str) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    bound = bind_unix(path)
    await web.SockSite(runner, bound.sock).start()
    try:
        yield bound.description
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def garbage_backend(short_dir: str) -> AsyncIterator[str]:
    """A server that answers everything with 200 and a body that is not JSON."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    async for url in serve(app, f"{short_dir}/garbage.sock"):
        yield url


@pytest_asyncio.fixture
async def recording_backend(short_dir: str) -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A server that records each request and answers logs with text, anything else with a 409."""
    seen: list[web.Request] = []

    async def logs(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(body=b"frames", headers={"Content-Type": "application/vnd.docker.raw-stream"})

    async def conflict(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({"message": "Container abc is not running"}, status=409)

    app = web.Application()
    app.router.add_get("/internal/v1/containers/{id}/logs", logs)
    app.router.add_route("*", "/{tail:.*}", conflict)
    async for url in serve(app, f"{short_dir}/recording.sock"):
        yield url, seen


async def test_a_backend_answering_garbage_is_an_upstream_error(garbage_backend: str) -> None:
    async with BackendClient(garbage_backend) as client:
        with pytest.raises(errors.UpstreamError, match="sent an invalid answer"):
            await client.capabilities()


async def test_a_missing_backend_is_unavailable(short_dir: str) -> None:
    async with BackendClient(f"unix://{short_dir}/nothing.sock") as client:
        with pytest.raises(errors.Unavailable, match="cannot reach the sockerless backend"):
            await client.info()


async def test_forward_passes_the_routes_parameters_as_received(
    recording_backend: tuple[str, list[web.Request]],
) -> None:
    url, seen = recording_backend
    query = {"follow": "True", "tail": "all", "since": "1.5", "stdout": "yes", "details": "1"}
    async with BackendClient(url) as client:
        response = await client.forward(c.LOGS, {"ref": "/web"}, query)
        assert await client.read_body(response) == b"frames"
        assert response.headers["Content-Type"] == "application/vnd.docker.raw-stream"
    [request] = seen
    assert request.path == "/internal/v1/containers/web/logs"
    # Unparsed (the backend reads them), and only what the route declares: Docker's `details` is not.
    assert dict(request.query) == {"follow": "True", "tail": "all", "since": "1.5", "stdout": "yes"}


async def test_forward_raises_the_backends_error(recording_backend: tuple[str, list[web.Request]]) -> None:
    url, _ = recording_backend
    async with BackendClient(url) as client:
        with pytest.raises(errors.Conflict, match="Container abc is not running"):
            await client.forward(c.KILL, {"ref": "abc"}, {})
