"""Read-only attach on a backend with logs but no attach: the backend's followed logs, opened before
the 101, copied to the upgraded connection until the backend ends them; or, on a backend that cannot
follow, the run's output once the run has ended."""

from __future__ import annotations

import json

import aiohttp
import pytest

from sockerless.config import FrontendConfig
from sockerless.frontend import DockerFrontend

from .conftest import DockerCLI
from .local_backend import LocalBackend, LocalBackendWithoutFollow
from .wire import IMAGE, Gate, RawAttach, create, eventually, expect_error, output_of, raw_attach

STREAMS = "stream=1&stdout=1&stderr=1"


async def test_attach_upgrades_and_streams_frames_until_exit(
    http: aiohttp.ClientSession, frontend: DockerFrontend
) -> None:
    container_id = await create(http, ["sh", "-c", "echo attached; echo e >&2; exit 3"])
    attached = await RawAttach.open(frontend, f"/v1.44/containers/{container_id}/attach?{STREAMS}")
    async with http.post(f"/containers/{container_id}/wait", params={"condition": "next-exit"}) as waiting:
        await http.post(f"/containers/{container_id}/start")
        rest = await attached.rest()
        assert json.loads(await waiting.read()) == {"StatusCode": 3}
    lines = attached.head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 101 UPGRADED"
    assert "Connection: Upgrade" in lines
    assert "Upgrade: tcp" in lines
    assert "Content-Type: application/vnd.docker.multiplexed-stream" in lines
    assert sorted(output_of(rest)) == [(1, b"attached\n"), (2, b"e\n")]


async def test_a_follower_opened_before_start_gets_the_whole_output(
    http: aiohttp.ClientSession, frontend: DockerFrontend, local_backend: LocalBackend
) -> None:
    # The command prints at once: nothing is lost only if the backend follows from before the start.
    container_id = await create(http, ["sh", "-c", "seq 1 500; seq 501 600 >&2"])
    attached = await RawAttach.open(frontend, f"/containers/{container_id}/attach?{STREAMS}")
    assert attached.upgraded
    assert local_backend.calls["logs"] == 1  # the backend took the follow before the 101 was sent
    await http.post(f"/containers/{container_id}/start")
    frames = output_of(await attached.rest())
    assert b"".join(data for stream, data in frames if stream == 1) == b"".join(
        f"{i}\n".encode() for i in range(1, 501)
    )
    assert b"".join(data for stream, data in frames if stream == 2) == b"".join(
        f"{i}\n".encode() for i in range(501, 601)
    )


async def test_attach_to_a_tty_container_is_raw(
    http: aiohttp.ClientSession, frontend: DockerFrontend
) -> None:
    container_id = await create(http, ["sh", "-c", "echo raw"], Tty=True)
    attached = await RawAttach.open(frontend, f"/containers/{container_id}/attach?{STREAMS}")
    assert b"Content-Type: application/vnd.docker.raw-stream" in attached.head
    await http.post(f"/containers/{container_id}/start")
    assert await attached.rest() == b"raw\n"


async def test_attach_to_a_running_container_shows_what_comes_from_now_on(
    http: aiohttp.ClientSession, frontend: DockerFrontend, local_backend: LocalBackend, gate: Gate
) -> None:
    container_id = await create(http, ["sh", "-c", f"echo before; {gate.wait}; echo after"])
    await http.post(f"/containers/{container_id}/start")
    await eventually(lambda: len(local_backend.outputs[container_id].lines) == 1)
    now_on = await RawAttach.open(frontend, f"/containers/{container_id}/attach?{STREAMS}")
    with_logs = await RawAttach.open(frontend, f"/containers/{container_id}/attach?{STREAMS}&logs=1")
    gate.open()
    assert output_of(await now_on.rest()) == [(1, b"after\n")]
    assert output_of(await with_logs.rest()) == [(1, b"before\n"), (1, b"after\n")]


async def test_attach_with_stdin_is_refused_before_the_upgrade(
    http: aiohttp.ClientSession, frontend: DockerFrontend
) -> None:
    container_id = await create(http, ["cat"])
    head, body = await raw_attach(frontend, f"/containers/{container_id}/attach?stream=1&stdin=1&stdout=1")
    assert head.startswith(b"HTTP/1.1 501")
    assert b"does not support attaching stdin" in body


async def test_attach_to_a_missing_container_is_a_404_before_the_upgrade(frontend: DockerFrontend) -> None:
    head, body = await raw_attach(frontend, f"/containers/nope/attach?{STREAMS}")
    assert head.startswith(b"HTTP/1.1 404")
    assert json.loads(body) == {"message": "No such container: nope"}


@pytest.mark.parametrize("frontend_config", [FrontendConfig(attach="strict")])
async def test_strict_attach_mode_answers_501(http: aiohttp.ClientSession) -> None:
    container_id = await create(http, ["true"])
    async with http.post(f"/containers/{container_id}/attach", params={"stream": "1", "stdout": "1"}) as r:
        await expect_error(
            r,
            501,
            "This backend (local) does not support attach. "
            "CI runners require exec-capable backends (ecs, cloudrun, aca, docker).",
        )


# ---------------------------------------------------------------------------- a backend that cannot follow


@pytest.mark.docker_cli
@pytest.mark.parametrize("backend_class", [LocalBackendWithoutFollow])
async def test_docker_run_without_a_following_backend_prints_the_run_after_it(
    docker_cli: DockerCLI, local_backend: LocalBackend
) -> None:
    assert (await docker_cli("pull", IMAGE)).code == 0
    result = await docker_cli("run", "--name", "once", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 6")
    assert (result.code, result.out, result.err) == (6, "out\n", "err\n")
    again = await docker_cli("start", "-a", "once")  # only the new run's output
    assert (again.code, again.out, again.err) == (6, "out\n", "err\n")
    removed = await docker_cli("run", "--rm", IMAGE, "sh", "-c", "seq 1 3; exit 2")
    assert (removed.code, removed.out) == (2, "1\n2\n3\n"), removed.err
    assert local_backend.followers == 0  # nothing was followed: the logs were read once per run
