"""Lambda's model (``runtime_model="lambda"``, the default): execution environments whose runtime
speaks the Runtime API, Init and its errors, reuse and freezing, timeouts, and the host bootstrap.

The runtimes here are real processes: a small Python runtime written by the test (a custom runtime, as
an image's ENTRYPOINT would be), the bootstrap built by ``./dev setup``, and plain commands that do not
speak the Runtime API at all."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.simulator.helpers import process_alive, wait_until

BOOTSTRAP = "/opt/sockerless/bootstrap"


def bootstrap_available() -> bool:
    try:
        from sockerless_lambda.bootstrap import binary_path

        return binary_path("x86_64").is_file() and os.uname().machine == "x86_64"
    except (ImportError, FileNotFoundError):
        return False


needs_bootstrap = pytest.mark.skipif(
    not bootstrap_available(), reason="the bootstrap is not built (./dev setup) or this is not x86_64"
)


async def invoke(lambda_client: Any, name: str, event: Any, **options: Any) -> tuple[dict[str, Any], bytes]:
    response = await lambda_client.invoke(FunctionName=name, Payload=json.dumps(event).encode(), **options)
    return response, await response["Payload"].read()


def frames(body: bytes) -> list[tuple[int, bytes]]:
    """Docker's multiplexed frames: (stream, payload)."""
    out: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(body):
        stream, size = body[offset], struct.unpack(">I", body[offset + 4 : offset + 8])[0]
        out.append((stream, body[offset + 8 : offset + 8 + size]))
        offset += 8 + size
    return out


def streams(body: bytes) -> dict[int, bytes]:
    """The frames' payloads joined per stream."""
    joined: dict[int, bytes] = {}
    for stream, data in frames(body):
        joined[stream] = joined.get(stream, b"") + data
    return joined


def payload_v1(run: str, script: str) -> dict[str, Any]:
    return {"v": 1, "container": "c-" + run, "run": run, "argv": ["sh", "-c", script]}


def process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


# -- a command that does not speak the Runtime API --------------------------------------------------


async def test_a_plain_command_runs_twice_and_fails_with_its_exit_status(
    lambda_client: Any, create_function: Any, written_log: Any
) -> None:
    # Lambda runs Init; the command exits before /next (an Init error), so Lambda runs Init again
    # inside the invocation, which fails the same way: the command ran twice.
    created = await create_function("echo plain-command-ran; exit 3")
    name = created["FunctionName"]

    response, body = await invoke(lambda_client, name, {})

    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(body) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status 3",
    }
    messages = [event["message"] for event in await written_log(f"/aws/lambda/{name}")]
    assert [m for m in messages if m == "plain-command-ran\n"] == ["plain-command-ran\n"] * 2
    kinds = [m.split()[0] for m in messages if m != "plain-command-ran\n"]
    assert kinds == ["INIT_START", "INIT_REPORT", "START", "INIT_REPORT", "RequestId:", "END", "REPORT"]
    reports = [m for m in messages if m.startswith("INIT_REPORT")]
    assert "\tPhase: init\tStatus: error\tError Type: Runtime.ExitError" in reports[0]
    assert "\tPhase: invoke\tStatus: error\tError Type: Runtime.ExitError" in reports[1]
    assert messages[-1].startswith(f"REPORT RequestId: {request_id}\t")
    assert "Status: error\tError Type: Runtime.ExitError" in messages[-1]


async def test_a_command_that_exits_zero_is_exited_without_a_reason(
    lambda_client: Any, create_function: Any
) -> None:
    created = await create_function("true")

    response, body = await invoke(lambda_client, created["FunctionName"], {})

    assert response["FunctionError"] == "Unhandled"
    assert json.loads(body)["errorMessage"].endswith("Error: Runtime exited without providing a reason")


# -- a custom runtime ---------------------------------------------------------------------------------


async def test_the_runtime_answers_and_its_environment_is_reused_and_frozen(
    lambda_client: Any, runtime_function: Any, written_log: Any
) -> None:
    name = await runtime_function()

    response, body = await invoke(lambda_client, name, {"n": 1})
    first = json.loads(body)
    assert "FunctionError" not in response
    assert first["event"] == {"n": 1}
    assert first["wrong_id_status"] == 400  # a request ID that is not the invocation's
    assert first["unknown_path_status"] == 404
    assert os.path.isdir(first["tmpdir"]) and first["tmpdir"] != tempfile.gettempdir()
    # Between invocations the environment is frozen: its runtime is stopped.
    await wait_until(lambda: process_state(first["pid"]) == "T", what="the runtime stopped")

    _, body = await invoke(lambda_client, name, {"n": 2})
    second = json.loads(body)
    assert second["pid"] == first["pid"] and second["event"] == {"n": 2}

    messages = [event["message"] for event in await written_log(f"/aws/lambda/{name}")]
    assert messages.count("second answer 403\n") == 2  # one answer per invocation
    assert sum(m.startswith("INIT_START") for m in messages) == 1
    assert messages.count("runtime ready\n") == 1
    reports = [m for m in messages if m.startswith("REPORT")]
    assert "Init Duration: " in reports[0] and "Init Duration: " not in reports[1]


