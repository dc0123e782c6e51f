"""Invocations write to CloudWatch Logs the way Lambda names, frames and tails them."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiobotocore.session import get_session

from tests.simulator.helpers import client_options


@pytest.fixture
def lambda_simulator_options(lambda_simulator_options: dict[str, Any]) -> dict[str, Any]:
    """This file tests the CloudWatch records Lambda writes (START/END/REPORT, error lines, streams,
    formats), not how a function runs: its functions are plain commands of the ``direct`` model (payload
    on stdin, the last output line as the answer; not what Lambda does)."""
    return {**lambda_simulator_options, "runtime_model": "direct"}


SHARED_GROUP = "/sockerless/lambda"
REPORT = re.compile(
    r"REPORT RequestId: (?P<id>[0-9a-f-]{36})\tDuration: \d+\.\d{2} ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: 128 MB\tMax Memory Used: \d+ MB\t"
)


def request_id_of(response: dict[str, Any]) -> str:
    return str(response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"])


InvokeNew = Callable[..., Awaitable[tuple[str, dict[str, Any]]]]


@pytest.fixture
def invoke_new(lambda_client: Any, create_function: Any) -> InvokeNew:
    """``name, response = await invoke_new("echo hi", Timeout=1, ...)``: a new function running the
    command (created with those options), invoked once."""

    async def invoke(command: str, **options: Any) -> tuple[str, dict[str, Any]]:
        name = (await create_function(command, **options))["FunctionName"]
        return name, await lambda_client.invoke(FunctionName=name)

    return invoke


async def test_output_lines_are_framed_by_start_end_report_in_the_configured_group(
    invoke_new: InvokeNew, read_log: Any
) -> None:
    name, response = await invoke_new(
        "echo one; echo two >&2; echo three", LoggingConfig={"LogFormat": "Text", "LogGroup": SHARED_GROUP}
    )

    request_id = request_id_of(response)
    events = await read_log(SHARED_GROUP, stream_prefix=datetime.now(UTC).strftime("%Y/%m/%d/") + name + "[")
    messages = [event["message"] for event in events]
    assert messages[:5] == [
        f"START RequestId: {request_id} Version: $LATEST\n",
        "one\n",
        "two\n",  # stderr, in order with stdout
        "three\n",
        f"END RequestId: {request_id}\n",
    ]
    assert REPORT.fullmatch(messages[5].rstrip("\n"))
    assert len(messages) == 6
    timestamps = [event["timestamp"] for event in events]
    assert timestamps == sorted(timestamps)
    assert abs(timestamps[0] - datetime.now(UTC).timestamp() * 1000) < 60_000


async def test_default_group_and_stream_names_follow_lambda(invoke_new: InvokeNew, read_log: Any) -> None:
    name, _ = await invoke_new("echo hi")

    events = await read_log(f"/aws/lambda/{name}")
    day = datetime.now(UTC).strftime("%Y/%m/%d")
    assert re.fullmatch(rf"{day}/\[\$LATEST\][0-9a-f]{{32}}", events[0]["logStreamName"])


async def test_custom_group_stream_names_carry_the_function_name(
    invoke_new: InvokeNew, read_log: Any
) -> None:
    name, _ = await invoke_new("echo hi", LoggingConfig={"LogGroup": SHARED_GROUP})

    events = await read_log(SHARED_GROUP, stream_prefix=datetime.now(UTC).strftime("%Y/%m/%d/") + name + "[")
    day = datetime.now(UTC).strftime("%Y/%m/%d")
    assert re.fullmatch(rf"{day}/{name}\[\$LATEST\][0-9a-f]{{32}}", events[0]["logStreamName"])


async def test_failures_log_the_error_line_lambda_writes(invoke_new: InvokeNew, read_log: Any) -> None:
    name, response = await invoke_new("echo hi; exit 3")

    request_id = request_id_of(response)
    messages = [event["message"] for event in await read_log(f"/aws/lambda/{name}")]
    assert (
        f"RequestId: {request_id} Error: Runtime exited with error: exit status 3\nRuntime.ExitError\n"
        in messages
    )
    assert messages[-1].endswith("Status: error\tError Type: Runtime.ExitError\t\n")


async def test_timeouts_log_task_timed_out(invoke_new: InvokeNew, read_log: Any) -> None:
    name, response = await invoke_new("echo begun; sleep 5", Timeout=1)

    request_id = request_id_of(response)
    messages = [event["message"] for event in await read_log(f"/aws/lambda/{name}")]
    assert "begun\n" in messages
    timed_out = [message for message in messages if "Task timed out" in message]
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z {request_id} Task timed out after 1\.00 seconds\n",
        timed_out[0],
    )
    assert "Duration: 1000.00 ms" in messages[-1]


async def test_tail_returns_the_last_4_kb_of_the_log(lambda_client: Any, create_function: Any) -> None:
    created = await create_function(
        "echo hello; i=0; while [ $i -lt 200 ]; do echo line-$i-padding-padding; i=$((i+1)); done"
    )

    response = await lambda_client.invoke(FunctionName=created["FunctionName"], LogType="Tail")

    tail = base64.b64decode(response["LogResult"]).decode()
    request_id = request_id_of(response)
    assert len(tail.encode()) == 4096
    assert "hello" not in tail  # scrolled out of the last 4 KB
    assert "line-199-padding-padding\n" in tail
    assert f"END RequestId: {request_id}\n" in tail
    assert tail.rstrip("\n").split("\n")[-1].startswith(f"REPORT RequestId: {request_id}")


async def test_a_last_line_without_newline_is_a_record_of_its_own_in_the_tail_and_cloudwatch(
    lambda_client: Any, create_function: Any, read_log: Any
) -> None:
    created = await create_function("echo one; printf two")

    response = await lambda_client.invoke(FunctionName=created["FunctionName"], LogType="Tail")

    request_id = request_id_of(response)
    tail = base64.b64decode(response["LogResult"]).decode()
    assert f"one\ntwo\nEND RequestId: {request_id}\n" in tail
    messages = [event["message"] for event in await read_log(f"/aws/lambda/{created['FunctionName']}")]
    assert messages[1:4] == ["one\n", "two\n", f"END RequestId: {request_id}\n"]


async def test_no_tail_without_log_type(invoke_new: InvokeNew) -> None:
    _, response = await invoke_new("echo hi")

    assert "LogResult" not in response


async def test_consecutive_invocations_share_a_warm_stream_until_a_failure(
    lambda_client: Any, create_function: Any, written_log: Any
) -> None:
    created = await create_function("cat | grep -q fail && exit 1; echo ok")
    name = created["FunctionName"]

    await lambda_client.invoke(FunctionName=name, Payload=b'"pass"')
    await lambda_client.invoke(FunctionName=name, Payload=b'"pass"')
    await lambda_client.invoke(FunctionName=name, Payload=b'"fail"')  # the environment is discarded
    await lambda_client.invoke(FunctionName=name, Payload=b'"pass"')

    events = await written_log(f"/aws/lambda/{name}")  # as written: readers see them later
    starts = [event["logStreamName"] for event in events if event["message"].startswith("START ")]
    assert len(starts) == 4
    assert starts[0] == starts[1] == starts[2]
    assert starts[3] != starts[2]


async def test_json_log_format_writes_platform_records(invoke_new: InvokeNew, read_log: Any) -> None:
    name, response = await invoke_new("echo plain output", LoggingConfig={"LogFormat": "JSON"})

    messages = [event["message"] for event in await read_log(f"/aws/lambda/{name}")]
    start, output, report = json.loads(messages[0]), messages[1], json.loads(messages[2])
    assert start["type"] == "platform.start"
    assert start["record"] == {"requestId": request_id_of(response), "version": "$LATEST"}
    assert output == "plain output\n"
    assert report["type"] == "platform.report"
    assert report["record"]["status"] == "success"
    assert set(report["record"]["metrics"]) == {
        "durationMs",
        "billedDurationMs",
        "memorySizeMB",
        "maxMemoryUsedMB",
    }


async def test_logs_are_written_by_the_time_a_synchronous_invoke_returns(
    invoke_new: InvokeNew, lambda_simulator: Any
) -> None:
    name, _ = await invoke_new("echo now")

    # Written: moto (behind the simulator, which delays what readers see) has them already.
    options = {**client_options(lambda_simulator), "endpoint_url": lambda_simulator.moto_url}
    async with get_session().create_client("logs", **options) as moto_logs:
        page = await moto_logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")
    assert "now\n" in [event["message"] for event in page["events"]]
