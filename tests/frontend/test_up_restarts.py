"""Restarts and Ctrl-C of ``sockerless up --simulate``, a process of its own, driven by the real docker CLI.

The embedded simulator lives and dies with the process: its functions, its CloudWatch and the commands
it runs go with it. What the store knows must still be right after a restart: a created container
starts (its function is made again), an exited one keeps its exit code and output, and one that was
running is settled at once with an honest status (killed at a clean stop, unknown after a crash).
A first Ctrl-C says what it waits for; a second one stops at once, and attached clients get a clean end.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.reliability.processes import SOCKERLESS, Process, base_environment, eventually

from .conftest import DOCKER, DockerCLI

pytestmark = pytest.mark.docker_cli

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest"


class Up(Process):
    """``sockerless up --backend lambda --simulate`` on sockets of the test's, with its store."""

    def __init__(self, directory: Path, sockets: str, *, grace: float) -> None:
        flags = [
            "up", "--backend", "lambda", "--simulate",
            "--store-path", str(directory / "state.sqlite3"),
            "--frontend-socket", f"{sockets}/docker.sock",
            "--server-socket", f"{sockets}/backend.sock",
            "--server-shutdown-grace", f"{grace:g}",
            "--lambda-log-read-interval", "0.25",
            "--lambda-max-attempts", "2",
        ]  # fmt: skip
        self.runs = 0
        super().__init__([*SOCKERLESS, *flags], directory / "up-0.log", base_environment())
        self.directory = directory

    async def start(self) -> Up:
        self.log_path = self.directory / f"up-{self.runs}.log"
        self.runs += 1
        await self.spawn()

        async def announced() -> bool:
            assert self.running, self.log_text()[-3000:]
            return "export DOCKER_HOST=" in self.log_text()

        await eventually(announced, timeout=90, what="sockerless up announcing its address")
        return self

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    async def exited(self, timeout: float) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)


@pytest.fixture
def sockets() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="sku-", dir="/tmp")
    yield path
    for name in os.listdir(path):
        Path(path, name).unlink(missing_ok=True)
    os.rmdir(path)


@pytest.fixture
def cli(sockets: str) -> DockerCLI:
    if not os.path.exists(DOCKER):
        pytest.skip("the docker CLI is not installed")
    os.makedirs(f"{sockets}-config", exist_ok=True)
    return DockerCLI(f"unix://{sockets}/docker.sock", f"{sockets}-config")


@pytest_asyncio.fixture
async def up(tmp_path: Path, sockets: str, request: pytest.FixtureRequest) -> AsyncIterator[Up]:
    grace = getattr(request, "param", 1.0)
    process = Up(tmp_path, sockets, grace=grace)
    try:
        yield await process.start()
    finally:
        await process.kill()


async def _state(cli: DockerCLI, name: str) -> dict[str, object]:
    result = await cli("inspect", "-f", "{{json .State}}", name)
    assert result.code == 0, result.err
    return dict(json.loads(result.out))


async def _until_running(cli: DockerCLI, name: str) -> None:
    async def running() -> bool:
        return (await _state(cli, name))["Status"] == "running"

    await eventually(running, timeout=30, what=f"{name} running")


async def _created_running_exited(cli: DockerCLI) -> None:
    assert (await cli("create", "--name", "made", IMAGE, "sh", "-c", "echo made; exit 4")).code == 0
    done = await cli("run", "--name", "done", IMAGE, "sh", "-c", "echo done; exit 3")
    assert (done.code, done.out) == (3, "done\n"), done.err
    assert (await cli("run", "-d", "--name", "long", IMAGE, "sh", "-c", "echo long; sleep 20")).code == 0
    await _until_running(cli, "long")

    async def said_long() -> bool:  # its first line has reached CloudWatch, and the store
        return (await cli("logs", "long")).out == "long\n"

    await eventually(said_long, timeout=30, what="the running container's first line")


async def _created_and_exited_are_right(cli: DockerCLI) -> None:
    done = await _state(cli, "done")
    assert (done["Status"], done["ExitCode"]) == ("exited", 3)
    assert (await cli("logs", "done")).out == "done\n"
    made = await _state(cli, "made")
    assert made["Status"] == "created"
    started = await cli("start", "-a", "made")  # its function went with the simulator: made again
    assert (started.code, started.out) == (4, "made\n"), started.err


