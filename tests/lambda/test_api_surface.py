"""What the Lambda backend declares and refuses: capabilities, 501s, system info, images."""

from __future__ import annotations

import json
import logging

import pytest

from sockerless_lambda import __version__

API = "/internal/v1"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs:latest"  # the one Api.create uses
CI_HINT = "CI runners require exec-capable backends (ecs, cloudrun, aca, docker)."


async def test_capabilities_are_exactly_lambdas(api) -> None:
    response = await api.client.get(f"{API}/capabilities")
    assert response.status == 200
    assert await response.json() == {
        "backend": "lambda",
        "version": __version__,
        "capabilities": {
            "exec": False,
            "attach": False,
            "logs": True,
            "logs_follow": True,  # the backend serves logs?follow=1 itself
            "volumes": False,
            "networks": False,
            "health_checks": False,
            "image_pull": True,
            "image_load": False,
            "max_timeout_seconds": 900,
            "agent_required": False,
            "rename": True,  # in the store
            "events": True,
        },
    }


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("POST", "/containers/{id}/exec", f"This backend (lambda) does not support exec. {CI_HINT}"),
        ("POST", "/exec/abc/start", f"This backend (lambda) does not support exec. {CI_HINT}"),
        ("POST", "/containers/{id}/attach", f"This backend (lambda) does not support attach. {CI_HINT}"),
        ("GET", "/networks", "This backend (lambda) does not support networks."),
        ("POST", "/networks", "This backend (lambda) does not support networks."),
        ("GET", "/volumes", "This backend (lambda) does not support volumes."),
        ("POST", "/volumes", "This backend (lambda) does not support volumes."),
        (
            "POST",
            "/images/load",
            "This backend (lambda) does not support image load. "
            "Push the image to a registry the backend can pull from instead.",
        ),
    ],
)
async def test_unsupported_operations_answer_501_with_the_exact_message(api, method, path, message) -> None:
    container_id = await api.create()
    response = await api.client.request(method, API + path.format(id=container_id), json={"Cmd": ["ls"]})
    assert response.status == 501
    assert response.headers["Content-Type"] == "application/json"
    assert await response.json() == {"message": message}


async def test_info_and_version(api) -> None:
    await api.create()
    info = await (await api.client.get(f"{API}/info")).json()
    assert info["ID"] == "test-instance"
    assert info["Containers"] == 1
    assert info["ContainersStopped"] == 1
    assert info["Images"] == 1
    assert info["Driver"] == "lambda"
    version = await (await api.client.get(f"{API}/version")).json()
    assert version["Version"] == __version__


async def test_pull_records_the_reference_and_streams_progress(api, lambda_simulator) -> None:
    lambda_simulator.stats.reset()
    response = await api.client.post(f"{API}/images/pull", json={"Reference": "alpine"})
    assert response.status == 200
    lines = [json.loads(line) for line in (await response.text()).splitlines()]
    assert lines[0] == {"status": "Pulling from library/alpine", "id": "latest"}
    assert lines[-1] == {"status": "Status: Image is up to date for docker.io/library/alpine:latest"}
    assert lambda_simulator.stats.snapshot()["total_calls"] == 0  # Lambda pulls at create, not now
    image = await (await api.client.get(f"{API}/images/inspect", params={"name": "alpine:latest"})).json()
    assert image["RepoTags"] == ["alpine:latest"]
    assert image["Id"].startswith("sha256:") and len(image["Id"]) == 71


async def test_pull_of_a_digest_reference_uses_the_digest_as_id(api) -> None:
    digest = "sha256:" + "ab" * 32
    reference = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs@{digest}"
    response = await api.client.post(f"{API}/images/pull", json={"Reference": reference})
    assert response.status == 200
    image = await (await api.client.get(f"{API}/images/inspect", params={"name": reference})).json()
    assert image["Id"] == digest
    assert image["RepoDigests"] == [reference]


async def test_an_image_never_pulled_nor_used_is_404_and_create_records_it(api) -> None:
    response = await api.client.get(f"{API}/images/inspect", params={"name": "localhost:5000/x/y:tag"})
    assert response.status == 404
    assert (await response.json())["message"] == "No such image: localhost:5000/x/y:tag"
    await api.create(Image="localhost:5000/x/y:tag")
    response = await api.client.get(f"{API}/images/inspect", params={"name": "localhost:5000/x/y:tag"})
    assert response.status == 200


