"""Docker clients against the frontend of ``sockerless up``: the real docker CLI, the Docker SDK and
raw Docker Engine API calls on the frontend's socket."""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

import aiohttp

from sockerless.streams import decode_frames

from .common import IMAGE
from .processes import run_command

__all__ = ["DOCKER", "DockerCLI", "follow_api", "pull_api"]

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


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
