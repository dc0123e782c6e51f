"""InvokeWithResponseStream: Invoke's refusals, then an AWS event stream that the real botocore decodes."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from botocore.eventstream import EventStream, EventStreamBuffer
from botocore.exceptions import ClientError
from botocore.loaders import Loader
from botocore.model import ServiceModel
from botocore.parsers import EventStreamJSONParser
from hypothesis import given, settings
from hypothesis import strategies as st

from sockerless_lambda_simulator.eventstream import (
    CONTENT_TYPE,
    MAX_MESSAGE_BYTES,
    encode_message,
    invoke_complete,
    payload_chunks,
)
from tests.simulator.helpers import wait_until


@pytest.fixture
def lambda_simulator_options(lambda_simulator_options: dict[str, Any]) -> dict[str, Any]:
    """This file tests InvokeWithResponseStream's encoding, refusals and bookkeeping with plain commands
    of the ``direct`` model (payload on stdin, the last output line as the answer; not what Lambda does),
    whose answer comes whole at the end; bytes passed on live by a runtime: test_runtime_api.py."""
    return {**lambda_simulator_options, "runtime_model": "direct"}


async def stream_events(lambda_client: Any, name: str, **options: Any) -> tuple[dict[str, Any], list[Any]]:
    """The answer of InvokeWithResponseStream and its events, in order, as aiobotocore decodes them."""
    response = await lambda_client.invoke_with_response_stream(FunctionName=name, **options)
    events = [event async for event in response["EventStream"]]
    return response, events


async def read_into(events: list[Any], stream: Any) -> None:
    async for event in stream:
        events.append(event)


def chunks_of(events: list[dict[str, Any]]) -> bytes:
    return b"".join(event["PayloadChunk"]["Payload"] for event in events if "PayloadChunk" in event)


def completion(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The InvokeComplete event, which must be the last one and come once."""
    assert [event for event in events if "InvokeComplete" in event] == events[-1:], events
    complete: dict[str, Any] = events[-1]["InvokeComplete"]
    return complete


# -- the stream ---------------------------------------------------------------------------------


async def test_the_result_arrives_byte_identical_then_invoke_complete(
    lambda_client: Any, create_function: Any
) -> None:
    # The payload model: the last output line when it is JSON; here the request's payload, which the
    # command echoes. Non-ASCII, 180 KB (under CloudWatch's 256 KB line, which would split it).
    payload = json.dumps({"text": "é€😀" * 20_000, "n": list(range(10))}, ensure_ascii=False).encode()
    created = await create_function("cat; echo")

    response, events = await stream_events(lambda_client, created["FunctionName"], Payload=payload)

    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert response["ResponseStreamContentType"] == CONTENT_TYPE
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    received = chunks_of(events)
    assert (len(received), received == payload) == (len(payload), True)
    assert completion(events) == {}  # no error, no LogResult without Tail


async def test_a_failing_command_ends_the_stream_with_its_error(
    lambda_client: Any, create_function: Any
) -> None:
    created = await create_function("echo hi; exit 3")

    response, events = await stream_events(lambda_client, created["FunctionName"])

    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert response["StatusCode"] == 200  # the status is out before the end: errors come in the stream
    assert chunks_of(events) == b""
    assert completion(events) == {
        "ErrorCode": "Runtime.ExitError",
        "ErrorDetails": f"RequestId: {request_id} Error: Runtime exited with error: exit status 3",
    }


async def test_an_error_the_command_reports_is_the_streams_error(
    lambda_client: Any, create_function: Any
) -> None:
    created = await create_function('echo \'{"errorType": "App.Broken", "errorMessage": "no disk"}\'; exit 1')

    _, events = await stream_events(lambda_client, created["FunctionName"])

    assert completion(events) == {"ErrorCode": "App.Broken", "ErrorDetails": "no disk"}


async def test_a_timeout_ends_the_stream_with_sandbox_timedout(
    lambda_client: Any, create_function: Any
) -> None:
    created = await create_function("sleep 5", Timeout=1)

    _, events = await stream_events(lambda_client, created["FunctionName"])

    complete = completion(events)
    assert complete["ErrorCode"] == "Sandbox.Timedout"
    assert complete["ErrorDetails"].endswith("Error: Task timed out after 1.00 seconds")


async def test_tail_gives_the_log_result_of_this_invocation(lambda_client: Any, create_function: Any) -> None:
    created = await create_function("echo hello from the command")

    response, events = await stream_events(lambda_client, created["FunctionName"], LogType="Tail")

    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    log = base64.b64decode(completion(events)["LogResult"]).decode()
    assert log.startswith(f"START RequestId: {request_id} Version: $LATEST\n")
    assert "hello from the command\n" in log
    assert f"END RequestId: {request_id}\n" in log
    assert f"REPORT RequestId: {request_id}\t" in log


