"""Images through the backend's internal API with preparation on: pull, inspect, list, rmi, and a
create of an image never pulled; a local registry is the "ECR" (``lambda.registry_url``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from sockerless_lambda.images import PREPARE_LABEL
from tests.conftest import needs_local_images
from tests.imagekit import busybox_layer, image, push_image

API = "/internal/v1"
UNREACHABLE = "127.0.0.1:9/nowhere:latest"  # the discard port: nothing listens on loopback there


@pytest_asyncio.fixture
async def ecr(tmp_path: Path) -> AsyncIterator[Any]:
    needs_local_images()
    from sockerless_lambda_simulator.registry import LocalRegistry

    async with LocalRegistry(tmp_path / "ecr") as registry:
        yield registry


@pytest.fixture
def unfetchable() -> str:
    return "fail"


@pytest.fixture
def config_overrides(ecr: Any, unfetchable: str) -> dict[str, Any]:
    return {"prepare_images": True, "registry_url": ecr.url, "unfetchable_images": unfetchable}


@pytest_asyncio.fixture
async def pushed(source_registry: Any) -> dict[str, Any]:
    """busybox with a config Docker would write, pushed to the source registry."""
    layer = busybox_layer()
    built = image(
        [layer],
        cmd=["sh", "-c", "echo from the image"],
        env=["PATH=/bin", "MODE=image"],
        working_dir="/tmp",
        labels={"org.example": "yes"},
    )
    digest = await push_image(source_registry.url, "busybox", "latest", built)
    return {
        "reference": f"{source_registry.host}/busybox:latest",
        "digest": digest,
        "id": built.config_digest,
        "layer": layer,
    }


async def pull(api: Any, reference: str, status: int = 200) -> list[dict[str, Any]]:
    response = await api.client.post(f"{API}/images/pull", json={"Reference": reference, "Auth": ""})
    assert response.status == status, await response.text()
    if status != 200:
        return [await response.json()]
    return [json.loads(line) for line in (await response.read()).splitlines()]


async def test_a_pull_prepares_the_image_and_ends_with_dockers_lines(api, pushed) -> None:
    reference = pushed["reference"]
    lines = await pull(api, reference)
    assert lines[0] == {"status": "Pulling from busybox", "id": "latest"}
    assert lines[-2:] == [
        {"status": f"Digest: {pushed['digest']}"},
        {"status": f"Status: Downloaded newer image for {reference}"},
    ]
    short = pushed["layer"].digest[7:19]
    assert {"status": "Pulling fs layer", "id": short} in lines
    again = await pull(api, reference)
    assert again[-1] == {"status": f"Status: Image is up to date for {reference}"}


async def test_inspect_shows_the_source_images_config_id_digest_and_size(api, pushed) -> None:
    await pull(api, pushed["reference"])
    response = await api.client.get(f"{API}/images/inspect", params={"name": pushed["reference"]})
    assert response.status == 200
    shown = await response.json()
    assert shown["Id"] == pushed["id"]
    assert shown["RepoTags"] == [pushed["reference"]]
    assert shown["RepoDigests"] == [pushed["reference"].rpartition(":")[0] + "@" + pushed["digest"]]
    assert shown["Size"] == pushed["layer"].size
    assert (shown["Architecture"], shown["Os"]) == ("amd64", "linux")
    assert shown["RootFS"]["Layers"] == [pushed["layer"].diff_id]
    config = shown["Config"]
    assert config["Cmd"] == ["sh", "-c", "echo from the image"]  # the source's, not the bootstrap
    assert (config["Env"], config["WorkingDir"], config["Labels"]) == (
        ["PATH=/bin", "MODE=image"],
        "/tmp",
        {"org.example": "yes"},
    )
    listed = await (await api.client.get(f"{API}/images")).json()
    assert [(row["Id"], row["Size"]) for row in listed] == [(pushed["id"], pushed["layer"].size)]


async def test_rmi_forgets_the_image(api, pushed) -> None:
    await pull(api, pushed["reference"])
    response = await api.client.delete(f"{API}/images", params={"name": pushed["reference"]})
    assert response.status == 200, await response.text()
    assert {"Deleted": pushed["id"]} in await response.json()
    gone = await api.client.get(f"{API}/images/inspect", params={"name": pushed["reference"]})
    assert gone.status == 404


async def test_a_missing_image_is_dockers_404(api, source_registry) -> None:
    [answer] = await pull(api, f"{source_registry.host}/nothing:latest", status=404)
    assert answer["message"] == (
        f"manifest for {source_registry.host}/nothing:latest not found: manifest unknown: manifest unknown"
    )


async def test_a_create_of_an_image_never_pulled_prepares_it_and_gets_its_defaults(api, pushed, ecr) -> None:
    container_id = await api.create(Image=pushed["reference"], Env=["MODE=container"])
    shown = await api.inspect(container_id)
    assert shown["Image"] == pushed["id"]
    config = shown["Config"]
    assert config["Cmd"] == ["sh", "-c", "echo from the image"]
    assert config["Env"] == ["MODE=container", "PATH=/bin"]
    assert config["WorkingDir"] == "/tmp"
    state = api.backend._store.get_container(container_id).backend_state
    assert state.image_uri.startswith(f"{ecr.host}/sockerless@sha256:")
    waiting = asyncio.create_task(api.wait(container_id, "next-exit"))
    await api.start(container_id)
    assert (await asyncio.wait_for(waiting, 30))["StatusCode"] == 0
    assert "from the image" in await api.output(container_id)


async def test_concurrent_creates_of_one_new_image_prepare_it_once(api, pushed, ecr) -> None:
    created = await asyncio.gather(*(api.create(Image=pushed["reference"]) for _ in range(5)))
    uris = {api.backend._store.get_container(c).backend_state.image_uri for c in created}
    assert len(uris) == 1


async def test_the_prepare_label_false_uses_the_image_as_it_is(api) -> None:
    image_ref = "123456789012.dkr.ecr.us-east-1.amazonaws.com/runtime:1"
    container_id = await api.create(Image=image_ref, Cmd=["x"], Labels={PREPARE_LABEL: "false"})
    state = api.backend._store.get_container(container_id).backend_state
    assert state.image_uri == image_ref


async def test_an_unreachable_registry_fails_the_pull_saying_why(api) -> None:
    [answer] = await pull(api, UNREACHABLE, status=502)
    assert answer["message"].startswith(
        "cannot pull 127.0.0.1:9/nowhere:latest: registry 127.0.0.1:9 is unreachable"
    )
    assert "unfetchable_images=as_is" in answer["message"]


@pytest.mark.parametrize("unfetchable", ["as_is"])
async def test_an_unreachable_registry_with_as_is_uses_the_image_as_it_is_and_says_so(
    api, caplog: pytest.LogCaptureFixture
) -> None:
    lines = await pull(api, UNREACHABLE)
    notes = [line["status"] for line in lines if "used as it is" in line.get("status", "")]
    assert notes and "the embedded simulator runs the command on this machine" in notes[0]
    assert any("used as it is" in record.getMessage() for record in caplog.records)
    container_id = await api.create(Image=UNREACHABLE, Cmd=["true"])
    assert api.backend._store.get_container(container_id).backend_state.image_uri == UNREACHABLE


def test_unfetchable_images_auto_means_as_is_only_when_simulated() -> None:
    from sockerless_lambda.config import LambdaConfig

    role = "arn:aws:iam::123456789012:role/r"
    assert LambdaConfig(simulate=True).images_as_is_when_unfetchable
    assert not LambdaConfig(region="us-east-1", role_arn=role).images_as_is_when_unfetchable
    assert not LambdaConfig(simulate=True, unfetchable_images="fail").images_as_is_when_unfetchable
    assert LambdaConfig(
        region="us-east-1", role_arn=role, unfetchable_images="as_is"
    ).images_as_is_when_unfetchable


def test_an_invalid_repository_or_registry_url_stops_start_up() -> None:
    from sockerless_lambda.config import LambdaConfig

    with pytest.raises(ValueError, match=r"lambda\.ecr_repository 'Bad Name' is not a repository name"):
        LambdaConfig(simulate=True, ecr_repository="Bad Name")
    with pytest.raises(ValueError, match=r"lambda\.registry_url 'ftp://x' is not"):
        LambdaConfig(simulate=True, registry_url="ftp://x")
