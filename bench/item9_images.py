"""Item 9: one warm function per image configuration, and image preparation (issue 21).

``sockerless up`` with every container through the bootstrap (``--lambda-bootstrap``) on a standalone
simulator that runs functions as Lambda does (``--runtime-model lambda``) and keeps each new function
``Pending`` 5 s (``--pending-seconds 5``, where the bench's other items have none), both otherwise with
the bench's settings. Image preparation is off (``--no-lambda-prepare-images``, on versions that have
it) for parts 1 to 3, so that they measure the function handling, not a pull, the same way before and
after the issue; idle functions are kept for the run (``--lambda-function-idle-seconds``, where it
exists).

1. **Burst of a new image.** N concurrent ``docker run --rm IMAGE echo hi`` through the real docker CLI,
   of an image configuration this simulator never ran: the wall time from the first launch to the last
   exit, every exit 0 with output ``hi``, and the Lambda control-plane calls (every Lambda operation but
   the invokes) from the simulator's counters, read until the background deletes have settled. Then N
   more of the same image. The figures of the version before the issue are kept in
   :data:`BEFORE_ISSUE_21` and shown beside.
2. **Warm run against a bare invoke.** With a container of the image created and kept (so that its
   function exists and is Active whatever the version), a warm ``docker run --rm`` as the Docker API
   calls the CLI makes (create with AutoRemove, attach, wait for ``removed``, start: raw HTTP on the
   frontend's socket, no CLI process) against a bare aiobotocore ``invoke_with_response_stream`` of
   the same function with the payload the backend builds for that container
   (``sockerless_lambda.bootstrap.payload``); N concurrent of each, rounds interleaved; the real docker
   CLI's run at N=1 as info. Phases at N=1 from the client's laps and the product's access log.
3. **Control-plane calls per warm run**: part 1's second burst, calls / N.
4. **Preparation** (``bench/item9_prepare.py``), on versions that prepare images.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

import aiohttp

from .aws import LambdaClients, lambda_clients
from .common import IMAGE, ItemResult, Table, median
from .docker_cli import DockerCLI, pull_api
from .item9_prepare import (
    PREPARE_FLAG,
    PREPARE_ON,
    RANDOM_LAYER_BYTES,
    PullFigure,
    measure_preparation,
    preparation_unavailable,
)
from .item9_runs import Burst, WarmFigures, burst, measure_warm, pin
from .processes import ROOT, Served, Simulator, bench_dir, product_env, sockerless, unix_session
from .processes import run_command as run_client

__all__ = ["BEFORE_ISSUE_21", "run"]

PENDING_SECONDS = 5.0
#: The simulator runs functions as Lambda does (the bootstrap needs it); its Pending is set by ``run``.
SIMULATOR_EXTRA = ["--runtime-model", "lambda"]
BACKEND_EXTRA = ["--lambda-bootstrap"]
IDLE_FLAG = "--lambda-function-idle-seconds"
TARGET_RATIO = 1.15
#: Rounds of the warm runs against the bare invoke, by concurrency.
DEFAULT_ROUNDS = {1: 30, 10: 8, 100: 4}
T = TypeVar("T")

#: The item measured on main before issue 21 (``python -m bench --only 9``, the product at the commit
#: named; load average 2.44 at the start, 2.95 at the end: other work shared the 2 cores), shown beside
#: the figures of a run at the same scale (``count``). Every container made its own function then. A run
#: ten minutes earlier (load 2.86 / 5.90) measured 12.0 s and 13.9 s for the bursts and 403
#: control-plane calls for the second: the times vary by about a fifth between runs on this machine,
#: and GetFunction's count with them (polls while Pending).
BEFORE_ISSUE_21: dict[str, Any] = {
    "date": "2026-12-04",
    "commit": "defff80",
    "count": 100,
    "first_seconds": 14.7,
    "second_seconds": 16.2,
    "first_create_function": 100,
    "second_control_calls": 494,
    "second_calls_per_run": 4.94,
    "first_calls": {"lambda:CreateFunction": 100, "lambda:DeleteFunction": 100, "lambda:GetFunction": 371},
    "second_calls": {"lambda:CreateFunction": 100, "lambda:DeleteFunction": 100, "lambda:GetFunction": 294},
    "added_ms_1": 6042.3,
    "ratio_10": 31.006,
    "ratio_100": 5.227,
    "cli_added_ms_1": 6028.7,
}


# ---------------------------------------------------------------------------- the item


async def _backend_help() -> str:
    """``sockerless up --help``: which flags this version has (preparation, idle functions)."""
    _, out, _ = await run_client([sys.executable, "-m", "sockerless.cli", "up", "--help"], product_env(ROOT))
    return out


async def run(
    *,
    count: int = 100,
    rounds: Mapping[int, int] | None = None,
    cli_rounds: int = 10,
    pending: float = PENDING_SECONDS,
    random_bytes: int = RANDOM_LAYER_BYTES,
) -> ItemResult:
    """``count`` runs per burst; ``rounds`` of warm runs by concurrency; ``pending``: seconds the
    simulator keeps a new function Pending; ``random_bytes``: the random layer of the pulled image."""
    rounds = dict(rounds or DEFAULT_ROUNDS)
    result = ItemResult(
        "9",
        "One warm function per image configuration, and image preparation",
        setup="",  # filled by the report, with the version's abilities
        command="python -m bench --only 9",
    )
    if not DockerCLI.installed():
        result.notes.append("skipped: the docker CLI is not installed")
        return result
    help_text = await _backend_help()
    prepares = PREPARE_FLAG in help_text
    extra = [*BACKEND_EXTRA, *([PREPARE_FLAG] if prepares else [])]
    extra += [IDLE_FLAG, "3600"] if IDLE_FLAG in help_text else []
    load = [os.getloadavg()[0]]
    first = second = warm = preparation = None
    why_not = "preparation not available on this version" if not prepares else preparation_unavailable()
    with bench_dir() as workdir:
        async with Simulator(workdir, [*SIMULATOR_EXTRA, "--pending-seconds", f"{pending:g}"]) as sim:
            async with sockerless(workdir, sim, "up", extra=extra) as served:
                cli = DockerCLI(workdir, served.docker_socket)
                async with unix_session(served.docker_socket, "http://docker") as session:
                    await pull_api(session)
                first = await _part(result, "first burst", burst(cli, sim, count))
                second = await _part(result, "second burst", burst(cli, sim, count))
                async with (
                    lambda_clients(sim.endpoint_url) as lam,
                    unix_session(served.docker_socket, "http://docker") as session,
                ):
                    warm = await _part(
                        result, "warm runs", _warm(cli, served, sim, lam, session, rounds, cli_rounds)
                    )
            if why_not is None:  # a backend of its own, preparation on, once the first one is gone
                prepare_extra = [*BACKEND_EXTRA, PREPARE_ON]
                preparing = measure_preparation(workdir, sim, prepare_extra, random_bytes)
                preparation = await _part(result, "preparation", preparing)
    load.append(os.getloadavg()[0])
    result.setup = _setup(count, rounds, cli_rounds, extra, pending, random_bytes)
    if first is not None and second is not None:
        _report_bursts(result, first, second, warm.calls if warm is not None else {})
    if warm is not None:
        _report_warm(result, warm, rounds, count)
    _report_preparation(result, preparation, why_not)
    result.notes.append(f"Load average (1 min) at the item's start / end: {load[0]:.2f} / {load[1]:.2f}.")
    return result


async def _warm(
    cli: DockerCLI,
    served: Served,
    sim: Simulator,
    lam: LambdaClients,
    session: aiohttp.ClientSession,
    rounds: Mapping[int, int],
    cli_rounds: int,
) -> WarmFigures:
    pinned = await pin(session, lam)
    return await measure_warm(
        cli, served.docker_socket, served.log_path, sim, lam, pinned, rounds, cli_rounds, served.process.pid
    )


async def _part(result: ItemResult, name: str, measuring: Awaitable[T]) -> T | None:
    """One part's figures; a part that fails is reported as such, and the others still run."""
    try:
        return await measuring
    except Exception as exc:  # any failure of a part is a finding of the report
        result.notes.append(f"**{name}: failed**: {type(exc).__name__}: {str(exc)[:500]}")
        return None