async def test_tag_adds_a_reference_to_the_same_image(api) -> None:
    assert (await api.client.post(f"{API}/images/pull", json={"Reference": "alpine:3.20"})).status == 200
    response = await api.client.post(
        f"{API}/images/tag", params={"name": "alpine:3.20", "repo": "myrepo/alpine", "tag": "v1"}
    )
    assert response.status == 201
    tagged = await (await api.client.get(f"{API}/images/inspect", params={"name": "myrepo/alpine:v1"})).json()
    original = await (await api.client.get(f"{API}/images/inspect", params={"name": "alpine:3.20"})).json()
    assert tagged["Id"] == original["Id"]


async def test_the_image_list_has_one_row_per_image_with_all_its_tags(api) -> None:
    assert (await (await api.client.get(f"{API}/images")).json()) == []
    assert (await api.client.post(f"{API}/images/pull", json={"Reference": "alpine:3.20"})).status == 200
    await api.client.post(f"{API}/images/tag", params={"name": "alpine:3.20", "repo": "mine", "tag": "v1"})
    digest = "sha256:" + "cd" * 32
    pinned = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs@{digest}"
    assert (await api.client.post(f"{API}/images/pull", json={"Reference": pinned})).status == 200
    await api.create(Image="localhost:5000/x/y:tag")  # a create records its image too
    rows = await (await api.client.get(f"{API}/images")).json()
    by_id = {row["Id"]: row for row in rows}
    alpine = (await (await api.client.get(f"{API}/images/inspect", params={"name": "alpine:3.20"})).json())[
        "Id"
    ]
    assert sorted(by_id[alpine]["RepoTags"]) == ["alpine:3.20", "mine:v1"]
    assert by_id[digest]["RepoTags"] == [] and by_id[digest]["RepoDigests"] == [pinned]
    assert len(rows) == 3
    assert [row["Created"] for row in rows] == sorted((row["Created"] for row in rows), reverse=True)
    assert all(row["Size"] == 0 and row["Containers"] == -1 for row in rows)


async def remove_image(api, name: str, **query: str):
    return await api.client.delete(f"{API}/images", params={"name": name, **query})


async def test_image_removal_by_id_with_docker_conflicts(api) -> None:
    assert (await api.client.post(f"{API}/images/pull", json={"Reference": IMAGE})).status == 200
    await api.client.post(f"{API}/images/tag", params={"name": IMAGE, "repo": "mirror", "tag": "v1"})
    image_id = (await (await api.client.get(f"{API}/images/inspect", params={"name": IMAGE})).json())["Id"]
    short = image_id[7:19]
    response = await remove_image(api, short)
    assert response.status == 409
    assert (await response.json())["message"] == (
        f"conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories"
    )
    container_id = await api.create(Cmd=["sleep", "5"])
    await api.start(container_id)
    response = await remove_image(api, image_id, force="1")
    assert response.status == 409
    assert (await response.json())["message"] == (
        f"conflict: unable to delete {short} (cannot be forced) - "
        f"image is being used by running container {container_id[:12]}"
    )
    response = await remove_image(api, "mirror:v1")  # not the last reference: untagged at once
    assert await response.json() == [{"Untagged": "mirror:v1"}]
    await api.wait(container_id)
    response = await remove_image(api, image_id, force="1")
    assert response.status == 200, await response.text()
    assert await response.json() == [{"Untagged": IMAGE}, {"Deleted": image_id}]
    response = await remove_image(api, image_id)
    assert response.status == 404


async def test_a_pin_by_the_digest_a_pull_by_tag_reported_creates_the_function_from_the_tag(api) -> None:
    assert (await api.client.post(f"{API}/images/pull", json={"Reference": IMAGE})).status == 200
    image = await (await api.client.get(f"{API}/images/inspect", params={"name": IMAGE})).json()
    (pinned,) = image["RepoDigests"]
    assert pinned == IMAGE.rsplit(":", 1)[0] + "@" + image["Id"]
    container_id = await api.create(Image=pinned, Cmd=["true"])
    assert (await api.inspect(container_id))["Config"]["Image"] == pinned  # as the client gave it
    function = await api.backend.clients.control.get_function(FunctionName=api.function_name(container_id))
    assert function["Code"]["ImageUri"] == IMAGE  # the registry knows the tag, not our digest
    registry_pin = IMAGE.rsplit(":", 1)[0] + "@sha256:" + "ef" * 32  # a digest of the registry's
    other = await api.create(Image=registry_pin, Cmd=["true"])
    function = await api.backend.clients.control.get_function(FunctionName=api.function_name(other))
    assert function["Code"]["ImageUri"] == registry_pin


