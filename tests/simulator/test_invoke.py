"""Invoke runs the function's ImageConfig command and answers the way Lambda does.

Lambda's model (the simulator's default): the command is the function's runtime, started at Init; a
test that needs a working runtime uses ``runtime_function`` (tests/simulator/conftest.py). Tests
marked ``runtime_model="direct"`` are about that model's own conventions (payload on stdin, the last
output line as the answer), which the backend's suites still use."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from botocore.exceptions import ClientError


async def invoke_json(lambda_client: Any, name: str, **options: Any) -> tuple[dict[str, Any], Any]:
    response = await lambda_client.invoke(FunctionName=name, **options)
    payload = json.loads(await response["Payload"].read())
    return response, payload


async def test_create_invoke_delete(lambda_client: Any, runtime_function: Any) -> None:
    name = await runtime_function()

    response, payload = await invoke_json(lambda_client, name, Payload=b'{"hello": "world"}')

    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert payload["event"] == {"hello": "world"}  # the runtime's answer to the event it got
    await lambda_client.delete_function(FunctionName=name)
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        await lambda_client.invoke(FunctionName=name)


@pytest.mark.lambda_simulator(runtime_model="direct")
async def test_exit_status_zero_succeeds_and_last_json_line_is_the_payload(
    lambda_client: Any, create_function: Any
) -> None:
    created = await create_function("echo starting; echo '{\"result\": 42}'")

    response, payload = await invoke_json(lambda_client, created["FunctionName"])

    assert "FunctionError" not in response
    assert payload == {"result": 42}


async def test_exit_status_n_is_an_unhandled_runtime_exit_error(
    lambda_client: Any, create_function: Any
) -> None:
    created = await create_function("echo hi; exit 3")

    response, payload = await invoke_json(lambda_client, created["FunctionName"])

    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert payload == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status 3",
    }


async def test_timeout_kills_the_command_and_reports_sandbox_timedout(
    lambda_client: Any, create_function: Any
) -> None:
    created = await create_function("sleep 5", Timeout=1)

    response, payload = await invoke_json(lambda_client, created["FunctionName"])

    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Sandbox.Timedout"
    assert payload["errorMessage"].endswith("Error: Task timed out after 1.00 seconds")


async def test_death_by_signal_is_reported_like_go_does(lambda_client: Any, create_function: Any) -> None:
    created = await create_function("kill -9 $$")

    _, payload = await invoke_json(lambda_client, created["FunctionName"])

    assert payload["errorType"] == "Runtime.ExitError"
    assert payload["errorMessage"].endswith("Error: Runtime exited with error: signal: killed")


async def test_missing_executable_is_an_invalid_entrypoint(
    lambda_client: Any, create_function: Any, lambda_simulator: Any
) -> None:
    created = await create_function(None, ImageConfig={"EntryPoint": ["/nonexistent/entrypoint"]})

    response, payload = await invoke_json(lambda_client, created["FunctionName"])

    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.InvalidEntrypoint"
    assert payload["errorMessage"].endswith("fork/exec /nonexistent/entrypoint: no such file or directory")


async def test_function_without_a_command_is_an_entrypoint_the_simulator_cannot_run(
    lambda_client: Any, create_function: Any
) -> None:
    # Lambda would run the image's own ENTRYPOINT/CMD; the simulator does not pull images, so it says
    # it cannot (never "exited without a reason", which a caller reads as a run that ended with 0).
    created = await create_function(None)

    response, payload = await invoke_json(lambda_client, created["FunctionName"])

    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.InvalidEntrypoint"
    assert "cannot run the image's own ENTRYPOINT/CMD" in payload["errorMessage"]


async def test_missing_function_is_resource_not_found(lambda_client: Any, lambda_simulator: Any) -> None:
    with pytest.raises(ClientError) as caught:
        await lambda_client.invoke(FunctionName="no-such-function")

    error = caught.value.response
    assert error["Error"]["Code"] == "ResourceNotFoundException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404
    arn = f"arn:aws:lambda:us-east-1:{lambda_simulator.account_id}:function:no-such-function"
    assert error["Error"]["Message"] == f"Function not found: {arn}"


@pytest.mark.lambda_simulator(runtime_model="direct")
async def test_payload_arrives_on_stdin(lambda_client: Any, create_function: Any) -> None:
    created = await create_function("cat; echo")

    _, payload = await invoke_json(lambda_client, created["FunctionName"], Payload=b'{"hello": "world"}')

    assert payload == {"hello": "world"}


async def test_the_runtime_sees_function_and_lambda_environment(
    lambda_client: Any, runtime_function: Any
) -> None:
    name = await runtime_function(MemorySize=256, Environment={"Variables": {"FOO": "bar"}})

    _, payload = await invoke_json(lambda_client, name)

    env = payload["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}"
    assert "[$LATEST]" in env["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert env["AWS_REGION"] == "us-east-1"
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    assert env["FOO"] == "bar"
    assert payload["tmpdir"] == env.get("TMPDIR", payload["tmpdir"])


async def test_runs_in_a_directory_of_its_environment_when_workdir_is_not_on_this_machine(
    lambda_simulator: Any, lambda_client: Any, runtime_function: Any
) -> None:
    name = await runtime_function(working_directory="/nonexistent/app")
    _, first = await invoke_json(lambda_client, name)
    _, second = await invoke_json(lambda_client, name)

    assert first["cwd"] == second["cwd"] != "/nonexistent/app"  # one warm environment, its directory
    await lambda_simulator.stop()
    assert not os.path.exists(first["cwd"])  # removed with the environment


async def test_runs_in_the_working_directory_when_it_exists(
    lambda_client: Any, create_function: Any, tmp_path: Any
) -> None:
    created = await create_function("pwd > where", working_directory=str(tmp_path))

    await lambda_client.invoke(FunctionName=created["FunctionName"])

    assert (tmp_path / "where").read_text().strip() == str(tmp_path)


@pytest.mark.parametrize("form", ["arn", "partial-arn", "qualified"])
async def test_function_may_be_named_by_arn_partial_arn_or_qualifier(
    lambda_client: Any, runtime_function: Any, form: str
) -> None:
    name = await runtime_function()
    arn = (await lambda_client.get_function_configuration(FunctionName=name))["FunctionArn"]
    identifier = {
        "arn": arn,
        "partial-arn": arn.split(":", 4)[4],  # 123456789012:function:name
        "qualified": f"{name}:$LATEST",
    }[form]

    _, payload = await invoke_json(lambda_client, identifier, Payload=b'{"ok": true}')

    assert payload["event"] == {"ok": True}


async def test_dry_run_answers_204_without_running(
    lambda_client: Any, create_function: Any, tmp_path: Any
) -> None:
    marker = tmp_path / "ran"
    created = await create_function(f"touch {marker}")

    response = await lambda_client.invoke(FunctionName=created["FunctionName"], InvocationType="DryRun")

    assert response["StatusCode"] == 204
    assert not marker.exists()


async def test_update_function_configuration_changes_what_runs(
    lambda_client: Any, runtime_function: Any
) -> None:
    name = await runtime_function(Environment={"Variables": {"FOO": "before"}})
    _, before = await invoke_json(lambda_client, name)

    await lambda_client.update_function_configuration(
        FunctionName=name, Environment={"Variables": {"FOO": "after"}}
    )
    _, after = await invoke_json(lambda_client, name)

    assert (before["env"]["FOO"], after["env"]["FOO"]) == ("before", "after")
    assert after["pid"] != before["pid"]  # a changed function gets new environments


@pytest.mark.parametrize(
    ("invocation_type", "limit"), [("RequestResponse", 6 * 1024 * 1024), ("Event", 1024 * 1024)]
)
async def test_payloads_over_the_quota_are_request_too_large(
    lambda_client: Any, create_function: Any, invocation_type: str, limit: int
) -> None:
    created = await create_function("true")

    with pytest.raises(ClientError) as caught:
        await lambda_client.invoke(
            FunctionName=created["FunctionName"], InvocationType=invocation_type, Payload=b"x" * (limit + 1)
        )

    assert caught.value.response["Error"]["Code"] == "RequestTooLargeException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
