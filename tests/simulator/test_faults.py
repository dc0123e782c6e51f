"""Fault injection: throttles, 5xx, latency, dropped connections; seeded; driven by the control API."""

from __future__ import annotations

import random
import time
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError

from sockerless_lambda_simulator.faults import FaultInjector, FaultRule
from sockerless_lambda_simulator.operations import AwsCall, WireProtocol


@pytest.fixture
def lambda_simulator_options(lambda_simulator_options: dict[str, Any]) -> dict[str, Any]:
    """This file tests fault injection and statistics, not how a function runs: its functions are plain
    commands of the ``direct`` model (payload on stdin, the last output line as the answer; not what
    Lambda does)."""
    return {**lambda_simulator_options, "runtime_model": "direct"}


async def test_throttle_lambda_with_too_many_requests_and_a_reason(
    lambda_simulator: Any, lambda_client: Any, create_function: Any
) -> None:
    name = (await create_function("true"))["FunctionName"]
    lambda_simulator.add_fault(
        {"kind": "throttle", "operation": "Invoke", "count": 2, "reason": "ConcurrentInvocationLimitExceeded"}
    )

    for _ in range(2):
        with pytest.raises(ClientError) as caught:
            await lambda_client.invoke(FunctionName=name)
        error = caught.value.response
        assert error["Error"]["Code"] == "TooManyRequestsException"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert error["Reason"] == "ConcurrentInvocationLimitExceeded"
    response = await lambda_client.invoke(FunctionName=name)

    assert response["StatusCode"] == 200
    assert lambda_simulator.stats.snapshot()["faults"] == {"lambda:Invoke": 2}
    assert lambda_simulator.faults.describe() == []  # spent rules go away


async def test_throttle_logs_with_throttling_exception(lambda_simulator: Any, logs_client: Any) -> None:
    await logs_client.create_log_group(logGroupName="/throttled")
    lambda_simulator.add_fault({"kind": "throttle", "operation": "logs:FilterLogEvents", "count": 1})

    with pytest.raises(ClientError) as caught:
        await logs_client.filter_log_events(logGroupName="/throttled")
    await logs_client.filter_log_events(logGroupName="/throttled")

    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize("status", [500, 502])
async def test_server_errors_are_service_exceptions(
    lambda_simulator: Any, lambda_client: Any, create_function: Any, status: int
) -> None:
    name = (await create_function("true"))["FunctionName"]
    lambda_simulator.add_fault(
        {"kind": "error", "operation": "lambda:GetFunction", "status": status, "count": 1}
    )

    with pytest.raises(ClientError) as caught:
        await lambda_client.get_function(FunctionName=name)

    assert caught.value.response["Error"]["Code"] == "ServiceException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


async def test_latency_delays_the_answer(lambda_simulator: Any, lambda_client: Any) -> None:
    lambda_simulator.add_fault(
        {"kind": "latency", "operation": "ListFunctions", "latency_ms": 300, "count": 1}
    )

    started = time.monotonic()
    await lambda_client.list_functions()
    delayed = time.monotonic() - started
    started = time.monotonic()
    await lambda_client.list_functions()
    undelayed = time.monotonic() - started

    assert delayed >= 0.3
    assert undelayed < 0.3


async def test_drop_closes_the_connection_without_an_answer(
    lambda_simulator: Any, lambda_client: Any, create_function: Any
) -> None:
    name = (await create_function("true"))["FunctionName"]
    # A POST: aiohttp itself resends an idempotent request (GET) dropped on a reused connection.
    lambda_simulator.add_fault({"kind": "drop", "operation": "Invoke", "count": 1})

    with pytest.raises(Exception) as caught:
        await lambda_client.invoke(FunctionName=name)
    await lambda_client.invoke(FunctionName=name)

    assert "ClientError" not in type(caught.value).__name__  # no HTTP answer at all
    assert lambda_simulator.stats.snapshot()["faults"] == {"lambda:Invoke": 1}


@pytest.mark.lambda_simulator(
    seed=7, faults=[{"kind": "error", "operation": "ListFunctions", "probability": 0.5}]
)
async def test_probability_faults_replay_the_same_sequence_for_a_seed(lambda_client: Any) -> None:
    dice = random.Random(7)
    expected = [dice.random() < 0.5 for _ in range(20)]

    failed = []
    for _ in range(20):
        try:
            await lambda_client.list_functions()
            failed.append(False)
        except ClientError:
            failed.append(True)

    assert failed == expected
    assert any(failed)
    assert not all(failed)


