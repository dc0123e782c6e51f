"""Item 7's load generator when ``wrk`` is not installed: keep-alive connections, each sending its
next request as soon as the answer to the last one is read, for a fixed time; prints one JSON line
(the figures the wrk script prints: requests, seconds, non-2xx answers, latency percentiles).

An aiohttp client needs about as much CPU per request as the server it measures, so on a small
machine it can be the bottleneck: ``wrk`` (C) is preferred whenever it is installed.

Run as ``python -m bench.loadgen <base URL> <connections> <seconds> <path> [<path> ...]``; the
connections take the paths in turn.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time

import aiohttp

from .common import percentile


async def load(base_url: str, connections: int, seconds: float, paths: list[str]) -> dict[str, float]:
    latencies: list[float] = []
    failed = 0
    turn = itertools.cycle(paths)
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(base_url=base_url, connector=connector) as session:
        began = time.perf_counter()
        deadline = began + seconds

        async def connection() -> None:
            nonlocal failed
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                async with session.get(next(turn)) as response:
                    await response.read()
                    failed += response.status >= 300
                latencies.append(time.perf_counter() - sent)

        await asyncio.gather(*(connection() for _ in range(connections)))
        elapsed = time.perf_counter() - began
    return {
        "requests": len(latencies),
        "duration_us": elapsed * 1e6,
        "status": failed,
        "p50_us": percentile(latencies, 50) * 1e6,
        "p99_us": percentile(latencies, 99) * 1e6,
        "max_us": max(latencies, default=float("nan")) * 1e6,
    }


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        print("usage: python -m bench.loadgen <base URL> <connections> <seconds> <path>...", file=sys.stderr)
        return 2
    figures = asyncio.run(load(argv[0], int(argv[1]), float(argv[2]), argv[3:]))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
