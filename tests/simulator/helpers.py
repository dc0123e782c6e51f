"""Helpers shared by the simulator tests (import as ``tests.simulator.helpers``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

from aiobotocore.config import AioConfig

from tests.lambda_settings import simulator_client_options

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest"

# No retries: a test that injects a fault must see it, not botocore's recovery from it.
CLIENT_CONFIG = AioConfig(
    max_pool_connections=256,
    read_timeout=30,
    connect_timeout=5,
    retries={"mode": "standard", "total_max_attempts": 1},
)

#: ``function_active_v2`` polls waiting out a new function's Pending: well under GetFunction's quota
#: (100/s), bounded at 10 s.
ACTIVE_WAIT = {"Delay": 0.1, "MaxAttempts": 100}


def client_options(simulator: Any) -> dict[str, Any]:
    return simulator_client_options(simulator, config=CLIENT_CONFIG)


async def wait_until(predicate: Callable[[], bool], deadline: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 20 ms until it holds; fail after ``deadline`` seconds."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline
    while not predicate():
        if loop.time() > give_up:
            raise AssertionError(f"{what} still false after {deadline} s")
        await asyncio.sleep(0.02)


async def wait_for_async(
    check: Callable[[], Awaitable[bool]], deadline: float = 10.0, what: str = "condition"
) -> None:
    """Poll the async ``check`` every 20 ms until it holds; fail after ``deadline`` seconds."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline
    while not await check():
        if loop.time() > give_up:
            raise AssertionError(f"{what} still false after {deadline} s")
        await asyncio.sleep(0.02)


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie waiting for its (foreign) parent counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
