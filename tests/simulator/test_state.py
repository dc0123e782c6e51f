"""What moto forgets and the simulator keeps: LoggingConfig, the Pending phase, ListFunctions pages."""

from __future__ import annotations

import os
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sockerless_lambda_simulator import LambdaSimulator
from sockerless_lambda_simulator.cli import _parser
from sockerless_lambda_simulator.config import SimulatorConfig
from tests.lambda_settings import PENDING_SECONDS


@pytest.fixture
def lambda_simulator_options(lambda_simulator_options: dict[str, Any]) -> dict[str, Any]:
    """This file tests function state, not how a function runs: its functions are plain commands of the
    ``direct`` model (payload on stdin, the last output line as the answer; not what Lambda does)."""
    return {**lambda_simulator_options, "runtime_model": "direct"}


GROUP = "/sockerless/lambda"


async def test_logging_config_round_trips_through_every_read(
    lambda_client: Any, create_function: Any
) -> None:
    created = await create_function("true", LoggingConfig={"LogFormat": "JSON", "LogGroup": GROUP})
    name = created["FunctionName"]
    expected = {"LogFormat": "JSON", "LogGroup": GROUP}

    function = await lambda_client.get_function(FunctionName=name)
    configuration = await lambda_client.get_function_configuration(FunctionName=name)
    listed = await lambda_client.list_functions()

    assert created["LoggingConfig"] == expected
    assert function["Configuration"]["LoggingConfig"] == expected
    assert configuration["LoggingConfig"] == expected
    assert [f["LoggingConfig"] for f in listed["Functions"] if f["FunctionName"] == name] == [expected]


async def test_logging_config_defaults_to_the_function_group(
    lambda_client: Any, create_function: Any
) -> None:
    created = await create_function("true")

    assert created["LoggingConfig"] == {
        "LogFormat": "Text",
        "LogGroup": f"/aws/lambda/{created['FunctionName']}",
    }


async def test_update_function_configuration_changes_logging_config(
    lambda_client: Any, create_function: Any
) -> None:
    created = await create_function("true", LoggingConfig={"LogGroup": GROUP})
    name = created["FunctionName"]

    updated = await lambda_client.update_function_configuration(
        FunctionName=name, LoggingConfig={"LogFormat": "JSON"}
    )

    assert updated["LoggingConfig"] == {"LogFormat": "JSON", "LogGroup": GROUP}
    configuration = await lambda_client.get_function_configuration(FunctionName=name)
    assert configuration["LoggingConfig"] == {"LogFormat": "JSON", "LogGroup": GROUP}


async def test_delete_forgets_logging_config(lambda_client: Any, create_function: Any) -> None:
    created = await create_function("true", LoggingConfig={"LogGroup": GROUP})
    name = created["FunctionName"]

    await lambda_client.delete_function(FunctionName=name)
    recreated = await create_function("true", FunctionName=name)

    assert recreated["LoggingConfig"]["LogGroup"] == f"/aws/lambda/{name}"


async def test_functions_are_pending_for_2_seconds_by_default() -> None:
    assert SimulatorConfig().pending_seconds == 2.0
    assert LambdaSimulator().config.pending_seconds == 2.0
    assert _parser().parse_args([]).pending_seconds == 2.0


async def test_the_suites_simulators_keep_a_shorter_pending(lambda_simulator: LambdaSimulator) -> None:
    assert lambda_simulator.config.pending_seconds == PENDING_SECONDS
    if "SOCKERLESS_TEST_PENDING_SECONDS" not in os.environ:
        assert 0 < PENDING_SECONDS < 2.0


@pytest.mark.lambda_simulator(pending_seconds=0)  # the setting that turns the Pending phase off
async def test_functions_are_active_at_once_with_no_pending(lambda_client: Any, create_function: Any) -> None:
    created = await create_function("true", active=False)

    assert created["State"] == "Active"
    assert created["LastUpdateStatus"] == "Successful"


@pytest.mark.lambda_simulator(pending_seconds=0.5)
async def test_new_function_is_pending_then_active(lambda_client: Any, create_function: Any) -> None:
    created = await create_function("echo '\"ran\"'", active=False)
    name = created["FunctionName"]
    assert created["State"] == "Pending"
    assert created["StateReasonCode"] == "Creating"
    assert created["LastUpdateStatus"] == "InProgress"
    configuration = await lambda_client.get_function_configuration(FunctionName=name)
    assert configuration["State"] == "Pending"

    with pytest.raises(ClientError) as caught:
        await lambda_client.invoke(FunctionName=name)
    assert caught.value.response["Error"]["Code"] == "ResourceConflictException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert caught.value.response["Error"]["Message"] == (
        "The operation cannot be performed at this time. "
        "The function is currently in the following state: Pending"
    )

    waiter = lambda_client.get_waiter("function_active_v2")
    await waiter.wait(FunctionName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 100})
    function = await lambda_client.get_function(FunctionName=name)
    assert function["Configuration"]["State"] == "Active"
    assert function["Configuration"]["LastUpdateStatus"] == "Successful"
    assert "StateReasonCode" not in function["Configuration"]
    response = await lambda_client.invoke(FunctionName=name)
    assert await response["Payload"].read() == b'"ran"'


async def test_list_functions_pages_with_max_items_and_marker(
    lambda_client: Any, create_function: Any
) -> None:
    names = {(await create_function("true", active=False))["FunctionName"] for _ in range(7)}

    first = await lambda_client.list_functions(MaxItems=3)
    second = await lambda_client.list_functions(MaxItems=3, Marker=first["NextMarker"])
    third = await lambda_client.list_functions(MaxItems=3, Marker=second["NextMarker"])

    assert [len(page["Functions"]) for page in (first, second, third)] == [3, 3, 1]
    assert "NextMarker" not in third
    listed = [f["FunctionName"] for page in (first, second, third) for f in page["Functions"]]
    assert sorted(listed) == sorted(names)


@pytest.mark.lambda_simulator(control_plane_rate=None)  # 52 creates in a row: paging, not quotas
async def test_list_functions_returns_at_most_50_per_page(lambda_client: Any, create_function: Any) -> None:
    for _ in range(52):
        await create_function("true", active=False)

    page = await lambda_client.list_functions()
    paginator = lambda_client.get_paginator("list_functions")
    everything = [f async for result in paginator.paginate() for f in result["Functions"]]

    assert len(page["Functions"]) == 50
    assert "NextMarker" in page
    assert len(everything) == 52
