"""The simulator runs real images: its ECR is a real registry, and a function of an image pushed there
runs inside the image's root filesystem (read-only, ``/tmp`` writable), the image's config under the
function's ImageConfig. Images are built here (tests/imagekit.py), no Docker and no internet."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import platform
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from tests.conftest import needs_local_images
from tests.imagekit import OS_RELEASE, Image, Layer, busybox_layer, file_layer, image, push_image, push_index
from tests.lambda_settings import SIMULATOR_OPTIONS
from tests.simulator.helpers import client_options, wait_until
from tests.simulator.test_runtime_api import invoke, payload_v1, process_state, streams

BOOTSTRAP = "/opt/sockerless/bootstrap"
_ARCHITECTURES = {"x86_64": ("amd64", "x86_64"), "aarch64": ("arm64", "arm64"), "arm64": ("arm64", "arm64")}


@pytest.fixture(autouse=True)
def _local_images() -> None:
    needs_local_images()


@pytest.fixture
def lambda_simulator_options() -> dict[str, Any]:
    """The suites' settings with the simulator's ECR registry (tests/lambda_settings.py leaves it off)."""
    return {**SIMULATOR_OPTIONS, "runtime_model": "lambda", "ecr_registry": True}


def _architecture() -> tuple[str, str]:
    """(the image's architecture, the function's) of this machine."""
    return _ARCHITECTURES.get(platform.machine(), ("amd64", "x86_64"))


@functools.cache
def _busybox_layer() -> Layer:
    return busybox_layer()


@functools.cache
def _bootstrap_layer() -> Layer:
    """``/opt/sockerless/bootstrap``: the bootstrap ./dev setup built for this machine."""
    from sockerless_lambda.bootstrap import binary_path

    try:
        path = binary_path(_architecture()[1])
    except (FileNotFoundError, ValueError) as exc:
        pytest.skip(str(exc))
    return file_layer({"opt/sockerless/bootstrap": (Path(path).read_bytes(), 0o755)})


def _registry(simulator: Any) -> str:
    assert simulator.ecr_registry_host is not None, "the simulator started no ECR registry"
    return str(simulator.ecr_registry_host)


async def _push(simulator: Any, repository: str, pushed: Image, tag: str = "latest") -> str:
    """Push to the simulator's ECR; the image URI by tag."""
    await push_image(simulator.ecr_registry_url, repository, tag, pushed)
    return f"{_registry(simulator)}/{repository}:{tag}"


def _busybox(*extra: Any, **config: Any) -> Image:
    return image([_busybox_layer(), *extra], architecture=_architecture()[0], **config)


async def _create(lambda_client: Any, simulator: Any, name: str, uri: str, **options: Any) -> None:
    await lambda_client.create_function(
        FunctionName=name,
        PackageType="Image",
        Code={"ImageUri": uri},
        Role=simulator.role_arn,
        Architectures=[_architecture()[1]],
        **options,
    )
    waiter = lambda_client.get_waiter("function_active_v2")
    await waiter.wait(FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})


async def _tail(lambda_client: Any, name: str) -> str:
    response = await lambda_client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    await response["Payload"].read()
    return base64.b64decode(response["LogResult"]).decode()


# -- the ECR registry -------------------------------------------------------------------------------


async def test_get_authorization_token_names_the_registry(lambda_simulator: Any) -> None:
    async with get_session().create_client("ecr", **client_options(lambda_simulator)) as ecr:
        answer = await ecr.get_authorization_token()
    data = answer["authorizationData"][0]
    assert (
        data["proxyEndpoint"] == lambda_simulator.ecr_registry_url == f"http://{_registry(lambda_simulator)}"
    )
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    assert (user, bool(password)) == ("AWS", True)
    assert data["expiresAt"].timestamp() > time.time() + 11 * 3600


async def test_other_ecr_calls_stay_motos(lambda_simulator: Any) -> None:
    async with get_session().create_client("ecr", **client_options(lambda_simulator)) as ecr:
        await ecr.create_repository(repositoryName="app")
        found = await ecr.describe_repositories()
    assert [item["repositoryName"] for item in found["repositories"]] == ["app"]


@pytest.mark.lambda_simulator(ecr_registry=False)
async def test_without_the_registry_moto_answers_the_token(lambda_simulator: Any) -> None:
    assert lambda_simulator.ecr_registry_url is None
    async with get_session().create_client("ecr", **client_options(lambda_simulator)) as ecr:
        answer = await ecr.get_authorization_token()
    assert "127.0.0.1" not in answer["authorizationData"][0]["proxyEndpoint"]


async def test_a_missing_image_is_refused_at_create(lambda_simulator: Any, lambda_client: Any) -> None:
    uri = f"{_registry(lambda_simulator)}/nothing:latest"
    with pytest.raises(ClientError) as refused:
        await _create(lambda_client, lambda_simulator, "missing-image", uri)
    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidParameterValueException"
    assert error["Message"] == f"Source image {uri} does not exist. Provide a valid source image."