# ---------------------------------------------------------------------------- the report


def _setup(
    count: int,
    rounds: Mapping[int, int],
    cli_rounds: int,
    extra: list[str],
    pending: float,
    random_bytes: int,
) -> str:
    return (
        f"`sockerless up {' '.join(extra)}` on a standalone simulator that runs functions as Lambda "
        f"does (`{' '.join(SIMULATOR_EXTRA)} --pending-seconds {pending:g}`: each new function stays "
        f"Pending {pending:g} s, "
        "where the other items have none), both otherwise with the bench's settings; image preparation "
        "off where the version has it, so that parts 1 to 3 measure the function handling, the same "
        f"way before and after issue 21. **Bursts**: {count} concurrent `docker run --rm {IMAGE} echo "
        "hi` through the real docker CLI of an image configuration the simulator never ran, then "
        f"{count} more: wall time from the first launch to the last exit, and the Lambda control-plane "
        "calls (every Lambda operation but the invokes; the simulator's counters, read once the "
        "background deletes settled). **Warm run against a bare invoke**: a container of the image is "
        "created and kept (its function exists and is Active); a `docker run --rm` as the Docker API "
        "calls the CLI makes (create with AutoRemove, attach, wait for `removed`, start; raw HTTP on "
        "the frontend's socket, no CLI process) against a bare aiobotocore "
        "`invoke_with_response_stream` of the same function with the payload the backend builds for "
        "that container (`sockerless_lambda.bootstrap.payload`); N concurrent of each, rounds "
        f"interleaved ({', '.join(f'{rounds[level]} at N={level}' for level in sorted(rounds))}); ratio = "
        "median over rounds of (run batch time / bare batch time). The real docker CLI's run at N=1 "
        f"({cli_rounds} rounds against the bare invoke) as info. **Preparation**: `docker pull` of a "
        f"busybox image with a {random_bytes / 2**20:g} MiB random layer from a local registry, twice "
        "(bench/item9_prepare.py)."
    )


