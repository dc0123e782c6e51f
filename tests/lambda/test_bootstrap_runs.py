"""Containers run through the bootstrap, end to end: the simulator runs functions as Lambda does (Init,
the Runtime API) with the host's bootstrap binary, and answers InvokeWithResponseStream as an AWS event
stream that the real aiobotocore decodes. Output arrives live with its exact bytes, the exit is the
bootstrap's, and a restart during a run recovers both from the durable copy."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sockerless.backend import BackendRuntime, LogsOptions
from sockerless.cli import instance_id_for
from sockerless.models import ContainerConfig, ContainerCreateRequest
from sockerless_lambda.backend import LambdaBackend
from sockerless_lambda.bootstrap.payload import BOOTSTRAP_ENTRYPOINT
from sockerless_lambda.bootstrap.records import DurableLine, durable_filter_pattern, parse_durable_line
from tests.lambda_settings import simulator_config

API = "http://backend/internal/v1"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs:latest"
#: The run's timeout (lambda.timeout): the function's is one more second, the bootstrap's margin.
RUN_SECONDS = 8  # room for 20 MB on a loaded machine; the timeout test waits this long


@pytest.fixture
def lambda_simulator_options(lambda_simulator_options: dict[str, Any]) -> dict[str, Any]:
    return {**lambda_simulator_options, "runtime_model": "lambda"}


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"bootstrap": True, "timeout": RUN_SECONDS}


async def _create(backend: LambdaBackend, *argv: str, env: list[str] | None = None) -> str:
    request = ContainerCreateRequest(config=ContainerConfig(image=IMAGE, cmd=list(argv), env=env))
    return (await backend.create_container(request, None)).id


async def _run(backend: LambdaBackend, *argv: str, env: list[str] | None = None) -> Any:
    container_id = await _create(backend, *argv, env=env)
    await backend.start_container(container_id)
    return await _exited(backend, container_id)


async def _exited(backend: LambdaBackend, container_id: str, timeout: float = 30) -> Any:
    async def wait() -> None:
        while backend.store.resolve_container(container_id).status == "running":
            await asyncio.sleep(0.05)

    await asyncio.wait_for(wait(), timeout)
    return backend.store.resolve_container(container_id)


async def _frames(backend: LambdaBackend, container_id: str) -> list[tuple[int, bytes]]:
    logs = await backend.container_logs(container_id, LogsOptions())
    return [(line.stream, line.data) async for line in logs.lines]


def _stream(frames: list[tuple[int, bytes]], stream: int) -> bytes:
    return b"".join(data for number, data in frames if number == stream)


async def test_the_function_runs_the_bootstrap(backend: LambdaBackend) -> None:
    container_id = await _create(backend, "true")
    name = backend.store.resolve_container(container_id).backend_state.function_name
    configuration = await backend.clients.control.get_function_configuration(FunctionName=name)
    image_config = configuration["ImageConfigResponse"]["ImageConfig"]
    assert image_config["EntryPoint"] == [BOOTSTRAP_ENTRYPOINT]
    assert not image_config.get("Command") and not image_config.get("WorkingDirectory")
    assert "Environment" not in configuration
    assert configuration["Timeout"] == RUN_SECONDS + 1


async def test_output_keeps_exact_bytes_and_streams_apart(backend: LambdaBackend) -> None:
    record = await _run(backend, "sh", "-c", r"printf 'out\377\n\000x'; printf 'err\n' >&2; printf 'tail'")
    assert (record.exit_code, record.error) == (0, "")
    frames = await _frames(backend, record.id)
    assert _stream(frames, 1) == b"out\xff\n\x00xtail"
    assert _stream(frames, 2) == b"err\n"
    assert record.backend_state.output_complete


@pytest.mark.parametrize(
    ("argv", "status", "error"),
    [
        (["sh", "-c", "exit 0"], 0, ""),
        (["sh", "-c", "exit 3"], 3, ""),
        (["no-such-command-here"], 127, "no-such-command-here"),
        (["/etc/hostname"], 126, "/etc/hostname"),
        (["sh", "-c", "kill -TERM $$"], 143, ""),
    ],
)
async def test_exit_statuses_are_exact(
    backend: LambdaBackend, argv: list[str], status: int, error: str
) -> None:
    record = await _run(backend, *argv)
    assert record.exit_code == status
    assert error in record.error
    assert bool(record.error) == bool(error)
    assert not record.backend_state.daemon_error


async def test_a_run_past_its_timeout_is_137_and_says_it_timed_out(backend: LambdaBackend) -> None:
    record = await _run(backend, "sh", "-c", "echo started; sleep 60")
    assert record.exit_code == 137
    assert "timed out" in record.error
    assert _stream(await _frames(backend, record.id), 1) == b"started\n"


async def test_a_follower_reads_output_while_the_run_goes_on(backend: LambdaBackend, tmp_path: Path) -> None:
    gate = tmp_path / "go"  # the command prints "b" only once the test has read "a"
    container_id = await _create(
        backend,
        "sh",
        "-c",
        'echo a; while [ ! -e "$GATE" ]; do sleep 0.05; done; echo b',
        env=[f"GATE={gate}"],
    )
    await backend.start_container(container_id)
    logs = await backend.container_logs(container_id, LogsOptions(follow=True))
    lines = logs.lines.__aiter__()
    first = await asyncio.wait_for(anext(lines), 20)
    assert first.data == b"a\n"
    assert backend.store.resolve_container(container_id).status == "running"
    gate.touch()
    second = await asyncio.wait_for(anext(lines), 20)
    assert second.data == b"b\n"
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(lines), 20)  # the follow ends with the run
    assert (await _exited(backend, container_id)).exit_code == 0


async def test_an_environment_over_4_kb_works(backend: LambdaBackend) -> None:
    env = [f"VAR_{n}=" + "v" * 100 for n in range(60)] + ["AWS_REGION=chosen"]  # 6 KB, a reserved name
    record = await _run(backend, "sh", "-c", 'echo "$VAR_59 $AWS_REGION"', env=env)
    assert record.exit_code == 0
    assert _stream(await _frames(backend, record.id), 1) == b"v" * 100 + b" chosen\n"


async def test_a_restart_during_a_run_recovers_output_and_status_from_the_durable_copy(
    backend: LambdaBackend, tmp_path: Path
) -> None:
    gate = tmp_path / "go"  # the run goes on past "one" only once the backend has stopped
    container_id = await _create(
        backend,
        "sh",
        "-c",
        'echo one; while [ ! -e "$GATE" ]; do sleep 0.05; done; echo two >&2; echo three; exit 5',
        env=[f"GATE={gate}"],
    )
    await backend.start_container(container_id)

    async def first_line() -> None:
        while not _stream(await _frames(backend, container_id), 1):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(first_line(), 20)
    assert backend.store.resolve_container(container_id).status == "running"
    await backend.close()  # the run goes on in the simulator
    gate.touch()
    await backend.start()  # recovers it from the durable copy
    record = await _exited(backend, container_id)
    assert (record.exit_code, record.error) == (5, "")
    frames = await _frames(backend, container_id)
    assert _stream(frames, 1) == b"one\nthree\n"
    assert _stream(frames, 2) == b"two\n"


async def test_the_durable_copy_of_a_run_is_found_by_its_run_id(backend: LambdaBackend) -> None:
    record = await _run(backend, "sh", "-c", r"printf 'x\377'; printf 'e' >&2; exit 4")
    run = record.backend_state.run_id
    assert run == f"{record.id}-1"

    async def copy() -> list[DurableLine]:
        while True:
            answer = await backend.clients.logs.filter_log_events(
                logGroupName=backend.config.log_group, filterPattern=durable_filter_pattern(run)
            )
            lines = [parse_durable_line(event["message"].rstrip("\n"), run) for event in answer["events"]]
            found = sorted((line for line in lines if line is not None), key=lambda line: line.seq)
            if found and found[-1].exit is not None:
                return found
            await asyncio.sleep(0.1)

    lines = await asyncio.wait_for(copy(), 20)
    assert [line.seq for line in lines] == list(range(len(lines)))
    assert b"".join(line.data for line in lines if line.stream == 1) == b"x\xff"
    assert b"".join(line.data for line in lines if line.stream == 2) == b"e"
    exit_record = lines[-1].exit
    assert exit_record is not None and exit_record.status == 4


async def test_a_backend_killed_during_a_run_recovers_its_output_and_status(
    lambda_simulator: Any, tmp_path: Path
) -> None:
    """SIGKILL of the backend process while its run is in flight; the run goes on and ends in Lambda,
    and the next start takes the output and the exit from the durable copy."""
    state_path, socket_path = str(tmp_path / "state.sqlite3"), str(tmp_path / "backend.sock")
    gate = tmp_path / "go"
    flags = [
        "--store-path", state_path,
        "--lambda-region", lambda_simulator.region,
        "--lambda-role-arn", lambda_simulator.role_arn,
        "--lambda-endpoint-url", lambda_simulator.endpoint_url,
        "--lambda-bootstrap",
        "--no-lambda-prepare-images",
        f"--lambda-timeout={RUN_SECONDS}",
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from sockerless_lambda.cli import main; sys.exit(main())",
        "--server-socket",
        socket_path,
        *flags,
        env=dict(os.environ),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    command = 'printf "one\\n\\377"; while [ ! -e "$GATE" ]; do sleep 0.05; done; echo two >&2; exit 6'
    try:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=socket_path)) as session:

            async def serving() -> None:
                while True:
                    assert process.returncode is None, "the backend process exited"
                    with contextlib.suppress(aiohttp.ClientConnectionError):
                        async with session.get(f"{API}/capabilities") as response:
                            if response.status == 200:
                                return
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(serving(), 30)
            body = {"Image": IMAGE, "Cmd": ["sh", "-c", command], "Env": [f"GATE={gate}"]}
            async with session.post(f"{API}/containers", json=body) as response:
                assert response.status == 201, await response.text()
                container_id = (await response.json())["Id"]
            async with session.post(f"{API}/containers/{container_id}/start") as response:
                assert response.status == 204, await response.text()

            async def invoking() -> None:
                while lambda_simulator.stats.running < 1:
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(invoking(), 20)
        process.send_signal(signal.SIGKILL)  # mid-run: the command waits for the gate in the simulator
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), 10)
    gate.touch()

    config = simulator_config(lambda_simulator, bootstrap=True, timeout=RUN_SECONDS)
    backend = LambdaBackend(config, BackendRuntime(state_path, instance_id_for(state_path)))
    await backend.start()
    try:
        record = await _exited(backend, container_id)
        assert (record.exit_code, record.error) == (6, "")
        assert lambda_simulator.stats.snapshot()["invocations"]["started"] == 1  # never invoked twice
        frames = await _frames(backend, container_id)
        assert _stream(frames, 1) == b"one\n\xff"
        assert _stream(frames, 2) == b"two\n"
    finally:
        await backend.close()


async def test_20_mb_of_random_bytes_arrive_identical(backend: LambdaBackend) -> None:
    command = (
        'head -c 20000000 /dev/urandom > "$TMPDIR/data"; sha256sum < "$TMPDIR/data" >&2; cat "$TMPDIR/data"'
    )
    record = await _run(backend, "sh", "-c", command)
    assert record.exit_code == 0, record.error
    frames = await _frames(backend, record.id)
    data = _stream(frames, 1)
    assert len(data) == 20_000_000
    assert hashlib.sha256(data).hexdigest() == _stream(frames, 2).split()[0].decode()


async def test_a_bootstrap_that_dies_gives_lambdas_error_as_the_outcome(backend: LambdaBackend) -> None:
    """No exit record, but InvokeComplete's ErrorCode (Runtime.ExitError): the outcome rules apply."""
    container_id = await _create(backend, "sh", "-c", "echo $PPID; sleep 60")  # its parent: the bootstrap
    await backend.start_container(container_id)

    async def bootstrap_pid() -> int:
        while not (out := _stream(await _frames(backend, container_id), 1)).endswith(b"\n"):
            await asyncio.sleep(0.05)
        return int(out)

    os.kill(await asyncio.wait_for(bootstrap_pid(), 20), signal.SIGKILL)
    record = await _exited(backend, container_id)
    assert record.exit_code == 137
    assert "killed" in record.error
    assert record.backend_state.output_complete