async def test_a_multi_platform_index_is_refused_at_create(lambda_simulator: Any, lambda_client: Any) -> None:
    layer = _busybox_layer()
    await push_index(
        lambda_simulator.ecr_registry_url,
        "multi",
        "latest",
        {"amd64": image([layer], architecture="amd64"), "arm64": image([layer], architecture="arm64")},
    )
    uri = f"{_registry(lambda_simulator)}/multi:latest"
    with pytest.raises(ClientError) as refused:
        await _create(lambda_client, lambda_simulator, "an-index", uri)
    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidParameterValueException"
    assert "media type for the source image" in error["Message"]
    assert "is not supported" in error["Message"]


# -- running inside the image -----------------------------------------------------------------------


async def test_the_image_bootstrap_runs_the_command_inside_the_image(
    lambda_simulator: Any, lambda_client: Any
) -> None:
    pushed = _busybox(_bootstrap_layer(), env=["PATH=/bin", "FROM_IMAGE=image", "BOTH=image"])
    await push_image(lambda_simulator.ecr_registry_url, "busybox", "latest", pushed)
    # By digest: the form the backend's preparer uses.
    uri = f"{_registry(lambda_simulator)}/busybox@{pushed.digest}"
    await _create(
        lambda_client,
        lambda_simulator,
        "in-image",
        uri,
        ImageConfig={"EntryPoint": [BOOTSTRAP]},
        Environment={"Variables": {"BOTH": "function"}},
    )

    _, body = await invoke(
        lambda_client,
        "in-image",
        payload_v1("run-1", 'cat /etc/os-release; echo hi; echo "$FROM_IMAGE $BOTH"; exit 3'),
    )

    out = streams(body)
    assert out[1] == OS_RELEASE + b"hi\nimage function\n"
    assert json.loads(out[255])["status"] == 3


async def test_the_root_is_read_only_and_tmp_is_the_environments(
    lambda_simulator: Any, lambda_client: Any
) -> None:
    uri = await _push(lambda_simulator, "busybox", _busybox(_bootstrap_layer()))
    await _create(lambda_client, lambda_simulator, "read-only", uri, ImageConfig={"EntryPoint": [BOOTSTRAP]})

    _, body = await invoke(
        lambda_client,
        "read-only",
        payload_v1(
            "run-1",
            "touch /x 2>/dev/null && echo root-writable || echo root-read-only; echo data > /tmp/y && "
            'echo tmp-writable; echo "$TMPDIR"; cat /proc/self/comm',
        ),
    )

    assert streams(body)[1].decode().split() == ["root-read-only", "tmp-writable", "/tmp", "cat"]


async def test_a_plain_function_runs_the_image_entrypoint_in_the_image(
    lambda_simulator: Any, lambda_client: Any
) -> None:
    # No ImageConfig: the image's own ENTRYPOINT and CMD run (a command that does not speak the
    # Runtime API: Init fails, the output is in the log).
    uri = await _push(lambda_simulator, "plain", _busybox(entrypoint=["cat"], cmd=["/etc/os-release"]))
    await _create(lambda_client, lambda_simulator, "plain", uri)

    tail = await _tail(lambda_client, "plain")

    assert OS_RELEASE.decode().splitlines()[0] in tail.splitlines()


async def test_imageconfig_command_overrides_the_image_cmd(lambda_simulator: Any, lambda_client: Any) -> None:
    uri = await _push(lambda_simulator, "plain", _busybox(entrypoint=["cat"], cmd=["/nothing"]))
    await _create(
        lambda_client, lambda_simulator, "overridden", uri, ImageConfig={"Command": ["/etc/os-release"]}
    )

    tail = await _tail(lambda_client, "overridden")

    assert "ID=sockerless-test-busybox" in tail.splitlines()


async def test_whiteouts_of_upper_layers_hide_lower_files(lambda_simulator: Any, lambda_client: Any) -> None:
    lower = file_layer({"etc/gone": b"x", "opt/d/a": b"a", "opt/d/b": b"b", "opt/kept": b"k"})
    upper = file_layer({"opt/d/c": b"c"}, whiteouts=("etc/gone", "opt/d/.wh..opq"))
    uri = await _push(lambda_simulator, "layered", _busybox(lower, upper, _bootstrap_layer()))
    await _create(lambda_client, lambda_simulator, "layered", uri, ImageConfig={"EntryPoint": [BOOTSTRAP]})

    _, body = await invoke(
        lambda_client, "layered", payload_v1("run-1", "ls /opt/d; ls /opt; test -e /etc/gone || echo gone")
    )

    assert streams(body)[1].decode().split() == ["c", "d", "kept", "sockerless", "gone"]


