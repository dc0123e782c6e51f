"""Item 8: live output through the bootstrap (issue 20).

The simulator runs functions as Lambda does (``runtime_model`` ``lambda``: Init, the Runtime API, warm
environments), and a function whose EntryPoint is the bootstrap runs the bootstrap from the package;
the backend runs every container through it (``--lambda-bootstrap``), invoking with
InvokeWithResponseStream and feeding the frames to its log store and followers as they come.
``sockerless up`` on a standalone simulator (both with the bench's settings plus those two).

1. **Line latency.** The command prints numbered lines, each carrying the wall-clock time at which it
   was made (``date +%s%N``, a fork per line, so the stamp is a little older than the write: the
   figure errs high), with a short pause between lines. The real docker CLI reads them, and this
   process, reading the CLI's stdout line by line, takes the arrival time (same machine, same clock).
   Two clients: an attached ``docker run --rm`` (attached before the start, so every line is live) and
   ``docker logs -f`` of a ``docker run -d`` container, which waits a second before its first line so
   that the follower is there; lines printed before the follower's first line arrived may come as a
   backlog from the store and are left out.
2. **Lifecycle overhead.** One container lifecycle (``echo hi``: create, start, wait, logs, remove)
   through the internal API (``BackendClient`` on the Unix socket of ``sockerless up``, as the Docker
   frontend calls it), against a bare aiobotocore ``invoke_with_response_stream`` of a function made
   once (warm) with the bootstrap as its entrypoint and the same payload, and against the bare calls
   of a cold run (CreateFunction, InvokeWithResponseStream, DeleteFunction). One at a time, rounds
   interleaved; info only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from attrs import define

from sockerless.api.client import BackendClient
from sockerless.streams import decode_frames

from .aws import LambdaClients, function_params, lambda_clients
from .common import IMAGE, ItemResult, Table, access_durations, interleave, log_size, median, percentile
from .docker_cli import DOCKER, DockerCLI, pull_api
from .lifecycles import COMMAND, OUTPUT, Phases, backend_lifecycle
from .processes import Simulator, bench_dir, diff_calls, sockerless, stop_process, unix_session

__all__ = ["BOOTSTRAP_ENTRYPOINT", "Latency", "invoke_stream", "job", "line_latency", "run"]

TARGET_P50_MS = 50.0
#: The simulator runs functions as Lambda does (Init, Runtime API, environments): the bootstrap needs it.
SIMULATOR_EXTRA = ["--runtime-model", "lambda"]
#: Every container of the backend through the bootstrap (``lambda.bootstrap``), its shared function
#: deleted with its last container (``lambda.function_idle_seconds`` 0): each lifecycle is a cold run,
#: as the bare cold run it is compared with.
BACKEND_EXTRA = ["--lambda-bootstrap", "--lambda-function-idle-seconds=0"]
#: The function's entrypoint in bootstrap mode (docs/bootstrap.md), for the bare floors.
BOOTSTRAP_ENTRYPOINT = "/opt/sockerless/bootstrap"
#: How long a ``docker logs -f`` container waits before its first line, so that the follower is there.
FOLLOWER_HEAD_START = 1
STREAM_TIMEOUT = 300.0
VARIANTS = ("backend", "bare warm", "bare cold")


def job(lines: int, gap: float) -> str:
    """``lines`` lines ``<n> <unix ns when made>``, ``gap`` seconds apart."""
    return f'i=1; while [ $i -le {lines} ]; do echo "$i $(date +%s%N)"; sleep {gap:g}; i=$((i + 1)); done'


# ---------------------------------------------------------------------------- 1. line latency


@define
class Latency:
    """What one client received: latencies (ms) of the live lines, and whether every line came, in order."""

    client: str
    latencies_ms: list[float]
    received: int
    expected: int
    in_order: bool
    backlog: int  # lines left out: printed before the follower's first line arrived
    error: str = ""
    #: From the command's end (its last line's stamp + the pause after it) to the client's exit.
    exit_ms: float = float("nan")

    @property
    def complete(self) -> bool:
        return self.in_order and self.received == self.expected and not self.error


def line_latency(
    client: str, arrivals: Sequence[tuple[str, int]], expected: int, *, live_after_first: bool
) -> Latency:
    """Latencies of ``arrivals`` (a line's text and when it arrived, unix ns), lines as :func:`job` makes
    them. ``live_after_first``: only lines made after the first arrival count (a follower's backlog)."""
    numbers: list[int] = []
    latencies: list[float] = []
    backlog = 0
    live_from = arrivals[0][1] if arrivals and live_after_first else 0
    for text, arrived in arrivals:
        number, _, made = text.partition(" ")
        if not (number.isdigit() and made.isdigit()):
            return Latency(client, latencies, len(arrivals), expected, False, backlog, f"stray line {text!r}")
        numbers.append(int(number))
        if int(made) < live_from:
            backlog += 1
        else:
            latencies.append((arrived - int(made)) / 1e6)
    in_order = numbers == list(range(1, len(numbers) + 1))
    return Latency(client, latencies, len(arrivals), expected, in_order, backlog)


def _exit_ms(arrivals: Sequence[tuple[str, int]], ended: int, gap: float) -> float:
    """Ms from the end of a :func:`job` (its last line's stamp and the pause after it) to ``ended``."""
    made = arrivals[-1][0].partition(" ")[2] if arrivals else ""
    return (ended - int(made)) / 1e6 - gap * 1000 if made.isdigit() else float("nan")


async def _stream_lines(cli: DockerCLI, args: Sequence[str]) -> tuple[list[tuple[str, int]], int, str]:
    """``docker ARGS``, its stdout read line by line as it comes: each line with its arrival time (unix
    ns), when the command exited (unix ns), and an error (exit status and stderr) when it failed or ran
    over its time."""
    process = await asyncio.create_subprocess_exec(
        DOCKER,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli.env,
        start_new_session=True,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    errors = asyncio.ensure_future(process.stderr.read())
    arrivals: list[tuple[str, int]] = []
    error = ""
    ended = 0
    try:
        async with asyncio.timeout(STREAM_TIMEOUT):
            while raw := await process.stdout.readline():
                arrivals.append((raw.decode(errors="replace").rstrip("\n"), time.time_ns()))
            code = await process.wait()
            ended = time.time_ns()
            stderr = (await errors).decode(errors="replace").strip()
        if code != 0:
            error = f"docker {args[0]}: exit {code}: {stderr[-300:]}"
    except TimeoutError:
        error = f"docker {args[0]}: ran over {STREAM_TIMEOUT:g} s"
    finally:
        await stop_process(process, signal.SIGKILL, grace=5)
        errors.cancel()
    return arrivals, ended, error


async def measure_attached(cli: DockerCLI, lines: int, gap: float) -> Latency:
    arrivals, ended, error = await _stream_lines(cli, ["run", "--rm", IMAGE, "sh", "-c", job(lines, gap)])
    latency = line_latency("`docker run --rm` (attached)", arrivals, lines, live_after_first=False)
    latency.error = latency.error or error
    latency.exit_ms = _exit_ms(arrivals, ended, gap)
    return latency


async def measure_follower(cli: DockerCLI, lines: int, gap: float) -> Latency:
    command = f"sleep {FOLLOWER_HEAD_START}; {job(lines, gap)}"
    container_id = (await cli.checked("run", "-d", IMAGE, "sh", "-c", command)).strip()
    try:
        arrivals, ended, error = await _stream_lines(cli, ["logs", "-f", container_id])
    finally:
        await cli("rm", "-f", container_id)
    latency = line_latency("`docker logs -f` (of `docker run -d`)", arrivals, lines, live_after_first=True)
    latency.error = latency.error or error
    latency.exit_ms = _exit_ms(arrivals, ended, gap)
    return latency


# ---------------------------------------------------------------------------- 2. lifecycle overhead


def _payload(name: str) -> bytes:
    """The invocation payload v1 (docs/bootstrap.md) the backend sends for ``echo hi``."""
    run = f"{name}-{uuid.uuid4().hex[:8]}"
    return json.dumps({"v": 1, "container": name, "run": run, "argv": COMMAND, "env": []}).encode()


def bootstrap_function_params(name: str, role_arn: str) -> dict[str, Any]:
    """The function the backend makes for a container in bootstrap mode: the bootstrap as entrypoint,
    the command in each invocation's payload."""
    params = function_params(name, role_arn, COMMAND)
    params["ImageConfig"] = {"EntryPoint": [BOOTSTRAP_ENTRYPOINT]}
    return params


async def invoke_stream(lam: LambdaClients, name: str, payload: bytes | None = None) -> None:
    """One InvokeWithResponseStream read to its end (``payload``: the run's, by default ``echo hi`` as
    the backend sends it for a container named ``name``); its frames must hold ``hi`` and exit status 0."""
    response = await lam.invoke.invoke_with_response_stream(
        FunctionName=name, Payload=payload if payload is not None else _payload(name)
    )
    body = b""
    complete: dict[str, Any] = {}
    async for event in response["EventStream"]:
        if "PayloadChunk" in event:
            body += event["PayloadChunk"]["Payload"]
        elif "InvokeComplete" in event:
            complete = event["InvokeComplete"]
    frames, rest = decode_frames(body)
    stdout = b"".join(data for stream, data in frames if stream == 1)
    exits = [json.loads(data) for stream, data in frames if stream == 255]
    if complete.get("ErrorCode") or rest or stdout != OUTPUT or [e.get("status") for e in exits] != [0]:
        raise AssertionError(f"bare InvokeWithResponseStream of {name}: {complete} {frames!r} {rest!r}")


class _Laps:
    def __init__(self, phases: Phases) -> None:
        self._phases, self._last = phases, time.perf_counter()

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        self._phases[phase].append(now - self._last)
        self._last = now


async def bare_warm(lam: LambdaClients, name: str, phases: Phases) -> None:
    lap = _Laps(phases)
    await invoke_stream(lam, name)
    lap("invoke stream")


async def bare_cold(lam: LambdaClients, role_arn: str, phases: Phases) -> None:
    """CreateFunction (new functions are Active at once here), InvokeWithResponseStream, DeleteFunction."""
    name = f"bare-{uuid.uuid4().hex[:24]}"
    lap = _Laps(phases)
    await lam.control.create_function(**bootstrap_function_params(name, role_arn))
    lap("create")
    await invoke_stream(lam, name)
    lap("invoke stream")
    await lam.control.delete_function(FunctionName=name)
    lap("delete")


async def measure_lifecycles(
    client: BackendClient, lam: LambdaClients, role_arn: str, rounds: int
) -> tuple[dict[str, list[float]], dict[str, Phases]]:
    """``rounds`` interleaved rounds of the three variants: seconds per variant and round, and phases."""
    warm_name = f"bare-warm-{uuid.uuid4().hex[:16]}"
    await lam.control.create_function(**bootstrap_function_params(warm_name, role_arn))
    phases: dict[str, Phases] = {variant: defaultdict(list) for variant in VARIANTS}
    runs: dict[str, Callable[[Phases], Awaitable[None]]] = {
        "backend": lambda laps: backend_lifecycle(client, laps),
        "bare warm": lambda laps: bare_warm(lam, warm_name, laps),
        "bare cold": lambda laps: bare_cold(lam, role_arn, laps),
    }
    for variant in VARIANTS:  # connections, the warm function's environment, caches
        await runs[variant](defaultdict(list))

    async def timed(variant: str) -> float:
        began = time.perf_counter()
        await runs[variant](phases[variant])
        return time.perf_counter() - began

    samples = await interleave(rounds, lambda _: VARIANTS, timed)
    with contextlib.suppress(Exception):  # the simulator goes at the end anyway
        await lam.control.delete_function(FunctionName=warm_name)
    return {variant: [sample[variant] for sample in samples] for variant in VARIANTS}, phases


async def backend_calls(client: BackendClient, sim: Simulator) -> dict[str, int]:
    """The AWS calls of one more backend lifecycle, its DeleteFunction (which follows the remove in the
    background) included: they show it ran through InvokeWithResponseStream."""
    before = await sim.calls()
    await backend_lifecycle(client, defaultdict(list))
    deadline = time.monotonic() + 30
    while True:
        calls = diff_calls(await sim.calls(), before)
        if calls.get("lambda:DeleteFunction", 0) >= 1 or time.monotonic() > deadline:
            return calls
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------- the item


async def run(*, lines: int = 400, gap: float = 0.02, rounds: int = 30) -> ItemResult:
    result = ItemResult(
        "8",
        "Live output through the bootstrap",
        setup=(
            "`sockerless up` with every container run through the bootstrap (`--lambda-bootstrap`: "
            "InvokeWithResponseStream, frames to the log store and followers as they come) on a "
            "standalone simulator that runs functions as Lambda does (`--runtime-model lambda`: Init, "
            "Runtime API, warm environments; the bootstrap from the package), both otherwise with the "
            "bench's settings (the other items keep the simulator's direct model and the backend "
            "without the bootstrap). **Line latency**: the command prints "
            f"{lines} numbered lines, each with the "
            f"wall-clock time it was made (`date +%s%N`, a fork per line: the stamp is a little older "
            f"than the write, so the figure errs high), {gap * 1000:g} ms apart; this process reads the "
            "real docker CLI's stdout line by line and takes each line's arrival time (same machine, same "
            "clock). Clients: an attached `docker run --rm` (every line live) and `docker logs -f` of a "
            f"`docker run -d` container that waits {FOLLOWER_HEAD_START} s before its first line (lines "
            "made before the follower's first line arrived are left out as a possible backlog). "
            "**Lifecycle overhead** (info): an `echo hi` lifecycle (create, start, wait, logs, remove) "
            "through the internal API (`BackendClient` on the Unix socket of `sockerless up`, as the "
            "Docker frontend calls it) against a bare aiobotocore `invoke_with_response_stream` of a "
            "function with the bootstrap as entrypoint, made once (warm), with the same payload, and "
            "against a bare cold run (CreateFunction + InvokeWithResponseStream + DeleteFunction); one "
            f"at a time, {rounds} rounds in rotating order; medians of the per-round differences."
        ),
        command="python -m bench --only 8",
    )
    if not DockerCLI.installed():
        result.notes.append("skipped: the docker CLI is not installed")
        return result
    with bench_dir() as workdir:
        async with (
            Simulator(workdir, SIMULATOR_EXTRA) as sim,
            sockerless(workdir, sim, "up", extra=BACKEND_EXTRA) as served,
        ):
            cli = DockerCLI(workdir, served.docker_socket)
            async with unix_session(served.docker_socket, "http://docker") as session:
                await pull_api(session)
            clients = [await measure_attached(cli, lines, gap), await measure_follower(cli, lines, gap)]
            offset = log_size(served.log_path)
            async with BackendClient(served.url) as client, lambda_clients(sim.endpoint_url) as lam:
                times, phases = await measure_lifecycles(client, lam, sim.role_arn, rounds)
                server = access_durations(served.log_path, offset)
                calls = await backend_calls(client, sim)
    _report_latency(result, clients)
    _report_lifecycle(result, times, phases, server, calls)
    return result


def _report_latency(result: ItemResult, clients: Sequence[Latency]) -> None:
    for index, latency in enumerate(clients):
        values = latency.latencies_ms
        p50 = median(values)
        result.target(
            f"{latency.client}: line latency p50",
            f"{p50:.1f} ms (p99 {percentile(values, 99):.1f} ms, max {max(values, default=float('nan')):.1f}"
            f" ms, {len(values)} lines)",
            f"≤ {TARGET_P50_MS:g} ms",
            p50 <= TARGET_P50_MS,
        )
        result.target(
            f"{latency.client}: every line, in order",
            f"{latency.received}/{latency.expected}"
            + (f", {latency.backlog} left out as backlog" if latency.backlog else "")
            + ("" if latency.in_order else ", NOT in order")
            + (f": {latency.error}" if latency.error else ""),
            "all",
            latency.complete,
        )
        result.info(
            f"{latency.client}: the client's exit after the command's end",
            f"{latency.exit_ms:.1f} ms (from the last line's stamp and the pause after it)",
        )
        key = "attached" if index == 0 else "follower"
        result.data[f"{key}_p50_ms"] = p50
        result.data[f"{key}_p99_ms"] = percentile(values, 99)
        result.data[f"{key}_max_ms"] = max(values, default=float("nan"))
        result.data[f"{key}_count"] = len(values)
        result.data[f"{key}_complete"] = latency.complete
        result.data[f"{key}_exit_ms"] = latency.exit_ms


def _report_lifecycle(
    result: ItemResult,
    times: dict[str, list[float]],
    phases: dict[str, Phases],
    server: dict[str, list[float]],
    calls: dict[str, int],
) -> None:
    def added(floor: str) -> float:
        return median(a - b for a, b in zip(times["backend"], times[floor], strict=True)) * 1000

    def ms(variant: str) -> float:
        return median(times[variant]) * 1000

    for floor, what in (
        ("bare warm", "a bare InvokeWithResponseStream of a warm function"),
        ("bare cold", "bare CreateFunction + InvokeWithResponseStream + DeleteFunction"),
    ):
        result.info(
            f"`echo hi` lifecycle through the internal API, over {what}",
            f"{added(floor):+.1f} ms (median per round; backend {ms('backend'):.1f} ms, "
            f"bare {ms(floor):.1f} ms, {len(times[floor])} rounds)",
        )
        result.data[f"added_ms_{floor.replace(' ', '_')}"] = added(floor)
    result.info(
        "AWS calls of one backend lifecycle (the simulator's counters)",
        ", ".join(f"{operation} {count}" for operation, count in sorted(calls.items())),
    )
    result.data["backend_calls"] = calls
    rows = [
        [
            variant,
            f"{ms(variant):.1f}",
            ", ".join(f"{phase} {median(values) * 1000:.1f}" for phase, values in phases[variant].items()),
        ]
        for variant in VARIANTS
    ]
    backend_routes = {route: values for route, values in server.items() if "/internal/v1/" in route}
    rows.append(
        [
            "backend, server-side (its access log)",
            "",
            ", ".join(
                f"`{route}` {median(values):.1f}"
                for route, values in sorted(backend_routes.items(), key=lambda item: -median(item[1]))
            ),
        ]
    )
    result.tables.append(
        Table(
            "Where the time goes, one lifecycle at a time (median ms): the backend's phases as the client "
            "times them and as its access log does; the bare calls' own",
            ["variant", "total", "phases"],
            rows,
        )
    )
    cold, warm = phases["bare cold"]["invoke stream"], phases["bare warm"]["invoke stream"]
    init_ms = (median(cold) - median(warm)) * 1000
    result.notes.append(
        "The backend makes a new function per container, so each lifecycle's start pays a new execution "
        "environment (the simulator's Init: spawning the bootstrap until its first `/next`), as the bare "
        f"cold run does: its InvokeWithResponseStream took {init_ms:.0f} ms more than the warm one's "
        "(medians). What the backend adds over the bare cold run is its own work: its store, records and "
        "log lines, the internal API's requests, and the frames fed to the log store; its remove answers "
        "before its DeleteFunction, which follows in the background, where the bare cold run waits for "
        "its DeleteFunction."
    )
