"""Hundreds of containers at once: every exit code right, invocations queued beyond the limit,
and CloudWatch read at the shared reader's pace however many containers ask."""

from __future__ import annotations

import asyncio
import time

import pytest

COUNT = int(__import__("os").environ.get("SCALE_COUNT", "200"))


@pytest.mark.parametrize("config_overrides", [{"max_concurrent_invocations": 100, "log_read_interval": 0.5}])
async def test_200_containers_at_once_all_exit_with_their_codes(
    api, lambda_simulator, config_overrides
) -> None:
    ids = await asyncio.gather(
        *(api.create(Cmd=["sh", "-c", f"sleep 1; echo {n}; exit {n % 50}"]) for n in range(COUNT))
    )
    waits = [asyncio.create_task(api.wait(container_id, "next-exit")) for container_id in ids]
    await asyncio.gather(*(api.start(container_id) for container_id in ids))

    most_running = 0
    reads_before = lambda_simulator.stats.snapshot()["calls"].get("logs:FilterLogEvents", 0)
    began = time.monotonic()
    while not all(wait.done() for wait in waits):
        most_running = max(most_running, lambda_simulator.stats.running)
        # Everyone asks for logs while they run: the reader must not multiply its reads.
        await asyncio.gather(*(api.logs(container_id) for container_id in ids[::10]))
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - began
    results = [wait.result() for wait in waits]

    assert [result["StatusCode"] for result in results] == [n % 50 for n in range(COUNT)]
    assert 0 < most_running <= 100  # the rest queued instead of failing
    reads = lambda_simulator.stats.snapshot()["calls"].get("logs:FilterLogEvents", 0) - reads_before
    assert reads <= elapsed / 0.5 + 2
    assert lambda_simulator.stats.snapshot()["invocations"]["started"] == COUNT
