"""Item 3: CloudWatch read rate while many containers' logs are followed through the Docker frontend.

``sockerless up`` (backend and Docker frontend in one process, the product's defaults) on a
standalone simulator. At each level N containers run ``for i in 1..20: echo line $i; sleep 0.5``
and every one is followed with ``GET /containers/{id}/logs?follow=1`` on the frontend's socket
(aiohttp, N concurrent streams), plus a few real ``docker logs -f`` processes. The frontend passes
each follow through to the backend's own (one backend logs request per follower), and the backend
reads CloudWatch through one shared reader while anyone follows. The CloudWatch read rate is
(FilterLogEvents + GetLogEvents + DescribeLogStreams) from the simulator's counters over the time
from the first start to the end of the last stream. Every stream must deliver exactly ``line 1`` ..
``line 20``, in order, and the backend's access log must show exactly one logs request per follower.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import aiohttp
from attrs import define

from .common import IMAGE, ItemResult, Table, access_entries, log_size, median
from .docker_cli import DockerCLI, follow_api, pull_api
from .processes import (
    CLOUDWATCH_READS,
    Served,
    Simulator,
    bench_dir,
    cloudwatch_reads,
    diff_calls,
    sockerless,
    unix_session,
)

TARGET_PER_SECOND = 2.0
BACKEND_LOGS = "GET /internal/v1/containers/{id}/logs"


def job(lines: int, pause: float) -> str:
    return f"for i in $(seq 1 {lines}); do echo line $i; sleep {pause}; done"


async def _call(
    session: aiohttp.ClientSession, method: str, path: str, limit: asyncio.Semaphore, **kw: Any
) -> str:
    """A short Docker API call that must succeed (2xx): its body."""
    async with limit, session.request(method, path, **kw) as response:
        body = await response.text()
        if response.status >= 300:
            raise AssertionError(f"{method} {path}: {response.status} {body}")
        return body


@define
class LevelFigures:
    rate: float
    reads: dict[str, int]
    elapsed: float
    api_complete: int
    cli_complete: int
    cli_followers: int
    durations: list[float]
    backend_requests: Counter[str]  # backend logs requests per container
    followers: Counter[str]  # followers per container
    first_bad: list[str]


async def _backend_logs_requests(log_path: str, offset: int, expected: int) -> Counter[str]:
    """The backend's logs requests per container since ``offset``; their access lines are written when
    each stream ends, by the log writer thread: waited for (a few seconds at most)."""
    deadline = time.monotonic() + 5
    while True:
        found = Counter(
            entry["path"].split("/")[4]
            for entry in access_entries(log_path, offset)
            if entry["route"] == BACKEND_LOGS
        )
        if sum(found.values()) >= expected or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


async def measure_level(
    served: Served,
    session: aiohttp.ClientSession,
    sim: Simulator,
    cli: DockerCLI | None,
    level: int,
    command: str,
    expected: Sequence[str],
    cli_followers: int,
) -> LevelFigures:
    limit = asyncio.Semaphore(50)
    body = {"Image": IMAGE, "Cmd": ["sh", "-c", command]}
    created = await asyncio.gather(
        *(_call(session, "POST", "/containers/create", limit, json=body) for _ in range(level))
    )
    ids = [str(json.loads(text)["Id"]) for text in created]
    offset = log_size(served.log_path)
    before = await sim.calls()
    began = time.monotonic()
    streams: list[asyncio.Task[tuple[list[str], float]]] = []
    for container_id in ids:
        await _call(session, "POST", f"/containers/{container_id}/start", limit)
        streams.append(asyncio.create_task(follow_api(session, container_id)))
    followed_by_cli = ids[:cli_followers] if cli is not None else []
    cli_tasks = (
        [asyncio.create_task(cli.checked("logs", "-f", cid)) for cid in followed_by_cli] if cli else []
    )
    followed = await asyncio.gather(*streams)
    cli_outputs = [out.splitlines() for out in await asyncio.gather(*cli_tasks)]
    ended = max(end for _, end in followed)
    calls = diff_calls(await sim.calls(), before)
    followers = Counter(ids) + Counter(followed_by_cli)
    requests = await _backend_logs_requests(served.log_path, offset, sum(followers.values()))
    await asyncio.gather(
        *(_call(session, "DELETE", f"/containers/{cid}", limit, params={"force": "1"}) for cid in ids)
    )
    return LevelFigures(
        rate=cloudwatch_reads(calls) / (ended - began),
        reads={key: calls.get(key, 0) for key in CLOUDWATCH_READS},
        elapsed=ended - began,
        api_complete=sum(1 for out, _ in followed if out == list(expected)),
        cli_complete=sum(1 for out in cli_outputs if out == list(expected)),
        cli_followers=len(cli_outputs),
        durations=[end - began for _, end in followed],
        backend_requests=requests,
        followers=followers,
        first_bad=next((out for out, _ in followed if out != list(expected)), []),
    )


async def run(
    *, levels: tuple[int, ...] = (1, 50, 200), lines: int = 20, pause: float = 0.5, cli_followers: int = 3
) -> ItemResult:
    command = job(lines, pause)
    result = ItemResult(
        "3",
        "CloudWatch read rate with many followed containers",
        setup=(
            "`sockerless up` (defaults: one shared CloudWatch reader, 1 read/s, reading while anyone "
            f"follows). N containers `sh -c '{command}'`, each followed through the frontend "
            "(`GET /containers/{id}/logs?follow=1&stdout=1&stderr=1`, N concurrent aiohttp streams on its "
            f"Unix socket) plus {cli_followers} real `docker logs -f` processes (when the docker CLI is "
            "installed). The frontend passes each follow to the backend's own. Rate = CloudWatch reads "
            "(FilterLogEvents + GetLogEvents + DescribeLogStreams) / seconds from the first start to the "
            "end of the last stream. Backend logs requests are counted per container from the backend's "
            "access log (`GET /internal/v1/containers/{id}/logs`) and set against the container's followers."
        ),
        command="python -m bench --only 3",
    )
    expected = [f"line {i}" for i in range(1, lines + 1)]
    table_rows: list[list[str]] = []
    with bench_dir() as workdir:
        async with Simulator(workdir) as sim, sockerless(workdir, sim, "up") as served:
            cli = (
                DockerCLI(workdir, served.docker_socket) if DockerCLI.installed() and cli_followers else None
            )
            async with unix_session(served.docker_socket, "http://docker") as session:
                await pull_api(session)
                for level in levels:
                    figures = await measure_level(
                        served, session, sim, cli, level, command, expected, cli_followers
                    )
                    _report(result, level, figures)
                    table_rows.append(
                        [
                            str(level),
                            ", ".join(f"{key} {value}" for key, value in figures.reads.items()),
                            f"{median(figures.durations):.1f} / {max(figures.durations):.1f}",
                            f"{figures.elapsed:.1f}",
                            f"{sum(figures.backend_requests.values())} / {sum(figures.followers.values())}",
                        ]
                    )
    result.tables.append(
        Table(
            "CloudWatch reads by operation; how long the follow streams lasted (the job itself runs about "
            f"{lines * pause:g} s); the backend's logs requests against the followers",
            [
                "N",
                "reads",
                "stream end after first start, median / max (s)",
                "window (s)",
                "backend logs requests / followers",
            ],
            table_rows,
        )
    )
    return result


def _report(result: ItemResult, level: int, figures: LevelFigures) -> None:
    result.target(
        f"N={level}: CloudWatch reads per second",
        f"{figures.rate:.2f} ({sum(figures.reads.values())} reads in {figures.elapsed:.1f} s)",
        f"< {TARGET_PER_SECOND:g}/s",
        figures.rate < TARGET_PER_SECOND,
    )
    complete = figures.api_complete == level and figures.cli_complete == figures.cli_followers
    result.target(
        f"N={level}: streams complete and in order",
        f"{figures.api_complete}/{level} API streams, {figures.cli_complete}/{figures.cli_followers} "
        "`docker logs -f`",
        "all",
        complete,
    )
    per_follower = [figures.backend_requests[cid] / count for cid, count in figures.followers.items()]
    exact = all(value == 1 for value in per_follower)
    result.target(
        f"N={level}: backend logs requests per follower",
        f"{median(per_follower):g} median, {min(per_follower):g} to {max(per_follower):g} "
        f"({sum(figures.backend_requests.values())} requests, {sum(figures.followers.values())} followers)",
        "1 each",
        exact,
    )
    if not complete:
        result.notes.append(f"N={level}: an incomplete stream received {figures.first_bad!r}")
    result.data[f"rate_{level}"] = figures.rate
    result.data[f"complete_{level}"] = complete
    result.data[f"requests_per_follower_{level}"] = per_follower