def _before(key: str, count: int, shape: str = "{}") -> str:
    """The figure measured before issue 21 (``shape`` formats it), when measured at the same scale."""
    if BEFORE_ISSUE_21.get("count") != count or key not in BEFORE_ISSUE_21:
        return ""
    shown = shape.format(BEFORE_ISSUE_21[key])
    return f"; before issue 21: {shown} ({BEFORE_ISSUE_21['commit']}, {BEFORE_ISSUE_21['date']})"


def _report_bursts(result: ItemResult, first: Burst, second: Burst, warm_calls: dict[str, int]) -> None:
    count = first.count
    for label, figures, key in (
        ("first burst (new image)", first, "first"),
        ("second burst", second, "second"),
    ):
        result.info(
            f"{label}: {count} concurrent runs, first launch → last exit",
            f"{figures.seconds:.1f} s (first exit at {figures.first_exit:.1f} s)"
            + _before(f"{key}_seconds", count, "{:.1f} s"),
        )
        result.target(
            f"{label}: runs that exited 0 with `hi`",
            f"{figures.ok}/{count}"
            + (f" (first failure: {figures.failures[0]})" if figures.failures else ""),
            "all",
            figures.ok == count,
        )
        result.data[f"{key}_seconds"] = figures.seconds
        result.data[f"{key}_first_exit"] = figures.first_exit
        result.data[f"{key}_calls"] = figures.calls
    creates = first.calls.get("lambda:CreateFunction", 0)
    total = sum(second.calls.values())
    result.data.update(
        count=count,
        first_create_function=creates,
        second_control_calls=total,
        second_calls_per_run=total / count,
    )
    result.target(
        "first burst: CreateFunction calls",
        f"{creates}" + _before("first_create_function", count),
        "1",
        creates == 1,
    )
    result.target(
        "second burst: control-plane calls",
        f"{total}" + _before("second_control_calls", count),
        "0",
        total == 0,
    )
    result.target(
        "control-plane calls per warm run (second burst)",
        f"{total / count:.2f}" + _before("second_calls_per_run", count, "{:.2f}"),
        "0",
        total == 0,
    )
    before_first = BEFORE_ISSUE_21.get("first_calls", {}) if BEFORE_ISSUE_21.get("count") == count else {}
    before_second = BEFORE_ISSUE_21.get("second_calls", {}) if BEFORE_ISSUE_21.get("count") == count else {}
    operations = sorted({*first.calls, *second.calls, *warm_calls, *before_first, *before_second})
    result.tables.append(
        Table(
            "Lambda control-plane calls by operation (the simulator's counters; part 2's warm rounds are "
            "the timed rounds of the warm runs and the docker CLI's)",
            [
                "operation",
                "first burst",
                "second burst",
                "part 2 warm rounds",
                "before: first",
                "before: second",
            ],
            [
                [
                    operation,
                    str(first.calls.get(operation, 0)),
                    str(second.calls.get(operation, 0)),
                    str(warm_calls.get(operation, 0)),
                    str(before_first.get(operation, 0)) if before_first else "—",
                    str(before_second.get(operation, 0)) if before_second else "—",
                ]
                for operation in operations
            ]
            or [["(none)", "0", "0", "0", "—", "—"]],
        )
    )


CPU_PROCESSES = ("product", "simulator", "client")


def _rounds(count: int) -> str:
    return f"{count} round" + ("" if count == 1 else "s")


