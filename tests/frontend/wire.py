"""Helpers the wire-level tests share: a pulled image, a created container, Docker's error shape, a raw
attach as the CLI sends it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from attrs import frozen

from sockerless.frontend import DockerFrontend
from sockerless.streams import decode_frames

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest"


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


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for state the test cannot be told about (a backend wait released by a closed connection)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def start(http: aiohttp.ClientSession, cmd: list[str], **body: Any) -> str:
    """A created and started container."""
    container_id = await create(http, cmd, **body)
    async with http.post(f"/containers/{container_id}/start") as response:
        assert response.status == 204, await response.text()
    return container_id


def output_of(frames: bytes) -> list[tuple[int, bytes]]:
    """Docker frames as (stream, data), checking nothing is left over."""
    decoded, rest = decode_frames(frames)
    assert rest == b""
    return decoded


@frozen
class Gate:
    """A file a container's command waits for: the test lets the container go on once it has seen
    what it wanted to see, instead of guessing how long that takes."""

    path: str

    @property
    def wait(self) -> str:
        """The shell command that waits for the gate."""
        return f"while [ ! -e {self.path} ]; do sleep 0.01; done"

    def open(self) -> None:
        Path(self.path).touch()


def is_frontend_access_line(record: logging.LogRecord) -> bool:
    """The frontend's access line (the backend's shares the logger; its paths are /internal/...)."""
    fields = getattr(record, "fields", {})
    return record.name == "sockerless.access" and not str(fields.get("path", "")).startswith("/internal/")


class RawAttach:
    """An attach sent as the CLI sends it, on a connection of its own: :meth:`open` returns once the
    answer's head is in (the CLI sends ``start`` only then), :meth:`rest` reads what follows."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        self.reader = reader
        self.writer = writer
        self.head = head

    @classmethod
    async def open(cls, frontend: DockerFrontend, path: str) -> RawAttach:
        reader, writer = await asyncio.open_unix_connection(frontend.address.removeprefix("unix://"))
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            "Content-Length: 0\r\n\r\n".encode()
        )
        await writer.drain()
        return cls(reader, writer, await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30))

    @property
    def upgraded(self) -> bool:
        return self.head.startswith(b"HTTP/1.1 101")

    async def rest(self) -> bytes:
        """After a 101: everything until the frontend closes (the CLI half-closes at once when it has
        no stdin, so this does too). Otherwise the error body."""
        try:
            if self.upgraded:
                self.writer.write_eof()
                return await asyncio.wait_for(self.reader.read(), 30)
            length = next(
                int(line.split(b":")[1])
                for line in self.head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            return await self.reader.readexactly(length)
        finally:
            self.writer.close()


async def raw_attach(frontend: DockerFrontend, path: str) -> tuple[bytes, bytes]:
    """An attach's head and everything after it."""
    attached = await RawAttach.open(frontend, path)
    return attached.head, await attached.rest()
