"""Request-rate quotas: Lambda's control plane and GetFunction buckets, answered as Lambda answers."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from sockerless_lambda_simulator.quotas import TokenBucket


@pytest.mark.lambda_simulator(control_plane_rate=2.0)
async def test_control_plane_over_its_rate_is_too_many_requests_with_reason_and_retry_after(
    lambda_simulator: Any, lambda_client: Any
) -> None:
    # The bucket holds one second's worth (2): the third call in a row finds it empty.
    outcomes = []
    for _ in range(3):
        try:
            await lambda_client.list_functions()
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(exc.response)

    assert outcomes[:2] == ["ok", "ok"]
    error = outcomes[2]
    assert error["Error"]["Code"] == "TooManyRequestsException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert error["Reason"] == "CallerRateLimitExceeded"
    assert error["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "1"
    assert lambda_simulator.stats.snapshot()["throttles"] == {"lambda:ListFunctions": 1}


@pytest.mark.lambda_simulator(control_plane_rate=1.0, get_function_rate=100.0)
async def test_get_function_has_its_own_bucket(lambda_simulator: Any, lambda_client: Any) -> None:
    await lambda_client.list_functions()  # the control plane's only token
    for _ in range(5):
        with pytest.raises(ClientError) as caught:
            await lambda_client.get_function(FunctionName="absent")
        assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as throttled:
        await lambda_client.get_function_configuration(FunctionName="absent")
    assert throttled.value.response["Error"]["Code"] == "TooManyRequestsException"


async def test_default_quotas_are_lambdas(lambda_simulator: Any) -> None:
    assert lambda_simulator.config.control_plane_rate == 15.0
    assert lambda_simulator.config.get_function_rate == 100.0


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(10.0, clock=lambda: now[0])

    assert [bucket.take() for _ in range(10)] == [0.0] * 10
    assert bucket.take() == pytest.approx(0.1)
    now[0] = 0.1
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.1)


def test_the_command_takes_the_rates_or_none_for_unlimited() -> None:
    from sockerless_lambda_simulator.cli import _parser

    args = _parser().parse_args(["--control-plane-rate", "none", "--get-function-rate", "5"])

    assert (args.control_plane_rate, args.get_function_rate) == (None, 5.0)
    assert _parser().parse_args([]).control_plane_rate == 15.0


@pytest.mark.lambda_simulator(concurrency_limit=1)
async def test_an_invoke_beyond_the_accounts_concurrency_is_throttled(
    lambda_simulator: Any, lambda_client: Any, create_function: Any
) -> None:
    import asyncio

    from tests.simulator.helpers import wait_until

    name = (await create_function("sleep 30"))["FunctionName"]
    running = asyncio.create_task(lambda_client.invoke(FunctionName=name))
    await wait_until(lambda: lambda_simulator.stats.running == 1, what="the first run")

    with pytest.raises(ClientError) as caught:
        await lambda_client.invoke(FunctionName=name)
    queued = await lambda_client.invoke(FunctionName=name, InvocationType="Event")

    error = caught.value.response
    assert error["Error"]["Code"] == "TooManyRequestsException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert error["Reason"] == "ConcurrentInvocationLimitExceeded"
    assert queued["StatusCode"] == 202  # Lambda queues Event invocations instead
    running.cancel()
