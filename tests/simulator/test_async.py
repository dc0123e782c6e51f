"""Event invocations answer 202 at once and run in the background."""

from __future__ import annotations

from typing import Any

import pytest

from tests.simulator.helpers import wait_until


@pytest.fixture
def lambda_simulator_options(lambda_simulator_options: dict[str, Any]) -> dict[str, Any]:
    """This file tests Event invocations' delivery (202 at once, background runs, retries), not how a
    function runs: its functions are plain commands of the ``direct`` model (payload on stdin, the last
    output line as the answer; not what Lambda does)."""
    return {**lambda_simulator_options, "runtime_model": "direct"}


@pytest.mark.lambda_simulator(log_flush_seconds=0.1)
async def test_event_invoke_answers_202_and_completes_in_the_background(
    lambda_client: Any, create_function: Any, read_log: Any, tmp_path: Any
) -> None:
    gate = tmp_path / "gate"
    # The command waits for the test to open the gate: proof that 202 came before the end of the run.
    created = await create_function(
        f"echo started; while [ ! -e {gate} ]; do sleep 0.02; done; echo finished"
    )
    name = created["FunctionName"]

    response = await lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")

    assert response["StatusCode"] == 202
    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    await read_log(f"/aws/lambda/{name}", until="started\n")  # flushed while it still runs
    gate.touch()
    events = await read_log(f"/aws/lambda/{name}", until=f"END RequestId: {request_id}")
    messages = [event["message"] for event in events]
    assert messages[0] == f"START RequestId: {request_id} Version: $LATEST\n"
    assert "finished\n" in messages


async def test_event_invoke_of_a_missing_function_is_resource_not_found(lambda_client: Any) -> None:
    try:
        await lambda_client.invoke(FunctionName="missing", InvocationType="Event")
    except lambda_client.exceptions.ResourceNotFoundException:
        return
    raise AssertionError("an Event invoke of a missing function must fail")


async def test_running_invocations_are_counted(
    lambda_client: Any, create_function: Any, lambda_simulator: Any, tmp_path: Any
) -> None:
    gate = tmp_path / "gate"
    created = await create_function(f"while [ ! -e {gate} ]; do sleep 0.02; done")

    for _ in range(3):
        await lambda_client.invoke(FunctionName=created["FunctionName"], InvocationType="Event")

    await wait_until(
        lambda: lambda_simulator.stats.snapshot()["invocations"]["running"] == 3, what="3 running"
    )
    gate.touch()
    await wait_until(
        lambda: lambda_simulator.stats.snapshot()["invocations"]["running"] == 0, what="0 running"
    )
    assert lambda_simulator.stats.snapshot()["invocations"]["succeeded"] == 3


async def starts_of_an_event(simulator: Any, client: Any, written_log: Any, name: str) -> tuple[int, Any]:
    """Invoke ``name`` as an Event; once it is done, how many times it started, and the statistics."""
    response = await client.invoke(FunctionName=name, InvocationType="Event")
    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    stats = simulator.stats
    await wait_until(lambda: stats.snapshot()["invocations"]["events_pending"] == 0, what="event done")
    start = f"START RequestId: {request_id} Version: $LATEST\n"
    return sum(
        event["message"] == start for event in await written_log(f"/aws/lambda/{name}")
    ), stats.snapshot()


@pytest.mark.lambda_simulator(event_retry_delays=(0.05, 0.05))
async def test_failed_event_invocations_are_retried_twice_with_the_same_request_id(
    lambda_simulator: Any, lambda_client: Any, create_function: Any, written_log: Any
) -> None:
    created = await create_function("echo attempt; exit 1")
    starts, stats = await starts_of_an_event(
        lambda_simulator, lambda_client, written_log, created["FunctionName"]
    )
    assert starts == 3
    assert stats["invocations"]["retried"] == 2


@pytest.mark.lambda_simulator(event_retry_delays=(0.05, 0.05))
async def test_maximum_retry_attempts_zero_runs_a_failed_event_once(
    lambda_simulator: Any, lambda_client: Any, create_function: Any, written_log: Any
) -> None:
    created = await create_function("exit 1")
    name = created["FunctionName"]
    await lambda_client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    starts, stats = await starts_of_an_event(lambda_simulator, lambda_client, written_log, name)
    assert starts == 1
    assert "retried" not in stats["invocations"]
