"""docker logs from CloudWatch: options, platform lines, the Tail shortcut, one shared rate-limited reader."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from sockerless_lambda import containers
from sockerless_lambda.logs import LogEvent, function_of_stream, is_platform_line, summarize_run

API = "/internal/v1"
RID = "8f5e2a8c-1111-2222-3333-444455556666"


def filter_calls(simulator) -> int:
    return int(simulator.stats.snapshot()["calls"].get("logs:FilterLogEvents", 0))


async def settled_output(api, poll, container_id: str, **query: str) -> str:
    """The output once CloudWatch has the whole run (its END line) and the logs are kept for good.

    The polling read asks for timestamps: a run whose Tail holds all of it is otherwise answered from
    the Tail, without reading CloudWatch (and so without settling)."""

    async def settled() -> bool:
        await api.output(container_id, timestamps="1")
        record = api.backend.store.resolve_container(container_id)
        fields = record.backend_fields
        return bool(fields.get("request_id")) and fields.get("logs_settled") == fields["request_id"]

    await poll(settled, timeout=20)
    return await api.output(container_id, **query)


@pytest.fixture(autouse=True)
def settle_at_once(monkeypatch) -> None:
    monkeypatch.setattr(containers, "LOG_SETTLE_SECONDS", 0.0)


@pytest.mark.parametrize(
    "line",
    [
        "INIT_START Runtime Version: provided:al2023.v22\tRuntime Version ARN: arn:aws:lambda:...\n",
        f"START RequestId: {RID} Version: $LATEST\n",
        f"END RequestId: {RID}\n",
        f"REPORT RequestId: {RID}\tDuration: 3.16 ms\tBilled Duration: 4 ms\tMemory Size: 128 MB\t"
        "Max Memory Used: 1 MB\t\n",
        f"RequestId: {RID} Error: Runtime exited with error: exit status 3\n",
        "Runtime.ExitError\n",
        f"2024-05-01T12:00:03.000Z {RID} Task timed out after 3.00 seconds\n",
        '{"time":"2024-05-01T12:00:00.000Z","type":"platform.start","record":{"requestId":"x"}}\n',
    ],
)
def test_platform_lines_are_not_container_output(line) -> None:
    assert is_platform_line(line)


@pytest.mark.parametrize(
    "line", ["hello\n", "RequestId is a word\n", '{"type": "app"}\n', "START the engine\n"]
)
def test_container_lines_are_output(line) -> None:
    assert not is_platform_line(line)


def test_the_stream_name_tells_the_function() -> None:
    assert (
        function_of_stream("2024/05/01/skls-0123abcd[$LATEST]9f8e7d6c5b4a39281706f5e4d3c2b1a0")
        == "skls-0123abcd"
    )
    assert function_of_stream("2024/05/01/[$LATEST]9f8e") is None


def test_a_runs_end_and_exit_code_come_from_its_platform_lines() -> None:
    events = [
        LogEvent(1000, f"START RequestId: {RID} Version: $LATEST\n"),
        LogEvent(1001, "working\n"),
        LogEvent(1002, f"RequestId: {RID} Error: Runtime exited with error: exit status 4\n"),
        LogEvent(1002, "Runtime.ExitError\n"),
        LogEvent(1003, f"END RequestId: {RID}\n"),
    ]
    assert summarize_run(events[:3], after_ms=900) is None  # no END yet
    summary = summarize_run(events, after_ms=900)
    assert summary is not None
    assert (summary.request_id, summary.exit_code, summary.error) == (RID, 4, "")
    assert summarize_run(events, after_ms=900, exclude=[RID]) is None  # an earlier run
    timed_out = [
        LogEvent(1000, f"START RequestId: {RID} Version: $LATEST\n"),
        LogEvent(4000, f"2024-05-01T12:00:03.000Z {RID} Task timed out after 3.00 seconds\n"),
        LogEvent(4001, f"END RequestId: {RID}\n"),
    ]
    summary = summarize_run(timed_out, request_id=RID)
    assert summary is not None and summary.exit_code == 137 and "timed out" in summary.error


async def test_logs_show_the_output_without_platform_lines_all_as_stdout(api, lambda_simulator, poll) -> None:
    container_id, result = await api.run("echo one; echo two >&2; echo three; exit 3")
    assert result == {"StatusCode": 3}
    assert await settled_output(api, poll, container_id) == "one\ntwo\nthree\n"
    frames = await api.logs(container_id)
    assert {stream for stream, _ in frames} == {1}  # Lambda merges stderr into one stream
    assert await api.logs(container_id, stdout="0", stderr="1") == []


async def test_tail_and_timestamps(api, poll) -> None:
    container_id, _ = await api.run("echo a; echo b; echo c")
    assert await settled_output(api, poll, container_id, tail="2") == "b\nc\n"
    assert await api.output(container_id, tail="0") == ""
    stamped = (await api.output(container_id, timestamps="1")).splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["a", "b", "c"]
    assert all(dt.datetime.fromisoformat(line.split(" ")[0][:26]) for line in stamped)


async def test_since_and_until_select_by_cloudwatch_time(api, poll) -> None:
    container_id, _ = await api.run("echo early; sleep 1.5; echo late")
    await settled_output(api, poll, container_id)
    stamped = [line.split(" ", 1) for line in (await api.output(container_id, timestamps="1")).splitlines()]
    late_time = stamped[1][0]
    assert await api.output(container_id, since=late_time) == "late\n"
    assert await api.output(container_id, until=stamped[0][0]) == "early\n"


@pytest.mark.lambda_simulator(log_flush_seconds=60.0)
async def test_short_output_is_visible_at_once_from_the_invoke_tail(api, lambda_simulator) -> None:
    container_id, result = await api.run("echo quick; exit 2")
    assert result == {"StatusCode": 2}
    # The simulator holds CloudWatch events back; the Invoke's LogType=Tail already has the output.
    assert await api.output(container_id) == "quick\n"


@pytest.mark.parametrize("config_overrides", [{"timeout": 1}])
async def test_a_timed_out_run_shows_only_its_output(api, poll, config_overrides) -> None:
    container_id, result = await api.run("echo before; sleep 5")
    assert result["StatusCode"] == 137
    assert await settled_output(api, poll, container_id) == "before\n"


async def test_settled_logs_are_never_fetched_again_even_after_a_restart(
    api, lambda_simulator, poll, state_path
) -> None:
    container_id, _ = await api.run("echo kept")
    assert await settled_output(api, poll, container_id) == "kept\n"
    before = filter_calls(lambda_simulator)
    assert await api.output(container_id) == "kept\n"
    assert filter_calls(lambda_simulator) == before
    await api.backend.close()
    await api.backend.start()
    assert await api.output(container_id) == "kept\n"
    assert filter_calls(lambda_simulator) == before


async def test_a_restarted_container_shows_both_runs(api, poll) -> None:
    container_id, _ = await api.run("echo run")
    assert await settled_output(api, poll, container_id) == "run\n"
    await api.start(container_id)
    await api.wait(container_id)
    assert await settled_output(api, poll, container_id) == "run\nrun\n"


async def test_concurrent_logs_requests_share_one_cloudwatch_read(api, lambda_simulator) -> None:
    ids = [
        container_id for container_id, _ in await asyncio.gather(*(api.run(f"echo {n}") for n in range(20)))
    ]
    await asyncio.sleep(api.backend.config.log_read_interval)  # let the pacing window pass
    before = filter_calls(lambda_simulator)
    outputs = await asyncio.gather(*(api.output(container_id) for container_id in ids))
    assert outputs == [f"{n}\n" for n in range(20)]
    assert filter_calls(lambda_simulator) - before <= 2


async def test_a_whole_tail_answers_logs_without_cloudwatch_until_times_are_asked(
    api, lambda_simulator, poll
) -> None:
    container_id, _ = await api.run("echo one; echo two")
    before = filter_calls(lambda_simulator)
    response = await api.client.get(f"{API}/containers/{container_id}/logs", params={"stdout": "1"})
    await response.read()
    assert response.headers.get("X-Sockerless-Logs-Final") == "true"  # a follower ends at once
    assert await api.output(container_id) == "one\ntwo\n"
    assert await api.output(container_id, tail="1") == "two\n"
    assert filter_calls(lambda_simulator) == before
    # Timestamps are the lines' own times, which only CloudWatch has: read, then kept for good.
    stamped = await settled_output(api, poll, container_id, timestamps="1")
    assert [line.split(" ", 1)[1] for line in stamped.splitlines()] == ["one", "two"]
    read = filter_calls(lambda_simulator)
    assert read > before
    assert await api.output(container_id, timestamps="1") == stamped
    assert await api.output(container_id) == "one\ntwo\n"
    assert filter_calls(lambda_simulator) == read


async def test_logs_of_a_created_container_are_empty_without_aws_calls(api, lambda_simulator) -> None:
    container_id = await api.create()
    lambda_simulator.stats.reset()
    assert await api.logs(container_id) == []
    assert lambda_simulator.stats.snapshot()["total_calls"] == 0


async def test_logs_of_an_unknown_container_are_404(api) -> None:
    response = await api.client.get(f"{API}/containers/nope/logs", params={"stdout": "1"})
    assert response.status == 404


async def test_logs_are_marked_final_once_settled_and_not_while_running(api, lambda_simulator, poll) -> None:
    running = await api.create(Cmd=["sh", "-c", "echo started; sleep 2"])
    await api.start(running)
    response = await api.client.get(f"{API}/containers/{running}/logs", params={"stdout": "1"})
    assert response.status == 200
    assert "X-Sockerless-Logs-Final" not in response.headers

    container_id, _ = await api.run("echo one; echo two")

    async def final() -> bool:
        response = await api.client.get(f"{API}/containers/{container_id}/logs", params={"stdout": "1"})
        await response.read()
        return response.headers.get("X-Sockerless-Logs-Final") == "true"

    await poll(final, timeout=20)
    before = filter_calls(lambda_simulator)
    assert await final()
    assert await api.output(container_id) == "one\ntwo\n"
    assert filter_calls(lambda_simulator) == before


def test_the_tail_confirms_cloudwatch_only_when_it_holds_the_whole_run() -> None:
    tail = f"START RequestId: {RID} Version: $LATEST\none\ntwo\nEND RequestId: {RID}\n"
    tail += f"REPORT RequestId: {RID}\tDuration: 1 ms\t\n"
    fields = {"request_id": RID, "log_tail": tail}
    events = [
        LogEvent(1, f"START RequestId: {RID} Version: $LATEST\n"),
        LogEvent(2, "one\n"),
        LogEvent(3, "two\n"),
    ]
    assert containers._tail_confirms(fields, events)
    assert not containers._tail_confirms(fields, events[:2])  # CloudWatch still lacks "two"
    cut = {"request_id": RID, "log_tail": tail.split("\n", 1)[1]}  # the START line fell off the 4 KB tail
    assert not containers._tail_confirms(cut, events)


LONG_RUN = "".join(f"{n}\n" for n in range(1, 5001))  # overflows the Invoke's 4 KB Tail


async def run_after_a_fresh_read(api) -> str:
    """Read CloudWatch (another container's logs with times), then run ``seq 1 5000`` at once: the
    reader's cache is younger than ``log_read_interval`` but older than the long run's lines."""
    earlier, _ = await api.run("echo earlier")
    assert await api.output(earlier, timestamps="1") != ""
    container_id, result = await api.run("seq 1 5000")
    assert result == {"StatusCode": 0}
    return container_id


@pytest.mark.parametrize("config_overrides", [{"log_read_interval": 3.0}])
async def test_logs_right_after_exit_wait_for_cloudwatch_to_have_the_whole_run(api, config_overrides) -> None:
    container_id = await run_after_a_fresh_read(api)
    assert await api.output(container_id) == LONG_RUN
    stamped = (await api.output(container_id, timestamps="1")).splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == [str(n) for n in range(1, 5001)]


@pytest.mark.parametrize("config_overrides", [{"log_read_interval": 30.0}])
async def test_logs_stop_waiting_for_cloudwatch_after_the_delivery_window(
    api, lambda_simulator, config_overrides, monkeypatch
) -> None:
    monkeypatch.setattr(containers, "LOGS_DELIVERY_SECONDS", 1.0)
    container_id = await run_after_a_fresh_read(api)
    lambda_simulator.add_fault({"kind": "throttle", "operation": "logs:FilterLogEvents"})
    # CloudWatch never answers now: once the window has passed, the Tail's part of the run is shown.
    lines = (await api.output(container_id)).splitlines()
    assert 500 < len(lines) < 1000  # whole lines only: the one the 4 KB cut went through is left out
    assert lines == [str(n) for n in range(5001 - len(lines), 5001)]
