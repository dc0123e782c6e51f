"""Issue 20 through the real docker CLI and SDK: the bootstrap streams every byte, live, exact status.

The simulator runs functions as Lambda does (Init, the Runtime API) and the backend creates them with our
bootstrap as the entrypoint; the simulator runs the bootstrap from the plugin's package on this machine.
Where a test needs "while the command still runs", the command waits for a file the test creates, so the
order is proven without timing.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import pytest_asyncio

from sockerless.api.server import InternalAPIServer
from sockerless.backend import BackendRuntime
from sockerless.config import ServerConfig
from tests.lambda_settings import SIMULATOR_OPTIONS, simulator_config

from .conftest import CLIENT_TIMEOUT, DOCKER, DockerCLI, serving

lambda_backend = pytest.importorskip("sockerless_lambda.backend", exc_type=ImportError)

pytestmark = pytest.mark.docker_cli

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest"
#: The function timeout of these tests' containers: long enough for every run but the timeout test's.
TIMEOUT = 60


@pytest.fixture
def lambda_simulator_options() -> dict[str, Any]:
    return {**SIMULATOR_OPTIONS, "runtime_model": "lambda"}


@pytest.fixture
def backend_timeout() -> int:
    return TIMEOUT


@pytest_asyncio.fixture
async def backend_server(
    lambda_simulator: Any, short_dir: str, tmp_path: Path, backend_timeout: int
) -> AsyncIterator[InternalAPIServer]:
    config = simulator_config(lambda_simulator, bootstrap=True, timeout=backend_timeout)
    backend = lambda_backend.LambdaBackend(config, BackendRuntime(str(tmp_path / "lambda.sqlite3"), "boot"))
    async with serving(backend, ServerConfig(socket=f"{short_dir}/backend.sock")) as server:
        yield server


async def spawn_docker(cli: DockerCLI, *args: str) -> asyncio.subprocess.Process:
    """The docker CLI started with ``args``, its output on pipes read as bytes."""
    return await asyncio.create_subprocess_exec(
        DOCKER,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli.env,
    )


async def raw_docker(cli: DockerCLI, *args: str) -> tuple[int, bytes, bytes]:
    """The docker CLI's exit code and exact output bytes (DockerCLI decodes them as text)."""
    process = await spawn_docker(cli, *args)
    out, err = await asyncio.wait_for(process.communicate(), CLIENT_TIMEOUT)
    assert process.returncode is not None
    return process.returncode, out, err


async def read_until(stream: asyncio.StreamReader, wanted: bytes) -> bytes:
    """What ``stream`` gives up to and including ``wanted`` (fails at the client timeout)."""
    return await asyncio.wait_for(stream.readuntil(wanted), CLIENT_TIMEOUT)


# ---------------------------------------------------------------------------- live output


async def test_a_line_reaches_docker_run_before_the_next_is_produced(
    docker_cli: DockerCLI, tmp_path: Path
) -> None:
    gate = tmp_path / "go-on"
    script = f"echo a; while [ ! -e {gate} ]; do sleep 0.02; done; echo b"
    process = await spawn_docker(docker_cli, "run", "--rm", IMAGE, "sh", "-c", script)
    try:
        assert process.stdout is not None
        assert await read_until(process.stdout, b"\n") == b"a\n"  # b cannot exist yet: the gate is shut
        gate.touch()
        assert await read_until(process.stdout, b"\n") == b"b\n"
        assert await asyncio.wait_for(process.wait(), CLIENT_TIMEOUT) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_docker_logs_of_a_running_container_shows_what_it_printed_so_far(
    docker_cli: DockerCLI, tmp_path: Path
) -> None:
    gate = tmp_path / "go-on"
    script = f"echo first; while [ ! -e {gate} ]; do sleep 0.02; done; echo second"
    started = await docker_cli("run", "-d", IMAGE, "sh", "-c", script)
    assert started.code == 0, started.err
    container = started.out.strip()
    followed = await spawn_docker(docker_cli, "logs", "-f", container)
    assert followed.stdout is not None
    assert await read_until(followed.stdout, b"\n") == b"first\n"
    # Still running, and a plain `docker logs` shows the same so far.
    assert (await docker_cli("inspect", "--format", "{{.State.Running}}", container)).out.strip() == "true"
    assert (await docker_cli("logs", container)).out == "first\n"
    gate.touch()
    assert await read_until(followed.stdout, b"\n") == b"second\n"
    assert await asyncio.wait_for(followed.wait(), CLIENT_TIMEOUT) == 0
    assert (await docker_cli("wait", container)).out.strip() == "0"
    assert (await docker_cli("logs", container)).out == "first\nsecond\n"


# ---------------------------------------------------------------------------- exact bytes