async def test_dry_run_answers_204_without_running(
    lambda_simulator: Any, lambda_client: Any, create_function: Any
) -> None:
    created = await create_function("echo ran")

    response = await lambda_client.invoke_with_response_stream(
        FunctionName=created["FunctionName"], InvocationType="DryRun"
    )

    assert response["StatusCode"] == 204
    assert lambda_simulator.stats.snapshot()["invocations"].get("started", 0) == 0


# -- refusals before the stream: Invoke's, as JSON errors ---------------------------------------


async def test_a_missing_function_is_not_found(lambda_client: Any) -> None:
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException) as caught:
        await lambda_client.invoke_with_response_stream(FunctionName="no-such-function")

    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert error["Error"]["Message"].startswith("Function not found: arn:aws:lambda:")


async def test_a_pending_function_is_a_conflict(lambda_client: Any, create_function: Any) -> None:
    created = await create_function("echo hi", active=False)
    assert created["State"] == "Pending"

    with pytest.raises(lambda_client.exceptions.ResourceConflictException) as caught:
        await lambda_client.invoke_with_response_stream(FunctionName=created["FunctionName"])

    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert caught.value.response["Error"]["Message"].endswith("in the following state: Pending")


@pytest.mark.lambda_simulator(concurrency_limit=1)
async def test_beyond_the_accounts_concurrency_it_is_throttled(
    lambda_simulator: Any, lambda_client: Any, create_function: Any
) -> None:
    name = (await create_function("sleep 30"))["FunctionName"]
    running = asyncio.create_task(lambda_client.invoke(FunctionName=name))
    try:
        await wait_until(lambda: lambda_simulator.stats.running == 1, what="the first run")

        with pytest.raises(ClientError) as caught:
            await lambda_client.invoke_with_response_stream(FunctionName=name)
    finally:
        running.cancel()

    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
        "TooManyRequestsException",
        429,
    )
    assert error["Reason"] == "ConcurrentInvocationLimitExceeded"


async def test_event_is_not_an_invocation_type_of_this_api(lambda_client: Any, create_function: Any) -> None:
    created = await create_function("echo hi")

    with pytest.raises(ClientError) as caught:
        await lambda_client.invoke_with_response_stream(
            FunctionName=created["FunctionName"], InvocationType="Event"
        )

    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
        "ValidationException",
        400,
    )
    assert error["Error"]["Message"] == (
        "1 validation error detected: Value 'Event' at 'invocationType' failed to satisfy constraint: "
        "Member must satisfy enum value set: [RequestResponse, DryRun]"
    )


async def test_invoke_refuses_a_type_outside_its_model_the_same_way(
    lambda_client: Any, create_function: Any
) -> None:
    created = await create_function("echo hi")

    with pytest.raises(ClientError) as caught:
        await lambda_client.invoke(FunctionName=created["FunctionName"], InvocationType="Later")

    assert caught.value.response["Error"]["Message"] == (
        "1 validation error detected: Value 'Later' at 'invocationType' failed to satisfy constraint: "
        "Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
    )


async def test_a_payload_over_6_mb_is_too_large(lambda_client: Any, create_function: Any) -> None:
    created = await create_function("cat")

    with pytest.raises(lambda_client.exceptions.RequestTooLargeException) as caught:
        await lambda_client.invoke_with_response_stream(
            FunctionName=created["FunctionName"], Payload=b"x" * (6 * 1024 * 1024 + 1)
        )

    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


async def test_a_client_context_that_is_not_base64_json_is_refused(
    lambda_client: Any, create_function: Any
) -> None:
    created = await create_function("echo hi")
    good = base64.b64encode(json.dumps({"custom": {"a": "b"}}).encode()).decode()

    _, events = await stream_events(lambda_client, created["FunctionName"], ClientContext=good)
    with pytest.raises(lambda_client.exceptions.InvalidRequestContentException) as caught:
        await lambda_client.invoke_with_response_stream(
            FunctionName=created["FunctionName"], ClientContext="not json"
        )

    assert completion(events) == {}
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# -- a client that goes away, a stream that is cut -----------------------------------------------


async def test_a_client_that_goes_away_leaves_the_run_and_its_bookkeeping_whole(
    lambda_simulator: Any, lambda_client: Any, create_function: Any, read_log: Any
) -> None:
    created = await create_function("sleep 0.5; echo done")
    name = created["FunctionName"]
    leaving = asyncio.create_task(lambda_client.invoke_with_response_stream(FunctionName=name))
    await wait_until(lambda: lambda_simulator.stats.running == 1, what="the run started")

    leaving.cancel()  # closes the client's connection while the function runs
    with pytest.raises(asyncio.CancelledError):
        await leaving
    await wait_until(lambda: lambda_simulator.stats.running == 0, what="the run ended")

    invocations = lambda_simulator.stats.snapshot()["invocations"]
    assert (invocations["started"], invocations.get("succeeded")) == (1, 1)
    events = await read_log(created["LoggingConfig"]["LogGroup"])
    assert [event["message"] for event in events if event["message"] == "done\n"] == ["done\n"]
    _, after = await stream_events(lambda_client, name)  # and the function streams again
    assert completion(after) == {}