async def test_a_second_function_of_the_same_image_unpacks_nothing(
    lambda_simulator: Any, lambda_client: Any
) -> None:
    uri = await _push(lambda_simulator, "shared", _busybox(entrypoint=["cat"], cmd=["/etc/os-release"]))
    await _create(lambda_client, lambda_simulator, "first", uri)
    await _create(lambda_client, lambda_simulator, "second", uri)

    first = await _tail(lambda_client, "first")
    assert lambda_simulator.images.cache.unpacked == 1
    second = await _tail(lambda_client, "second")

    assert lambda_simulator.images.cache.unpacked == 1
    assert "ID=sockerless-test-busybox" in first.splitlines()
    assert "ID=sockerless-test-busybox" in second.splitlines()


async def test_a_layer_that_escapes_the_root_fails_init(lambda_simulator: Any, lambda_client: Any) -> None:
    escape = file_layer({"../escaped-by-a-test": b"x"})
    uri = await _push(
        lambda_simulator, "escape", _busybox(escape, entrypoint=["cat"], cmd=["/etc/os-release"])
    )
    await _create(lambda_client, lambda_simulator, "escape", uri)

    response = await lambda_client.invoke(FunctionName="escape", Payload=b"{}", LogType="Tail")
    error = json.loads(await response["Payload"].read())

    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "InvalidImage"
    assert "points outside the root filesystem" in error["errorMessage"]
    assert not Path(lambda_simulator.images.cache.directory.parent, "escaped-by-a-test").exists()


async def test_an_image_that_cannot_be_fetched_runs_here_and_says_why(
    lambda_simulator: Any, lambda_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pushed = _busybox(entrypoint=["cat"], cmd=["/etc/os-release"])
    uri = await _push(lambda_simulator, "deleted", pushed)
    await _create(
        lambda_client, lambda_simulator, "deleted", uri, ImageConfig={"EntryPoint": ["echo", "ran-here"]}
    )
    async with aiohttp.ClientSession() as session:
        url = f"{lambda_simulator.ecr_registry_url}/v2/deleted/manifests/{pushed.digest}"
        async with session.delete(url) as deleted:
            assert deleted.status == 202

    tail = await _tail(lambda_client, "deleted")

    notice = f"sockerless simulator: {uri} runs on this machine, NOT inside the image's filesystem"
    assert any(line.startswith(notice) for line in tail.splitlines())
    assert "ran-here" in tail.splitlines()
    assert any("runs on this machine, NOT inside its filesystem" in r.getMessage() for r in caplog.records)


@pytest.mark.lambda_simulator(runtime_model="direct")
async def test_the_direct_model_runs_the_command_inside_the_image_too(
    lambda_simulator: Any, lambda_client: Any
) -> None:
    uri = await _push(lambda_simulator, "direct", _busybox())
    override = {"EntryPoint": ["sh", "-c"], "Command": ["cat /etc/os-release; touch /x || echo read-only"]}
    await _create(lambda_client, lambda_simulator, "direct", uri, ImageConfig=override)

    tail = await _tail(lambda_client, "direct")

    assert "ID=sockerless-test-busybox" in tail.splitlines()
    assert "read-only" in tail.splitlines()


async def test_the_process_frozen_between_invocations_is_the_images_bootstrap(
    lambda_simulator: Any, lambda_client: Any
) -> None:
    # The launcher execs each step (unshare, sh, unshare --root): the process the simulator started,
    # and freezes, is the image's own bootstrap.
    uri = await _push(lambda_simulator, "busybox", _busybox(_bootstrap_layer()))
    await _create(lambda_client, lambda_simulator, "frozen", uri, ImageConfig={"EntryPoint": [BOOTSTRAP]})

    _, body = await invoke(lambda_client, "frozen", payload_v1("run-1", "echo $PPID"))
    bootstrap_pid = int(streams(body)[1])

    await wait_until(lambda: process_state(bootstrap_pid) == "T", what="the bootstrap stopped")
    executable = os.readlink(f"/proc/{bootstrap_pid}/exe")
    assert executable.endswith("/opt/sockerless/bootstrap")
    assert executable.startswith(str(lambda_simulator.images.cache.directory))


async def test_the_command_line_names_the_registry_and_can_turn_it_off() -> None:
    from tests.simulator.test_lifecycle import simulator_cli

    for flags, expected in (((), "127.0.0.1:"), (("--no-ecr-registry",), "none")):
        process = await simulator_cli("--log-level", "warning", *flags, stdout=asyncio.subprocess.PIPE)
        try:
            assert process.stdout is not None
            lines = [
                (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip() for _ in range(5)
            ]
            assert lines[-1].startswith(f"ecr_registry={expected}")
            process.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(process.wait(), 30) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
