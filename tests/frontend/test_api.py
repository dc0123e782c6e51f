"""The Docker Engine API on the wire: headers, statuses, bodies and error formats the clients rely on."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import aiohttp
import pytest

from sockerless.frontend import DockerFrontend
from sockerless.frontend.autoremove import AUTO_REMOVE_LABEL
from sockerless.models import unstructure
from sockerless.observability import flush_after_answer_lines
from sockerless.server import InternalAPIServer
from sockerless.streams import decode_frames

from .local_backend import LocalBackend

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest"
EXEC_MESSAGE = (
    "This backend (local) does not support exec. "
    "CI runners require exec-capable backends (ecs, cloudrun, aca, docker)."
)


async def expect_error(response: aiohttp.ClientResponse, status: int, message: str) -> None:
    assert response.status == status, await response.text()
    assert response.headers["Content-Type"] == "application/json"
    assert await response.json() == {"message": message}


async def pull(http: aiohttp.ClientSession, image: str = IMAGE) -> None:
    async with http.post("/images/create", params={"fromImage": image}) as response:
        assert response.status == 200
        await response.read()


async def create(http: aiohttp.ClientSession, cmd: list[str], **body: Any) -> str:
    await pull(http)
    params = {"name": body.pop("name")} if "name" in body else {}
    async with http.post("/containers/create", params=params, json={"Image": IMAGE, "Cmd": cmd, **body}) as r:
        assert r.status == 201, await r.text()
        return str((await r.json())["Id"])


async def wait_exit(http: aiohttp.ClientSession, container_id: str) -> dict[str, Any]:
    async with http.post(f"/containers/{container_id}/wait") as response:
        return dict(json.loads(await response.read()))


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
    container_id = await create(http, ["true"], name="shapes", HostConfig={"LogConfig": {"Type": "awslogs"}})
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


async def test_the_list_is_the_backends_rows_without_the_deferred_rm_label(
    http: aiohttp.ClientSession, local_backend: LocalBackend
) -> None:
    await create(http, ["true"], name="plain", Labels={"team": "a"})
    async with http.get("/containers/json", params={"all": "1"}) as response:
        assert response.headers["Content-Type"] == "application/json"
        passed_on = await response.json()
    backend_rows = await local_backend.list_containers(all=True, limit=None, filters={})
    assert passed_on == unstructure(list(backend_rows))
    # An attached --rm is deferred through a label of the frontend's own, which ps does not show.
    deferred = await create(
        http,
        ["true"],
        name="deferred",
        Labels={"team": "b"},
        AttachStdout=True,
        HostConfig={"AutoRemove": True},
    )
    assert local_backend.records[deferred].config.labels == {"team": "b", AUTO_REMOVE_LABEL: "true"}
    async with http.get("/containers/json", params={"all": "1"}) as response:
        rows = {row["Names"][0]: row for row in await response.json()}
    assert (rows["/plain"]["Labels"], rows["/deferred"]["Labels"]) == ({"team": "a"}, {"team": "b"})


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
            response, 400, "invalid condition 'sometime': expected not-running, next-exit or removed"
        )


async def test_a_dropped_wait_releases_the_backend_wait(
    http: aiohttp.ClientSession, local_backend: LocalBackend
) -> None:
    container_id = await create(http, ["true"])
    response = await http.post(f"/containers/{container_id}/wait", params={"condition": "next-exit"})
    assert response.status == 200
    assert local_backend.waiters.pending_count(container_id) == 1
    response.close()  # `docker run -d` drops the wait once it has the ID
    for _ in range(200):
        if local_backend.waiters.pending_count(container_id) == 0:
            break
        await asyncio.sleep(0.01)
    assert local_backend.waiters.pending_count(container_id) == 0


async def test_logs_are_docker_frames_and_raw_with_a_tty(http: aiohttp.ClientSession) -> None:
    plain = await create(http, ["sh", "-c", "echo out; echo err >&2"])
    tty = await create(http, ["sh", "-c", "echo tty"], Tty=True)
    for container_id in (plain, tty):
        await http.post(f"/containers/{container_id}/start")
        await wait_exit(http, container_id)
    params = {"stdout": "1", "stderr": "1"}
    async with http.get(f"/containers/{plain}/logs", params=params) as response:
        assert response.headers["Content-Type"] == "application/vnd.docker.multiplexed-stream"
        frames, rest = decode_frames(await response.read())
    assert sorted(frames) == [(1, b"out\n"), (2, b"err\n")] and rest == b""
    async with http.get(f"/containers/{tty}/logs", params=params) as response:
        assert response.headers["Content-Type"] == "application/vnd.docker.raw-stream"
        assert await response.read() == b"tty\n"
    async with http.get(f"/containers/{plain}/logs") as response:
        await expect_error(response, 400, "you must choose at least one stream")


async def test_follow_sends_headers_at_once(http: aiohttp.ClientSession) -> None:
    container_id = await create(http, ["sh", "-c", "sleep 0.3; echo late"])
    await http.post(f"/containers/{container_id}/start")
    params = {"stdout": "1", "follow": "1"}
    async with http.get(f"/containers/{container_id}/logs", params=params) as response:
        assert response.status == 200  # before any output exists
        frames, _ = decode_frames(await response.read())
    assert frames == [(1, b"late\n")]


async def test_resize_is_accepted(http: aiohttp.ClientSession) -> None:
    container_id = await create(http, ["true"])
    async with http.post(f"/containers/{container_id}/resize", params={"h": "40", "w": "120"}) as response:
        assert response.status == 200


async def test_prune_removes_stopped_containers(http: aiohttp.ClientSession) -> None:
    container_id = await create(http, ["true"])
    async with http.post("/containers/prune") as response:
        assert await response.json() == {"ContainersDeleted": [container_id], "SpaceReclaimed": 0}


# ---------------------------------------------------------------------------- attach


async def raw_attach(frontend: DockerFrontend, path: str) -> tuple[bytes, bytes]:
    """Send an attach as the CLI does; return the response head and everything after it."""
    reader, writer = await asyncio.open_unix_connection(frontend.address.removeprefix("unix://"))
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
        "Content-Length: 0\r\n\r\n".encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if head.startswith(b"HTTP/1.1 101"):
        writer.write_eof()  # the CLI half-closes at once when it has no stdin
        rest = await asyncio.wait_for(reader.read(), 30)  # until the frontend closes
    else:
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        rest = await reader.readexactly(length)
    writer.close()
    return head, rest


async def test_attach_upgrades_and_streams_frames_until_exit(
    http: aiohttp.ClientSession, frontend: DockerFrontend
) -> None:
    container_id = await create(http, ["sh", "-c", "echo attached; echo e >&2; exit 3"])
    attaching = asyncio.create_task(
        raw_attach(frontend, f"/v1.44/containers/{container_id}/attach?stream=1&stdout=1&stderr=1")
    )
    async with http.post(f"/containers/{container_id}/wait", params={"condition": "next-exit"}) as waiting:
        await http.post(f"/containers/{container_id}/start")
        head, rest = await attaching
        assert json.loads(await waiting.read()) == {"StatusCode": 3}
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 101 UPGRADED"
    assert "Connection: Upgrade" in lines
    assert "Upgrade: tcp" in lines
    assert "Content-Type: application/vnd.docker.multiplexed-stream" in lines
    frames, remainder = decode_frames(rest)
    assert sorted(frames) == [(1, b"attached\n"), (2, b"e\n")] and remainder == b""


async def test_attach_with_stdin_is_refused_before_the_upgrade(
    http: aiohttp.ClientSession, frontend: DockerFrontend
) -> None:
    container_id = await create(http, ["cat"])
    head, body = await raw_attach(frontend, f"/containers/{container_id}/attach?stream=1&stdin=1&stdout=1")
    assert head.startswith(b"HTTP/1.1 501")
    assert b"does not support attaching stdin" in body


@pytest.mark.parametrize("frontend_options", [{"attach_mode": "strict"}])
async def test_strict_attach_mode_answers_501(http: aiohttp.ClientSession) -> None:
    container_id = await create(http, ["true"])
    async with http.post(f"/containers/{container_id}/attach", params={"stream": "1", "stdout": "1"}) as r:
        await expect_error(
            r,
            501,
            "This backend (local) does not support attach. "
            "CI runners require exec-capable backends (ecs, cloudrun, aca, docker).",
        )


# ---------------------------------------------------------------------------- images


@pytest.mark.parametrize(
    ("query", "reference"),
    [
        ({"fromImage": "docker.io/library/alpine", "tag": "latest"}, "docker.io/library/alpine:latest"),
        ({"fromImage": "alpine", "tag": "latest"}, "alpine:latest"),
        ({"fromImage": "alpine:3.20", "tag": "3.21"}, "alpine:3.21"),
        ({"fromImage": "localhost:5000/x/y", "tag": "dev"}, "localhost:5000/x/y:dev"),
        ({"fromImage": "alpine", "tag": "sha256:" + "a" * 64}, "alpine@sha256:" + "a" * 64),
        ({"fromImage": IMAGE}, IMAGE),
    ],
)
async def test_pull_reference_forms(
    http: aiohttp.ClientSession, local_backend: LocalBackend, query: dict[str, str], reference: str
) -> None:
    async with http.post("/images/create", params=query) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        lines = [json.loads(line) for line in (await response.read()).splitlines() if line]
    assert lines[-1]["status"].startswith("Status: Downloaded newer image")
    assert local_backend.pulls[-1].reference == reference


async def test_pull_passes_registry_auth_and_never_logs_it(
    http: aiohttp.ClientSession, local_backend: LocalBackend, caplog: pytest.LogCaptureFixture
) -> None:
    auth = base64.urlsafe_b64encode(json.dumps({"username": "u", "password": "hunter2"}).encode()).decode()
    caplog.set_level(logging.DEBUG)
    async with http.post("/images/create", params={"fromImage": "alpine"}, headers={"X-Registry-Auth": auth}):
        pass
    assert local_backend.pulls[-1].auth == auth
    flush_after_answer_lines()  # the access lines too
    assert any(record.name == "sockerless.access" for record in caplog.records)
    assert all(
        auth not in record.getMessage() and auth not in str(record.__dict__) for record in caplog.records
    )


async def test_pull_errors_come_in_the_stream(http: aiohttp.ClientSession) -> None:
    async with http.post("/images/create", params={"fromImage": "example.com/missing/x", "tag": "1"}) as r:
        assert r.status == 200
        last = json.loads((await r.read()).splitlines()[-1])
    message = "pull access denied for example.com/missing/x:1: repository does not exist"
    assert last == {"errorDetail": {"message": message}, "error": message}


async def test_image_names_with_slashes_inspect_and_tag(http: aiohttp.ClientSession) -> None:
    await pull(http)
    async with http.get(f"/v1.44/images/{IMAGE}/json") as response:
        image = await response.json()
    assert image["Id"].startswith("sha256:") and image["RepoTags"] == [IMAGE]
    async with http.post(f"/images/{IMAGE}/tag", params={"repo": "mirror.example.com/app", "tag": "v1"}) as r:
        assert r.status == 201
    async with http.get("/images/mirror.example.com/app:v1/json") as response:
        assert (await response.json())["Id"] == image["Id"]
    async with http.get("/images/example.com/never:1/json") as response:
        await expect_error(response, 404, "No such image: example.com/never:1")
    async with http.get("/images/json") as response:
        rows = await response.json()
    assert [(row["Id"], sorted(row["RepoTags"])) for row in rows] == [
        (image["Id"], sorted([IMAGE, "mirror.example.com/app:v1"]))
    ]


async def image_tags(http: aiohttp.ClientSession, **filters: list[str]) -> list[str]:
    async with http.get("/images/json", params={"filters": json.dumps(filters)}) as response:
        assert response.status == 200, await response.text()
        return sorted(tag for row in await response.json() for tag in row["RepoTags"])


async def test_image_list_filters(http: aiohttp.ClientSession) -> None:
    for image in ("alpine:3.20", "example.com/team/app:1", "example.com/team/app:2"):
        await pull(http, image)
    assert await image_tags(http) == ["alpine:3.20", "example.com/team/app:1", "example.com/team/app:2"]
    assert await image_tags(http, reference=["alpine"]) == ["alpine:3.20"]
    assert await image_tags(http, reference=["example.com/team/app:2"]) == ["example.com/team/app:2"]
    assert await image_tags(http, reference=["example.com/*/app"]) == [
        "example.com/team/app:1",
        "example.com/team/app:2",
    ]
    assert await image_tags(http, reference=["example.com/*"]) == []  # * stops at /, as Docker's
    assert await image_tags(http, dangling=["true"]) == []
    assert len(await image_tags(http, until=["1h"])) == 3  # pulled "at" 1-3 s after 1970
    assert await image_tags(http, until=["1.5"]) == ["alpine:3.20"]  # unix seconds
    assert await image_tags(http, since=["alpine:3.20"]) == [
        "example.com/team/app:1",
        "example.com/team/app:2",
    ]
    assert await image_tags(http, before=["example.com/team/app:2"]) == [
        "alpine:3.20",
        "example.com/team/app:1",
    ]
    async with http.get("/images/json", params={"filters": '{"size": ["1"]}'}) as response:
        await expect_error(
            response,
            400,
            "invalid filter 'size' (supported: before, dangling, label, reference, since, until)",
        )
    async with http.get("/images/json", params={"filters": '{"since": ["nope:1"]}'}) as response:
        await expect_error(response, 404, "No such image: nope:1")


async def test_prunes_of_what_the_backend_cannot_have_delete_nothing(http: aiohttp.ClientSession) -> None:
    # The local backend has no networks or volumes, keeps no layers and never builds.
    for path, report in (
        ("/networks/prune", {"NetworksDeleted": []}),
        ("/volumes/prune", {"VolumesDeleted": [], "SpaceReclaimed": 0}),
        ("/images/prune", {"ImagesDeleted": [], "SpaceReclaimed": 0}),
        ("/build/prune", {"CachesDeleted": [], "SpaceReclaimed": 0}),
    ):
        async with http.post(path) as response:
            assert response.status == 200, path
            assert await response.json() == report
    every_unused = json.dumps({"dangling": {"false": True}})  # docker image prune -a
    async with http.post("/images/prune", params={"filters": every_unused}) as response:
        hint = "Images live in the registry; prune them there."
        await expect_error(response, 501, f"This backend (local) does not support image prune. {hint}")


async def test_auth_goes_to_the_backend_and_is_never_logged(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"username": "me", "password": "secret", "serveraddress": "example.com"}
    async with http.post("/auth", json=body) as response:
        assert await response.json() == {"Status": "Login Succeeded", "IdentityToken": ""}
    async with http.post("/auth", json={**body, "password": "wrong"}) as response:
        await expect_error(response, 400, "login failed: wrong password")
    flush_after_answer_lines()  # the access lines too
    assert any(record.name == "sockerless.access" for record in caplog.records)
    assert all("secret" not in str(record.__dict__) for record in caplog.records)


# ---------------------------------------------------------------------------- the backend going away


async def test_an_unreachable_backend_is_a_clear_503(
    http: aiohttp.ClientSession, backend_server: InternalAPIServer
) -> None:
    address = backend_server.address
    await backend_server.stop()
    async with http.get("/containers/json") as response:
        assert response.status == 503
        assert response.headers["Content-Type"] == "application/json"
        message = (await response.json())["message"]
    assert message.startswith(f"cannot reach the sockerless backend at {address}: ")
    assert message.endswith("; is it running?")


async def test_logs_since_and_until_reach_the_backend(http: aiohttp.ClientSession) -> None:
    container_id = await create(http, ["sh", "-c", "echo line"])
    await http.post(f"/containers/{container_id}/start")
    await wait_exit(http, container_id)

    async def output(**query: str) -> bytes:
        params = {"stdout": "1", **query}
        async with http.get(f"/containers/{container_id}/logs", params=params) as response:
            assert response.status == 200, await response.text()
            return b"".join(data for _, data in decode_frames(await response.read())[0])

    assert await output(since="0") == b"line\n"
    assert await output(since="4102444800.5") == b""  # 2100
    assert await output(until="1") == b""
    assert await output(until="4102444800") == b"line\n"
    async with http.get(f"/containers/{container_id}/logs", params={"stdout": "1", "since": "soon"}) as r:
        await expect_error(r, 400, "invalid time 'soon': expected RFC 3339 or unix seconds")