async def test_concurrent_invocations_get_environments_of_their_own(
    lambda_client: Any, runtime_function: Any, tmp_path: Path
) -> None:
    name = await runtime_function()
    first_in, second_in = tmp_path / "first-in", tmp_path / "second-in"

    # The first invocation holds its environment until the second one has run.
    first = asyncio.ensure_future(
        invoke(lambda_client, name, {"action": "barrier", "touch": str(first_in), "wait": str(second_in)})
    )
    await wait_until(first_in.exists, what="the first invocation running")
    _, second_body = await invoke(lambda_client, name, {"action": "barrier", "touch": str(second_in)})
    _, first_body = await first

    assert json.loads(first_body)["pid"] != json.loads(second_body)["pid"]


async def test_event_invocations_run_in_environments_too(
    lambda_client: Any, runtime_function: Any, read_log: Any
) -> None:
    name = await runtime_function()

    response = await lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"n": 1}')

    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    events = await read_log(f"/aws/lambda/{name}", until=f"END RequestId: {request_id}")
    messages = [event["message"] for event in events]
    assert "runtime ready\n" in messages and "handling None\n" in messages


async def test_timeout_kills_the_environment_and_the_next_invocation_gets_a_new_one(
    lambda_client: Any, runtime_function: Any
) -> None:
    name = await runtime_function(Timeout=1)
    _, body = await invoke(lambda_client, name, {})
    pid = json.loads(body)["pid"]

    response, body = await invoke(lambda_client, name, {"action": "hang"})

    assert response["FunctionError"] == "Unhandled"
    error = json.loads(body)
    assert error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"].endswith("Error: Task timed out after 1.00 seconds")
    await wait_until(lambda: not process_alive(pid), what=f"runtime {pid} killed")
    _, body = await invoke(lambda_client, name, {})
    assert json.loads(body)["pid"] != pid


async def test_a_runtime_that_exits_during_an_invocation_is_an_exit_error(
    lambda_client: Any, runtime_function: Any
) -> None:
    name = await runtime_function()

    response, body = await invoke(lambda_client, name, {"action": "exit", "status": 5})

    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert json.loads(body) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status 5",
    }


async def test_an_error_posted_by_the_runtime_is_unhandled_with_its_body(
    lambda_client: Any, runtime_function: Any
) -> None:
    name = await runtime_function()

    response, body = await invoke(lambda_client, name, {"action": "error"})

    assert response["FunctionError"] == "Unhandled"
    assert json.loads(body) == {"errorMessage": "it broke", "errorType": "App.Broken", "stackTrace": []}
    _, body = await invoke(lambda_client, name, {})  # the environment survives a reported error
    assert "pid" in json.loads(body)


async def test_a_streamed_response_is_the_buffered_answer_and_a_trailer_error_fails_it(
    lambda_client: Any, runtime_function: Any
) -> None:
    name = await runtime_function()

    response, body = await invoke(lambda_client, name, {"action": "stream"})
    assert "FunctionError" not in response
    assert body == b"hello world"

    response, body = await invoke(lambda_client, name, {"action": "stream", "fail": True})
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(body) == {"errorMessage": "late", "errorType": "App.Late"}


async def test_invoke_with_response_stream_delivers_the_bytes_as_the_runtime_sends_them(
    lambda_client: Any, runtime_function: Any, tmp_path: Path
) -> None:
    name = await runtime_function()
    gate = tmp_path / "gate"

    response = await lambda_client.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"action": "stream", "wait": str(gate)}).encode()
    )
    events = response["EventStream"].__aiter__()
    first = await events.__anext__()
    # The runtime holds the rest of its answer until the caller has the first chunk.
    assert first == {"PayloadChunk": {"Payload": b"hello "}}
    gate.touch()
    rest = [event async for event in events]

    assert rest[0] == {"PayloadChunk": {"Payload": b"world"}}
    assert rest[-1]["InvokeComplete"].get("ErrorCode") in (None, "")


async def test_invoke_with_response_stream_ends_with_the_trailer_error(
    lambda_client: Any, runtime_function: Any
) -> None:
    name = await runtime_function()

    response = await lambda_client.invoke_with_response_stream(
        FunctionName=name, Payload=json.dumps({"action": "stream", "fail": True}).encode()
    )
    events = [event async for event in response["EventStream"]]

    assert b"".join(e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e) == b"hello world"
    complete = events[-1]["InvokeComplete"]
    assert (complete["ErrorCode"], complete["ErrorDetails"]) == ("App.Late", "late")


