"""Logs, passed through: the backend's frames (raw for a Tty), followed by the backend itself, with one
backend request per Docker request and the headers sent at once."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from .conftest import DOCKER, DockerCLI
from .local_backend import LocalBackend, LocalBackendWithoutFollow
from .wire import IMAGE, Gate, eventually, expect_error, output_of, start, wait_exit

FOLLOW = {"stdout": "1", "stderr": "1", "follow": "1"}


async def test_logs_are_docker_frames_and_raw_with_a_tty(http: aiohttp.ClientSession) -> None:
    plain = await start(http, ["sh", "-c", "echo out; echo err >&2"])
    tty = await start(http, ["sh", "-c", "echo tty"], Tty=True)
    for container_id in (plain, tty):
        await wait_exit(http, container_id)
    params = {"stdout": "1", "stderr": "1"}
    async with http.get(f"/containers/{plain}/logs", params=params) as response:
        assert response.headers["Content-Type"] == "application/vnd.docker.multiplexed-stream"
        assert sorted(output_of(await response.read())) == [(1, b"out\n"), (2, b"err\n")]
    async with http.get(f"/containers/{tty}/logs", params=params) as response:
        assert response.headers["Content-Type"] == "application/vnd.docker.raw-stream"
        assert await response.read() == b"tty\n"
    async with http.get(f"/containers/{plain}/logs") as response:
        await expect_error(response, 400, "you must choose at least one stream")


async def test_follow_sends_headers_at_once(http: aiohttp.ClientSession, gate: Gate) -> None:
    container_id = await start(http, ["sh", "-c", f"{gate.wait}; echo late"])
    async with http.get(f"/containers/{container_id}/logs", params=FOLLOW) as response:
        assert response.status == 200  # while the container waits, before any output exists
        gate.open()
        assert output_of(await response.read()) == [(1, b"late\n")]


async def test_logs_since_and_until_reach_the_backend(http: aiohttp.ClientSession) -> None:
    container_id = await start(http, ["sh", "-c", "echo line"])
    await wait_exit(http, container_id)

    async def output(**query: str) -> bytes:
        params = {"stdout": "1", **query}
        async with http.get(f"/containers/{container_id}/logs", params=params) as response:
            assert response.status == 200, await response.text()
            return b"".join(data for _, data in output_of(await response.read()))

    assert await output(since="0") == b"line\n"
    assert await output(since="4102444800.5") == b""  # 2100
    assert await output(until="1") == b""
    assert await output(until="4102444800") == b"line\n"
    async with http.get(f"/containers/{container_id}/logs", params={"stdout": "1", "since": "soon"}) as r:
        await expect_error(r, 400, "invalid time 'soon': expected RFC 3339 or unix seconds")


@pytest.mark.docker_cli
async def test_docker_logs_follow_shows_lines_as_they_come_and_ends_at_exit(
    docker_cli: DockerCLI, local_backend: LocalBackend, gate: Gate
) -> None:
    assert (await docker_cli("pull", IMAGE)).code == 0
    started = await docker_cli("run", "-d", IMAGE, "sh", "-c", f"echo one; {gate.wait}; echo two; exit 3")
    container_id = started.out.strip()
    before = local_backend.calls["logs"]
    following = await asyncio.create_subprocess_exec(
        DOCKER,
        "logs",
        "-f",
        container_id,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=docker_cli.env,
    )
    assert following.stdout is not None
    try:
        # "two" cannot exist before the gate opens, and the gate opens only once "one" has come through.
        assert await asyncio.wait_for(following.stdout.readline(), 30) == b"one\n"
        assert following.returncode is None
        gate.open()
        assert await asyncio.wait_for(following.stdout.read(), 30) == b"two\n"
        assert await asyncio.wait_for(following.wait(), 30) == 0
    finally:
        if following.returncode is None:
            following.kill()
            await following.wait()
    assert local_backend.calls["logs"] - before == 1  # one backend request for the whole follow


@pytest.mark.docker_cli
async def test_docker_logs_follow_of_an_exited_container_ends_after_its_output(
    docker_cli: DockerCLI, local_backend: LocalBackend
) -> None:
    assert (await docker_cli("pull", IMAGE)).code == 0
    await docker_cli("run", "-d", "--name", "done", IMAGE, "sh", "-c", "echo one; echo two")
    assert (await docker_cli("wait", "done")).out.strip() == "0"
    before = local_backend.calls["logs"]
    followed = await docker_cli("logs", "-f", "--tail", "1", "done")
    assert (followed.code, followed.out) == (0, "two\n"), followed.err
    assert local_backend.calls["logs"] - before == 1


async def test_a_client_leaving_a_follow_ends_the_backends_follower_quietly(
    http: aiohttp.ClientSession, local_backend: LocalBackend, gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    container_id = await start(http, ["sh", "-c", gate.wait])
    response = await http.get(f"/containers/{container_id}/logs", params=FOLLOW)
    await eventually(lambda: local_backend.followers == 1)
    response.close()
    await eventually(lambda: local_backend.followers == 0)
    gate.open()
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


@pytest.mark.parametrize("backend_class", [LocalBackendWithoutFollow])
async def test_a_backend_that_cannot_follow_answers_a_follow_with_what_it_has(
    http: aiohttp.ClientSession, local_backend: LocalBackend, gate: Gate
) -> None:
    container_id = await start(http, ["sh", "-c", f"echo now; {gate.wait}; echo later"])
    await eventually(lambda: len(local_backend.outputs[container_id].lines) == 1)
    async with http.get(f"/containers/{container_id}/logs", params=FOLLOW) as response:
        assert output_of(await response.read()) == [(1, b"now\n")]  # ends although the container runs
    assert local_backend.calls["logs"] == 1 and local_backend.followers == 0
    gate.open()
