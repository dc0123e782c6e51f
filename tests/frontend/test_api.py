"""The Docker Engine API on the wire: versions, headers, statuses, bodies and error formats the clients
rely on, and the backend's answers passed through as they came."""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
import pytest

from sockerless.api.server import InternalAPIServer
from sockerless.wire import unstructure

from .local_backend import LocalBackend
from .wire import create, eventually, expect_error, is_frontend_access_line

EXEC_MESSAGE = (
    "This backend (local) does not support exec. "
    "CI runners require exec-capable backends (ecs, cloudrun, aca, docker)."
)


# ---------------------------------------------------------------------------- system and versions


@pytest.mark.parametrize("method", ["HEAD", "GET"])
async def test_ping_sends_dockers_headers(http: aiohttp.ClientSession, method: str) -> None:
    async with http.request(method, "/_ping") as response:
        assert response.status == 200
        headers = response.headers
        assert headers["API-Version"] == "1.44"
        assert headers["Ostype"] == "linux"
        assert headers["Docker-Experimental"] == "false"
        assert headers["Builder-Version"] == "2"
        assert headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
        assert headers["Pragma"] == "no-cache"
        assert await response.read() == (b"OK" if method == "GET" else b"")


@pytest.mark.parametrize("path", ["/version", "/v1.44/version", "/v1.24/version"])
async def test_version_unversioned_and_versioned(http: aiohttp.ClientSession, path: str) -> None:
    async with http.get(path) as response:
        body = await response.json()
    assert body["ApiVersion"] == "1.44"
    assert body["MinAPIVersion"] == "1.24"
    assert body["Os"] == "linux"
    assert body["Arch"] and body["Version"] and body["KernelVersion"] == ""
    assert [c["Name"] for c in body["Components"]] == ["Engine", "sockerless-backend-local"]


async def test_a_newer_api_version_is_refused_as_docker_does(http: aiohttp.ClientSession) -> None:
    async with http.get("/v1.99/containers/json") as response:
        await expect_error(
            response, 400, "client version 1.99 is too new. Maximum supported API version is 1.44"
        )


async def test_an_older_api_version_is_refused_as_docker_does(http: aiohttp.ClientSession) -> None:
    async with http.get("/v1.12/version") as response:
        await expect_error(
            response,
            400,
            "client version 1.12 is too old. Minimum supported API version is 1.24, "
            "please upgrade your client to a newer version",
        )


async def test_unknown_paths_are_a_json_404(http: aiohttp.ClientSession) -> None:
    async with http.get("/v1.44/no/such/thing") as response:
        await expect_error(response, 404, "page not found")


async def test_info_has_what_the_cli_decodes(http: aiohttp.ClientSession) -> None:
    async with http.get("/info") as response:
        info = await response.json()
    assert info["OSType"] == "linux"
    assert info["Driver"] == "local"
    assert info["Swarm"]["LocalNodeState"] == "inactive"
    for key in ("Plugins", "RegistryConfig", "SecurityOptions", "Warnings", "Runtimes", "Labels"):
        assert info[key] is not None, key


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("POST", "/containers/c/exec", EXEC_MESSAGE),
        ("GET", "/networks", "This backend (local) does not support networks."),
        ("POST", "/volumes/create", "This backend (local) does not support volumes."),
        (
            "GET",
            "/containers/c/stats",
            "This backend (local) does not support container stats. Use the cloud provider's metrics.",
        ),
        ("GET", "/containers/c/top", "This backend (local) does not support container top."),
        ("GET", "/events", "This backend (local) does not support events."),
        (
            "POST",
            "/images/load",
            "This backend (local) does not support image load. "
            "Push the image to a registry the backend can pull from instead.",
        ),
    ],
)
async def test_unsupported_calls_answer_501_naming_the_backend(
    http: aiohttp.ClientSession, method: str, path: str, message: str
) -> None:
    async with http.request(method, "/v1.44" + path, json={"Cmd": ["ls"]}) as response:
        await expect_error(response, 501, message)


