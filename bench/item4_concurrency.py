"""Item 4: 500 invocations in flight at once; event-loop lag inside the backend; memory per container.

The backend runs in its own process (``bench.launcher``: ``InternalAPIServer`` + ``LambdaBackend``
with ``max_concurrent_invocations=500`` and a task sampling its loop's lag every 10 ms). Two set-ups:

* **standalone simulator**: the simulator is its own process, the backend's loop serves only the
  backend;
* **embedded simulator**: the simulator runs inside the backend process (as ``sockerless up
  --simulate``), so its moto calls and its 500 child processes share the backend's event loop.

N containers ``sh -c 'sleep 8; exit $((IDX % 7))'`` (``IDX`` in the environment) are created, a wait
opened on each, then all started; every exit code must be ``IDX % 7``. Lag percentiles are over the
samples taken from the first start to the last exit. Memory: the backend process's VmRSS before the
creates, after them, and at its peak while the invocations are in flight.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from sockerless.api.client import BackendClient
from sockerless.models import WaitCondition

from .common import IMAGE, ItemResult, Row, Table, cpu_seconds, median, percentile, rss_kb
from .processes import Simulator, bench_dir, product_env, start_process, stop_process

TARGET_LAG_MS = 50.0
SLEEP_SECONDS = 8  # long enough for the simulator to have started all 500 before the first exits


def command(sleep_seconds: float) -> str:
    return f"sleep {sleep_seconds:g}; exit $((IDX % 7))"


async def _launch(workdir: str, sim: Simulator | None, count: int) -> tuple[Any, dict[str, Any], str, str]:
    socket = os.path.join(workdir, "launcher.sock")
    lag_file = os.path.join(workdir, "lag.json")
    argv = [
        sys.executable,
        "-m",
        "bench.launcher",
        "--socket",
        socket,
        "--store",
        os.path.join(workdir, "launcher.sqlite3"),
        "--lag-file",
        lag_file,
        "--max-concurrent-invocations",
        str(max(100, count)),
    ]
    argv += ["--endpoint-url", sim.endpoint_url, "--role-arn", sim.role_arn] if sim else ["--simulate"]
    process = await start_process(
        argv, env=product_env(workdir), log_path=os.path.join(workdir, "launcher.log"), stdout_pipe=True
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 120)
    if not line:
        await stop_process(process)
        raise RuntimeError(f"the launcher did not start; see {workdir}/launcher.log")
    return process, json.loads(line), socket, lag_file


def listen_overflows() -> int:
    """TcpExt ListenOverflows, machine-wide: connections dropped because an accept queue was full."""
    try:
        with open("/proc/net/netstat", encoding="ascii") as netstat:
            lines = netstat.read().splitlines()
    except OSError:
        return 0
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        if header.startswith("TcpExt:"):
            fields = dict(zip(header.split()[1:], values.split()[1:], strict=False))
            return int(fields.get("ListenOverflows", 0))
    return 0


async def _stats(session: Any, endpoint: str) -> dict[str, Any]:
    async with session.get(f"{endpoint}/_sim/stats") as response:
        data: dict[str, Any] = await response.json()
        return data


async def measure(workdir: str, embedded: bool, count: int, sleep_seconds: float) -> dict[str, Any]:
    import aiohttp

    sim = None if embedded else Simulator(workdir)
    process = None
    try:
        if sim is not None:
            await sim.start()
        process, ready, socket, lag_file = await _launch(workdir, sim, count)
        pid = int(ready["pid"])
        endpoint = str(ready["simulator"])
        async with BackendClient(f"unix://{socket}") as client, aiohttp.ClientSession() as http:
            # Warm-up: connections, the log group, first-image warnings.
            for _ in range(3):
                warm = await client.create_container({"Image": IMAGE, "Cmd": ["true"]}, None)
                async with client.wait_container(warm.id, WaitCondition.NEXT_EXIT) as pending:
                    await client.start_container(warm.id)
                    await pending.result()
                await client.remove_container(warm.id)
            await asyncio.sleep(0.5)
            rss_before = rss_kb(pid)
            limit = asyncio.Semaphore(100)

            async def create(index: int) -> str:
                async with limit:
                    body = {
                        "Image": IMAGE,
                        "Cmd": ["sh", "-c", command(sleep_seconds)],
                        "Env": [f"IDX={index}"],
                    }
                    return (await client.create_container(body, None)).id

            created_at = time.time()
            ids = await asyncio.gather(*(create(index) for index in range(count)))
            create_seconds = time.time() - created_at
            rss_created = rss_kb(pid)
            results: dict[int, int] = {}
            errors: dict[int, str] = {}

            async def wait_exit(index: int, container_id: str, opened: asyncio.Event) -> None:
                try:
                    async with client.wait_container(container_id, WaitCondition.NEXT_EXIT) as pending:
                        opened.set()
                        results[index] = (await pending.result()).status_code
                except Exception as exc:  # counted and reported, never silently awaited forever
                    errors.setdefault(index, f"{type(exc).__name__}: {exc}")
                finally:
                    opened.set()

            # All waits opened at once, as many clients would; those that fail are opened again,
            # 50 at a time, so that every container is still watched.
            opened = [asyncio.Event() for _ in ids]
            waits = [
                asyncio.create_task(wait_exit(index, container_id, opened[index]))
                for index, container_id in enumerate(ids)
            ]
            await asyncio.wait_for(asyncio.gather(*(event.wait() for event in opened)), 120)
            failed_opens = dict(errors)
            reopen = asyncio.Semaphore(50)

            async def wait_again(index: int) -> None:
                event = asyncio.Event()
                async with reopen:
                    waits[index] = asyncio.create_task(wait_exit(index, ids[index], event))
                    await event.wait()

            errors.clear()
            await asyncio.gather(*(wait_again(index) for index in failed_opens))

            async def start(container_id: str) -> None:
                async with limit:
                    await client.start_container(container_id)

            overflows_before = listen_overflows()
            cpu_before = (cpu_seconds(pid), cpu_seconds(sim.pid) if sim is not None else 0.0)
            burst_began = time.time()
            starting = asyncio.gather(*(start(container_id) for container_id in ids))
            peak_running, peak_rss, peak_sim_rss = 0, 0, 0
            deadline = time.monotonic() + 300
            while not all(wait.done() for wait in waits) and time.monotonic() < deadline:
                stats = await _stats(http, endpoint)
                peak_running = max(peak_running, int(stats["invocations"]["running"]))
                peak_rss = max(peak_rss, rss_kb(pid))
                if sim is not None:
                    peak_sim_rss = max(peak_sim_rss, rss_kb(sim.pid))
                await asyncio.sleep(0.1)
            await starting
            burst_ended = time.time()
            overflows = listen_overflows() - overflows_before
            backend_cpu = cpu_seconds(pid) - cpu_before[0]
            sim_cpu = (cpu_seconds(sim.pid) - cpu_before[1]) if sim is not None else 0.0
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        await stop_process(process)
        process = None
        with open(lag_file, encoding="utf-8") as samples_file:
            samples: list[tuple[float, float]] = [tuple(s) for s in json.load(samples_file)]
    finally:
        if process is not None:
            await stop_process(process)
        if sim is not None:
            await sim.stop()
    burst = [lag * 1000 for stamp, lag in samples if burst_began <= stamp <= burst_ended]
    creating = [lag * 1000 for stamp, lag in samples if created_at <= stamp <= created_at + create_seconds]
    correct = sum(1 for index in range(count) if results.get(index) == index % 7)
    return {
        "correct": correct,
        "errors": len(errors),
        "first_error": next(iter(errors.values()), ""),
        "failed_opens": len(failed_opens),
        "first_failed_open": next(iter(failed_opens.values()), ""),
        "listen_overflows": overflows,
        "backend_cpu": backend_cpu,
        "sim_cpu": sim_cpu,
        "peak_running": peak_running,
        "burst_seconds": burst_ended - burst_began,
        "create_seconds": create_seconds,
        "lag_p50": median(burst),
        "lag_p99": percentile(burst, 99),
        "lag_max": max(burst, default=float("nan")),
        "lag_samples": len(burst),
        "create_lag_p99": percentile(creating, 99),
        "create_lag_max": max(creating, default=float("nan")),
        "rss_before_kb": rss_before,
        "rss_created_kb": rss_created,
        "rss_peak_kb": peak_rss,
        "sim_rss_peak_kb": peak_sim_rss,
    }


async def run(
    *,
    count: int = 500,
    sleep_seconds: float = SLEEP_SECONDS,
    setups: tuple[str, ...] = ("standalone", "embedded"),
) -> ItemResult:
    result = ItemResult(
        "4",
        f"Concurrency: {count} invocations in flight",
        setup=(
            f"{count} containers `sh -c '{command(sleep_seconds)}'` with `IDX` = 0..{count - 1} in "
            "their environment (Lambda refuses one-letter variable names), "
            "created (100 requests at a time), a `wait?condition=next-exit` opened on each, then all "
            "started, through the internal API of the bench launcher (`python -m bench.launcher`: "
            "`InternalAPIServer` + `LambdaBackend`, `max_concurrent_invocations` raised to "
            f"{max(100, count)} so that all can be in flight, JSON logs at info as the product logs, "
            "and a task measuring the drift of `asyncio.sleep(0.01)` in the backend's loop). "
            "Set-ups: the simulator standalone (its own process) and embedded in the backend process "
            "(as `sockerless up --simulate`). Memory per container = (peak VmRSS of the backend "
            f"process while in flight - VmRSS before the creates) / {count}."
        ),
        command="python -m bench --only 4",
    )
    table_rows = []
    failed_opens: list[str] = []
    first_failure = ""
    for setup in setups:
        with bench_dir() as workdir:
            figures = await measure(workdir, setup == "embedded", count, sleep_seconds)
        result.data[setup] = figures
        embedded = setup == "embedded"
        label = "embedded simulator" if embedded else "standalone simulator"
        all_ok = figures["correct"] == count
        result.rows.append(
            Row(f"{label}: exit codes correct", f"{figures['correct']}/{count}", f"{count}/{count}", all_ok)
        )
        result.rows.append(
            Row(
                f"{label}: {count} waits opened at once, failed",
                f"{figures['failed_opens']}"
                + (f" ({figures['first_failed_open']})" if figures["failed_opens"] else ""),
                "0",
                figures["failed_opens"] == 0,
            )
        )
        result.rows.append(
            Row(
                f"{label}: most invocations in flight at once (the simulator's count, sampled every 0.1 s)",
                f"{figures['peak_running']} of {count}",
            )
        )
        result.rows.append(
            Row(
                f"{label}: TCP listen-queue overflows during the burst (machine-wide)",
                str(figures["listen_overflows"]),
            )
        )
        result.rows.append(
            Row(
                f"{label}: backend loop lag p99 while in flight",
                f"{figures['lag_p99']:.1f} ms (p50 {figures['lag_p50']:.1f}, max {figures['lag_max']:.1f})",
                f"≤ {TARGET_LAG_MS:g} ms",
                figures["lag_p99"] <= TARGET_LAG_MS,
            )
        )
        per_container = (figures["rss_peak_kb"] - figures["rss_before_kb"]) / count
        result.rows.append(
            Row(
                f"{label}: backend memory per in-flight container",
                f"{per_container:.0f} KiB",
            )
        )
        if figures["failed_opens"]:
            failed_opens.append(f"{figures['failed_opens']} ({label})")
            first_failure = figures["first_failed_open"]
        if figures["errors"]:
            result.notes.append(
                f"{label}: {figures['errors']} waits failed; the first: {figures['first_error']}"
            )
        table_rows.append(
            [
                label,
                f"{figures['create_seconds']:.1f}",
                f"{figures['burst_seconds']:.1f}",
                f"{figures['create_lag_p99']:.1f} / {figures['create_lag_max']:.1f}",
                f"{figures['rss_before_kb'] / 1024:.0f} / {figures['rss_created_kb'] / 1024:.0f} / "
                f"{figures['rss_peak_kb'] / 1024:.0f}",
                f"{figures['sim_rss_peak_kb'] / 1024:.0f}" if not embedded else "(in the backend)",
                f"{figures['backend_cpu']:.1f} / " + (f"{figures['sim_cpu']:.1f}" if not embedded else "—"),
            ]
        )
    if failed_opens:
        result.notes.append(
            f"Waits opened at once that failed: {', '.join(failed_opens)}, with `{first_failure}` (they were "
            "opened again, 50 at a time, so the run went on)."
        )
    result.tables.append(
        Table(
            "Phases and memory",
            [
                "set-up",
                f"creating {count} (s)",
                "first start → last exit (s)",
                "loop lag while creating, p99 / max (ms)",
                "backend VmRSS before / created / peak (MiB)",
                "simulator VmRSS peak (MiB)",
                "CPU s in the burst: backend / simulator",
            ],
            table_rows,
        )
    )
    return result