async def test_a_clean_restart_keeps_created_and_exited_containers_and_settles_the_running_one(
    up: Up, cli: DockerCLI
) -> None:
    await _created_running_exited(cli)
    up.signal(signal.SIGTERM)
    assert await up.exited(timeout=30) == 0, up.log_text()[-3000:]
    assert re.search(
        r"waiting at most 1 s \(server.shutdown_grace\) for 1 run( and \d+ requests?)? in flight",
        up.log_text(),
    )
    await up.start()

    long = await _state(cli, "long")  # recorded at the stop: the simulator ended the run with it
    assert (long["Status"], long["ExitCode"]) == ("exited", 137)
    assert "sockerless stopped" in str(long["Error"])
    assert (await cli("logs", "long")).out == "long\n"  # what it said before the stop is kept
    await _created_and_exited_are_right(cli)
    assert (await cli("rm", "made", "done", "long")).code == 0


async def test_after_a_crash_the_run_that_was_in_flight_settles_at_once_as_unknown(
    up: Up, cli: DockerCLI
) -> None:
    await _created_running_exited(cli)
    await up.kill()  # SIGKILL: nothing recorded; the simulator's functions and logs are gone
    await up.start()

    async def settled() -> bool:  # the function timeout is 900 s: no waiting for it
        return (await _state(cli, "long"))["Status"] == "exited"

    await eventually(settled, timeout=20, what="the run in flight at the crash settling")
    long = await _state(cli, "long")
    assert long["ExitCode"] == 255
    assert "no longer exists" in str(long["Error"])
    assert (await cli("logs", "long")).out == "long\n"  # what the store had of it
    await _created_and_exited_are_right(cli)


@pytest.mark.parametrize("up", [60.0], indirect=True)
async def test_ctrl_c_says_what_it_waits_for_and_a_second_one_ends_attached_clients_cleanly(
    up: Up, cli: DockerCLI
) -> None:
    followed = await cli("run", "-d", "--name", "followed", IMAGE, "sh", "-c", "echo follow; sleep 60")
    assert followed.code == 0, followed.err
    attached = await asyncio.create_subprocess_exec(
        DOCKER, "run", "--name", "attached", IMAGE, "sh", "-c", "echo started; sleep 60",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=cli.env,
    )  # fmt: skip
    following = await asyncio.create_subprocess_exec(
        DOCKER, "logs", "-f", "followed",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=cli.env,
    )  # fmt: skip
    try:
        assert attached.stdout is not None and following.stdout is not None
        # Both clients have the first line: each is attached to a run in flight.
        assert await asyncio.wait_for(attached.stdout.readline(), 30) == b"started\n"
        assert await asyncio.wait_for(following.stdout.readline(), 30) == b"follow\n"

        up.signal(signal.SIGINT)

        async def announced() -> bool:  # the runs, and the requests following them (waits, logs -f)
            return (
                re.search(
                    r"waiting at most 60 s \(server.shutdown_grace\) for 2 runs and \d+ requests in flight",
                    up.log_text(),
                )
                is not None
            )

        await eventually(announced, timeout=10, what="the first Ctrl-C saying what it waits for")
        assert up.running  # it waits: the grace period is a minute
        up.signal(signal.SIGINT)
        assert await up.exited(timeout=30) == 0, up.log_text()[-3000:]  # not the 60 s
        assert "sockerless: stopping now" in up.log_text()

        run_out, run_err = await asyncio.wait_for(attached.communicate(), 30)
        logs_out, logs_err = await asyncio.wait_for(following.communicate(), 30)
    finally:
        for process in (attached, following):
            if process.returncode is None:
                process.kill()
                await process.wait()
    # The attached run ended with its container, killed as the simulator stopped with sockerless.
    assert b"unexpected EOF" not in run_err, run_err
    assert run_out == b"", run_out
    assert attached.returncode == 137 or b"sockerless stopped" in run_err, (attached.returncode, run_err)
    # The follower got a clean end of its stream.
    assert (following.returncode, logs_out, logs_err) == (0, b"", b"")
