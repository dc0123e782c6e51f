"""A backend SIGKILLed during the concurrent first create of one shared function (one image
configuration): after the restart there is never a second function of the key, no container is stuck
being created (every one listed starts and exits 0), and an idle function is swept (here at once:
``lambda.function_idle_seconds`` 0), also one the crash left without any container."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sockerless.cli import instance_id_for
from tests.reliability.processes import (
    IMAGE,
    BackendProcess,
    SimulatorProcess,
    base_environment,
    eventually,
    lambda_flags,
)

INSTANCE_TAG = "sockerless:instance"
CREATES = 20


async def _create(backend: BackendProcess) -> int:
    status, _, _ = await backend.call(
        "POST", "/containers", json={"Image": IMAGE, "Cmd": ["sh", "-c", "echo shared"]}, timeout=60
    )
    return status


async def _run(backend: BackendProcess, container_id: str) -> dict[str, Any]:
    waiting = asyncio.create_task(
        backend.call(
            "POST", f"/containers/{container_id}/wait", params={"condition": "next-exit"}, timeout=60
        )
    )
    status, body, _ = await backend.call("POST", f"/containers/{container_id}/start")
    assert status == 204, body
    status, body, _ = await waiting
    assert status == 200, body
    return dict(body)


@pytest.mark.parametrize(
    "fault",
    [
        None,  # killed once CreateFunction reached the simulator (answered or not)
        {"kind": "latency", "operation": "lambda:CreateFunction", "latency_ms": 2000},  # killed inside it
        {"kind": "drop_answer", "operation": "lambda:CreateFunction", "count": 1},  # made, answer lost
    ],
    ids=["after-create", "during-create", "answer-lost"],
)
async def test_a_crash_during_the_first_create_of_a_key_leaves_one_function_and_no_stuck_container(
    simulator: SimulatorProcess, backends: list[BackendProcess], short_dir: Path, fault: dict[str, Any] | None
) -> None:
    state_path = str(short_dir / "state.sqlite3")
    instance = instance_id_for(state_path)
    env = base_environment()
    flags = lambda_flags(simulator, state_path, lambda_function_idle_seconds="0")
    first = BackendProcess(str(short_dir / "a.sock"), flags, short_dir / "backend1.log", env)
    backends.append(first)
    await first.start()
    if fault is not None:
        await simulator.add_fault(**fault)
    creates = [asyncio.create_task(_create(first)) for _ in range(CREATES)]

    async def create_sent() -> bool:
        return int((await simulator.stats())["calls"].get("lambda:CreateFunction", 0)) >= 1

    await eventually(create_sent, timeout=60, every=0.01, what="the first CreateFunction")
    await first.kill()
    for result in await asyncio.gather(*creates, return_exceptions=True):
        assert isinstance(result, int | aiohttp.ClientError | asyncio.TimeoutError), result
    await simulator.clear_faults()

    second = BackendProcess(str(short_dir / "b.sock"), flags, short_dir / "backend2.log", env)
    backends.append(second)
    await second.start()  # reconciliation runs before it serves
    listed = await second.containers()
    tagged = await simulator.tagged_functions(INSTANCE_TAG, instance)
    assert len(tagged) <= 1
    if not listed:
        assert tagged == set()  # made for no container that survived: idle, swept at start-up
    for container in listed:
        assert await _run(second, container["Id"]) == {"StatusCode": 0}

    # The key is the same: the containers of after the crash join the function, if one survived.
    assert all(status == 201 for status in await asyncio.gather(*(_create(second) for _ in range(5))))
    listed = await second.containers()
    for container in listed[:5]:
        assert await _run(second, container["Id"]) == {"StatusCode": 0}
    assert len(await simulator.tagged_functions(INSTANCE_TAG, instance)) == 1

    for container in listed:
        status, body, _ = await second.call("DELETE", f"/containers/{container['Id']}")
        assert status == 204, body

    async def swept() -> bool:
        return await simulator.tagged_functions(INSTANCE_TAG, instance) == set()

    await eventually(swept, timeout=30, what="the idle function deleted")
