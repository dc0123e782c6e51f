"""Hundreds of invocations at once all complete, each with its own logs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest


@pytest.fixture
def lambda_simulator_options(lambda_simulator_options: dict[str, Any]) -> dict[str, Any]:
    """This file tests the simulator under many invocations at once (Lambda's model would start 120 runtime
    processes on a shared machine; tests/simulator/test_runtime_api.py covers concurrent environments),
    not how a function runs: its functions are plain commands of the ``direct`` model (payload on stdin,
    the last output line as the answer; not what Lambda does)."""
    return {**lambda_simulator_options, "runtime_model": "direct"}


CONCURRENT = 120


async def test_many_concurrent_invocations_all_complete(
    lambda_simulator: Any, lambda_client: Any, create_function: Any, written_log: Any
) -> None:
    names = [(await create_function("cat; echo"))["FunctionName"] for _ in range(4)]

    async def call(index: int) -> tuple[int, Any]:
        response = await lambda_client.invoke(FunctionName=names[index % 4], Payload=str(index).encode())
        return index, await response["Payload"].read()

    results = await asyncio.gather(*(call(index) for index in range(CONCURRENT)))

    assert all(payload == str(index).encode() for index, payload in results)
    assert lambda_simulator.stats.snapshot()["invocations"] == {
        "started": CONCURRENT,
        "succeeded": CONCURRENT,
        "running": 0,
        "events_pending": 0,
    }
    ends = [
        event
        for name in names
        for event in await written_log(f"/aws/lambda/{name}")
        if event["message"].startswith("END RequestId:")
    ]
    assert len(ends) == CONCURRENT
