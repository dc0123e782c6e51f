"""Every route of the Docker Engine API v1.44 is answered: served, passed to the backend, or a 501 that
names the operation and the backend; never aiohttp's 404 "page not found" (which the docker CLI prints
as if the object were missing). Unknown paths stay 404."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from .wire import create, expect_error

SPEC = Path(__file__).with_name("docker_api_v1_44.txt")


def spec_routes() -> list[tuple[str, str, str]]:
    rows = [line.split() for line in SPEC.read_text().splitlines() if line and not line.startswith("#")]
    return [(method, path, operation) for method, path, operation in rows]


def test_the_spec_list_is_whole() -> None:
    routes = spec_routes()
    assert len(routes) == len({(method, path) for method, path, _ in routes}) == 107


@pytest.mark.parametrize(("method", "path", "operation"), spec_routes(), ids=[op for *_, op in spec_routes()])
async def test_every_docker_route_is_answered(
    http: aiohttp.ClientSession, method: str, path: str, operation: str
) -> None:
    concrete = "/v1.44" + path.replace("{id}", "nosuch").replace("{name}", "nosuch")
    body = {} if method in ("POST", "PUT") else None
    async with http.request(method, concrete, json=body) as response:
        assert response.status != 405, operation
        if method == "HEAD":
            assert response.status != 404, operation
            return
        if response.status >= 400:
            assert response.headers["Content-Type"] == "application/json", operation
            message = (await response.json())["message"]
            assert message != "page not found", operation
            if response.status == 501:
                assert "This backend (local) does not support " in message, operation


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "/nodes", "This backend (local) does not support nodes."),
        ("POST", "/swarm/init", "This backend (local) does not support swarm."),
        ("POST", "/services/create", "This backend (local) does not support services."),
        ("GET", "/plugins", "This backend (local) does not support plugins."),
        (
            "GET",
            "/distribution/docker.io/library/alpine:latest/json",
            "This backend (local) does not support image distribution inspect. "
            "Ask the registry for the manifest instead.",
        ),
        ("POST", "/containers/web/rename?name=a", "This backend (local) does not support container rename."),
        ("GET", "/events?since=0", "This backend (local) does not support events."),
    ],
)
async def test_what_no_backend_or_this_backend_lacks_is_a_501(
    http: aiohttp.ClientSession, method: str, path: str, message: str
) -> None:
    async with http.request(method, "/v1.44" + path) as response:
        await expect_error(response, 501, message)


async def test_plugin_inspect_is_not_found_as_docker_inspect_needs(http: aiohttp.ClientSession) -> None:
    async with http.get("/v1.44/plugins/web/json") as response:
        await expect_error(response, 404, 'plugin "web" not found')


async def test_link_removal_is_a_501_and_removes_nothing(http: aiohttp.ClientSession) -> None:
    await create(http, ["true"], name="web")
    message = "This backend (local) does not support container link removal."
    async with http.delete("/v1.44/containers/web", params={"link": "1"}) as response:
        await expect_error(response, 501, message)
    async with http.delete("/v1.44/containers/web/db", params={"link": "1"}) as response:
        await expect_error(response, 501, message)
    async with http.delete("/v1.44/containers/web/db") as response:
        await expect_error(response, 404, "No such container: web/db")
    async with http.get("/v1.44/containers/web/json") as response:
        assert response.status == 200
    async with http.delete("/v1.44/containers/web") as response:
        assert response.status == 204
