"""Function states beyond Pending/Active: state rules (Failed, Deactivating, ...), Inactive after idle
time and its reactivation, Deleting, failed updates, and Handled function errors."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError, WaiterError

from sockerless_lambda_simulator import LambdaSimulator
from tests.simulator.helpers import IMAGE


@pytest.fixture
def lambda_simulator_options(lambda_simulator_options: dict[str, Any]) -> dict[str, Any]:
    """This file tests function states, not how a function runs: its functions are plain commands of the
    ``direct`` model (payload on stdin, the last output line as the answer; not what Lambda does)."""
    return {**lambda_simulator_options, "runtime_model": "direct"}


DENIED_IMAGE = IMAGE.replace(":latest", ":denied")


async def state_of(lambda_client: Any, name: str) -> dict[str, Any]:
    configuration: dict[str, Any] = (await lambda_client.get_function(FunctionName=name))["Configuration"]
    return configuration


async def until_state(lambda_client: Any, name: str, state: str, deadline: float = 10.0) -> dict[str, Any]:
    """Poll GetFunction until the function reads ``state``; fail after ``deadline`` seconds."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline
    while True:
        configuration = await state_of(lambda_client, name)
        if configuration["State"] == state:
            return configuration
        if loop.time() > give_up:
            raise AssertionError(f"{name} still {configuration['State']} after {deadline} s, not {state}")
        await asyncio.sleep(0.02)


async def invoke_conflict(lambda_client: Any, name: str) -> str:
    with pytest.raises(ClientError) as caught:
        await lambda_client.invoke(FunctionName=name)
    error = caught.value.response["Error"]
    assert error["Code"] == "ResourceConflictException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    return str(error["Message"])


@pytest.mark.lambda_simulator(
    state_rules=[{"state": "Failed", "image": "*:denied", "reason_code": "ImageAccessDenied"}]
)
async def test_a_state_rule_fails_the_functions_of_a_matching_image(
    lambda_client: Any, create_function: Any
) -> None:
    # CreateFunction answers Pending (as AWS does, with the suites' Pending); the state follows it.
    failed = await create_function("true", Code={"ImageUri": DENIED_IMAGE})
    fine = await state_of(lambda_client, (await create_function("true"))["FunctionName"])

    reason = "Lambda does not have permission to access the ECR image. Check the ECR permissions."
    for configuration in [await state_of(lambda_client, failed["FunctionName"])]:
        assert configuration["State"] == "Failed"
        assert configuration["StateReasonCode"] == "ImageAccessDenied"
        assert configuration["StateReason"] == reason
        assert configuration["LastUpdateStatus"] == "Failed"
        assert configuration["LastUpdateStatusReasonCode"] == "ImageAccessDenied"
    message = await invoke_conflict(lambda_client, failed["FunctionName"])
    assert message.endswith("The function is currently in the following state: Failed")
    assert fine["State"] == "Active"
    assert "StateReasonCode" not in fine


@pytest.mark.lambda_simulator(
    pending_seconds=0.3,
    state_rules=[{"state": "Failed", "reason_code": "SubnetOutOfIPAddresses", "count": 1}],
)
async def test_a_failed_function_is_pending_first_and_the_waiter_sees_it_fail(
    lambda_client: Any, create_function: Any
) -> None:
    created = await create_function("true")
    assert created["State"] == "Pending"
    assert created["StateReasonCode"] == "Creating"

    waiter = lambda_client.get_waiter("function_active_v2")
    with pytest.raises(WaiterError, match="Failed"):
        await waiter.wait(
            FunctionName=created["FunctionName"], WaiterConfig={"Delay": 0.05, "MaxAttempts": 100}
        )
    configuration = await state_of(lambda_client, created["FunctionName"])
    assert configuration["StateReasonCode"] == "SubnetOutOfIPAddresses"
    # count=1: the next function is not failed.
    second = await create_function("true")
    await waiter.wait(FunctionName=second["FunctionName"], WaiterConfig={"Delay": 0.05, "MaxAttempts": 100})


@pytest.mark.lambda_simulator(inactive_after_seconds=0.2, pending_seconds=2.0)
async def test_an_idle_function_goes_inactive_and_an_invoke_wakes_it(
    lambda_client: Any, create_function: Any
) -> None:
    name = (await create_function("echo woke"))["FunctionName"]
    await until_state(lambda_client, name, "Active")
    inactive = await until_state(lambda_client, name, "Inactive")
    assert inactive["StateReasonCode"] == "Idle"

    message = await invoke_conflict(lambda_client, name)
    assert message.endswith("The function is currently in the following state: Inactive")
    restoring = await state_of(lambda_client, name)
    assert (restoring["State"], restoring["StateReasonCode"]) == ("Pending", "Restoring")

    await until_state(lambda_client, name, "Active")
    answer = await lambda_client.invoke(FunctionName=name, LogType="Tail")
    assert "FunctionError" not in answer


async def test_functions_never_go_inactive_by_default(lambda_simulator: LambdaSimulator) -> None:
    assert lambda_simulator.config.inactive_after_seconds is None


@pytest.mark.lambda_simulator(state_rules=[{"state": "Inactive", "reason_code": "ImageDeleted"}])
async def test_a_reactivation_that_fails_leaves_the_function_inactive_with_its_reason(
    lambda_client: Any, create_function: Any
) -> None:
    name = (await create_function("true"))["FunctionName"]
    assert (await state_of(lambda_client, name))["State"] == "Inactive"

    await invoke_conflict(lambda_client, name)

    # The Invoke started a reactivation (Pending, Restoring) that fails: Inactive again, with its reason.
    configuration = await until_state(lambda_client, name, "Inactive")
    assert (configuration["State"], configuration["StateReasonCode"]) == ("Inactive", "ImageDeleted")


