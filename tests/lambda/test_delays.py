"""CloudWatch delivering late, out of order and in empty pages, and Event invocations delayed,
delivered twice or dropped: what the container shows stays its one run's output and exit."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from sockerless.models import ContainerConfig, HostConfig
from sockerless.store import ContainerRecord
from sockerless_lambda.cloudwatch import CloudWatchEvent
from sockerless_lambda.output import RunFeed
from sockerless_lambda.state import LambdaState, Record

# CloudWatch's delays and Event mode, as the path before the bootstrap meets them (the bootstrap's
# runs read CloudWatch only for their durable copy: tests/lambda/test_bootstrap_recovery.py).
pytestmark = pytest.mark.cloudwatch_path
EVENT = {"invocation_type": "Event"}


@pytest.mark.parametrize("config_overrides", [{**EVENT, "event_max_age": 120}])
async def test_event_mode_bounds_the_queue_wait_by_event_max_age(api, config_overrides) -> None:
    container_id = await api.create()
    settings = await api.backend.clients.control.get_function_event_invoke_config(
        FunctionName=f"skls-{container_id[:24]}"
    )
    assert (settings["MaximumEventAgeInSeconds"], settings["MaximumRetryAttempts"]) == (120, 0)


@pytest.mark.lambda_simulator(
    event_duplicate_probability=1.0, event_duplicate_after=1.5, log_flush_seconds=1.0, log_delivery_delay=0.3
)
@pytest.mark.parametrize("config_overrides", [EVENT])
async def test_a_second_delivery_of_the_event_is_neither_the_output_nor_the_exit(
    api, lambda_simulator, config_overrides, poll, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    # The first delivery's START and "one" show (flushed after 1 s) before the second delivery
    # starts (after 1.5 s, in another execution environment: another stream) and ends at once;
    # the first one ends after 2.5 s.
    first = f"touch {marker}; echo one; sleep 2.5; echo two; exit 3"
    container_id, result = await api.run(f"if [ -e {marker} ]; then echo second; exit 5; fi; {first}")

    assert result == {"StatusCode": 3}

    async def complete() -> bool:
        return bool(api.backend.store.resolve_container(container_id).backend_state.output_complete)

    await poll(complete, timeout=30)
    assert await api.output(container_id) == "one\ntwo\n"
    assert (await api.inspect(container_id))["State"]["ExitCode"] == 3
    assert lambda_simulator.stats.snapshot()["invocations"]["duplicated"] == 1


@pytest.mark.lambda_simulator(log_delivery_delay=0.1, late_log_probability=1.0, late_log_seconds=2.0)
@pytest.mark.parametrize("config_overrides", [{**EVENT, "log_read_overlap": 0.5}])
async def test_an_end_delivered_later_than_the_read_overlap_is_found_not_reported_unknown(
    api, config_overrides
) -> None:
    container_id, result = await api.run("echo late; exit 4")

    assert result == {"StatusCode": 4}
    assert await api.output(container_id) == "late\n"


@pytest.mark.lambda_simulator(log_delivery_delay=0.3, empty_page_every=2)
async def test_the_reader_pages_on_through_empty_pages_that_carry_a_next_token(
    api, lambda_simulator, poll
) -> None:
    container_id, result = await api.run("seq 1 3000")  # more than the 4 KB tail: read from CloudWatch
    assert result == {"StatusCode": 0}

    async def complete() -> bool:
        return bool(api.backend.store.resolve_container(container_id).backend_state.output_complete)

    await poll(complete, timeout=30)
    assert await api.output(container_id) == "".join(f"{n}\n" for n in range(1, 3001))


@pytest.mark.lambda_simulator(event_delay=61)
@pytest.mark.parametrize(
    "config_overrides", [{**EVENT, "event_max_age": 60, "log_delivery_seconds": 1.0, "timeout": 5}]
)
async def test_an_event_lambda_dropped_for_its_age_fails_the_container_with_the_reason(
    api, lambda_simulator, config_overrides
) -> None:
    container_id = await api.create(Cmd=["sh", "-c", "echo never"])
    waiting = asyncio.create_task(api.wait(container_id, "next-exit"))
    await api.start(container_id)

    result = await asyncio.wait_for(waiting, 90)

    assert result["StatusCode"] == 1
    assert "never started" in result["Error"]["Message"]
    state = (await api.inspect(container_id))["State"]
    assert "maximum age (60 s" in state["Error"]
    assert lambda_simulator.stats.snapshot()["invocations"]["events_dropped"] == 1


def _feed_record(start: dt.datetime) -> Record:
    return ContainerRecord(
        id="e" * 64,
        name="feed",
        created=start,
        image="img",
        config=ContainerConfig(image="img"),
        host_config=HostConfig(),
        backend_state=LambdaState(function_name="skls-" + "e" * 24, request_id=RID),
        started_at=start,
    )


RID = "0c1ab2f4-5b7c-4a44-9d6e-3e1f8a2b9c70"


async def test_a_runs_lines_are_its_streams_from_start_to_end_in_time_order_whatever_arrives_first() -> None:
    start = dt.datetime.now(dt.UTC)
    at = int(start.timestamp() * 1000)
    ids = iter(range(10, 100))

    def event(offset: int, message: str, stream: str = "run") -> CloudWatchEvent:
        return CloudWatchEvent(at + offset, message, str(next(ids)), stream)

    begin = event(0, f"START RequestId: {RID} Version: $LATEST\n")
    one, two = event(1, "one\n"), event(1, "two\n")  # one millisecond: their IDs order them
    duplicate = [  # a second delivery of the same event, in another execution environment
        event(2, f"START RequestId: {RID} Version: $LATEST\n", "other"),
        event(2, "second\n", "other"),
        event(3, f"RequestId: {RID} Error: Runtime exited with error: exit status 5\n", "other"),
        event(3, "Runtime.ExitError\n", "other"),
        event(3, f"END RequestId: {RID}\n", "other"),
    ]
    three = event(4, "three\n")
    failed = [
        event(5, f"RequestId: {RID} Error: Runtime exited with error: exit status 3\n"),
        event(5, "Runtime.ExitError\n"),
    ]
    end = [event(6, f"END RequestId: {RID}\n"), event(6, f"REPORT RequestId: {RID}\tDuration: 1 ms\t")]
    straggler = event(5, "four\n")  # before the END, shown after it
    after = event(7, "next invocation\n")  # after the REPORT in the same stream: not this run
    feed = RunFeed(_feed_record(start), append=None, hold=True)

    await feed.deliver([two, three, *failed, *end])  # before the run's START shows
    assert feed.summary() is None
    await feed.deliver([*duplicate, begin, one])  # the earlier START of the two is the run's
    await feed.deliver([straggler, after])
    await feed.release()

    assert [line.data for line in feed.collected] == [b"one\n", b"two\n", b"three\n", b"four\n"]
    summary = feed.summary()
    assert summary is not None and summary.exit_code == 3


@pytest.mark.lambda_simulator(
    log_delivery_delay=0.1, late_log_match="^(END|REPORT) RequestId", late_log_seconds=2.5
)
@pytest.mark.parametrize("config_overrides", [{**EVENT, "log_read_overlap": 0.5}])
async def test_lines_on_time_are_not_shown_again_when_the_run_is_read_again_for_its_late_end(
    api, config_overrides
) -> None:
    container_id = await api.create(Cmd=["sh", "-c", "echo one; echo two; exit 2"])
    query = {"stdout": "1", "stderr": "1", "follow": "1", "condition": "next-exit", "tail": "0"}
    response = await api.client.get(f"/internal/v1/containers/{container_id}/logs", params=query)
    assert response.status == 200
    waiting = asyncio.create_task(api.wait(container_id, "next-exit"))
    await api.start(container_id)

    # The lines show at once (followed: appended as they come), the END 2.5 s later: several
    # rescans of the run from its start come in between.
    assert await asyncio.wait_for(waiting, 30) == {"StatusCode": 2}
    followed = await asyncio.wait_for(response.read(), 30)
    assert followed.count(b"one\n") == 1 and followed.count(b"two\n") == 1
    assert await api.output(container_id) == "one\ntwo\n"
