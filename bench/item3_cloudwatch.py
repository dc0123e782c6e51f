"""Item 3: CloudWatch read rate while many containers' logs are followed through the Docker frontend.

``sockerless up`` (backend and Docker frontend in one process, the product's defaults) on a
standalone simulator. At each level N containers run ``for i in 1..20: echo line $i; sleep 0.5``
and every one is followed with ``GET /containers/{id}/logs?follow=1`` on the frontend's socket
(aiohttp, N concurrent streams), plus a few real ``docker logs -f`` processes. The CloudWatch read
rate is (FilterLogEvents + GetLogEvents + DescribeLogStreams) from the simulator's counters over
the time from the first start to the end of the last stream. Every stream must deliver exactly
``line 1`` .. ``line 20``, in order.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from typing import Any

import aiohttp

from sockerless.streams import decode_frames

from .common import (
    CLOUDWATCH_READS,
    IMAGE,
    ItemResult,
    Row,
    Simulator,
    Table,
    bench_dir,
    cloudwatch_reads,
    diff_calls,
    median,
    product,
    unix_session,
    up_argv,
)

TARGET_PER_SECOND = 2.0
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


def job(lines: int, pause: float) -> str:
    return f"for i in $(seq 1 {lines}); do echo line $i; sleep {pause}; done"


async def pull(session: aiohttp.ClientSession) -> None:
    repository, _, tag = IMAGE.rpartition(":")
    async with session.post("/images/create", params={"fromImage": repository, "tag": tag}) as response:
        response.raise_for_status()
        await response.read()


async def create(session: aiohttp.ClientSession, command: str, limit: asyncio.Semaphore) -> str:
    async with (
        limit,
        session.post("/containers/create", json={"Image": IMAGE, "Cmd": ["sh", "-c", command]}) as r,
    ):
        if r.status != 201:
            raise AssertionError(f"create: {r.status} {await r.text()}")
        return str((await r.json())["Id"])


async def start(session: aiohttp.ClientSession, container_id: str, limit: asyncio.Semaphore) -> None:
    async with limit, session.post(f"/containers/{container_id}/start") as response:
        if response.status != 204:
            raise AssertionError(f"start: {response.status} {await response.text()}")


async def follow(session: aiohttp.ClientSession, container_id: str) -> tuple[list[str], float]:
    """The followed output as lines, and when the stream ended (``time.monotonic()``)."""
    params = {"follow": "1", "stdout": "1", "stderr": "1"}
    buffer = b""
    payload = b""
    async with session.get(f"/containers/{container_id}/logs", params=params) as response:
        if response.status != 200:
            raise AssertionError(f"logs: {response.status} {await response.text()}")
        async for chunk in response.content.iter_any():
            buffer += chunk
            frames, buffer = decode_frames(buffer)
            payload += b"".join(data for _, data in frames)
    return payload.decode().splitlines(), time.monotonic()


async def docker_follow(env: dict[str, str], container_id: str) -> list[str]:
    process = await asyncio.create_subprocess_exec(
        DOCKER,
        "logs",
        "-f",
        container_id,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 180)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise AssertionError(f"docker logs -f: {process.returncode} {err.decode()}")
    return out.decode().splitlines()


def docker_env(workdir: str, docker_socket: str) -> dict[str, str]:
    config = os.path.join(workdir, "docker-config")
    os.makedirs(config, exist_ok=True)
    return {
        "DOCKER_HOST": f"unix://{docker_socket}",
        "DOCKER_CONFIG": config,
        "HOME": config,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }


async def run(
    *, levels: tuple[int, ...] = (1, 50, 200), lines: int = 20, pause: float = 0.5, cli_followers: int = 3
) -> ItemResult:
    command = job(lines, pause)
    result = ItemResult(
        "3",
        "CloudWatch read rate with many followed containers",
        setup=(
            f"`sockerless up` (defaults: frontend follow poll 0.5 s, backing off to 5 s; one shared "
            f"CloudWatch reader, 1 read/s). N containers `sh -c '{command}'`, each followed through the "
            "frontend (`GET /containers/{id}/logs?follow=1&stdout=1&stderr=1`, N concurrent aiohttp "
            f"streams on its Unix socket) plus {cli_followers} real `docker logs -f` processes (when the "
            "docker CLI is installed). Rate = CloudWatch reads (FilterLogEvents + GetLogEvents + "
            "DescribeLogStreams) / seconds from the first start to the end of the last stream."
        ),
        command="python -m bench --only 3",
    )
    expected = [f"line {i}" for i in range(1, lines + 1)]
    table_rows: list[list[str]] = []
    with bench_dir() as workdir:
        sim = Simulator(workdir)
        try:
            await sim.start()
            socket = os.path.join(workdir, "backend.sock")
            docker_socket = os.path.join(workdir, "docker.sock")
            argv = up_argv(
                workdir,
                sim,
                socket=socket,
                docker_socket=docker_socket,
                store=os.path.join(workdir, "lambda.sqlite3"),
            )
            env = docker_env(workdir, docker_socket)
            use_cli = os.path.exists(DOCKER) and cli_followers > 0
            async with (
                product(workdir, "up", argv, docker_socket, "/_ping"),
                unix_session(docker_socket, "http://docker") as session,
            ):
                await pull(session)
                for level in levels:
                    limit = asyncio.Semaphore(50)
                    ids = await asyncio.gather(*(create(session, command, limit) for _ in range(level)))
                    before = await sim.calls()
                    began = time.monotonic()
                    streams: list[asyncio.Task[tuple[list[str], float]]] = []
                    for container_id in ids:
                        await start(session, container_id, limit)
                        streams.append(asyncio.create_task(follow(session, container_id)))
                    cli_tasks = [
                        asyncio.create_task(docker_follow(env, container_id))
                        for container_id in (ids[:cli_followers] if use_cli else [])
                    ]
                    followed = await asyncio.gather(*streams)
                    cli_outputs = await asyncio.gather(*cli_tasks)
                    ended = max(end for _, end in followed)
                    elapsed = ended - began
                    calls = diff_calls(await sim.calls(), before)
                    reads = cloudwatch_reads(calls)
                    rate = reads / elapsed
                    complete = sum(1 for out, _ in followed if out == expected)
                    cli_complete = sum(1 for out in cli_outputs if out == expected)
                    durations = [end - began for _, end in followed]
                    ok = complete == level and cli_complete == len(cli_outputs)
                    result.rows.append(
                        Row(
                            f"N={level}: CloudWatch reads per second",
                            f"{rate:.2f} ({reads} reads in {elapsed:.1f} s)",
                            f"< {TARGET_PER_SECOND:g}/s",
                            rate < TARGET_PER_SECOND,
                        )
                    )
                    result.rows.append(
                        Row(
                            f"N={level}: streams complete and in order",
                            f"{complete}/{level} API streams, "
                            f"{cli_complete}/{len(cli_outputs)} `docker logs -f`",
                            "all",
                            ok,
                        )
                    )
                    if not ok:
                        bad = next((out for out, _ in followed if out != expected), [])
                        result.notes.append(f"N={level}: an incomplete stream received {bad!r}")
                    table_rows.append(
                        [
                            str(level),
                            ", ".join(f"{k} {calls.get(k, 0)}" for k in CLOUDWATCH_READS),
                            f"{median(durations):.1f} / {max(durations):.1f}",
                            f"{elapsed:.1f}",
                        ]
                    )
                    result.data[f"rate_{level}"] = rate
                    result.data[f"complete_{level}"] = ok
                    await asyncio.gather(*(_remove(session, container_id, limit) for container_id in ids))
        finally:
            await sim.stop()
    result.tables.append(
        Table(
            "CloudWatch reads by operation; how long the follow streams lasted "
            f"(the job itself runs about {lines * pause:g} s)",
            ["N", "reads", "stream end after first start, median / max (s)", "window (s)"],
            table_rows,
        )
    )
    return result


async def _remove(session: aiohttp.ClientSession, container_id: str, limit: asyncio.Semaphore) -> Any:
    async with limit, session.delete(f"/containers/{container_id}", params={"force": "1"}) as response:
        return response.status
