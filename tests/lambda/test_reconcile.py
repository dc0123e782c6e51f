"""Restarts: containers survive, a run in flight when the process died is recovered, orphans are found."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from sockerless.backend import BackendRuntime, LogsOptions
from sockerless.cli import instance_id_for
from sockerless.models import ContainerConfig, ContainerCreateRequest, HostConfig
from sockerless.store import ContainerRecord
from sockerless_lambda.backend import LambdaBackend
from sockerless_lambda.bootstrap.payload import run_id
from sockerless_lambda.config import LambdaConfig
from sockerless_lambda.reconcile import find_orphans
from sockerless_lambda.state import LambdaState

API = "/internal/v1"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs:latest"
BACKEND_MAIN = "import sys; from sockerless_lambda.cli import main; sys.exit(main())"


def backend_flags(simulator, state_path: str) -> list[str]:
    return [
        "--store-path", state_path,
        "--lambda-region", simulator.region,
        "--lambda-role-arn", simulator.role_arn,
        "--lambda-endpoint-url", simulator.endpoint_url,
        "--lambda-log-read-interval", "0.25",
        "--no-lambda-prepare-images",
    ]  # fmt: skip


async def restarted(simulator, state_path: str, **overrides) -> LambdaBackend:
    config = LambdaConfig(
        region=simulator.region,
        role_arn=simulator.role_arn,
        endpoint_url=simulator.endpoint_url,
        log_read_interval=0.25,
        prepare_images=False,
        **overrides,
    )
    backend = LambdaBackend(config, BackendRuntime(state_path, instance_id_for(state_path)))
    await backend.start()
    return backend


async def test_an_invocation_in_flight_when_the_backend_was_killed_is_recovered(
    lambda_simulator, tmp_path: Path, poll
) -> None:
    state_path, socket_path = str(tmp_path / "state.sqlite3"), str(tmp_path / "backend.sock")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        BACKEND_MAIN,
        "--server-socket",
        socket_path,
        *backend_flags(lambda_simulator, state_path),
        env=dict(os.environ),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=socket_path)) as session:

            async def serving() -> bool:
                assert process.returncode is None, "the backend process exited"
                try:
                    async with session.get(f"http://backend{API}/capabilities") as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await poll(serving, timeout=30)
            body = {"Image": IMAGE, "Cmd": ["sh", "-c", "sleep 3; echo done; exit 4"]}
            async with session.post(f"http://backend{API}/containers", json=body) as response:
                container_id = (await response.json())["Id"]
            async with session.post(f"http://backend{API}/containers/{container_id}/start") as response:
                assert response.status == 204

            async def invoking() -> bool:
                return lambda_simulator.stats.running >= 1

            await poll(invoking, timeout=20)
        process.send_signal(signal.SIGKILL)  # mid-invocation: the command still sleeps in the simulator
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), 10)

    backend = await restarted(lambda_simulator, state_path)
    try:
        assert backend.store.resolve_container(container_id).status == "running"

        async def exited() -> bool:
            return backend.store.resolve_container(container_id).status == "exited"

        await poll(exited, timeout=30)
        record = backend.store.resolve_container(container_id)
        assert (record.exit_code, record.error) == (4, "")
        assert lambda_simulator.stats.snapshot()["invocations"]["started"] == 1  # never invoked twice
        logs = await backend.container_logs(container_id, LogsOptions())
        assert b"".join([line.data async for line in logs.lines]) == b"done\n"
    finally:
        await backend.close()


async def exit_after_a_restart(
    backend, poll, *, invocation: str, started_at: dt.datetime, **config: Any
) -> Any:
    """A container left ``running`` with its invocation ``queued`` or ``sent`` when the backend
    stopped: the record once the restarted backend has brought it to an exit."""
    created = await backend.create_container(
        ContainerCreateRequest(config=ContainerConfig(image=IMAGE, **config)), None
    )
    record = backend.store.resolve_container(created.id)
    record.status, record.started_at = "running", started_at
    record.backend_state.invocation = invocation
    if record.backend_state.bootstrap:  # as a start does: the run's ID before its invoke is sent
        record.backend_state.starts = 1
        record.backend_state.run_id = run_id(created.id, 1)
    await backend.store.save_state(record)
    await backend.close()
    await backend.start()

    async def exited() -> bool:
        return backend.store.resolve_container(created.id).status == "exited"

    await poll(exited)
    return backend.store.resolve_container(created.id)


async def test_a_start_that_never_reached_lambda_is_sent_after_a_restart(backend, poll) -> None:
    now = dt.datetime.now(dt.UTC)
    record = await exit_after_a_restart(
        backend, poll, invocation="queued", started_at=now, cmd=["sh", "-c", "exit 9"]
    )
    assert record.exit_code == 9


async def test_a_run_whose_end_never_shows_is_marked_unknown_after_timeout_and_margin(backend, poll) -> None:
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=backend.config.timeout + 61)
    record = await exit_after_a_restart(backend, poll, invocation="sent", started_at=long_ago)
    assert record.exit_code == 255
    assert "outcome of the Lambda invocation" in record.error and "unknown" in record.error


async def test_records_stuck_creating_are_finished_or_cleaned(backend, lambda_simulator) -> None:
    made = await backend.create_container(ContainerCreateRequest(config=ContainerConfig(image=IMAGE)), "made")
    record = backend.store.resolve_container(made.id)
    record.backend_state.function_state = "creating"
    record.backend_state.function_arn = ""
    await backend.store.save_state(record)
    never = ContainerRecord(
        id="f" * 64,
        name="never",
        created=dt.datetime.now(dt.UTC),
        image=IMAGE,
        config=ContainerConfig(image=IMAGE),
        host_config=HostConfig(),
        backend_state=LambdaState(function_name="skls-" + "f" * 24),
    )
    await backend.store.add_container(never)
    # Active before the restart, so the state the restart records does not depend on its timing.
    await backend.clients.control.get_waiter("function_active_v2").wait(
        FunctionName=record.backend_state.function_name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    await backend.close()
    await backend.start()
    finished = backend.store.resolve_container(made.id).backend_state
    assert finished.function_state == "Active"
    assert finished.function_arn.endswith(":function:skls-" + made.id[:24])
    assert backend.store.get_container(never.id) is None


async def test_a_removal_an_older_version_left_removing_is_finished(backend) -> None:
    created = await backend.create_container(
        ContainerCreateRequest(config=ContainerConfig(image=IMAGE)), "old"
    )
    record = backend.store.resolve_container(created.id)
    record.status = "removing"  # what older versions wrote while DeleteFunction ran
    await backend.store.save_state(record)
    await backend.close()
    await backend.start()
    assert backend.store.get_container(created.id) is None
    assert backend.store.removed_container("old") is not None
    assert backend.store.cleanups_pending() == []  # its function deleted before the start returned
    functions = await backend.clients.control.list_functions()
    assert [f["FunctionName"] for f in functions["Functions"]] == []


async def test_functions_tagged_as_ours_but_unknown_are_orphans(
    backend, lambda_simulator, state_path, caplog
) -> None:
    control = backend.clients.control
    tags = {"sockerless:managed": "true", "sockerless:container-id": "a" * 64, "sockerless:name": "lost"}
    for name, instance in (("skls-" + "a" * 24, "test-instance"), ("skls-" + "b" * 24, "someone-else")):
        await control.create_function(
            FunctionName=name,
            Role=lambda_simulator.role_arn,
            PackageType="Image",
            Code={"ImageUri": IMAGE},
            Tags={**tags, "sockerless:instance": instance},
        )
    await control.create_function(
        FunctionName="skls-" + "c" * 24,
        Role=lambda_simulator.role_arn,
        PackageType="Image",
        Code={"ImageUri": IMAGE},
    )
    await backend.create_container(ContainerCreateRequest(config=ContainerConfig(image=IMAGE)), None)
    orphans = await find_orphans(backend.clients, backend.store, backend.config, "test-instance")
    assert sorted((o.function_name, o.mine) for o in orphans) == [
        ("skls-" + "a" * 24, True),
        ("skls-" + "b" * 24, False),
    ]
    with caplog.at_level(logging.WARNING, logger="sockerless.lambda"):
        await backend.close()
        await backend.start()
        await asyncio.sleep(0)
        for _ in range(100):
            if any("orphaned Lambda function" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.05)
    assert sum("orphaned Lambda function" in r.getMessage() for r in caplog.records) == 2


async def test_the_orphans_command_lists_and_deletes_this_instances_orphans(
    lambda_simulator, tmp_path: Path
) -> None:
    state_path = str(tmp_path / "state.sqlite3")
    backend = await restarted(lambda_simulator, state_path)
    try:
        name = "skls-" + "d" * 24
        await backend.clients.control.create_function(
            FunctionName=name,
            Role=lambda_simulator.role_arn,
            PackageType="Image",
            Code={"ImageUri": IMAGE},
            Tags={"sockerless:managed": "true", "sockerless:instance": instance_id_for(state_path)},
        )
    finally:
        await backend.close()
    command = [sys.executable, "-c", BACKEND_MAIN, "orphans", *backend_flags(lambda_simulator, state_path)]
    listed = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert listed.returncode == 0, listed.stderr
    assert name in listed.stdout and "this instance" in listed.stdout
    deleted = await asyncio.to_thread(
        subprocess.run,
        [*command, "--delete"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert deleted.returncode == 0, deleted.stderr
    assert f"deleted {name}" in deleted.stdout
    again = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert "no orphaned functions" in again.stdout
