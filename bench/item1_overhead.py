"""Item 1: overhead over the floor set by AWS itself.

The same container lifecycles, ``echo hi``, at 1, 10 and 100 at once, two ways against one simulator:

* **backend**: create → start → wait → logs → remove through the internal API (``BackendClient``
  over the Unix socket of ``sockerless serve lambda``);
* **direct**: the bare AWS calls such a lifecycle needs, made with aiobotocore (see
  :func:`bench.lifecycles.direct_lifecycle`). No CloudWatch read: the Invoke's tail holds the whole
  output, so this is the strictest floor (the backend's own CloudWatch reads are counted in a table).

At N=1 every third round also runs the variants that take the overhead apart: the same backend in
this process (no internal-API hop), a backend that does nothing behind the internal API (the hop
alone) and one that makes only the floor's AWS calls behind it (:mod:`bench.null_backend`).

A sample is one wave of N concurrent lifecycles; one round measures the variants back to back (the
order rotates between rounds, :func:`bench.common.interleave`); the ratio is the median over rounds
of backend time / direct time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from attrs import Factory, define

from sockerless.api.client import BackendClient

from .aws import lambda_clients
from .common import ItemResult, Table, access_durations, cpu_seconds, interleave, log_size, median
from .lifecycles import Phases, backend_lifecycle, direct_lifecycle, inprocess_backend, inprocess_lifecycle
from .processes import Simulator, bench_dir, cloudwatch_reads, diff_calls, product, sockerless

TARGET = 1.25
#: A ratio this close to the target, on either side, is reported as at the target: runs of the same
#: code on this shared machine differ by about that much (see docs/benchmarks.md's history).
CLOSE = 0.02
#: Rounds per level: a single round's ratio at N=1 spreads widely (it is divided by one direct wave),
#: so its median needs many rounds to settle.
DEFAULT_ROUNDS = {1: 900, 10: 12, 100: 6}
#: At N=1 the breakdown variants run in every third round only: they explain the figure, and the rounds
#: they would cost are better spent on the backend / direct pair it is.
BREAKDOWN_EVERY = 3
PAIR = ("backend", "direct")
Lifecycle = Callable[[Phases], Awaitable[None]]


@define
class LevelRun:
    """What the rounds of one level measured."""

    level: int
    samples: list[dict[str, float]] = Factory(list)  # wave seconds per variant, one dict per round
    phases: dict[str, Phases] = Factory(lambda: defaultdict(lambda: defaultdict(list)))
    cpu: dict[str, dict[str, float]] = Factory(lambda: defaultdict(lambda: defaultdict(float)))
    calls: dict[str, int] = Factory(lambda: defaultdict(int))  # the backend's AWS calls
    server: dict[str, list[float]] = Factory(dict)  # the backend's access-log durations (ms)
    #: Seconds from a wave's start until its functions were deleted too, per variant that deletes
    #: them after the remove answered (the backend's).
    settled: dict[str, list[float]] = Factory(lambda: defaultdict(list))

    def times(self, variant: str) -> list[float]:
        return [sample[variant] for sample in self.samples if variant in sample]

    def ratios(self, variant: str, over: str = "direct") -> list[float]:
        return [s[variant] / s[over] for s in self.samples if variant in s and over in s]

    def lifecycles(self, variant: str) -> int:
        return self.level * len(self.times(variant))

    def cpu_ms(self, variant: str) -> dict[str, float]:
        """CPU milliseconds per lifecycle of ``variant``, by process."""
        count = self.lifecycles(variant)
        return {name: seconds / count * 1000 for name, seconds in self.cpu[variant].items()}


@define
class Variants:
    """The lifecycles to run, and the processes whose CPU time is counted."""

    runners: dict[str, Lifecycle]
    pids: dict[str, int | None]  # None: this process
    #: For the variants whose remove answers before DeleteFunction: waits until a wave of N has
    #: deleted its functions (untimed in the wave's figure; timed apart as ``settled``).
    settlers: dict[str, Callable[[int, dict[str, int]], Awaitable[None]]]
    log_path: str  # the backend's


async def _start_variants(stack: contextlib.AsyncExitStack, workdir: str, sim: Simulator) -> Variants:
    served = await stack.enter_async_context(sockerless(workdir, sim))
    clients = {"backend": await stack.enter_async_context(BackendClient(served.url))}
    pids: dict[str, int | None] = {"simulator": sim.pid, "backend": served.process.pid}
    for variant, name, args in (
        ("null backend", "null", ()),
        ("calls-only backend", "calls-only", (sim.endpoint_url, sim.role_arn)),
    ):
        socket = os.path.join(workdir, f"{name}.sock")
        argv = [sys.executable, "-m", "bench.null_backend", socket, *args]
        process = await stack.enter_async_context(
            product(workdir, name, argv, f"unix://{socket}", "/internal/v1/capabilities")
        )
        clients[variant] = await stack.enter_async_context(BackendClient(f"unix://{socket}"))
        pids[variant] = process.pid
    pids["client"] = None
    lam = await stack.enter_async_context(lambda_clients(sim.endpoint_url))
    local = await stack.enter_async_context(inprocess_backend(workdir, sim))
    runners: dict[str, Lifecycle] = {
        "backend": functools.partial(backend_lifecycle, clients.pop("backend")),
        "direct": functools.partial(direct_lifecycle, lam, sim.role_arn),
        "in-process": functools.partial(inprocess_lifecycle, local),
    }
    runners.update(
        {variant: functools.partial(backend_lifecycle, client) for variant, client in clients.items()}
    )

    async def backend_deleted(level: int, before: dict[str, int]) -> None:
        await _deletions_reached(sim, level, before)

    async def inprocess_deleted(level: int, before: dict[str, int]) -> None:
        await local.cleanups_settled()

    settlers = {"backend": backend_deleted, "in-process": inprocess_deleted}
    return Variants(runners, pids, settlers, served.log_path)


async def _deletions_reached(sim: Simulator, count: int, before: dict[str, int]) -> None:
    """Wait until ``count`` more DeleteFunction calls than ``before`` reached the simulator."""
    deadline = time.monotonic() + 60
    while True:
        done = diff_calls(await sim.calls(), before).get("lambda:DeleteFunction", 0)
        if done >= count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the backend deleted {done} of {count} functions within 60 s")
        await asyncio.sleep(0.002)


async def measure_level(level: int, rounds: int, variants: Variants, sim: Simulator) -> LevelRun:
    run = LevelRun(level)
    offset = log_size(variants.log_path)
    everything = tuple(variants.runners) if level == 1 else PAIR

    async def wave(variant: str) -> float:
        settle = variants.settlers.get(variant)
        before = await sim.calls() if variant == "backend" or settle else None
        cpu_before = {name: cpu_seconds(pid) for name, pid in variants.pids.items()}
        began = time.perf_counter()
        lifecycle = variants.runners[variant]
        await asyncio.gather(*(lifecycle(run.phases[variant]) for _ in range(level)))
        seconds = time.perf_counter() - began
        if settle is not None and before is not None:
            # The remove answered before DeleteFunction: the wave's deletions finish before the next
            # variant runs (so they never load its wave), and their CPU and calls count as this one's.
            await settle(level, before)
            run.settled[variant].append(time.perf_counter() - began)
        for name, pid in variants.pids.items():
            run.cpu[variant][name] += cpu_seconds(pid) - cpu_before[name]
        if before is not None and variant == "backend":
            for key, value in diff_calls(await sim.calls(), before).items():
                run.calls[key] += value
        return seconds

    run.samples = await interleave(
        rounds, lambda index: everything if index % BREAKDOWN_EVERY == 0 else PAIR, wave
    )
    run.server = access_durations(variants.log_path, offset)
    return run


async def run(*, levels: tuple[int, ...] = (1, 10, 100), rounds: dict[int, int] | None = None) -> ItemResult:
    rounds = rounds or DEFAULT_ROUNDS
    result = ItemResult(
        "1",
        "Overhead over the floor (backend vs bare AWS calls)",
        setup=(
            "Lifecycle `echo hi`: create → start → wait → logs → remove through the internal API of "
            "`sockerless serve lambda` (its Unix socket, `sockerless.api.client.BackendClient`), versus "
            "CreateFunction → Invoke(LogType=Tail) → DeleteFunction with aiobotocore "
            "(GetFunctionConfiguration only if CreateFunction does not answer Active; it always did), on "
            "the same standalone simulator, with the backend's CreateFunction parameters, log group and "
            "client settings (retries as its control client for CreateFunction and DeleteFunction, one "
            "attempt for Invoke). No CloudWatch read in the floor: the Tail holds the whole output. A "
            "round is one wave of N concurrent lifecycles of each variant, back to back, the order "
            "rotating; at N=1 every third round also runs the in-process backend, a null backend and a "
            "calls-only backend behind the internal API (`bench/null_backend.py`). Rounds: "
            + ", ".join(f"{rounds.get(level, 1)} at N={level}" for level in levels)
            + ". Ratio = median over rounds of (backend wave time / direct wave time)."
        ),
        command="python -m bench --only 1",
    )
    phase_rows: list[list[str]] = []
    cpu_rows: list[list[str]] = []
    calls_rows: list[list[str]] = []
    with bench_dir() as workdir:
        async with Simulator(workdir) as sim, contextlib.AsyncExitStack() as stack:
            variants = await _start_variants(stack, workdir, sim)
            scratch: Phases = defaultdict(list)
            for lifecycle in variants.runners.values():  # connections, the log group, first-image warnings
                await asyncio.gather(*(lifecycle(scratch) for _ in range(4)))
            for level in levels:
                measured = await measure_level(level, rounds.get(level, 1), variants, sim)
                report_level(result, measured, phase_rows, cpu_rows)
                backend_runs = measured.lifecycles("backend")
                per_lifecycle = {key: value / backend_runs for key, value in sorted(measured.calls.items())}
                calls_rows.append(
                    [
                        str(level),
                        ", ".join(f"{key} {value:.2f}" for key, value in per_lifecycle.items()),
                        f"{cloudwatch_reads(measured.calls) / backend_runs:.3f}",
                    ]
                )
    result.tables += [
        Table(
            "Where the time goes: median ms per call within a lifecycle, client-side; for the backend also "
            "the server-side duration of each request (its access log)",
            ["N", "variant", "phases (ms)"],
            phase_rows,
        ),
        Table(
            "CPU milliseconds per lifecycle, by process (2 cores shared by all of them)",
            ["N", "variant", *[f"{name} CPU ms" for name in variants.pids], "total CPU ms"],
            cpu_rows,
        ),
        Table(
            "AWS calls the backend made per lifecycle during the timed rounds",
            ["N", "calls per lifecycle", "CloudWatch reads per lifecycle"],
            calls_rows,
        ),
    ]
    ratios = {level: result.data[f"ratio_{level}"] for level in levels}
    close = {level: ratio for level, ratio in ratios.items() if abs(ratio - TARGET) < CLOSE}
    if close:
        result.notes.append(
            "At the target, within what separates runs: "
            + ", ".join(
                f"N={level} is {ratio:.3f} ({'over' if ratio > TARGET else 'under'} {TARGET})"
                for level, ratio in close.items()
            )
            + f", less than {CLOSE} from it. Interleaving cancels drift within a run, not the difference "
            "between runs, each with its own processes on a shared 2-core machine: another run may put "
            "such a figure on the other side of the target."
        )
    if close or any(ratio > TARGET for ratio in ratios.values()):
        result.notes.append(limits_note(result.data, levels))
    return result


# ---------------------------------------------------------------------------- reporting

#: The variants that take the overhead apart (N=1 only): what each is, and its key in the data.
BREAKDOWN = {
    "in-process": ("in-process backend (no internal-API hop)", "inprocess"),
    "null backend": (
        "the internal-API hop alone (the same five calls to a backend that does nothing)",
        "null",
    ),
    "calls-only backend": (
        "the same AWS calls behind the internal API, nothing else (no store, records or log lines of its "
        "own)",
        "calls_only",
    ),
}
#: The backend's access-log routes, as the phases of a lifecycle.
ROUTES = {
    "POST /internal/v1/containers": "create",
    "POST /internal/v1/containers/{id}/start": "start",
    "POST /internal/v1/containers/{id}/wait": "wait",
    "GET /internal/v1/containers/{id}/logs": "logs",
    "DELETE /internal/v1/containers/{id}": "remove",
}


def report_level(
    result: ItemResult, run: LevelRun, phase_rows: list[list[str]], cpu_rows: list[list[str]]
) -> None:
    """The level's figures into ``result`` (rows and data), its breakdown into the tables' rows."""
    level, data = run.level, result.data
    ratios = run.ratios("backend")
    ratio = data[f"ratio_{level}"] = median(ratios)
    data[f"ratios_{level}"] = ratios
    result.target(
        f"N={level}: backend / direct wave time",
        f"{ratio:.3f} (median wave: backend {median(run.times('backend')) * 1000:.1f} ms, "
        f"direct {median(run.times('direct')) * 1000:.1f} ms)",
        f"≤ {TARGET}",
        ratio <= TARGET,
    )
    for variant, (what, key) in BREAKDOWN.items():
        if run.times(variant):
            value = data[f"{key}_ratio_{level}"] = median(run.ratios(variant))
            result.info(
                f"N={level}: {what} / direct",
                f"{value:.3f} (median {median(run.times(variant)) * 1000:.1f} ms)",
            )
    if run.settled["backend"]:
        settled = data[f"settled_ratio_{level}"] = median(run.settled["backend"]) / median(
            run.times("direct")
        )
        result.info(
            f"N={level}: backend until its functions are deleted too / direct (the remove answers "
            "first; DeleteFunction follows in the background)",
            f"{settled:.3f} (median {median(run.settled['backend']) * 1000:.1f} ms; ratio of medians)",
        )
    over_calls = run.ratios("backend", over="calls-only backend")
    if over_calls:
        value = data[f"over_calls_only_{level}"] = median(over_calls)
        result.info(f"N={level}: backend / calls-only backend, in the same rounds", f"{value:.3f}")
    server = {phase: median(run.server.get(route, [])) * 1e-3 for route, phase in ROUTES.items()}
    data[f"server_phases_{level}"] = server
    for variant in [name for name in run.phases if run.times(name)]:
        phases = {name: median(values) for name, values in run.phases[variant].items()}
        cpu = data[f"cpu_ms_{variant}_{level}"] = run.cpu_ms(variant)
        data[f"wave_ms_{variant}_{level}"] = median(run.times(variant)) * 1000
        data[f"phases_{variant}_{level}"] = phases
        cells = [f"{name} {seconds * 1000:.1f}" for name, seconds in phases.items()]
        if variant == "backend":
            cells.append(
                "— server-side: " + ", ".join(f"{name} {s * 1000:.1f}" for name, s in server.items())
            )
        phase_rows.append([str(level), variant, ", ".join(cells)])
        cpu_rows.append(
            [str(level), variant, *[f"{ms:.1f}" for ms in cpu.values()], f"{sum(cpu.values()):.1f}"]
        )


def limits_note(data: dict[str, Any], levels: tuple[int, ...]) -> str:
    """Where the time of a missed (or barely met) target goes, in words, from this run's figures."""
    parts = []
    if "wave_ms_calls-only backend_1" in data:
        direct, backend = data["wave_ms_direct_1"], data["wave_ms_backend_1"]
        calls, null = data["wave_ms_calls-only backend_1"], data["wave_ms_null backend_1"]
        inprocess = data["wave_ms_in-process_1"]
        allowed = (TARGET - 1) * direct
        ratio = data["ratio_1"]
        verdict = (
            f"misses the target by {ratio - TARGET:.3f}"
            if ratio > TARGET
            else f"is {TARGET - ratio:.3f} under it"
        )
        parts.append(
            f"Where the time goes at N=1 (this run's medians): the floor takes {direct:.1f} ms a "
            f"lifecycle, so the target allows {allowed:.1f} ms over it; the backend takes {backend:.1f} ms "
            f"({ratio:.3f}: it {verdict}). The internal API's five round trips to a backend that does "
            f"nothing take {null:.1f} ms (server, middlewares and access lines, client; two processes). "
            f"The same AWS calls as the floor, behind the internal API and nothing else, take "
            f"{calls:.1f} ms ({data['calls_only_ratio_1']:.3f} of the floor): the hop, and the AWS calls "
            f"made from a second process. The real backend takes {data['over_calls_only_1']:.3f} times as "
            f"long as that, paired in the same rounds; in this process, without the hop, "
            f"{inprocess:.1f} ms ({data['inprocess_ratio_1']:.3f} of the floor)."
        )
        ours, floor = data["server_phases_1"], data["phases_direct_1"]
        pairs = (("create", "create"), ("wait", "invoke"), ("remove", "delete"))
        parts.append(
            "Server-side (its access log) against the floor's calls: "
            + ", ".join(
                f"{mine} {ours[mine] * 1000:.1f} ms vs {theirs} {floor[theirs] * 1000:.1f}"
                for mine, theirs in pairs
            )
            + f"; start {ours['start'] * 1000:.1f} ms and logs {ours['logs'] * 1000:.1f} ms have no AWS call."
        )
        cpu_ours = data["cpu_ms_backend_1"].get("backend", 0.0)
        cpu_calls = data["cpu_ms_calls-only backend_1"].get("calls-only backend", 0.0)
        parts.append(
            f"CPU per lifecycle: the backend process {cpu_ours:.1f} ms, the calls-only backend "
            f"{cpu_calls:.1f} ms for the same AWS calls behind the same server; the difference, "
            f"{cpu_ours - cpu_calls:.1f} ms, is the backend's own work: the record and its state written "
            "through the store (aiosqlite's thread, a commit per write), the run's output into the log "
            "store, the container's views and waiters, its log lines."
        )
    top = max(levels)
    cpu_backend, cpu_direct = data.get(f"cpu_ms_backend_{top}", {}), data.get(f"cpu_ms_direct_{top}", {})
    if top > 1 and cpu_backend and cpu_direct:
        parts.append(
            f"At N={top} the wave is CPU-bound on 2 cores shared by three processes: per lifecycle the "
            f"backend process uses {cpu_backend.get('backend', 0):.1f} CPU-ms (the direct client makes "
            f"the same three AWS calls in {cpu_direct.get('client', 0):.1f}), so the backend variant "
            f"needs {sum(cpu_backend.values()):.1f} CPU-ms in all against {sum(cpu_direct.values()):.1f}."
        )
    return " ".join(parts)
