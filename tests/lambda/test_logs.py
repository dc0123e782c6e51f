"""docker logs on Lambda: options, platform lines, the tail shortcut, CloudWatch through one shared
reader, and following a container's output as the backend learns it."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from sockerless.streams import decode_frames
from sockerless_lambda import output
from sockerless_lambda.cloudwatch import CloudWatchEvent, function_of_stream, is_platform_line, summarize_run

API = "/internal/v1"
RID = "8f5e2a8c-1111-2222-3333-444455556666"


def filter_calls(simulator) -> int:
    return int(simulator.stats.snapshot()["calls"].get("logs:FilterLogEvents", 0))


async def complete_output(api, poll, container_id: str, **query: str) -> str:
    """The output once the backend has all of it (the run's output is complete)."""

    async def complete() -> bool:
        return bool(api.backend.store.resolve_container(container_id).backend_state.output_complete)

    await poll(complete, timeout=30)
    return await api.output(container_id, **query)


@pytest.fixture(autouse=True)
def settle_at_once(monkeypatch) -> None:
    # Not 0: lines CloudWatch shows a read or two after the END (the simulator's delivery delay
    # while a read pages) are still the run's.
    monkeypatch.setattr(output, "LOG_SETTLE_SECONDS", 1.0)


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


def test_a_tail_whose_last_output_line_has_no_newline_shows_no_platform_text() -> None:
    # A tail where the END line follows output without a newline (as the simulator once produced):
    # the run's platform lines are cut out wherever they stand.
    tail = (
        f"START RequestId: {RID} Version: $LATEST\none\nabcEND RequestId: {RID}\nREPORT RequestId: {RID}\t\n"
    )
    lines = output.tail_output(tail, RID, dt.datetime(2024, 5, 1, tzinfo=dt.UTC))
    assert lines is not None
    assert [line.data for line in lines] == [b"one\n", b"abc\n"]


def test_the_stream_name_tells_the_function() -> None:
    assert (
        function_of_stream("2024/05/01/skls-0123abcd[$LATEST]9f8e7d6c5b4a39281706f5e4d3c2b1a0")
        == "skls-0123abcd"
    )
    assert function_of_stream("2024/05/01/[$LATEST]9f8e") is None


def test_a_runs_end_and_exit_code_come_from_its_platform_lines() -> None:
    events = [
        CloudWatchEvent(1000, f"START RequestId: {RID} Version: $LATEST\n"),
        CloudWatchEvent(1001, "working\n"),
        CloudWatchEvent(1002, f"RequestId: {RID} Error: Runtime exited with error: exit status 4\n"),
        CloudWatchEvent(1002, "Runtime.ExitError\n"),
        CloudWatchEvent(1003, f"END RequestId: {RID}\n"),
    ]
    assert summarize_run(events[:3], after_ms=900) is None  # no END yet
    summary = summarize_run(events, after_ms=900)
    assert summary is not None
    assert (summary.request_id, summary.exit_code, summary.error) == (RID, 4, "")
    assert summarize_run(events, after_ms=900, exclude=[RID]) is None  # an earlier run
    timed_out = [
        CloudWatchEvent(1000, f"START RequestId: {RID} Version: $LATEST\n"),
        CloudWatchEvent(4000, f"2024-05-01T12:00:03.000Z {RID} Task timed out after 3.00 seconds\n"),
        CloudWatchEvent(4001, f"END RequestId: {RID}\n"),
    ]
    summary = summarize_run(timed_out, request_id=RID)
    assert summary is not None and summary.exit_code == 137 and "timed out" in summary.error


@pytest.mark.cloudwatch_path  # the log tail and CloudWatch
async def test_logs_show_the_output_without_platform_lines_all_as_stdout(api, lambda_simulator, poll) -> None:
    container_id, result = await api.run("echo one; echo two >&2; echo three; exit 3")
    assert result == {"StatusCode": 3}
    assert await complete_output(api, poll, container_id) == "one\ntwo\nthree\n"
    frames = await api.logs(container_id)
    assert {stream for stream, _ in frames} == {1}  # Lambda merges stderr into one stream
    assert await api.logs(container_id, stdout="0", stderr="1") == []


async def test_tail_and_timestamps(api, poll) -> None:
    container_id, _ = await api.run("echo a; echo b; echo c")
    assert await complete_output(api, poll, container_id, tail="2") == "b\nc\n"
    assert await api.output(container_id, tail="0") == ""
    stamped = (await api.output(container_id, timestamps="1")).splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["a", "b", "c"]
    assert all(dt.datetime.fromisoformat(line.split(" ")[0][:26]) for line in stamped)


async def test_since_and_until_select_by_cloudwatch_time(api, poll) -> None:
    container_id, _ = await api.run("echo early; sleep 1.5; echo late")
    await complete_output(api, poll, container_id)
    stamped = [line.split(" ", 1) for line in (await api.output(container_id, timestamps="1")).splitlines()]
    late_time = stamped[1][0]
    assert await api.output(container_id, since=late_time) == "late\n"
    assert await api.output(container_id, until=stamped[0][0]) == "early\n"


@pytest.mark.lambda_simulator(log_flush_seconds=60.0)
async def test_short_output_is_complete_at_once_from_the_invoke_tail(api, lambda_simulator) -> None:
    container_id, result = await api.run("echo quick; exit 2")
    assert result == {"StatusCode": 2}
    # The simulator holds CloudWatch events back; the Invoke's LogType=Tail already has the output.
    assert api.backend.store.resolve_container(container_id).backend_state.output_complete
    assert await api.output(container_id) == "quick\n"


@pytest.mark.parametrize("config_overrides", [{"timeout": 1}])
async def test_a_timed_out_run_shows_only_its_output(api, poll, config_overrides) -> None:
    container_id, result = await api.run("echo before; sleep 5")
    assert result["StatusCode"] == 137
    assert await complete_output(api, poll, container_id) == "before\n"


async def test_complete_output_is_never_fetched_again_even_after_a_restart(
    api, lambda_simulator, poll
) -> None:
    container_id, _ = await api.run("seq 1 2000")  # too long for the tail: read from CloudWatch
    expected = "".join(f"{n}\n" for n in range(1, 2001))
    assert await complete_output(api, poll, container_id) == expected
    before = filter_calls(lambda_simulator)
    assert await api.output(container_id) == expected
    assert filter_calls(lambda_simulator) == before
    await api.backend.close()
    await api.backend.start()
    assert await api.output(container_id) == expected
    assert filter_calls(lambda_simulator) == before


async def test_a_restarted_container_shows_both_runs(api, poll) -> None:
    container_id, _ = await api.run("echo run")
    assert await complete_output(api, poll, container_id) == "run\n"
    await api.start(container_id)
    await api.wait(container_id)
    assert await complete_output(api, poll, container_id) == "run\nrun\n"


async def test_concurrent_followers_share_one_cloudwatch_reader(api, lambda_simulator) -> None:
    ids = [await api.create(Cmd=["sh", "-c", f"echo {n}; sleep 1; echo done {n}"]) for n in range(20)]
    before = filter_calls(lambda_simulator)
    started = asyncio.get_running_loop().time()
    for container_id in ids:
        await api.start(container_id)
    followers = [asyncio.create_task(api.output(container_id, follow="1")) for container_id in ids]
    outputs = await asyncio.wait_for(asyncio.gather(*followers), 30)
    assert outputs == [f"{n}\ndone {n}\n" for n in range(20)]
    elapsed = asyncio.get_running_loop().time() - started
    reads = filter_calls(lambda_simulator) - before
    assert reads <= elapsed / api.backend.config.log_read_interval + 2  # one reader for all twenty


@pytest.mark.cloudwatch_path  # the log tail and CloudWatch
async def test_a_whole_tail_answers_logs_without_cloudwatch_until_times_are_asked(
    api, lambda_simulator, poll
) -> None:
    container_id, _ = await api.run("echo one; echo two")
    before = filter_calls(lambda_simulator)
    assert await api.output(container_id) == "one\ntwo\n"
    assert await api.output(container_id, tail="1") == "two\n"
    assert await api.output(container_id, follow="1") == "one\ntwo\n"  # complete: a follower ends at once
    assert filter_calls(lambda_simulator) == before

    # Timestamps are the lines' own times, which only CloudWatch has: read once, then kept for good.
    async def timed() -> bool:
        await api.output(container_id, timestamps="1")
        return bool(api.backend.store.resolve_container(container_id).backend_state.output_timed)

    await poll(timed, timeout=20)
    stamped = await api.output(container_id, timestamps="1")
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
    assert await api.logs(container_id, follow="1") == []  # not running: Docker answers at once
    assert lambda_simulator.stats.snapshot()["total_calls"] == 0


async def test_logs_of_an_unknown_container_are_404(api) -> None:
    response = await api.client.get(f"{API}/containers/nope/logs", params={"stdout": "1"})
    assert response.status == 404


async def test_a_follower_sees_lines_while_the_container_runs_and_ends_at_its_exit(api) -> None:
    container_id = await api.create(Cmd=["sh", "-c", "echo first; sleep 3; echo second"])
    await api.start(container_id)
    response = await api.client.get(
        f"{API}/containers/{container_id}/logs", params={"stdout": "1", "stderr": "1", "follow": "1"}
    )
    assert response.status == 200
    buffered = b""
    while b"first" not in buffered:  # read incrementally: the first line comes before the second exists
        chunk = await asyncio.wait_for(response.content.readany(), 20)
        assert chunk, "the stream ended before the first line"
        buffered += chunk
    assert b"second" not in buffered
    assert api.backend.store.resolve_container(container_id).status == "running"
    buffered += await asyncio.wait_for(response.content.read(), 30)  # ends once the output is complete
    frames, rest = decode_frames(buffered)
    assert rest == b""
    assert b"".join(data for _, data in frames) == b"first\nsecond\n"


async def test_a_next_exit_follower_opened_before_start_gets_the_whole_run(api) -> None:
    container_id = await api.create(Cmd=["sh", "-c", "echo a; echo b"])
    query = {"stdout": "1", "stderr": "1", "follow": "1", "condition": "next-exit", "tail": "0"}
    # The headers come once the backend has registered the follower: the run cannot slip past it.
    response = await api.client.get(f"{API}/containers/{container_id}/logs", params=query)
    assert response.status == 200
    await api.start(container_id)
    frames, rest = decode_frames(await asyncio.wait_for(response.read(), 30))
    assert rest == b""
    assert b"".join(data for _, data in frames) == b"a\nb\n"


async def test_a_follower_waiting_for_the_run_sees_its_lines_live(api) -> None:
    """What an attached ``docker run`` reads: registered before the start, it gets each line as
    CloudWatch delivers it, not only the run's tail at the end."""
    container_id = await api.create(Cmd=["sh", "-c", "echo first; sleep 3; echo second"])
    query = {"stdout": "1", "stderr": "1", "follow": "1", "condition": "next-exit", "tail": "0"}
    response = await api.client.get(f"{API}/containers/{container_id}/logs", params=query)
    assert response.status == 200
    await api.start(container_id)
    buffered = b""
    while b"first" not in buffered:
        chunk = await asyncio.wait_for(response.content.readany(), 20)
        assert chunk, "the stream ended before the first line"
        buffered += chunk
    assert api.backend.store.resolve_container(container_id).status == "running"
    buffered += await asyncio.wait_for(response.content.read(), 30)
    frames, rest = decode_frames(buffered)
    assert rest == b""
    assert b"".join(data for _, data in frames) == b"first\nsecond\n"


async def test_fifty_thousand_lines_arrive_whole(api, poll) -> None:
    container_id, result = await api.run("seq 1 50000")
    assert result == {"StatusCode": 0}
    text = await complete_output(api, poll, container_id)
    assert text == "".join(f"{n}\n" for n in range(1, 50001))


@pytest.mark.parametrize("config_overrides", [{"log_read_interval": 3.0}])
async def test_logs_right_after_exit_wait_for_cloudwatch_to_have_the_whole_run(api, config_overrides) -> None:
    container_id, result = await api.run("seq 1 5000")
    assert result == {"StatusCode": 0}
    assert await api.output(container_id) == LONG_RUN
    stamped = (await api.output(container_id, timestamps="1")).splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == [str(n) for n in range(1, 5001)]


@pytest.mark.parametrize("config_overrides", [{"log_delivery_seconds": 1.0}])
@pytest.mark.cloudwatch_path  # the log tail and CloudWatch
async def test_when_cloudwatch_never_delivers_the_tails_part_is_shown_and_said(
    api, lambda_simulator, config_overrides
) -> None:
    lambda_simulator.add_fault({"kind": "throttle", "operation": "logs:FilterLogEvents"})
    container_id, result = await api.run("seq 1 5000")
    assert result == {"StatusCode": 0}
    frames = await api.logs(container_id)
    lines = b"".join(data for stream, data in frames if stream == 1).decode().splitlines()
    assert 500 < len(lines) < 1000  # whole lines only: the one the 4 KB cut went through is left out
    assert lines == [str(n) for n in range(5001 - len(lines), 5001)]
    note = b"".join(data for stream, data in frames if stream == 2).decode()
    assert "CloudWatch did not deliver this run's whole output" in note


LONG_RUN = "".join(f"{n}\n" for n in range(1, 5001))  # overflows the Invoke's 4 KB Tail