def _report_warm(result: ItemResult, warm: WarmFigures, rounds: Mapping[int, int], count: int) -> None:
    for level in sorted(rounds):
        runs, bares = warm.times[level]["run"], warm.times[level]["bare"]
        ratio = median(a / b for a, b in zip(runs, bares, strict=True))
        figures = f"median batch: run {median(runs) * 1000:.1f} ms, bare {median(bares) * 1000:.1f} ms"
        if level == min(rounds):
            added = median(a - b for a, b in zip(runs, bares, strict=True)) * 1000
            result.info(
                "N=1: warm `docker run --rm` (Docker API) over a bare InvokeWithResponseStream",
                f"{added:+.1f} ms (median per round; ratio {ratio:.3f}; {figures}; {_rounds(rounds[level])})"
                + _before("added_ms_1", count, "{:+.1f} ms"),
            )
            result.data["added_ms_1"] = added
        else:
            result.target(
                f"N={level}: warm run / bare invoke, batch wall time",
                f"{ratio:.3f} ({figures}; {_rounds(rounds[level])})"
                + _before(f"ratio_{level}", count, "{:.3f}"),
                f"≤ {TARGET_RATIO:g}",
                ratio <= TARGET_RATIO,
            )
        result.data[f"ratio_{level}"] = ratio
    cli_added = median(a - b for a, b in zip(warm.cli_times, warm.cli_bare, strict=True)) * 1000
    result.info(
        "N=1: the real docker CLI's `docker run --rm` over the bare invoke (the CLI's own process included)",
        f"{cli_added:+.1f} ms (median per round; CLI {median(warm.cli_times) * 1000:.1f} ms, bare "
        f"{median(warm.cli_bare) * 1000:.1f} ms, {_rounds(len(warm.cli_times))})"
        + _before("cli_added_ms_1", count, "{:+.1f} ms"),
    )
    result.data["cli_added_ms_1"] = cli_added
    client = ", ".join(f"{phase} {median(values) * 1000:.1f}" for phase, values in warm.phases.items())
    by_route = sorted(warm.server.items(), key=lambda item: -median(item[1]))
    server = ", ".join(f"`{route}` {median(values):.1f}" for route, values in by_route if values)
    result.tables.append(
        Table(
            "Where a warm run's time goes at N=1 (median ms): the client's steps (the `run` step is from "
            "the start's answer to the exit status and the end of the attached output), and each "
            "request's own duration in the product's access log (the Docker frontend's routes and the "
            "internal API's it calls)",
            ["view", "median ms by step"],
            [["client (Docker API)", client], ["server side (access log)", server]],
        )
    )
    cpu_rows = []
    for level in sorted(warm.cpu):
        count_runs = level * rounds[level]
        for variant in ("run", "bare"):
            used = warm.cpu[level][variant]
            cpu_rows.append(
                [str(level), variant, *(f"{used[name] / count_runs * 1000:.1f}" for name in CPU_PROCESSES)]
            )
    result.tables.append(
        Table(
            "CPU per run (ms; user + system over the timed rounds, divided by the runs): the product "
            "(`sockerless up`: the Docker frontend and the backend in one process), the simulator "
            "(without its execution environments, the same for both), and the bench's client",
            ["N", "variant", *CPU_PROCESSES],
            cpu_rows,
        )
    )
    result.data["cpu"] = warm.cpu
    creates = warm.calls.get("lambda:CreateFunction", 0)
    if creates:
        result.notes.append(
            f"This version makes a function per container: the warm rounds made {creates} "
            "CreateFunction calls (and waited out each new function's Pending), so "
            "the run figures above include a new function and a new execution environment per "
            "container, where the bare invoke reuses one warm function."
        )


def _report_preparation(
    result: ItemResult, preparation: tuple[list[PullFigure], int] | None, why_not: str | None
) -> None:
    if why_not is not None:
        result.notes.append(f"Preparation: skipped, {why_not}.")
        return
    if preparation is None:
        return  # failed: its note says why
    pulls, source_size = preparation
    for label, pull in zip(("first pull", "repeated pull"), pulls, strict=False):
        result.info(
            f"preparation, {label}: time and bytes copied into the simulator's ECR",
            f"{pull.seconds:.2f} s, {pull.new_bytes} bytes in {pull.new_blobs} new blobs "
            f"(source image {source_size} bytes)" + (f"; FAILED: {pull.error}" if pull.error else ""),
        )
    if len(pulls) == 2:
        repeated = pulls[1]
        result.target(
            "preparation, repeated pull: bytes copied",
            str(repeated.new_bytes),
            "0",
            repeated.new_bytes == 0 and not repeated.error,
        )
        result.data["pulls"] = [(pull.seconds, pull.new_bytes) for pull in pulls]
