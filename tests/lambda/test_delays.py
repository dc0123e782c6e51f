"""CloudWatch delivering late, out of order and in empty pages, and Event invocations delayed,
delivered twice or dropped: what the container shows stays its one run's output and exit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

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
