"""What the backend does with each function state: Failed ends the container with its reason (and fails
the create or the start the client sees), Inactive is woken, Deactivating waited for, Deleting
created again, ActiveNonInvocable and unknown states are clear errors; Handled function errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiobotocore.session import get_session

from sockerless_lambda_simulator import LambdaSimulator
from tests.lambda_settings import simulator_client_options

API = "/internal/v1"
DENIED = "123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs:denied"
ACCESS_DENIED = "Lambda does not have permission to access the ECR image. Check the ECR permissions."


@pytest.fixture
async def lambda_client(lambda_simulator: LambdaSimulator) -> AsyncIterator[Any]:
    async with get_session().create_client("lambda", **simulator_client_options(lambda_simulator)) as client:
        yield client


async def function_state(lambda_client: Any, name: str) -> str:
    return str((await lambda_client.get_function(FunctionName=name))["Configuration"]["State"])


def function_of(api: Any, container_id: str) -> str:
    return str(api.backend.store.resolve_container(container_id).backend_state.function_name)


# CreateFunction's own answer reads Failed only with no Pending (with one, as on AWS, the failure comes
# while Pending: the next test).
@pytest.mark.lambda_simulator(
    pending_seconds=0,
    state_rules=[{"state": "Failed", "image": "*:denied", "reason_code": "ImageAccessDenied"}],
)
async def test_a_function_failed_at_create_fails_the_create_with_its_reason(api, lambda_simulator) -> None:
    response = await api.client.post(f"{API}/containers", json={"Image": DENIED}, params={"name": "denied"})

    assert response.status == 403  # the image is denied to Lambda: a permission to grant
    message = (await response.json())["message"]
    assert message.startswith("lambda: function skls-")
    assert message.endswith(f"is Failed (it failed to become active): ImageAccessDenied: {ACCESS_DENIED}")
    listed = await (await api.client.get(f"{API}/containers", params={"all": "1"})).json()
    assert listed == []
    calls = lambda_simulator.stats.snapshot()["calls"]
    assert calls["lambda:DeleteFunction"] == 1  # AWS: a Failed function is deleted and created again
    assert "lambda:InvokeWithResponseStream" not in calls


@pytest.mark.lambda_simulator(
    pending_seconds=0.3,
    state_rules=[{"state": "Failed", "reason_code": "SubnetOutOfIPAddresses"}],
)
async def test_a_function_that_fails_while_pending_ends_the_run_and_the_next_start(
    api, lambda_simulator
) -> None:
    container_id, result = await api.run("exit 0")

    reason = "SubnetOutOfIPAddresses: Lambda was unable to create a network interface"
    assert result["StatusCode"] == 1
    assert reason in result["Error"]["Message"]
    state = (await api.inspect(container_id))["State"]
    assert state["ExitCode"] == 1
    assert "is Failed (it failed to become active): " + reason in state["Error"]
    assert "lambda:InvokeWithResponseStream" not in lambda_simulator.stats.snapshot()["calls"]

    # Still Failed: the start itself fails with the reason (no subnet IPs: 503, try later).
    response = await api.client.post(f"{API}/containers/{container_id}/start")
    assert response.status == 503
    assert reason in (await response.json())["message"]


@pytest.mark.lambda_simulator(pending_seconds=1.0, inactive_after_seconds=3.0)
async def test_an_idle_inactive_function_is_woken_and_run(api, lambda_simulator, lambda_client, poll) -> None:
    container_id, first = await api.run("exit 4")
    assert first == {"StatusCode": 4}
    name = function_of(api, container_id)
    await poll(lambda: _is(lambda_client, name, "Inactive"))
    lambda_simulator.stats.reset()

    await api.start(container_id)
    result = await api.wait(container_id, "not-running")

    assert result == {"StatusCode": 4}
    calls = lambda_simulator.stats.snapshot()["calls"]
    assert (
        calls["lambda:InvokeWithResponseStream"] == 2
    )  # refused (Inactive: it woke the function), then the run
    assert calls["lambda:GetFunction"] >= 1  # polled while Pending (Restoring)


async def _is(lambda_client: Any, name: str, state: str) -> bool:
    return await function_state(lambda_client, name) == state


@pytest.mark.lambda_simulator(state_rules=[{"state": "Inactive", "reason_code": "ImageDeleted"}])
async def test_a_function_lambda_could_not_reactivate_ends_the_run_with_the_reason(
    api, lambda_simulator
) -> None:
    container_id, result = await api.run("exit 0")

    assert result["StatusCode"] == 1
    error = (await api.inspect(container_id))["State"]["Error"]
    assert "is Inactive (Lambda could not reactivate it): ImageDeleted" in error


@pytest.mark.lambda_simulator(pending_seconds=0.3, state_rules=[{"state": "Deactivating", "seconds": 0.3}])
async def test_a_deactivating_function_is_waited_for_then_woken(api, lambda_simulator) -> None:
    _, result = await api.run("exit 5")

    assert result == {"StatusCode": 5}
    assert (
        lambda_simulator.stats.snapshot()["calls"]["lambda:InvokeWithResponseStream"] == 2
    )  # woke it, then ran


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            {"state": "ActiveNonInvocable", "reason_code": "InsufficientCapacity"},
            "is ActiveNonInvocable (it cannot be invoked): InsufficientCapacity",
        ),
        ({"state": "Hibernating"}, "is Hibernating (it cannot be invoked): no reason given"),
    ],
)
async def test_a_state_that_refuses_invokes_is_a_clear_error_not_a_hang(
    api, lambda_simulator, rule, expected
) -> None:
    lambda_simulator.add_state_rule(rule)

    container_id, result = await api.run("exit 0")

    assert result["StatusCode"] == 1
    assert expected in result["Error"]["Message"]
    assert expected in (await api.inspect(container_id))["State"]["Error"]


@pytest.mark.lambda_simulator(deleting_seconds=1.0)
async def test_a_function_being_deleted_is_created_again(api, lambda_simulator, lambda_client, poll) -> None:
    container_id = await api.create(Cmd=["sh", "-c", "exit 6"])
    name = function_of(api, container_id)
    deleting = asyncio.create_task(lambda_client.delete_function(FunctionName=name))
    try:
        await poll(lambda: _is(lambda_client, name, "Deleting"))
        await api.start(container_id)
        result = await api.wait(container_id, "not-running")
    finally:
        await deleting

    assert result == {"StatusCode": 6}
    calls = lambda_simulator.stats.snapshot()["calls"]
    assert calls["lambda:CreateFunction"] == 2  # at create, and again once the old one was gone


@pytest.mark.cloudwatch_path  # a runtime reporting its error
async def test_a_handled_function_error_exits_1_with_the_error_named(api) -> None:
    report = json.dumps({"errorType": "ValueError", "errorMessage": "bad input"})
    container_id, result = await api.run(f"echo '{report}'; exit 3")

    assert result == {"StatusCode": 1}
    state = (await api.inspect(container_id))["State"]
    assert state["Error"] == "function error (Handled): ValueError: bad input"


@pytest.mark.lambda_simulator(
    pending_seconds=0.3, state_rules=[{"state": "Failed", "reason_code": "InvalidImage", "count": 1}]
)
async def test_a_shared_function_failed_once_is_made_again_once_and_its_runs_go_on(
    api, lambda_simulator
) -> None:
    results = await asyncio.gather(*(api.run(f"exit {code}") for code in (2, 3, 4)))
    assert [result for _, result in results] == [{"StatusCode": 2}, {"StatusCode": 3}, {"StatusCode": 4}]
    calls = lambda_simulator.stats.snapshot()["calls"]
    assert calls["lambda:CreateFunction"] == 2  # at the first create, and once again for all three
    assert calls["lambda:DeleteFunction"] == 1  # AWS: a Failed function is deleted and created again


@pytest.mark.cloudwatch_path  # a container's own function: its start after the failure makes it again
@pytest.mark.lambda_simulator(
    pending_seconds=0.3, state_rules=[{"state": "Failed", "reason_code": "InvalidImage", "count": 1}]
)
async def test_a_start_after_the_failed_function_was_deleted_creates_it_again(
    api, lambda_simulator, lambda_client
) -> None:
    container_id, failed = await api.run("exit 2")
    assert failed["StatusCode"] == 1
    await lambda_client.delete_function(FunctionName=function_of(api, container_id))  # AWS's advice

    await api.start(container_id)
    result = await api.wait(container_id, "not-running")

    assert result == {"StatusCode": 2}
    assert lambda_simulator.stats.snapshot()["calls"]["lambda:CreateFunction"] == 2
