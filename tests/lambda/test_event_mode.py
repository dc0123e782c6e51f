"""invocation_type Event: Invoke returns at once, the exit comes from CloudWatch, Lambda never retries."""

from __future__ import annotations

import pytest

# Event mode needs the path before the bootstrap (lambda.bootstrap false): the bootstrap answers in
# the response of a RequestResponse call.
pytestmark = [
    pytest.mark.cloudwatch_path,
    pytest.mark.parametrize("config_overrides", [{"invocation_type": "Event"}]),
]


async def test_the_exit_code_is_read_from_cloudwatch(api, lambda_simulator, config_overrides) -> None:
    container_id, result = await api.run("echo working; exit 3")
    assert result == {"StatusCode": 3}
    calls = lambda_simulator.stats.snapshot()["calls"]
    assert calls["lambda:Invoke"] == 1
    assert calls["logs:FilterLogEvents"] >= 1
    assert await api.output(container_id) == "working\n"


async def test_async_retries_are_disabled_on_create(api, lambda_simulator, config_overrides) -> None:
    container_id = await api.create()
    settings = await api.backend.clients.control.get_function_event_invoke_config(
        FunctionName=f"skls-{container_id[:24]}"
    )
    assert settings["MaximumRetryAttempts"] == 0


async def test_a_clean_exit_is_0(api, config_overrides) -> None:
    _, ok = await api.run("true")
    assert ok == {"StatusCode": 0}


async def test_an_error_the_function_reported_is_exit_1_named(api, config_overrides) -> None:
    report = '{"errorType": "ValueError", "errorMessage": "bad input"}'
    container_id, result = await api.run(f"echo '{report}'; exit 3")
    assert result == {"StatusCode": 1}
    assert (await api.inspect(container_id))["State"]["Error"] == "function error: ValueError"
