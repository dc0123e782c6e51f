"""Images on the wire: pull references and credentials, progress and its errors, names with slashes,
the list's filters, and the prunes of what no backend keeps."""

from __future__ import annotations

import base64
import json
import logging

import aiohttp
import pytest

from .local_backend import LocalBackend
from .wire import IMAGE, expect_error, is_frontend_access_line, pull


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
    assert any(is_frontend_access_line(record) for record in caplog.records)
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
    # The local backend has no networks or volumes, prunes no images of its own and never builds.
    every_unused = json.dumps({"dangling": {"false": True}})  # docker image prune -a
    for path, params, report in (
        ("/networks/prune", {}, {"NetworksDeleted": []}),
        ("/volumes/prune", {}, {"VolumesDeleted": [], "SpaceReclaimed": 0}),
        ("/images/prune", {}, {"ImagesDeleted": [], "SpaceReclaimed": 0}),
        ("/images/prune", {"filters": every_unused}, {"ImagesDeleted": [], "SpaceReclaimed": 0}),
        ("/build/prune", {}, {"CachesDeleted": [], "SpaceReclaimed": 0}),
    ):
        async with http.post(path, params=params) as response:
            assert response.status == 200, path
            assert await response.json() == report


async def test_image_removal_reaches_the_backend(http: aiohttp.ClientSession) -> None:
    await pull(http)
    async with http.delete(f"/v1.44/images/{IMAGE}", params={"force": "1"}) as response:
        await expect_error(response, 501, "This backend (local) does not support image removal.")
    async with http.post("/images/prune", params={"filters": '{"size": ["1"]}'}) as response:
        await expect_error(response, 400, "invalid filter 'size' (supported: dangling, label, label!, until)")
