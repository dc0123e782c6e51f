"""Measure what the Lambda backend costs in AWS calls, on the local simulator (no AWS involved).

    python backends/lambda/tools/measure.py lifecycle      # calls per operation for one container's life
    python backends/lambda/tools/measure.py log-reads      # CloudWatch reads/s with 200 containers running

``lifecycle``: create -> start -> wait -> logs -> logs -t (until settled) -> logs again -> remove,
with the simulator's per-operation call counters read after each step. ``log-reads``: 200 containers run
``sleep``; every container's logs are requested twice a second throughout (200 readers), and the
FilterLogEvents calls are counted per second of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from sockerless.backend import BackendRuntime, LogsOptions
from sockerless.models import ContainerConfig, ContainerCreateRequest, WaitCondition
from sockerless_lambda import containers
from sockerless_lambda.backend import LambdaBackend
from sockerless_lambda.config import LambdaConfig
from sockerless_lambda_simulator import LambdaSimulator

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs:latest"


def _fake_credentials() -> None:
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ[name] = value  # the simulator accepts anything; never real AWS
    os.environ.pop("AWS_PROFILE", None)


async def _backend(simulator: LambdaSimulator, state_dir: str, **overrides: Any) -> LambdaBackend:
    config = LambdaConfig(
        region=simulator.region, role_arn=simulator.role_arn, endpoint_url=simulator.endpoint_url, **overrides
    )
    backend = LambdaBackend(config, BackendRuntime(os.path.join(state_dir, "state.sqlite3"), "measure"))
    await backend.start()
    return backend


async def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise SystemExit("timed out waiting")


def _calls(simulator: LambdaSimulator) -> dict[str, int]:
    return dict(simulator.stats.snapshot()["calls"])


async def _output(backend: LambdaBackend, container_id: str, *, timestamps: bool = False) -> bytes:
    logs = await backend.container_logs(container_id, LogsOptions(timestamps=timestamps))
    return b"".join([line.data async for line in logs.lines])


async def lifecycle() -> None:
    async with LambdaSimulator() as simulator:
        with tempfile.TemporaryDirectory() as state_dir:
            backend = await _backend(simulator, state_dir)
            try:
                await _until(lambda: "lambda:ListFunctions" in _calls(simulator))  # the start-up orphan scan
                simulator.stats.reset()
                steps: list[tuple[str, dict[str, int]]] = []
                request = ContainerCreateRequest(
                    config=ContainerConfig(image=IMAGE, cmd=["sh", "-c", "echo hello; exit 3"])
                )
                created = await backend.create_container(request, None)
                steps.append(("create", _calls(simulator)))
                waiting = await backend.wait_container(created.id, WaitCondition.NEXT_EXIT)
                await backend.start_container(created.id)
                result = await waiting
                steps.append(("start + wait", _calls(simulator)))
                await _output(backend, created.id)  # at once: the Invoke's LogType=Tail holds it all
                steps.append(("logs right after exit", _calls(simulator)))
                # The lines' own times come from CloudWatch: -t reads it until the logs settle.
                deadline = time.monotonic() + 30
                while backend.store.resolve_container(created.id).backend_fields.get("logs_settled") in (
                    None,
                    "",
                ):
                    if time.monotonic() > deadline:
                        raise SystemExit("logs never settled")
                    await _output(backend, created.id, timestamps=True)
                    await asyncio.sleep(containers.LOG_SETTLE_SECONDS / 2)
                steps.append(("logs -t until settled", _calls(simulator)))
                await _output(backend, created.id)
                await _output(backend, created.id, timestamps=True)
                steps.append(("logs, -t again (kept)", _calls(simulator)))
                await backend.remove_container(created.id, force=False, volumes=False)
                steps.append(("remove", _calls(simulator)))
            finally:
                await backend.close()
    print(f"exit code {result.status_code}\n")
    previous: dict[str, int] = {}
    for step, totals in steps:
        delta = {k: v - previous.get(k, 0) for k, v in totals.items() if v - previous.get(k, 0)}
        print(f"{step:24} {sum(delta.values()):3}  {', '.join(f'{k} {v}' for k, v in sorted(delta.items()))}")
        previous = totals
    per_operation = ", ".join(f"{k} {v}" for k, v in sorted(previous.items()))
    print(f"{'total':24} {sum(previous.values()):3}  {per_operation}")


async def log_reads(count: int, seconds: float) -> None:
    async with LambdaSimulator() as simulator:
        with tempfile.TemporaryDirectory() as state_dir:
            backend = await _backend(simulator, state_dir)
            try:
                request = ContainerCreateRequest(
                    config=ContainerConfig(image=IMAGE, cmd=["sh", "-c", f"echo start; sleep {seconds}"])
                )
                ids = [
                    c.id
                    for c in await asyncio.gather(
                        *(backend.create_container(request, None) for _ in range(count))
                    )
                ]
                await asyncio.gather(*(backend.start_container(container_id) for container_id in ids))
                await _until(lambda: simulator.stats.running >= count)
                before = _calls(simulator).get("logs:FilterLogEvents", 0)
                began = time.monotonic()
                rounds = 0
                while time.monotonic() - began < seconds - 1:
                    await asyncio.gather(*(_output(backend, container_id) for container_id in ids))
                    rounds += 1
                    await asyncio.sleep(0.5)
                elapsed = time.monotonic() - began
                reads = _calls(simulator).get("logs:FilterLogEvents", 0) - before
                running = simulator.stats.running
            finally:
                await backend.close()
    print(
        f"{count} containers running ({running} still running at the end), {rounds} rounds of {count} logs "
        f"requests in {elapsed:.1f} s: {reads} FilterLogEvents calls = {reads / elapsed:.2f} calls/s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("lifecycle")
    reads = sub.add_parser("log-reads")
    reads.add_argument("--containers", type=int, default=200)
    reads.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    _fake_credentials()
    if args.what == "lifecycle":
        asyncio.run(lifecycle())
    else:
        asyncio.run(log_reads(args.containers, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