async def test_inspecting_a_network_or_volume_without_them_is_not_found(http: aiohttp.ClientSession) -> None:
    # `docker inspect NAME` walks networks and volumes and skips only "not found".
    async with http.get("/networks/web") as response:
        await expect_error(response, 404, "No such network: web")
    async with http.get("/volumes/data") as response:
        await expect_error(response, 404, "No such volume: data")


# ---------------------------------------------------------------------------- containers


async def test_create_of_a_never_pulled_image_is_no_such_image(http: aiohttp.ClientSession) -> None:
    async with http.post("/v1.44/containers/create", json={"Image": "alpine", "Cmd": ["true"]}) as r:
        await expect_error(r, 404, "No such image: alpine:latest")


async def test_create_rejects_bad_bodies(http: aiohttp.ClientSession) -> None:
    async with http.post("/containers/create", data=b"{not json") as response:
        assert response.status == 400
        assert (await response.json())["message"].startswith("invalid JSON body")
    async with http.post("/containers/create", json={"Cmd": ["true"]}) as response:
        await expect_error(response, 400, "invalid create body: Image is required")


async def test_backend_errors_pass_through_with_status_and_message(http: aiohttp.ClientSession) -> None:
    async with http.get("/containers/nope/json") as response:
        await expect_error(response, 404, "No such container: nope")
    container_id = await create(http, ["sleep", "30"])
    async with http.post(f"/containers/{container_id}/start") as response:
        assert response.status == 204
    async with http.post(f"/containers/{container_id}/start") as response:
        assert response.status == 304
    async with http.delete(f"/containers/{container_id}") as response:
        await expect_error(
            response,
            409,
            f"You cannot remove a running container {container_id[:12]}. "
            "Stop the container before attempting removal or force remove",
        )
    async with http.delete(f"/containers/{container_id}", params={"force": "1"}) as response:
        assert response.status == 204
    async with http.delete(f"/containers/{container_id}", params={"force": "1"}) as response:
        assert response.status == 404


async def test_inspect_and_list_have_the_shapes_the_clients_decode(http: aiohttp.ClientSession) -> None:
    container_id = await create(http, ["true"], name="shapes")
    async with http.get("/containers/shapes/json") as response:
        inspected = await response.json()
    assert inspected["Id"] == container_id
    assert isinstance(inspected["Created"], str)
    assert inspected["Config"]["Cmd"] == ["true"]
    assert inspected["HostConfig"]["LogConfig"]["Type"] == "json-file"
    async with http.get("/containers/json", params={"all": "1"}) as response:
        [row] = await response.json()
    assert isinstance(row["Created"], int)
    assert (row["Names"], row["State"], row["Status"]) == (["/shapes"], "created", "Created")


async def test_the_list_is_the_backends_rows_as_they_came(
    http: aiohttp.ClientSession, local_backend: LocalBackend
) -> None:
    await create(http, ["true"], name="plain", Labels={"team": "a"})
    await create(http, ["true"], name="rm", AttachStdout=True, HostConfig={"AutoRemove": True})
    async with http.get("/containers/json", params={"all": "1"}) as response:
        assert response.headers["Content-Type"] == "application/json"
        passed_on = await response.json()
    backend_rows = await local_backend.list_containers(all=True, limit=None, filters={})
    assert passed_on == unstructure(list(backend_rows))


async def test_the_create_body_reaches_the_backend_as_sent(
    http: aiohttp.ClientSession, local_backend: LocalBackend
) -> None:
    # --rm is the backend's to do: the frontend changes nothing of an attached --rm create.
    container_id = await create(
        http,
        ["true"],
        Labels={"team": "b"},
        AttachStdout=True,
        HostConfig={"AutoRemove": True, "LogConfig": {"Type": "awslogs"}},
    )
    record = local_backend.store.resolve_container(container_id)
    assert record.config.labels == {"team": "b"}
    assert record.host_config.auto_remove is True
    assert record.host_config.log_config.type == "awslogs"
    async with http.get(f"/containers/{container_id}/json") as response:
        inspected = await response.json()
    assert inspected["HostConfig"]["AutoRemove"] is True
    assert inspected["Config"]["Labels"] == {"team": "b"}


