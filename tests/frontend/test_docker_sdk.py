"""The Docker SDK for Python against the frontend in front of a backend of local processes.

The SDK blocks, so every call runs in a thread; the event loop keeps serving the frontend.
"""

from __future__ import annotations

import asyncio
from typing import Any

import docker.errors
import pytest

from .local_backend import LocalBackend

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest"


async def call(function: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(function, *args, **kwargs)


async def test_pull_then_inspect_the_image(sdk: Any, local_backend: LocalBackend) -> None:
    image = await call(sdk.images.pull, "alpine")
    assert image.id.startswith("sha256:")
    assert "alpine:latest" in image.tags
    ecr = await call(sdk.images.pull, IMAGE)
    assert IMAGE in ecr.tags


async def test_blocking_run_returns_the_output(sdk: Any) -> None:
    await call(sdk.images.pull, IMAGE)
    output = await call(sdk.containers.run, IMAGE, ["sh", "-c", "echo hello; echo world"])
    assert output == b"hello\nworld\n"


async def test_blocking_run_with_remove_returns_the_output_and_removes(
    sdk: Any, local_backend: LocalBackend
) -> None:
    await call(sdk.images.pull, IMAGE)
    command = ["sh", "-c", "for i in $(seq 1 50); do echo line $i; done"]
    output = await call(sdk.containers.run, IMAGE, command, remove=True)
    assert output == b"".join(f"line {i}\n".encode() for i in range(1, 51))
    assert local_backend.store.containers() == []


async def test_blocking_run_of_a_failing_command_raises_container_error(sdk: Any) -> None:
    await call(sdk.images.pull, IMAGE)
    with pytest.raises(docker.errors.ContainerError) as failure:
        await call(sdk.containers.run, IMAGE, ["sh", "-c", "echo bad >&2; exit 5"])
    assert failure.value.exit_status == 5
    assert failure.value.stderr == b"bad\n"


async def test_detached_run_wait_logs_remove(sdk: Any) -> None:
    await call(sdk.images.pull, IMAGE)
    container = await call(sdk.containers.run, IMAGE, ["sh", "-c", "echo out; exit 2"], detach=True)
    result = await call(container.wait)
    assert result == {"StatusCode": 2}
    assert await call(container.logs) == b"out\n"
    stream = await call(container.logs, stream=True, follow=True)
    assert b"".join(await call(list, stream)) == b"out\n"
    await call(container.reload)
    assert container.status == "exited"
    await call(container.remove)
    with pytest.raises(docker.errors.NotFound):
        await call(sdk.containers.get, container.id)


async def test_list_with_label_filters(sdk: Any) -> None:
    await call(sdk.images.pull, IMAGE)
    keep = await call(sdk.containers.create, IMAGE, ["true"], labels={"role": "keep"}, name="keep")
    await call(sdk.containers.create, IMAGE, ["true"], labels={"role": "other"}, name="other")
    found = await call(sdk.containers.list, all=True, filters={"label": ["role=keep"]})
    assert [c.id for c in found] == [keep.id]
    assert found[0].labels == {"role": "keep"}
    by_name = await call(sdk.containers.list, all=True, filters={"name": "other"})
    assert [c.name for c in by_name] == ["other"]


async def test_missing_image_on_create_is_not_found(sdk: Any) -> None:
    with pytest.raises(docker.errors.ImageNotFound) as failure:
        await call(sdk.containers.create, "never-pulled:1.0", ["true"])
    assert "No such image: never-pulled:1.0" in str(failure.value)


async def test_pull_failure_is_reported_in_the_stream(sdk: Any) -> None:
    lines = await call(sdk.api.pull, "example.com/missing/app", tag="1", stream=True, decode=True)
    message = "pull access denied for example.com/missing/app:1: repository does not exist"
    assert (await call(list, lines))[-1] == {"errorDetail": {"message": message}, "error": message}
    # images.pull() ignores the stream, as with Docker, and fails on the inspect that follows.
    with pytest.raises(docker.errors.ImageNotFound):
        await call(sdk.images.pull, "example.com/missing/app", tag="1")


async def test_exec_is_a_501_with_the_capability_message(sdk: Any) -> None:
    await call(sdk.images.pull, IMAGE)
    container = await call(sdk.containers.run, IMAGE, ["sleep", "30"], detach=True)
    try:
        with pytest.raises(docker.errors.APIError) as failure:
            await call(container.exec_run, "ls")
        assert failure.value.status_code == 501
        assert "does not support exec" in str(failure.value)
    finally:
        await call(container.remove, force=True)


async def test_attach_stream_reads_output_until_exit(sdk: Any) -> None:
    await call(sdk.images.pull, IMAGE)
    container = await call(sdk.containers.create, IMAGE, ["sh", "-c", "sleep 0.2; echo attached"])
    stream = await call(container.attach, stream=True, stdout=True, stderr=True)
    await call(container.start)
    assert b"".join(await call(list, stream)) == b"attached\n"
