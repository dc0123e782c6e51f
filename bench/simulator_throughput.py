"""Invocations per second through the Lambda simulator at 1, 10 and 100 concurrent callers.

Starts its own simulator, creates one function running ``true``, then keeps N callers invoking it
for a fixed time per level. Two set-ups, both measured by default:

- ``embedded``: the simulator (and its in-process moto) runs in the benchmark's own event loop,
  as in the backend's tests: the client's botocore work competes with the simulator for one core.
- ``standalone``: the simulator runs as its own process (``sockerless-lambda-simulator``).

Run: ``python bench/simulator_throughput.py`` (about 45 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from bench.common import SIMULATOR_SETTINGS, simulator_flags
from sockerless_lambda_simulator import LambdaSimulator

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bench:latest"


async def run_level(client: Any, name: str, callers: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds

    async def caller() -> None:
        nonlocal failures
        while time.monotonic() < deadline:
            started = time.monotonic()
            response = await client.invoke(FunctionName=name)
            await response["Payload"].read()
            latencies.append(time.monotonic() - started)
            failures += "FunctionError" in response

    started = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = time.monotonic() - started
    ordered = sorted(latencies)
    return {
        "callers": callers,
        "invocations": len(latencies),
        "failures": failures,
        "seconds": elapsed,
        "per_second": len(latencies) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[int(len(ordered) * 0.95) - 1] * 1000,
    }


@contextlib.asynccontextmanager
async def embedded() -> AsyncIterator[tuple[str, str]]:
    async with LambdaSimulator(**SIMULATOR_SETTINGS) as simulator:
        yield simulator.endpoint_url, simulator.role_arn


@contextlib.asynccontextmanager
async def standalone() -> AsyncIterator[tuple[str, str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sockerless_lambda_simulator.cli",
        "--log-level",
        "error",
        *simulator_flags(),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        endpoint = (await process.stdout.readline()).decode().strip().partition("=")[2]
        role_arn = (await process.stdout.readline()).decode().strip().partition("=")[2]
        yield endpoint, role_arn
    finally:
        process.send_signal(signal.SIGINT)
        await process.wait()


async def measure(setup: str, levels: list[int], seconds: float) -> list[dict[str, float]]:
    simulator = embedded() if setup == "embedded" else standalone()
    async with simulator as (endpoint, role_arn):
        config = AioConfig(
            max_pool_connections=max(levels) + 10, retries={"mode": "standard", "total_max_attempts": 1}
        )
        async with get_session().create_client(
            "lambda",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=config,
        ) as client:
            await client.create_function(
                FunctionName="bench",
                PackageType="Image",
                Code={"ImageUri": IMAGE},
                Role=role_arn,
                ImageConfig={"EntryPoint": ["true"]},
            )
            await run_level(client, "bench", 4, 1.0)  # warm-up: connections, caches, log group
            return [await run_level(client, "bench", callers, seconds) for callers in levels]


async def main(setups: list[str], levels: list[int], seconds: float) -> None:
    logging.getLogger("sockerless_lambda_simulator").setLevel(logging.ERROR)  # "image not pulled"
    results = {setup: await measure(setup, levels, seconds) for setup in setups}
    header = ("setup", "callers", "invocations", "failed", "inv/s", "p50 ms", "p95 ms")
    print("{:<11} {:>7} {:>11} {:>6} {:>7} {:>7} {:>7}".format(*header))
    for setup, rows in results.items():
        for row in rows:
            print(
                f"{setup:<11} {row['callers']:>7} {row['invocations']:>11} {row['failures']:>6} "
                f"{row['per_second']:>7.1f} {row['p50_ms']:>7.1f} {row['p95_ms']:>7.1f}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--levels", default="1,10,100", help="comma-separated caller counts (default: 1,10,100)"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per level (default: 5)")
    parser.add_argument("--setups", default="embedded,standalone", help="embedded, standalone or both")
    arguments = parser.parse_args()
    levels = [int(level) for level in arguments.levels.split(",")]
    asyncio.run(main(arguments.setups.split(","), levels, arguments.seconds))