@pytest.mark.parametrize("filters", [{"label": {"app=web": True}}, {"label": ["app=web"]}])
async def test_list_filters_in_both_encodings(http: aiohttp.ClientSession, filters: dict[str, Any]) -> None:
    wanted = await create(http, ["true"], Labels={"app": "web"})
    await create(http, ["true"], Labels={"app": "db"})
    params = {"all": "1", "filters": json.dumps(filters)}
    async with http.get("/containers/json", params=params) as response:
        assert [row["Id"] for row in await response.json()] == [wanted]


async def test_wait_sends_headers_before_the_container_exits(http: aiohttp.ClientSession) -> None:
    container_id = await create(http, ["sh", "-c", "exit 7"])
    async with http.post(f"/containers/{container_id}/wait", params={"condition": "next-exit"}) as waiting:
        # The headers are here although the container has not even started.
        assert waiting.status == 200
        assert waiting.headers["Content-Type"] == "application/json"
        async with http.post(f"/containers/{container_id}/start") as started:
            assert started.status == 204
        assert json.loads(await waiting.read()) == {"StatusCode": 7}  # no "Error" on success


async def test_wait_errors_before_the_headers(http: aiohttp.ClientSession) -> None:
    async with http.post("/containers/nope/wait") as response:
        await expect_error(response, 404, "No such container: nope")
    container_id = await create(http, ["true"])
    async with http.post(f"/containers/{container_id}/wait", params={"condition": "sometime"}) as response:
        await expect_error(
            response, 400, "invalid condition 'sometime': expected not-running, next-exit, removed"
        )


async def test_a_backend_failing_during_a_wait_is_reported_in_the_body(
    http: aiohttp.ClientSession, backend_server: InternalAPIServer
) -> None:
    container_id = await create(http, ["true"])
    url = backend_server.url
    async with http.post(f"/containers/{container_id}/wait", params={"condition": "next-exit"}) as waiting:
        assert waiting.status == 200  # the headers are out: a failure can only be told in the body
        await backend_server.stop()
        body = json.loads(await waiting.read())
    assert body["StatusCode"] == -1
    assert body["Error"]["Message"].startswith(f"the backend at {url} dropped the wait")


async def test_a_dropped_wait_releases_the_backend_wait_quietly(
    http: aiohttp.ClientSession, local_backend: LocalBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    container_id = await create(http, ["true"])
    response = await http.post(f"/containers/{container_id}/wait", params={"condition": "next-exit"})
    assert response.status == 200
    assert local_backend.waiters.pending_count(container_id) == 1
    response.close()  # `docker run -d` drops the wait once it has the ID
    await eventually(lambda: local_backend.waiters.pending_count(container_id) == 0)
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


async def test_resize_is_accepted(http: aiohttp.ClientSession) -> None:
    container_id = await create(http, ["true"])
    async with http.post(f"/containers/{container_id}/resize", params={"h": "40", "w": "120"}) as response:
        assert response.status == 200


async def test_prune_removes_stopped_containers(http: aiohttp.ClientSession) -> None:
    container_id = await create(http, ["true"])
    async with http.post("/containers/prune") as response:
        assert await response.json() == {"ContainersDeleted": [container_id], "SpaceReclaimed": 0}


async def test_auth_goes_to_the_backend_and_is_never_logged(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"username": "me", "password": "secret", "serveraddress": "example.com"}
    async with http.post("/auth", json=body) as response:
        assert await response.json() == {"Status": "Login Succeeded", "IdentityToken": ""}
    async with http.post("/auth", json={**body, "password": "wrong"}) as response:
        await expect_error(response, 400, "login failed: wrong password")
    assert any(is_frontend_access_line(record) for record in caplog.records)
    assert all("secret" not in str(record.__dict__) for record in caplog.records)


# ---------------------------------------------------------------------------- the backend going away


async def test_an_unreachable_backend_is_a_clear_503(
    http: aiohttp.ClientSession, backend_server: InternalAPIServer
) -> None:
    address = backend_server.url
    await backend_server.stop()
    async with http.get("/containers/json") as response:
        assert response.status == 503
        assert response.headers["Content-Type"] == "application/json"
        message = (await response.json())["message"]
    assert message.startswith(f"cannot reach the sockerless backend at {address}: ")
    assert message.endswith("; is it running?")
