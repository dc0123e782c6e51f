"""Exit codes, wait and the verbs Lambda cannot honour, end to end: the real docker CLI and the Docker
SDK -> the frontend -> the Lambda backend -> the simulator (functions time out after 2 seconds here).

Docker puts ``Error`` in a wait answer only when waiting itself failed; a container that ran and
ended, however it ended, answers its status, and the reason is in ``State.Error``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import pytest_asyncio

from sockerless.api.server import InternalAPIServer
from sockerless.backend import BackendRuntime
from sockerless.config import ServerConfig
from tests.lambda_settings import simulator_config

from .conftest import DockerCLI, serving

lambda_backend = pytest.importorskip("sockerless_lambda.backend", exc_type=ImportError)

pytestmark = pytest.mark.docker_cli

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest"
FUNCTION_TIMEOUT = 2
WAIT_FAILED = "Error waiting for container"


@pytest_asyncio.fixture
async def backend_server(
    lambda_simulator: Any, short_dir: str, tmp_path: Path
) -> AsyncIterator[InternalAPIServer]:
    # capacity_wait=1: a throttled Invoke (a test below) gives up after 1 s, not the default 300 s.
    config = simulator_config(lambda_simulator, timeout=FUNCTION_TIMEOUT, capacity_wait=1)
    backend = lambda_backend.LambdaBackend(config, BackendRuntime(str(tmp_path / "lambda.sqlite3"), "exits"))
    async with serving(backend, ServerConfig(socket=f"{short_dir}/backend.sock")) as server:
        yield server


@pytest_asyncio.fixture
async def docker_cli_pulled(docker_cli: DockerCLI) -> DockerCLI:
    assert (await docker_cli("pull", IMAGE)).code == 0
    return docker_cli


@pytest_asyncio.fixture
async def docker_cli_busy(docker_cli_pulled: DockerCLI) -> DockerCLI:
    """With ``busy`` running: it sleeps a second, then exits 5."""
    assert (
        await docker_cli_pulled("run", "-d", "--name", "busy", IMAGE, "sh", "-c", "sleep 1; exit 5")
    ).code == 0
    return docker_cli_pulled


async def call(function: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(function, *args, **kwargs)


async def state_of(docker_cli: DockerCLI, name: str) -> tuple[str, str, str]:
    shown = await docker_cli(
        "inspect", "--format", "{{.State.Status}}|{{.State.ExitCode}}|{{.State.Error}}", name
    )
    assert shown.code == 0, shown.err
    status, code, error = shown.out.rstrip("\n").split("|", 2)
    return status, code, error


# ---------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    ("command", "code", "reason"),
    [
        (["sh", "-c", "exit 3"], 3, ""),
        (["nosuchcommand"], 127, 'exec: "nosuchcommand": executable file not found in $PATH'),
        (["/etc"], 126, 'exec: "/etc": permission denied'),
        (["sh", "-c", "kill -TERM $$"], 143, ""),  # signal N: 128 + N
        (["sh", "-c", "kill -KILL $$"], 137, ""),  # as Docker: the status says it, State.Error is empty
        (["sh", "-c", "echo begun; sleep 10"], 137, "timed out"),  # past the 2-second function timeout
    ],
    ids=["exit-3", "not-found", "not-executable", "sigterm", "sigkill", "function-timeout"],
)
async def test_docker_run_exits_with_the_containers_status_and_inspect_says_why(
    docker_cli_pulled: DockerCLI, command: list[str], code: int, reason: str
) -> None:
    ran = await docker_cli_pulled("run", "--name", "job", IMAGE, *command)
    assert ran.code == code, ran.err
    assert WAIT_FAILED not in ran.err
    status, exit_code, error = await state_of(docker_cli_pulled, "job")
    assert (status, exit_code) == ("exited", str(code))
    assert reason in error
    if not reason:
        assert error == ""


async def test_docker_run_rm_of_a_missing_command_exits_127_without_a_wait_error(
    docker_cli_pulled: DockerCLI,
) -> None:
    ran = await docker_cli_pulled("run", "--rm", IMAGE, "nosuchcommand")
    assert ran.code == 127, ran.err
    assert WAIT_FAILED not in ran.err


async def test_a_run_past_the_function_timeout_shows_its_output_and_exits_137(
    docker_cli_pulled: DockerCLI,
) -> None:
    ran = await docker_cli_pulled("run", "--rm", IMAGE, "sh", "-c", "echo begun; sleep 10")
    assert (ran.code, ran.out) == (137, "begun\n"), ran.err
    assert WAIT_FAILED not in ran.err


async def test_a_run_the_backend_could_not_invoke_is_a_wait_error_and_exit_125(
    docker_cli_pulled: DockerCLI, lambda_simulator: Any
) -> None:
    # Docker answers a start that fails with an error and `docker run` exits 125; here the start was
    # answered before Lambda refused, so the wait says why ("waiting itself failed").
    lambda_simulator.add_fault({"kind": "throttle", "operation": "lambda:InvokeWithResponseStream"})
    ran = await docker_cli_pulled("run", "--name", "never", IMAGE, "true")
    assert ran.code == 125
    assert WAIT_FAILED in ran.err
    assert "TooManyRequestsException" in ran.err
    assert "[sockerless]" not in ran.err  # nothing ran: no output to wait for, none said missing
    _, _, error = await state_of(docker_cli_pulled, "never")
    assert "TooManyRequestsException" in error
    removed = await docker_cli_pulled("run", "--rm", IMAGE, "true")  # the removed wait says it too
    assert removed.code == 125
    assert WAIT_FAILED in removed.err
    assert "TooManyRequestsException" in removed.err


@pytest.mark.parametrize(
    ("command", "code"),
    [(["sh", "-c", "echo out; exit 3"], 3), (["nosuchcommand"], 127), (["sleep", "10"], 137)],
    ids=["exit-3", "not-found", "function-timeout"],
)
async def test_sdk_run_raises_container_error_with_the_exit_status(
    sdk: Any, command: list[str], code: int
) -> None:
    await call(sdk.images.pull, IMAGE)
    with pytest.raises(docker.errors.ContainerError) as raised:
        await call(sdk.containers.run, IMAGE, command)
    assert raised.value.exit_status == code
    container = raised.value.container
    assert await call(container.wait) == {"StatusCode": code}  # no "Error": it ran and ended


# ---------------------------------------------------------------------------- wait conditions


async def test_docker_wait_on_a_created_container_answers_0_at_once(docker_cli_pulled: DockerCLI) -> None:
    assert (await docker_cli_pulled("create", "--name", "idle", IMAGE, "sh", "-c", "exit 4")).code == 0
    waited = await docker_cli_pulled("wait", "idle", timeout=10)
    assert (waited.code, waited.out) == (0, "0\n"), waited.err
    status, _, _ = await state_of(docker_cli_pulled, "idle")
    assert status == "created"


async def test_docker_start_attach_of_a_created_container_waits_for_its_run(
    docker_cli_pulled: DockerCLI,
) -> None:
    assert (
        await docker_cli_pulled("create", "--name", "later", IMAGE, "sh", "-c", "echo ran; exit 4")
    ).code == 0
    started = await docker_cli_pulled("start", "-a", "later")  # attach, wait next-exit, start
    assert (started.code, started.out) == (4, "ran\n"), started.err


# ---------------------------------------------------------------------------- stop, kill, restart


async def test_stop_and_kill_of_a_running_container_succeed_and_the_run_goes_on(
    docker_cli_busy: DockerCLI,
) -> None:
    stopped = await docker_cli_busy("stop", "busy")
    assert (stopped.code, stopped.out) == (0, "busy\n"), stopped.err
    killed = await docker_cli_busy("kill", "busy")
    assert (killed.code, killed.out) == (0, "busy\n"), killed.err
    assert (await docker_cli_busy("wait", "busy")).out == "5\n"  # not cut short


async def test_restart_of_a_running_container_is_refused_saying_lambda_cannot_stop_a_run(
    docker_cli_busy: DockerCLI,
) -> None:
    restarted = await docker_cli_busy("restart", "busy")
    assert restarted.code == 1
    assert "cannot restart container" in restarted.err
    assert "Lambda cannot stop a run" in restarted.err
    assert (await docker_cli_busy("wait", "busy")).out == "5\n"
    again = await docker_cli_busy("restart", "busy")  # exited: restart runs it again
    assert again.code == 0, again.err
    assert (await docker_cli_busy("wait", "busy")).out == "5\n"


# ---------------------------------------------------------------------------- Lambda's own lines


@pytest.mark.parametrize("command", ["printf abc", "echo one; printf two"])
async def test_output_without_a_final_newline_never_carries_lambdas_platform_lines(
    docker_cli_pulled: DockerCLI, command: str
) -> None:
    ran = await docker_cli_pulled("run", "--name", "partial", IMAGE, "sh", "-c", command)
    assert ran.code == 0, ran.err
    assert "RequestId" not in ran.out
    # The bootstrap's bytes are exact: no newline is added (CloudWatch's records would add one).
    expected = {"printf abc": "abc", "echo one; printf two": "one\ntwo"}[command]
    assert ran.out == expected
    assert (await docker_cli_pulled("logs", "partial")).out == expected
    stamped = await docker_cli_pulled("logs", "-t", "partial")
    assert "RequestId" not in stamped.out
    assert [line.split(" ", 1)[1] for line in stamped.out.splitlines()] == expected.splitlines()


async def test_run_rm_with_more_output_than_the_tail_holds_shows_it_all_and_exits_with_its_status(
    docker_cli_pulled: DockerCLI,
) -> None:
    # Removed at its exit, the container's output still arrives from CloudWatch for the attached CLI.
    ran = await docker_cli_pulled("run", "--rm", IMAGE, "sh", "-c", "seq 1 3000; exit 3")
    assert ran.code == 3, ran.err
    assert ran.out == "".join(f"{n}\n" for n in range(1, 3001))
    assert (await docker_cli_pulled("ps", "-a", "-q")).out == ""