async def test_a_buffered_response_over_6_mb_is_refused(
    lambda_client: Any, runtime_function: Any, written_log: Any
) -> None:
    name = await runtime_function()

    response, body = await invoke(lambda_client, name, {"action": "big"})

    assert response["FunctionError"] == "Unhandled"
    assert json.loads(body)["errorType"] == "Function.ResponseSizeTooLarge"
    messages = [event["message"] for event in await written_log(f"/aws/lambda/{name}")]
    assert "big answered 413\n" in messages


async def test_a_wrong_response_mode_is_refused_and_later_calls_are_invalid(
    lambda_client: Any, runtime_function: Any, written_log: Any
) -> None:
    name = await runtime_function()

    response, _ = await invoke(lambda_client, name, {"action": "bad-mode"})

    assert response["FunctionError"] == "Unhandled"
    messages = [event["message"] for event in await written_log(f"/aws/lambda/{name}")]
    assert "bad mode answered 400\n" in messages
    assert "next after bad mode 403\n" in messages


async def test_an_init_error_then_a_successful_init_inside_the_invocation(
    lambda_client: Any, runtime_function: Any, tmp_path: Path, written_log: Any
) -> None:
    name = await runtime_function(str(tmp_path / "init-marker"))

    response, body = await invoke(lambda_client, name, {"n": 1})

    assert "FunctionError" not in response
    assert json.loads(body)["event"] == {"n": 1}
    messages = [event["message"] for event in await written_log(f"/aws/lambda/{name}")]
    kinds = [m.split()[0] for m in messages]
    assert kinds[:4] == ["INIT_START", "init", "INIT_REPORT", "START"]
    assert "\tPhase: init\tStatus: error\tError Type: Runtime.ExitError" in messages[2]
    assert "runtime ready\n" in messages[4:]


@pytest.mark.lambda_simulator(init_timeout_seconds=0.5)
async def test_init_longer_than_the_init_timeout_fails(
    lambda_client: Any, create_function: Any, written_log: Any
) -> None:
    created = await create_function("sleep 30", Timeout=1)
    name = created["FunctionName"]

    _, body = await invoke(lambda_client, name, {})

    assert json.loads(body)["errorType"] == "Sandbox.Timedout"
    messages = [event["message"] for event in await written_log(f"/aws/lambda/{name}")]
    assert any(m.startswith("INIT_REPORT") and "Phase: init\tStatus: timeout" in m for m in messages)
    # Init again inside the invocation, bounded by the function's timeout: the invocation timed out.
    assert any(m.startswith("INIT_REPORT") and "Phase: invoke\tStatus: timeout" in m for m in messages)
    assert any(m.endswith("Task timed out after 1.00 seconds\n") for m in messages)
    assert messages[-1].startswith("REPORT") and messages[-1].endswith("Status: timeout\t\n")


@pytest.mark.lambda_simulator(environment_idle_seconds=0.3)
async def test_an_idle_environment_is_killed(lambda_client: Any, runtime_function: Any) -> None:
    name = await runtime_function()
    _, body = await invoke(lambda_client, name, {})
    pid = json.loads(body)["pid"]

    await wait_until(lambda: not process_alive(pid), what=f"idle runtime {pid} killed")


async def test_closing_the_simulator_kills_the_environments(
    lambda_simulator: Any, lambda_client: Any, runtime_function: Any
) -> None:
    name = await runtime_function()
    _, body = await invoke(lambda_client, name, {})
    result = json.loads(body)

    await lambda_simulator.stop()

    assert not process_alive(result["pid"])
    assert not os.path.exists(result["tmpdir"])


async def test_an_updated_function_gets_a_new_environment(lambda_client: Any, runtime_function: Any) -> None:
    name = await runtime_function()
    _, body = await invoke(lambda_client, name, {})
    pid = json.loads(body)["pid"]

    await lambda_client.update_function_configuration(
        FunctionName=name, Environment={"Variables": {"AB": "1"}}
    )
    await wait_until(lambda: not process_alive(pid), what=f"runtime {pid} of the old configuration killed")


# -- the host bootstrap -------------------------------------------------------------------------------