async def test_stdout_and_stderr_stay_apart(docker_cli: DockerCLI) -> None:
    result = await docker_cli("run", "--rm", IMAGE, "sh", "-c", "echo out; echo err >&2")
    assert result.code == 0, result.err
    assert result.out == "out\n"
    assert result.err.endswith("err\n")
    # docker run ... 2>/dev/null: the shell drops the CLI's stderr, which holds only the container's.
    hidden = await asyncio.create_subprocess_shell(
        f"{DOCKER} run --rm {IMAGE} sh -c 'echo out; echo err >&2' 2>/dev/null",
        stdout=asyncio.subprocess.PIPE,
        env=docker_cli.env,
    )
    out, _ = await asyncio.wait_for(hidden.communicate(), CLIENT_TIMEOUT)
    assert (hidden.returncode, out) == (0, b"out\n")


async def test_20_mb_of_random_bytes_arrive_byte_identical(docker_cli: DockerCLI) -> None:
    script = 'head -c 20971520 /dev/urandom > "$TMPDIR/r"; sha256sum "$TMPDIR/r" >&2; cat "$TMPDIR/r"'
    code, out, err = await raw_docker(docker_cli, "run", "--rm", IMAGE, "sh", "-c", script)
    assert code == 0, err[-2000:]
    assert len(out) == 20971520
    assert hashlib.sha256(out).hexdigest() == err.split()[-2].decode()


async def test_output_without_a_final_newline_stays_without_one(docker_cli: DockerCLI) -> None:
    code, out, _ = await raw_docker(docker_cli, "run", "--name", "nonl", IMAGE, "printf", "abc")
    assert (code, out) == (0, b"abc")
    assert (await raw_docker(docker_cli, "logs", "nonl"))[1] == b"abc"


async def test_a_300_000_character_line_stays_one_line(docker_cli: DockerCLI) -> None:
    script = "head -c 300000 /dev/zero | tr '\\0' x; echo"
    code, out, err = await raw_docker(docker_cli, "run", "--name", "long", IMAGE, "sh", "-c", script)
    assert code == 0, err
    assert out == b"x" * 300000 + b"\n"
    assert (await raw_docker(docker_cli, "logs", "long"))[1] == b"x" * 300000 + b"\n"


# ---------------------------------------------------------------------------- exit statuses


@pytest.mark.parametrize(
    ("command", "status"),
    [
        (["true"], 0),
        (["sh", "-c", "exit 3"], 3),
        (["no-such-command-here"], 127),
        (["/etc/hostname"], 126),
        (["sh", "-c", "kill -TERM $$"], 143),
    ],
)
async def test_exit_statuses_are_exact(docker_cli: DockerCLI, command: list[str], status: int) -> None:
    result = await docker_cli("run", "--rm", IMAGE, *command)
    assert result.code == status, result.err


@pytest.mark.parametrize("backend_timeout", [3])
async def test_a_timeout_is_137_and_said_in_state_error(docker_cli: DockerCLI) -> None:
    started = await docker_cli("run", "-d", "--name", "slow", IMAGE, "sleep", "60")
    assert started.code == 0, started.err
    assert (await docker_cli("wait", "slow", timeout=30)).out.strip() == "137"
    error = await docker_cli("inspect", "--format", "{{.State.Error}}", "slow")
    assert "timed out" in error.out


async def test_the_sdk_s_container_error_holds_the_stderr(sdk: Any) -> None:
    with pytest.raises(docker.errors.ContainerError) as failure:
        await asyncio.to_thread(
            sdk.containers.run, IMAGE, ["sh", "-c", "echo fine; echo broken >&2; exit 2"], remove=True
        )
    assert failure.value.exit_status == 2
    assert failure.value.stderr == b"broken\n"


async def test_an_environment_beyond_lambda_s_4_kb_reaches_the_command(docker_cli: DockerCLI) -> None:
    big = "v" * 8000
    result = await docker_cli(
        "run", "--rm", "-e", f"BIG={big}", IMAGE, "sh", "-c", 'printf %s "$BIG" | wc -c'
    )
    assert result.code == 0, result.err
    assert result.out.strip() == "8000"


async def test_the_command_runs_in_its_working_directory_created_if_missing(
    docker_cli: DockerCLI, tmp_path: Path
) -> None:
    workdir = tmp_path / "made" / "here"
    result = await docker_cli("run", "--rm", "-w", str(workdir), IMAGE, "pwd")
    assert result.code == 0, result.err
    assert result.out == f"{workdir}\n"
    assert os.path.isdir(workdir)


async def test_a_container_without_a_command_runs_the_image_as_its_runtime_and_says_so(
    docker_cli: DockerCLI,
) -> None:
    ran = await docker_cli("run", "--name", "bare", IMAGE)
    assert "no command given: the image's own ENTRYPOINT/CMD run as the function's runtime" in ran.err
    # The simulator does not pull images: it cannot run the image's own, and says so (never a fake 0).
    assert ran.code == 127, ran.err
    error = await docker_cli("inspect", "--format", "{{.State.Error}}", "bare")
    assert "cannot run the image's own ENTRYPOINT/CMD" in error.out
