"""A backend that can attach and exec: the frontend passes those upgraded streams through.

The backend is the LocalBackend with attach and exec sessions of its own, served by the real
internal-API server; the client is the real docker CLI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import attrs
import pytest
from attrs import frozen

from sockerless.backend import AttachOptions, Duplex, Session
from sockerless.http.hijack import MULTIPLEXED_STREAM
from sockerless.models import Capabilities, ExecConfig, ExecInstance, IdResponse
from sockerless.streams import encode_frame

from .conftest import DockerCLI
from .local_backend import LocalBackend
from .wire import IMAGE, Gate

pytestmark = pytest.mark.docker_cli


@frozen
class UpperCaseEcho:
    """An exec session: what the client sends comes back upper-cased on stdout until it half-closes."""

    content_type: str = MULTIPLEXED_STREAM

    async def run(self, connection: Duplex) -> None:
        while (data := await connection.read()) is not None:
            await connection.write(encode_frame(1, data.upper()))


@frozen
class GreetAndRelease:
    """An attach session: one line, then, once the client has closed its input (the CLI does once it
    has checked, again, that the container runs), the container is let go: it waits for ``gate``."""

    gate: str
    content_type: str = MULTIPLEXED_STREAM

    async def run(self, connection: Duplex) -> None:
        await connection.write(encode_frame(1, b"from the backend's attach\n"))
        while await connection.read() is not None:
            pass
        Path(self.gate).touch()


class AttachingBackend(LocalBackend):
    capabilities: ClassVar[Capabilities] = attrs.evolve(LocalBackend.capabilities, attach=True, exec=True)
    #: The file the attached container waits for (set per test, see ``backend_class``).
    gate: ClassVar[str] = ""

    async def attach_container(self, ref: str, options: AttachOptions) -> Session:
        self._resolve(ref)
        self.calls["attach"] += 1
        return GreetAndRelease(self.gate)

    async def create_exec(self, ref: str, config: ExecConfig) -> IdResponse:
        self._resolve(ref)
        return IdResponse(id="e1")

    async def inspect_exec(self, exec_id: str) -> ExecInstance:
        return ExecInstance(id=exec_id, exit_code=0, container_id=self.store.containers()[0].id)

    async def start_exec(self, exec_id: str, options: dict[str, object]) -> Session:
        return UpperCaseEcho()


@pytest.fixture
def backend_class(gate: Gate) -> type[LocalBackend]:
    class ThisTestsBackend(AttachingBackend):
        pass

    ThisTestsBackend.gate = gate.path
    return ThisTestsBackend


async def start_box(docker_cli: DockerCLI, gate: Gate) -> None:
    assert (await docker_cli("pull", IMAGE)).code == 0
    started = await docker_cli("run", "-d", "--name", "box", IMAGE, "sh", "-c", gate.wait)
    assert started.code == 0, started.err


async def test_exec_streams_both_ways_through_the_frontend(docker_cli: DockerCLI, gate: Gate) -> None:
    await start_box(docker_cli, gate)
    result = await docker_cli("exec", "-i", "box", "cat", input=b"hello\nworld\n")
    assert result.code == 0, result.err
    assert result.out == "HELLO\nWORLD\n"
    gate.open()


async def test_attach_is_passed_through(
    docker_cli: DockerCLI, local_backend: LocalBackend, gate: Gate
) -> None:
    await start_box(docker_cli, gate)
    result = await docker_cli("attach", "--no-stdin", "box")
    assert result.code == 0, result.err
    assert result.out == "from the backend's attach\n"
    assert local_backend.calls["attach"] == 1
    assert local_backend.calls["logs"] == 0  # a real attach: nothing read from the logs
    assert os.path.exists(gate.path)
