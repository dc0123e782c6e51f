"""Start and stop: loopback only, nothing left running, the CLI, the fixture environment."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session

from sockerless_lambda_simulator import LambdaSimulator
from tests.lambda_settings import SIMULATOR_OPTIONS
from tests.simulator.helpers import (
    ACTIVE_WAIT,
    IMAGE,
    client_options,
    process_alive,
    wait_for_async,
    wait_until,
)


def test_refuses_a_non_loopback_host() -> None:
    with pytest.raises(ValueError, match="loopback"):
        LambdaSimulator(host="0.0.0.0")


async def test_context_manager_exposes_endpoint_role_and_region() -> None:
    async with LambdaSimulator(region="eu-west-1") as simulator:
        assert simulator.endpoint_url.startswith("http://127.0.0.1:")
        assert simulator.role_arn == f"arn:aws:iam::{simulator.account_id}:role/sockerless-lambda-exec"
        assert simulator.region == "eu-west-1"
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{simulator.endpoint_url}/_sim/info") as answer,
        ):
            info = await answer.json()
        assert info["endpoint_url"] == simulator.endpoint_url
    with pytest.raises(RuntimeError, match="not started"):
        _ = simulator.endpoint_url


async def test_fixture_points_sdk_environment_at_the_simulator(lambda_simulator: Any) -> None:
    assert os.environ["AWS_ENDPOINT_URL"] == lambda_simulator.endpoint_url
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"


async def create_shell_function(client: Any, simulator: LambdaSimulator, name: str, command: str) -> None:
    """Create a function running ``sh -c command`` and wait until it is Active."""
    await client.create_function(
        FunctionName=name,
        PackageType="Image",
        Code={"ImageUri": IMAGE},
        Role=simulator.role_arn,
        Timeout=900,
        ImageConfig={"EntryPoint": ["sh", "-c"], "Command": [command]},
    )
    await client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=ACTIVE_WAIT)


async def test_stop_kills_running_invocations_and_their_children(tmp_path: Any) -> None:
    pids = tmp_path / "pids"
    # The command records its own pid and its background child's, then waits far beyond the test.
    command = f"sleep 300 & echo $$ $! > {pids}.tmp; mv {pids}.tmp {pids}; wait"
    async with (
        LambdaSimulator(**SIMULATOR_OPTIONS) as simulator,
        get_session().create_client("lambda", **client_options(simulator)) as client,
    ):
        await create_shell_function(client, simulator, "long-runner", command)
        await client.invoke(FunctionName="long-runner", InvocationType="Event")
        await wait_until(pids.exists, what="the command has started")
        shell, child = (int(pid) for pid in pids.read_text().split())
        assert process_alive(shell)
        assert process_alive(child)

    with pytest.raises(ProcessLookupError):
        os.kill(shell, 0)  # killed and reaped by the simulator
    await wait_until(lambda: not process_alive(child), deadline=5, what="the background child is gone")


async def test_stop_ends_an_in_flight_synchronous_invocation(tmp_path: Any) -> None:
    pid_file = tmp_path / "pid"
    async with (
        LambdaSimulator(**SIMULATOR_OPTIONS) as simulator,
        get_session().create_client("lambda", **client_options(simulator)) as client,
    ):
        await create_shell_function(client, simulator, "sync-runner", f"echo $$ > {pid_file}; exec sleep 300")
        call = asyncio.create_task(client.invoke(FunctionName="sync-runner"))
        await wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() != "", what="started")
        pid = int(pid_file.read_text())
        await simulator.stop()
        with pytest.raises(Exception):  # the connection is gone; which error does not matter
            await call

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# The direct model kills what a run left behind; Lambda's freezes it and it lives on in the
# environment (tests/simulator/test_runtime_api.py shows the freeze and the bootstrap's cleanup).
@pytest.mark.lambda_simulator(runtime_model="direct")
async def test_background_processes_do_not_outlive_their_invocation(
    lambda_client: Any, create_function: Any, tmp_path: Any
) -> None:
    pid_file = tmp_path / "pid"
    created = await create_function(f"sleep 300 & echo $! > {pid_file}")

    response = await lambda_client.invoke(FunctionName=created["FunctionName"])

    assert "FunctionError" not in response
    pid = int(pid_file.read_text())
    await wait_until(lambda: not process_alive(pid), deadline=5, what="the background sleep is gone")


async def simulator_cli(*args: str, **streams: Any) -> asyncio.subprocess.Process:
    """``python -m sockerless_lambda_simulator.cli ARGS`` started (``streams``: its pipes)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sockerless_lambda_simulator.cli", *args, **streams
    )


async def test_command_line_prints_the_endpoint_and_stops_on_sigint() -> None:
    process = await simulator_cli("--port", "0", "--log-level", "warning", stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
        key, _, endpoint = first.partition("=")
        assert key == "endpoint_url"
        assert endpoint.startswith("http://127.0.0.1:")
        second = (await asyncio.wait_for(process.stdout.readline(), 5)).decode().strip()
        assert second.startswith("role_arn=arn:aws:iam::")
        async with aiohttp.ClientSession() as session, session.get(f"{endpoint}/_sim/stats") as answer:
            assert answer.status == 200
            assert json.loads(await answer.text())["total_calls"] == 0
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_command_line_refuses_a_non_loopback_host() -> None:
    process = await simulator_cli("--host", "0.0.0.0", stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert b"loopback" in stderr


async def test_an_external_moto_is_used_over_http(tmp_path: Any) -> None:
    from sockerless_lambda_simulator.moto_server import InProcessMoto

    moto = InProcessMoto()  # stands in for a separate moto_server process
    moto_url = await moto.start()
    try:
        async with (
            LambdaSimulator(moto_url=moto_url, **SIMULATOR_OPTIONS) as simulator,
            get_session().create_client("lambda", **client_options(simulator)) as client,
            get_session().create_client("logs", **client_options(simulator)) as logs,
        ):
            assert simulator.moto_url == moto_url
            await create_shell_function(client, simulator, "external-moto", "echo via-http")
            await client.invoke(FunctionName="external-moto")
            streams = await logs.describe_log_streams(logGroupName="/aws/lambda/external-moto")

            async def shown() -> bool:  # CloudWatch shows events log_delivery_delay after they were written
                events = await logs.get_log_events(
                    logGroupName="/aws/lambda/external-moto",
                    logStreamName=streams["logStreams"][0]["logStreamName"],
                    startFromHead=True,
                )
                return "via-http\n" in [event["message"] for event in events["events"]]

            await wait_for_async(shown)
    finally:
        await moto.stop()
