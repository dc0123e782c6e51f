"""Bench-only launcher: the Lambda backend's internal API in its own process, with a loop-lag sampler.

What ``sockerless serve lambda`` runs (``InternalAPIServer`` + ``LambdaBackend``), plus one task
that sleeps 10 ms in a loop and records by how much each sleep overshot: the event loop's lag as
any request handler would feel it. The samples (wall-clock time, lag in seconds) are written as
JSON to ``--lag-file`` at shutdown (SIGTERM/SIGINT).

``--endpoint-url``/``--role-arn`` point it at a standalone simulator; ``--simulate`` embeds the
simulator in this process instead (as ``sockerless up --simulate`` does: its subprocess
management and moto then share this event loop). The first line on stdout is JSON:
``{"ready": true, "pid": ..., "simulator": <endpoint url>}`` once the socket answers.

Run: ``python -m bench.launcher --socket S --store F --lag-file L`` plus ``--simulate`` or
``--endpoint-url U --role-arn A``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from collections.abc import Sequence
from typing import Any, cast

from bench.common import BACKEND_SETTINGS, SIMULATOR_SETTINGS
from sockerless.api.server import InternalAPIServer
from sockerless.backend import BackendRuntime
from sockerless.config import ServerConfig
from sockerless.observability import configure_logging, flush_logs
from sockerless_lambda.backend import LambdaBackend
from sockerless_lambda.config import LambdaConfig
from sockerless_lambda.simulation import Simulator, load_simulator_factory

SAMPLE_SECONDS = 0.01


async def sample_lag(samples: list[tuple[float, float]]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(SAMPLE_SECONDS)
        samples.append((time.time(), loop.time() - before - SAMPLE_SECONDS))


def _embed_with_bench_settings() -> None:
    """Give ``--simulate``'s embedded simulator the bench's ``SIMULATOR_SETTINGS``, as its others: the
    backend builds it from the entry point with the region only."""
    import sockerless_lambda.backend as lambda_backend

    factory: Any = load_simulator_factory()  # LambdaSimulator: its factory protocol knows the region only

    def with_bench_settings(*, region: str) -> Simulator:
        return cast(Simulator, factory(region=region, **SIMULATOR_SETTINGS))

    lambda_backend.load_simulator_factory = lambda: with_bench_settings  # the name backend.py imported


async def serve(args: argparse.Namespace) -> None:
    if args.simulate:
        _embed_with_bench_settings()
    config = LambdaConfig(
        region="us-east-1",
        role_arn=args.role_arn or None,
        endpoint_url=args.endpoint_url or None,
        simulate=args.simulate,
        max_concurrent_invocations=args.max_concurrent_invocations,
        **BACKEND_SETTINGS,
    )
    backend = LambdaBackend(config, BackendRuntime(args.store, "bench-launcher"))
    server = InternalAPIServer(
        backend, ServerConfig(socket=args.socket, max_inflight_requests=args.max_inflight)
    )
    samples: list[tuple[float, float]] = []
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    sampler = asyncio.create_task(sample_lag(samples))
    await server.start()
    try:
        simulator = backend.simulator.endpoint_url if backend.simulator is not None else args.endpoint_url
        print(json.dumps({"ready": True, "pid": os.getpid(), "simulator": simulator}), flush=True)
        await stopping.wait()
    finally:
        await server.stop()
        sampler.cancel()
        with open(args.lag_file, "w", encoding="utf-8") as out:
            json.dump(samples, out)
        flush_logs()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.launcher", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--lag-file", required=True)
    parser.add_argument("--endpoint-url", default="")
    parser.add_argument("--role-arn", default="")
    parser.add_argument("--simulate", action="store_true")
    parser.add_argument("--max-concurrent-invocations", type=int, default=200)
    parser.add_argument("--max-inflight", type=int, default=512)
    parser.add_argument("--log-level", default="info", help="the product's default: info, as JSON on stderr")
    args = parser.parse_args(argv)
    configure_logging(args.log_level, "json")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