async def image_uri(api, container_id: str) -> str:
    function = await api.backend.clients.control.get_function(FunctionName=api.function_name(container_id))
    return str(function["Code"]["ImageUri"])


@pytest.mark.parametrize(
    ("image", "uri"),
    [
        # Lambda refuses a repository without a tag: Docker's default tag is made explicit.
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs", IMAGE),
        ("repo", "repo:latest"),
        # Lambda refuses repo:tag@sha256:...: the digest alone names the image.
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs:v1@sha256:" + "ab" * 32,
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs@sha256:" + "ab" * 32,
        ),
    ],
)
async def test_the_function_gets_an_image_uri_lambda_accepts(api, image, uri) -> None:
    container_id = await api.create(Image=image, Cmd=["true"])
    assert await image_uri(api, container_id) == uri
    assert (await api.inspect(container_id))["Config"]["Image"] == image  # as the client gave it


async def test_a_local_tag_creates_the_function_from_the_image_it_points_at(api) -> None:
    assert (await api.client.post(f"{API}/images/pull", json={"Reference": IMAGE})).status == 200
    response = await api.client.post(f"{API}/images/tag", params={"name": IMAGE, "repo": "mine", "tag": "v1"})
    assert response.status == 201
    await api.client.post(f"{API}/images/tag", params={"name": "mine:v1", "repo": "again", "tag": "v2"})
    for local in ("mine:v1", "again:v2"):  # the registry knows neither name
        container_id = await api.create(Image=local, Cmd=["true"])
        assert await image_uri(api, container_id) == IMAGE


async def test_image_prune_all_with_label_and_until_filters(api) -> None:
    for reference in ("alpine:3.20", "busybox:1"):
        assert (await api.client.post(f"{API}/images/pull", json={"Reference": reference})).status == 200
    response = await api.client.post(
        f"{API}/images/prune", params={"filters": '{"until": ["1970-01-02T00:00:00Z"]}'}
    )
    assert await response.json() == {"ImagesDeleted": [], "SpaceReclaimed": 0}  # dangling only: none
    everything_old = json.dumps({"dangling": ["false"], "until": ["1970-01-02T00:00:00Z"]})
    response = await api.client.post(f"{API}/images/prune", params={"filters": everything_old})
    assert (await response.json())["ImagesDeleted"] == []  # pulled now, not before 1970-01-02
    labelled = json.dumps({"dangling": ["false"], "label": ["team"]})
    response = await api.client.post(f"{API}/images/prune", params={"filters": labelled})
    assert (await response.json())["ImagesDeleted"] == []  # pulled images carry no labels here
    response = await api.client.post(f"{API}/images/prune", params={"filters": '{"dangling": ["false"]}'})
    deleted = (await response.json())["ImagesDeleted"]
    assert sorted(item["Untagged"] for item in deleted if "Untagged" in item) == ["alpine:3.20", "busybox:1"]
    assert len([item for item in deleted if "Deleted" in item]) == 2
    assert await (await api.client.get(f"{API}/images")).json() == []
    response = await api.client.post(f"{API}/images/prune", params={"filters": '{"dangling": ["maybe"]}'})
    assert response.status == 400


async def test_start_up_creates_the_log_group_with_retention_and_tag(backend) -> None:
    groups = await backend.clients.logs.describe_log_groups(logGroupNamePrefix="/sockerless/lambda")
    assert [(g["logGroupName"], g.get("retentionInDays")) for g in groups["logGroups"]] == [
        ("/sockerless/lambda", 30)
    ]
    tags = await backend.clients.logs.list_tags_log_group(logGroupName="/sockerless/lambda")
    assert tags["tags"] == {"sockerless:managed": "true"}


DENY_LOG_GROUP = {
    "kind": "error",
    "operation": "logs:CreateLogGroup",
    "status": 400,
    "code": "AccessDeniedException",
}


@pytest.mark.lambda_simulator(faults=[DENY_LOG_GROUP])
async def test_without_permission_to_create_the_log_group_start_up_only_warns(backend, caplog) -> None:
    started = caplog.get_records("setup")  # the backend fixture started it
    assert any("cannot create the log group" in record.getMessage() for record in started)


async def test_aws_request_ids_reach_the_request_log(api, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="sockerless.access"):
        await api.create()
    lines = [r for r in caplog.records if r.name == "sockerless.access" and r.fields["method"] == "POST"]
    assert lines and lines[-1].fields["cloud_request_ids"]