@needs_bootstrap
async def test_the_bootstrap_runs_a_payload_once_and_answers_frames(
    lambda_client: Any, create_function: Any, written_log: Any
) -> None:
    created = await create_function(None, ImageConfig={"EntryPoint": [BOOTSTRAP]})
    name = created["FunctionName"]

    response, body = await invoke(
        lambda_client, name, payload_v1("run-1", "echo out; echo err >&2; echo ran-once >&2; exit 3")
    )

    assert "FunctionError" not in response
    got = frames(body)
    assert [stream for stream, _ in got] == [1, 2, 255] or sorted(s for s, _ in got) == [1, 2, 255]
    assert dict((s, d) for s, d in got if s != 255) == {1: b"out\n", 2: b"err\nran-once\n"}
    record = json.loads(got[-1][1])
    assert got[-1][0] == 255
    assert (record["status"], record["reason"], record["run"]) == (3, "exited", "run-1")
    messages = [event["message"] for event in await written_log(f"/aws/lambda/{name}")]
    assert sum("ran-once" in m for m in messages) == 0  # the command's output is in the durable copy
    assert sum('"run":"run-1"' in m and '"exit"' in m for m in messages) == 1


@needs_bootstrap
async def test_the_next_container_sees_nothing_of_the_last_one(
    lambda_client: Any, create_function: Any
) -> None:
    created = await create_function(None, ImageConfig={"EntryPoint": [BOOTSTRAP]})
    name = created["FunctionName"]
    # The host's /tmp is never emptied: the bootstrap works on the environment's own.
    with tempfile.NamedTemporaryFile(prefix="sockerless-host-tmp-") as host_file:
        _, body = await invoke(
            lambda_client,
            name,
            payload_v1("run-a", 'sleep 1000 & echo $!; echo $PPID; echo data > "$TMPDIR/x"; echo "$TMPDIR"'),
        )
        out = streams(body)[1].decode().split()
        sleeper, bootstrap_pid, tmp_dir = int(out[0]), int(out[1]), out[2]
        assert tmp_dir != tempfile.gettempdir()
        # Frozen between invocations (SIGSTOP reaches each of the Go runtime's threads in turn).
        await wait_until(lambda: process_state(bootstrap_pid) == "T", what="the bootstrap stopped")
        assert not process_alive(sleeper)

        _, body = await invoke(
            lambda_client,
            name,
            payload_v1(
                "run-b",
                f'ls -A "$TMPDIR"; kill -0 {sleeper} 2>/dev/null && echo alive || echo gone; echo $PPID',
            ),
        )
        assert os.path.exists(host_file.name)

    out = streams(body)[1].decode().split()
    assert out == ["gone", str(bootstrap_pid)]


@pytest.mark.lambda_simulator(bootstrap_binaries={})
async def test_without_a_bootstrap_binary_the_invocation_fails_invalid_entrypoint(
    lambda_client: Any, create_function: Any
) -> None:
    created = await create_function(None, ImageConfig={"EntryPoint": [BOOTSTRAP]})

    response, body = await invoke(lambda_client, created["FunctionName"], payload_v1("r", "true"))

    assert response["FunctionError"] == "Unhandled"
    error = json.loads(body)
    assert error["errorType"] == "Runtime.InvalidEntrypoint"
    assert "./dev setup" in error["errorMessage"]


@needs_bootstrap
async def test_the_bootstrap_streams_its_frames_through_invoke_with_response_stream(
    lambda_client: Any, create_function: Any
) -> None:
    created = await create_function(None, ImageConfig={"EntryPoint": [BOOTSTRAP]})
    payload = payload_v1("run-s", "echo one; echo two >&2; exit 4")

    response = await lambda_client.invoke_with_response_stream(
        FunctionName=created["FunctionName"], Payload=json.dumps(payload).encode()
    )
    events = [event async for event in response["EventStream"]]

    body = b"".join(e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e)
    assert streams(body)[1] == b"one\n" and streams(body)[2] == b"two\n"
    record = json.loads(streams(body)[255])
    assert (record["status"], record["mode"]) == (4, "streaming")
    assert events[-1]["InvokeComplete"].get("ErrorCode") in (None, "")


def test_the_command_line_sets_the_runtime_model_and_its_settings() -> None:
    from sockerless_lambda_simulator.cli import _parser, simulator_from

    defaults = simulator_from(_parser().parse_args([])).config
    assert (defaults.runtime_model, defaults.init_timeout_seconds) == ("lambda", 10.0)
    assert (defaults.environment_idle_seconds, defaults.bootstrap_binaries) == (300.0, None)

    config = simulator_from(
        _parser().parse_args(
            [
                "--runtime-model=direct",
                "--init-timeout-seconds=2",
                "--environment-idle-seconds=5",
                "--bootstrap-binary=x86_64=/opt/b-amd64",
                "--bootstrap-binary=arm64=/opt/b-arm64",
            ]
        )
    ).config
    assert (config.runtime_model, config.init_timeout_seconds, config.environment_idle_seconds) == (
        "direct",
        2.0,
        5.0,
    )
    assert config.bootstrap_binaries == {"x86_64": "/opt/b-amd64", "arm64": "/opt/b-arm64"}
    with pytest.raises(SystemExit):
        simulator_from(_parser().parse_args(["--bootstrap-binary=x86_64"]))