@pytest.mark.lambda_simulator(
    faults=[{"kind": "drop_answer", "operation": "InvokeWithResponseStream", "count": 1}]
)
async def test_a_drop_answer_fault_cuts_the_stream_before_invoke_complete(
    lambda_simulator: Any, lambda_client: Any, create_function: Any
) -> None:
    created = await create_function("echo '{\"a\": 1}'")

    response = await lambda_client.invoke_with_response_stream(FunctionName=created["FunctionName"])
    seen: list[Any] = []
    with pytest.raises(aiohttp.ClientPayloadError):  # aiobotocore reads the body with aiohttp
        await read_into(seen, response["EventStream"])

    assert seen == [{"PayloadChunk": {"Payload": b'{"a": 1}'}}]  # the chunks, and no InvokeComplete
    assert lambda_simulator.stats.snapshot()["invocations"]["succeeded"] == 1


# -- the encoder, decoded by botocore --------------------------------------------------------------

_header_names = st.text(min_size=1, max_size=40).filter(lambda name: len(name.encode()) <= 255)
_headers = st.dictionaries(_header_names, st.text(max_size=200), max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(st.tuples(_headers, st.binary(max_size=4096)), min_size=1, max_size=5),
    cut=st.integers(min_value=1, max_value=97),
)
def test_encoded_messages_round_trip_through_botocores_buffer(
    messages: list[tuple[dict[str, str], bytes]], cut: int
) -> None:
    wire = b"".join(encode_message(headers, payload) for headers, payload in messages)
    buffer = EventStreamBuffer()
    decoded = []
    for start in range(0, len(wire), cut):  # bytes arrive in arbitrary pieces
        buffer.add_data(wire[start : start + cut])
        decoded.extend(buffer)

    assert [(message.headers, message.payload) for message in decoded] == messages


def test_a_large_payload_that_is_not_utf8_decodes_as_lambdas_payload_chunk() -> None:
    data = random.Random(20).randbytes(3 * 1024 * 1024) + b"\xff\xfe\x80"  # > 1 MB, invalid UTF-8

    wire = b"".join(payload_chunks(data)) + invoke_complete("Some.Error", "détails", "bG9n")

    events = list(_lambda_event_stream(wire))
    assert events == [
        {"PayloadChunk": {"Payload": data}},
        {"InvokeComplete": {"ErrorCode": "Some.Error", "ErrorDetails": "détails", "LogResult": "bG9n"}},
    ]


def test_a_chunk_over_a_messages_limit_is_split() -> None:
    data = bytes(range(256)) * (MAX_MESSAGE_BYTES // 256)  # a message's size: no room for the framing

    messages = list(payload_chunks(data))
    events = list(_lambda_event_stream(b"".join(messages)))

    assert [len(message) for message in messages] == [
        MAX_MESSAGE_BYTES,
        len(b"".join(messages)) - MAX_MESSAGE_BYTES,
    ]
    assert b"".join(event["PayloadChunk"]["Payload"] for event in events) == data


def test_invoke_complete_carries_only_the_members_that_are_set() -> None:
    events = list(_lambda_event_stream(invoke_complete(None, "", None)))

    assert events == [{"InvokeComplete": {}}]


def test_what_is_past_the_formats_limits_is_refused() -> None:
    with pytest.raises(ValueError, match="header name"):
        encode_message({"n" * 256: "v"}, b"")
    with pytest.raises(ValueError, match="at most 32767 bytes"):
        encode_message({"name": "v" * 32768}, b"")
    with pytest.raises(ValueError, match="exceeds 16777216"):
        encode_message({}, b"x" * (MAX_MESSAGE_BYTES - 15))
    assert len(encode_message({}, b"x" * (MAX_MESSAGE_BYTES - 16))) == MAX_MESSAGE_BYTES


class _RawBody:
    """What botocore's EventStream reads: a body whose ``stream()`` yields the bytes in pieces."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self) -> Iterator[bytes]:
        for start in range(0, len(self._data), 65536):
            yield self._data[start : start + 65536]

    def close(self) -> None:
        pass


def _lambda_event_stream(wire: bytes) -> Iterator[dict[str, Any]]:
    """``wire`` parsed the way boto3's ``invoke_with_response_stream`` parses its ``EventStream``."""
    model = ServiceModel(Loader().load_service_model("lambda", "service-2"), "lambda")
    output = model.operation_model("InvokeWithResponseStream").output_shape
    assert output is not None
    shape = output.members["EventStream"]
    return iter(EventStream(_RawBody(wire), shape, EventStreamJSONParser(), "InvokeWithResponseStream"))