# ---------------------------------------------------------------------------- without response streaming


@pytest.mark.parametrize("config_overrides", [{"response_streaming": False, "timeout": RUN_SECONDS}])
async def test_without_response_streaming_the_run_is_invoked_buffered_with_the_same_outcome(
    backend: LambdaBackend, lambda_simulator: Any, config_overrides: dict[str, Any]
) -> None:
    lambda_simulator.stats.reset()
    record = await _run(backend, "sh", "-c", r"printf 'out\377\n'; printf 'err' >&2; exit 5")
    assert (record.exit_code, record.error) == (5, "")
    frames = await _frames(backend, record.id)
    assert (_stream(frames, 1), _stream(frames, 2)) == (b"out\xff\n", b"err")
    calls = lambda_simulator.stats.snapshot()["calls"]
    assert calls["lambda:Invoke"] == 1 and "lambda:InvokeWithResponseStream" not in calls
    function = await backend.clients.control.get_function(FunctionName=record.backend_state.function_name)
    variables = function["Configuration"]["Environment"]["Variables"]
    assert variables == {"SOCKERLESS_BOOTSTRAP_RESPONSE_MODE": "buffered"}


@pytest.mark.parametrize("config_overrides", [{"response_streaming": False, "timeout": RUN_SECONDS}])
async def test_a_buffered_answer_over_6_mb_is_completed_from_the_durable_copy(
    backend: LambdaBackend, config_overrides: dict[str, Any]
) -> None:
    # 8 MB of output: the buffered response holds about 6 MB of it, the durable copy the rest.
    command = 'head -c 8000000 /dev/urandom > "$TMPDIR/d"; sha256sum < "$TMPDIR/d" >&2; cat "$TMPDIR/d"'
    record = await _run(backend, "sh", "-c", command)
    assert record.exit_code == 0, record.error
    frames = await _frames(backend, record.id)
    data = _stream(frames, 1)
    assert len(data) == 8_000_000
    assert hashlib.sha256(data).hexdigest() == _stream(frames, 2).split()[0].decode()