@pytest.mark.lambda_simulator(state_rules=[{"state": "Deactivating", "seconds": 0.3}])
async def test_deactivating_refuses_invokes_then_becomes_inactive(
    lambda_client: Any, create_function: Any
) -> None:
    name = (await create_function("true"))["FunctionName"]
    message = await invoke_conflict(lambda_client, name)
    assert message.endswith("state: Deactivating")
    inactive = await until_state(lambda_client, name, "Inactive")
    assert inactive["StateReasonCode"] == "Idle"


@pytest.mark.lambda_simulator(
    state_rules=[{"state": "ActiveNonInvocable", "reason_code": "InsufficientCapacity"}]
)
async def test_active_non_invocable_refuses_invokes_with_its_reason(
    lambda_client: Any, create_function: Any
) -> None:
    created = await state_of(lambda_client, (await create_function("true"))["FunctionName"])
    assert (created["State"], created["StateReasonCode"]) == ("ActiveNonInvocable", "InsufficientCapacity")
    message = await invoke_conflict(lambda_client, created["FunctionName"])
    assert message.endswith("state: ActiveNonInvocable")


@pytest.mark.lambda_simulator(deleting_seconds=1.0)
async def test_a_function_reads_deleting_while_its_delete_goes_on(
    lambda_client: Any, create_function: Any
) -> None:
    name = (await create_function("true"))["FunctionName"]
    deleting = asyncio.create_task(lambda_client.delete_function(FunctionName=name))
    try:
        await until_state(lambda_client, name, "Deleting")
        message = await invoke_conflict(lambda_client, name)
        assert message.endswith("state: Deleting")
    finally:
        await deleting
    with pytest.raises(ClientError) as caught:
        await lambda_client.get_function(FunctionName=name)
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"


@pytest.mark.lambda_simulator(
    state_rules=[{"state": "Failed", "on": "update", "reason_code": "InvalidConfiguration"}]
)
async def test_a_rule_on_updates_fails_them_and_keeps_the_previous_configuration(
    lambda_client: Any, create_function: Any
) -> None:
    name = (await create_function("echo before"))["FunctionName"]
    assert (await state_of(lambda_client, name))["LastUpdateStatus"] == "Successful"

    await lambda_client.update_function_configuration(
        FunctionName=name, ImageConfig={"EntryPoint": ["sh", "-c"], "Command": ["echo after"]}
    )

    configuration = await state_of(lambda_client, name)
    while configuration["LastUpdateStatus"] == "InProgress":  # the update's own Pending-like phase
        await asyncio.sleep(0.02)
        configuration = await state_of(lambda_client, name)
    assert configuration["State"] == "Active"
    assert configuration["LastUpdateStatus"] == "Failed"
    assert configuration["LastUpdateStatusReasonCode"] == "InvalidConfiguration"
    answer = await lambda_client.invoke(FunctionName=name, LogType="Tail")
    assert "before" in base64.b64decode(answer["LogResult"]).decode()


async def test_state_rules_through_the_control_api(lambda_simulator: LambdaSimulator) -> None:
    url = f"{lambda_simulator.endpoint_url}/_sim/states"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"state": "Failed", "reason_code": "InvalidImage"}) as added:
            assert added.status == 201
            rule_id = (await added.json())["ids"][0]
        async with session.get(url) as listed:
            rules = (await listed.json())["states"]
        assert [(rule["id"], rule["state"], rule["reason_code"]) for rule in rules] == [
            (rule_id, "Failed", "InvalidImage")
        ]
        async with session.post(url, json={"state": "Pending"}) as refused:
            assert refused.status == 400
            assert "state" in (await refused.json())["error"]
        async with session.delete(f"{url}/{rule_id}") as removed:
            assert removed.status == 204
        async with session.get(url) as listed:
            assert (await listed.json())["states"] == []


async def test_an_error_the_command_reports_is_a_handled_function_error(
    lambda_client: Any, create_function: Any
) -> None:
    report = {"errorType": "ValueError", "errorMessage": "bad input"}
    name = (await create_function(f"echo '{json.dumps(report)}'; exit 1"))["FunctionName"]

    answer = await lambda_client.invoke(FunctionName=name)

    assert answer["FunctionError"] == "Handled"
    assert json.loads(await answer["Payload"].read()) == report


async def test_a_command_that_fails_without_reporting_is_unhandled(
    lambda_client: Any, create_function: Any
) -> None:
    name = (await create_function("echo '{\"errorType\": 1}'; exit 1"))["FunctionName"]
    answer = await lambda_client.invoke(FunctionName=name)
    assert answer["FunctionError"] == "Unhandled"
    assert json.loads(await answer["Payload"].read())["errorType"] == "Runtime.ExitError"


def test_the_command_takes_state_rules_and_the_idle_and_deleting_times() -> None:
    from sockerless_lambda_simulator.cli import _parser, simulator_from

    rule = {"state": "Failed", "image": "*:denied", "reason_code": "ImageAccessDenied"}
    args = _parser().parse_args(
        ["--state-rule", json.dumps(rule), "--inactive-after-seconds", "30", "--deleting-seconds", "0.5"]
    )
    config = simulator_from(args).config

    assert [state_rule.to_json() for state_rule in config.state_rules] == [
        {**rule, "reason": None, "function": "*", "seconds": None, "count": None, "on": "create"}
    ]
    assert (config.inactive_after_seconds, config.deleting_seconds) == (30.0, 0.5)
    assert (
        simulator_from(
            _parser().parse_args(["--inactive-after-seconds", "none"])
        ).config.inactive_after_seconds
        is None
    )
