"""Docker clients against the frontend of ``sockerless up``: the real docker CLI, the Docker SDK and
raw Docker Engine API calls on the frontend's socket."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from sockerless.http.upgrade import UpgradeTarget, open_upgraded
from sockerless.streams import decode_frames

from .common import IMAGE
from .processes import run_command

__all__ = ["API_VERSION", "DOCKER", "DockerCLI", "Laps", "follow_api", "pull_api", "run_api"]

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
#: Called after each step of a client's run with the step's name (a timer of phases).
Laps = Callable[[str], None]


class DockerCLI:
    """The docker CLI pointed at one frontend socket, with a configuration of its own."""

    def __init__(self, workdir: str, docker_socket: str) -> None:
        config = os.path.join(workdir, "docker-config")
        os.makedirs(config, exist_ok=True)
        self.socket = docker_socket
        self.env = {
            "DOCKER_HOST": f"unix://{docker_socket}",
            "DOCKER_CONFIG": config,
            "HOME": config,
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }

    @staticmethod
    def installed() -> bool:
        return os.path.exists(DOCKER)

    async def __call__(self, *args: str, timeout: float = 180) -> tuple[int, str, str]:
        """``docker ARGS``: exit code, stdout, stderr."""
        return await run_command([DOCKER, *args], self.env, timeout)

    async def checked(self, *args: str, timeout: float = 180) -> str:
        """``docker ARGS`` that must succeed: its stdout."""
        code, out, err = await self(*args, timeout=timeout)
        if code != 0:
            raise AssertionError(f"docker {' '.join(args[:2])}: exit {code}: {err.strip()[-500:]}")
        return out

    def sdk(self) -> Any:
        """A Docker SDK client (``docker.DockerClient``) on the same socket."""
        import docker

        return docker.DockerClient(base_url=self.env["DOCKER_HOST"], version="1.44", timeout=300)


async def pull_api(session: aiohttp.ClientSession) -> None:
    """``POST /images/create`` of the bench's image, to its end."""
    repository, _, tag = IMAGE.rpartition(":")
    async with session.post("/images/create", params={"fromImage": repository, "tag": tag}) as response:
        response.raise_for_status()
        await response.read()


async def follow_api(session: aiohttp.ClientSession, container_id: str) -> tuple[list[str], float]:
    """``GET /containers/{id}/logs?follow=1`` to its end: the output's lines, and when the stream
    ended (``time.monotonic()``)."""
    params = {"follow": "1", "stdout": "1", "stderr": "1"}
    buffer = payload = b""
    async with session.get(f"/containers/{container_id}/logs", params=params) as response:
        if response.status != 200:
            raise AssertionError(f"logs: {response.status} {await response.text()}")
        async for chunk in response.content.iter_any():
            frames, buffer = decode_frames(buffer + chunk)
            payload += b"".join(data for _, data in frames)
    return payload.decode().splitlines(), time.monotonic()


#: The API version the raw calls name, as the docker CLI of the bench negotiates it with the frontend.
API_VERSION = "v1.44"


async def run_api(
    session: aiohttp.ClientSession, socket_path: str, command: list[str], laps: Laps
) -> tuple[int, bytes]:
    """``docker run --rm IMAGE COMMAND`` as the Docker API calls the CLI makes for it (create with
    AutoRemove, attach, wait for ``removed``, start; the removal is the server's), without the CLI's
    own process: the exit status and the output. ``laps`` is called after each step, with its name."""
    body = {
        "Image": IMAGE,
        "Cmd": command,
        "AttachStdout": True,
        "AttachStderr": True,
        "HostConfig": {"AutoRemove": True},
    }
    async with session.post(f"/{API_VERSION}/containers/create", json=body) as response:
        if response.status != 201:
            raise AssertionError(f"create: {response.status} {await response.text()}")
        container_id = str((await response.json())["Id"])
    laps("create")
    target = UpgradeTarget(url=f"unix://{socket_path}", socket_path=socket_path)
    query = "stream=1&stdout=1&stderr=1"
    async with open_upgraded(
        target, f"/{API_VERSION}/containers/{container_id}/attach?{query}", headers={}
    ) as attached:
        laps("attach")
        async with session.post(
            f"/{API_VERSION}/containers/{container_id}/wait", params={"condition": "removed"}
        ) as waiting:
            if waiting.status != 200:
                raise AssertionError(f"wait: {waiting.status} {await waiting.text()}")
            laps("wait")
            async with session.post(f"/{API_VERSION}/containers/{container_id}/start") as started:
                if started.status != 204:
                    raise AssertionError(f"start: {started.status} {await started.text()}")
            laps("start")
            output, result = await asyncio.gather(attached.reader.read(), waiting.json())
    laps("run")
    frames, rest = decode_frames(output)
    return int(result.get("StatusCode", -1)), b"".join(data for _, data in frames) + rest