def test_same_seed_same_decisions_different_seed_different_decisions() -> None:
    invoke = AwsCall("lambda", "Invoke", WireProtocol.REST_JSON, {})

    def decisions(seed: int) -> list[bool]:
        injector = FaultInjector(seed, [FaultRule(kind="throttle", probability=0.3)])
        return [injector.decide(invoke).intercepts for _ in range(50)]

    assert decisions(1) == decisions(1)
    assert decisions(1) != decisions(2)


def test_rules_match_by_name_service_or_wildcard() -> None:
    invoke = AwsCall("lambda", "Invoke", WireProtocol.REST_JSON, {})
    put = AwsCall("logs", "PutLogEvents", WireProtocol.JSON, {})

    assert FaultRule(kind="drop", operation="Invoke").matches(invoke)
    assert FaultRule(kind="drop", operation="lambda:Invoke").matches(invoke)
    assert FaultRule(kind="drop", operation="lambda:*").matches(invoke)
    assert FaultRule(kind="drop").matches(put)
    assert not FaultRule(kind="drop", operation="lambda:*").matches(put)
    assert not FaultRule(kind="drop", operation="logs:Invoke").matches(invoke)


def test_invalid_rules_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="kind"):
        FaultRule.from_json({"operation": "Invoke"})
    with pytest.raises(ValueError, match="unknown fault rule fields: colour"):
        FaultRule.from_json({"kind": "drop", "colour": "red"})
    with pytest.raises(ValueError, match="probability"):
        FaultRule.from_json({"kind": "drop", "probability": 2})


async def test_control_api_adds_lists_and_clears_faults(lambda_simulator: Any, lambda_client: Any) -> None:
    control = f"{lambda_simulator.endpoint_url}/_sim"
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{control}/faults", json={"kind": "throttle", "operation": "ListFunctions"}
        ) as answer:
            assert answer.status == 201
            rule_id = (await answer.json())["ids"][0]
        async with session.get(f"{control}/faults") as answer:
            listed = (await answer.json())["faults"]
        with pytest.raises(ClientError):
            await lambda_client.list_functions()
        async with session.delete(f"{control}/faults/{rule_id}") as answer:
            assert answer.status == 204
        await lambda_client.list_functions()
        async with session.post(
            f"{control}/faults", json={"faults": [{"kind": "drop"}, {"kind": "latency"}]}
        ) as answer:
            assert len((await answer.json())["ids"]) == 2
        async with session.delete(f"{control}/faults") as answer:
            assert answer.status == 204
        async with session.post(f"{control}/faults", json={"kind": "nonsense"}) as answer:
            assert answer.status == 400
            assert "nonsense" in (await answer.json())["error"]

    assert [(rule["id"], rule["kind"], rule["fired"]) for rule in listed] == [(rule_id, "throttle", 0)]
    assert lambda_simulator.faults.describe() == []


# No Pending: the counts are exact, and the waiter's GetFunction polls would vary with timing.
@pytest.mark.lambda_simulator(pending_seconds=0)
async def test_stats_count_client_calls_per_operation_and_reset(
    lambda_simulator: Any, lambda_client: Any, logs_client: Any, create_function: Any
) -> None:
    name = (await create_function("echo hi"))["FunctionName"]
    await lambda_client.invoke(FunctionName=name)
    await lambda_client.invoke(FunctionName=name)
    await lambda_client.get_function(FunctionName=name)
    await logs_client.describe_log_groups()

    async with aiohttp.ClientSession() as session:
        async with session.get(f"{lambda_simulator.endpoint_url}/_sim/stats") as answer:
            stats = await answer.json()
        async with session.post(f"{lambda_simulator.endpoint_url}/_sim/reset-stats") as answer:
            assert answer.status == 204

    # The simulator's own calls to moto (GetFunction, PutLogEvents...) are not counted.
    assert stats["calls"] == {
        "lambda:CreateFunction": 1,
        "lambda:GetFunction": 1,
        "lambda:Invoke": 2,
        "logs:DescribeLogGroups": 1,
    }
    assert stats["total_calls"] == 5
    assert stats["invocations"] == {"started": 2, "succeeded": 2, "running": 0, "events_pending": 0}
    assert lambda_simulator.stats.snapshot()["total_calls"] == 0
