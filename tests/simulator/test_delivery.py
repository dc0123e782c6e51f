"""CloudWatch shows events late, FilterLogEvents answers empty pages with a nextToken, and Event
invocations wait in Lambda's queue, are sometimes delivered twice and are dropped past their age."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sockerless_lambda_simulator.delivery import LogDelivery
from tests.simulator.helpers import wait_for_async, wait_until


@pytest.fixture
def lambda_simulator_options(lambda_simulator_options: dict[str, Any]) -> dict[str, Any]:
    """This file tests CloudWatch's delivery delay and the Event queue, not how a function runs: its
    functions are plain commands of the ``direct`` model (payload on stdin, the last output line as the
    answer; not what Lambda does)."""
    return {**lambda_simulator_options, "runtime_model": "direct"}


def _now_ms() -> int:
    return int(time.time() * 1000)


@pytest.mark.lambda_simulator(log_delivery_delay=0.5)
async def test_an_event_shows_to_readers_only_the_delivery_delay_after_it_was_written(
    lambda_client: Any, logs_client: Any, create_function: Any
) -> None:
    name = (await create_function("echo delivered"))["FunctionName"]
    await lambda_client.invoke(FunctionName=name)  # every record is written when it answers
    group = f"/aws/lambda/{name}"
    first = await logs_client.filter_log_events(logGroupName=group)
    reads: list[tuple[int, list[dict[str, Any]]]] = []

    async def shown() -> bool:
        page = await logs_client.filter_log_events(logGroupName=group)
        reads.append((_now_ms(), page["events"]))
        return any(event["message"] == "delivered\n" for event in page["events"])

    await wait_for_async(shown, what="the output shows")

    assert first["events"] == []
    for answered_ms, events in reads:
        assert all(event["ingestionTime"] + 500 <= answered_ms for event in events)


@pytest.mark.lambda_simulator(log_delivery_delay=0.3)
async def test_get_log_events_from_the_head_stops_before_what_is_not_delivered_yet(
    lambda_client: Any, logs_client: Any, create_function: Any
) -> None:
    name = (await create_function("echo one; echo two"))["FunctionName"]
    await lambda_client.invoke(FunctionName=name)
    group = f"/aws/lambda/{name}"
    stream = (await logs_client.describe_log_streams(logGroupName=group))["logStreams"][0]["logStreamName"]
    first = await logs_client.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)
    token = first["nextForwardToken"]
    messages = [event["message"] for event in first["events"]]

    async def complete() -> bool:
        nonlocal token
        page = await logs_client.get_log_events(logGroupName=group, logStreamName=stream, nextToken=token)
        messages.extend(event["message"] for event in page["events"])
        token = page["nextForwardToken"]
        return any(message.startswith("REPORT") for message in messages)

    await wait_for_async(complete, what="the run's REPORT shows")

    # Reading on from the token of a read that came too early loses nothing and repeats nothing.
    assert messages[1:3] == ["one\n", "two\n"]
    assert messages[0].startswith("START") and messages[3].startswith("END")
    assert len(messages) == 5


@pytest.mark.lambda_simulator(log_delivery_delay=0.1, late_log_probability=1.0, late_log_seconds=0.6)
async def test_a_late_event_shows_only_its_extra_lateness_after_the_delay(
    lambda_client: Any, logs_client: Any, create_function: Any
) -> None:
    name = (await create_function("echo late"))["FunctionName"]
    await lambda_client.invoke(FunctionName=name)
    reads: list[tuple[int, list[dict[str, Any]]]] = []

    async def shown() -> bool:
        page = await logs_client.filter_log_events(logGroupName=f"/aws/lambda/{name}")
        reads.append((_now_ms(), page["events"]))
        return bool(page["events"])

    await wait_for_async(shown, what="the late events show")

    for answered_ms, events in reads:
        assert all(event["ingestionTime"] + 700 <= answered_ms for event in events)


def test_which_events_are_late_is_decided_by_the_seed_and_the_event_not_by_the_read() -> None:
    clock = [1000.0]
    events = [{"eventId": str(n), "ingestionTime": 0, "logStreamName": "s"} for n in range(400)]

    def shown(seed: int, order: list[dict[str, Any]]) -> set[str]:
        delivery = LogDelivery(
            delay=1.0, late_probability=0.25, late_seconds=5000.0, seed=seed, clock=lambda: clock[0]
        )
        return {event["eventId"] for event in order if delivery.visible("/g", "s", event)}

    first = shown(7, events)
    assert first == shown(7, list(reversed(events)))  # the same for any reader, in any order
    assert 250 < len(first) < 350  # about three in four are on time
    assert first != shown(8, events)


@pytest.mark.lambda_simulator(log_delivery_delay=0.1, late_log_match="^END RequestId", late_log_seconds=60)
async def test_the_events_a_rule_matches_are_the_late_ones(
    lambda_client: Any, logs_client: Any, create_function: Any
) -> None:
    name = (await create_function("echo on-time"))["FunctionName"]
    await lambda_client.invoke(FunctionName=name)

    async def report_shown() -> bool:
        page = await logs_client.filter_log_events(logGroupName=f"/aws/lambda/{name}")
        return any(event["message"].startswith("REPORT") for event in page["events"])

    await wait_for_async(report_shown, what="the REPORT shows")
    page = await logs_client.filter_log_events(logGroupName=f"/aws/lambda/{name}")
    messages = [event["message"] for event in page["events"]]
    assert "on-time\n" in messages
    assert not any(message.startswith("END RequestId") for message in messages)  # 60 s late


def test_a_late_rule_that_is_not_a_regular_expression_is_refused() -> None:
    from sockerless_lambda_simulator.config import SimulatorConfig

    with pytest.raises(ValueError, match="late_log_match"):
        SimulatorConfig(late_log_match="(")


@pytest.mark.lambda_simulator(log_delivery_delay=0, empty_page_every=2)
async def test_every_nth_filter_log_events_is_an_empty_page_that_carries_a_next_token(
    lambda_client: Any, logs_client: Any, create_function: Any
) -> None:
    name = (await create_function("echo one; echo two"))["FunctionName"]
    await lambda_client.invoke(FunctionName=name)
    group = f"/aws/lambda/{name}"

    first = await logs_client.filter_log_events(logGroupName=group)
    empty = await logs_client.filter_log_events(logGroupName=group)
    resumed = await logs_client.filter_log_events(logGroupName=group, nextToken=empty["nextToken"])

    assert len(first["events"]) == 5
    assert empty["events"] == [] and empty["nextToken"]
    assert [event["eventId"] for event in resumed["events"]] == [
        event["eventId"] for event in first["events"]
    ]
    assert "nextToken" not in resumed
    paginator = logs_client.get_paginator("filter_log_events")
    messages = [
        event["message"] async for page in paginator.paginate(logGroupName=group) for event in page["events"]
    ]
    assert messages[1:3] == ["one\n", "two\n"]


@pytest.mark.lambda_simulator(event_delay=0.4)
async def test_an_event_invocation_runs_after_the_queue_delay(
    lambda_simulator: Any, lambda_client: Any, create_function: Any, written_log: Any
) -> None:
    name = (await create_function("true"))["FunctionName"]
    accepted_ms = _now_ms()
    response = await lambda_client.invoke(FunctionName=name, InvocationType="Event")
    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    await wait_until(lambda: lambda_simulator.stats.snapshot()["invocations"]["events_pending"] == 0)

    starts = [
        event
        for event in await written_log(f"/aws/lambda/{name}")
        if event["message"].startswith(f"START RequestId: {request_id}")
    ]
    assert len(starts) == 1
    assert starts[0]["timestamp"] >= accepted_ms + 400


@pytest.mark.lambda_simulator(event_duplicate_probability=1.0, seed=3)
async def test_an_event_invocation_may_be_delivered_twice_with_the_same_request_id(
    lambda_simulator: Any, lambda_client: Any, create_function: Any, written_log: Any
) -> None:
    name = (await create_function("echo ran"))["FunctionName"]
    response = await lambda_client.invoke(FunctionName=name, InvocationType="Event")
    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    await wait_until(lambda: lambda_simulator.stats.snapshot()["invocations"]["events_pending"] == 0)

    messages = [event["message"] for event in await written_log(f"/aws/lambda/{name}")]
    assert messages.count(f"START RequestId: {request_id} Version: $LATEST\n") == 2
    assert messages.count("ran\n") == 2
    invocations = lambda_simulator.stats.snapshot()["invocations"]
    assert (invocations["started"], invocations["duplicated"]) == (2, 1)


@pytest.mark.lambda_simulator(event_delay=61)
async def test_an_event_older_than_its_maximum_age_is_dropped_unrun(
    lambda_simulator: Any, lambda_client: Any, create_function: Any
) -> None:
    name = (await create_function("echo never"))["FunctionName"]
    await lambda_client.put_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=60)
    kept = (await create_function("echo later"))["FunctionName"]  # Lambda's default age: 6 hours

    await lambda_client.invoke(FunctionName=name, InvocationType="Event")
    await lambda_client.invoke(FunctionName=kept, InvocationType="Event")
    await wait_until(lambda: lambda_simulator.stats.snapshot()["invocations"].get("events_dropped") == 1)

    invocations = lambda_simulator.stats.snapshot()["invocations"]
    assert invocations["events_pending"] == 1  # the other one still waits in the queue
    assert invocations.get("started", 0) == 0


@pytest.mark.lambda_simulator(event_delay=0, event_retry_delays=(61, 61))
async def test_a_retry_that_would_come_past_the_maximum_age_is_dropped(
    lambda_simulator: Any, lambda_client: Any, create_function: Any
) -> None:
    name = (await create_function("exit 1"))["FunctionName"]
    await lambda_client.put_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=60)

    await lambda_client.invoke(FunctionName=name, InvocationType="Event")
    await wait_until(lambda: lambda_simulator.stats.snapshot()["invocations"]["events_pending"] == 0)

    invocations = lambda_simulator.stats.snapshot()["invocations"]
    assert (invocations["failed"], invocations["events_dropped"]) == (1, 1)
    assert "retried" not in invocations


def test_the_command_takes_the_delivery_settings() -> None:
    from sockerless_lambda_simulator.cli import _parser

    args = _parser().parse_args(
        [
            "--log-delivery-delay",
            "0.5",
            "--empty-page-every",
            "3",
            "--event-delay",
            "1",
            "--late-log-probability",
            "0.1",
        ]
    )
    assert (args.log_delivery_delay, args.empty_page_every, args.event_delay, args.late_log_probability) == (
        0.5,
        3,
        1.0,
        0.1,
    )
    defaults = _parser().parse_args([])
    assert (defaults.log_delivery_delay, defaults.empty_page_every, defaults.event_delay) == (2.0, 10, 0.5)
