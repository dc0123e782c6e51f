"""Item 9's measurements (see ``bench/item9_images.py`` for the method): bursts of ``docker run`` through
the real docker CLI with the simulator's call counters, and warm runs through the Docker API against a
bare ``invoke_with_response_stream`` of the same function."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping

import aiohttp
from attrs import define

from sockerless.models import ContainerConfig
from sockerless.wire import structure
from sockerless_lambda.bootstrap.payload import build_payload, run_command

from .aws import LambdaClients
from .common import IMAGE, access_durations, cpu_seconds, interleave, log_size
from .docker_cli import API_VERSION, DockerCLI, run_api
from .item8_live_output import invoke_stream
from .lifecycles import COMMAND, OUTPUT
from .processes import Simulator, diff_calls, unix_session

__all__ = [
    "Burst",
    "Phases",
    "Pinned",
    "WarmFigures",
    "burst",
    "control_plane",
    "measure_warm",
    "pin",
]

VARIANTS = ("run", "bare")
#: The Lambda operations that are not control-plane calls.
_INVOKES = ("lambda:Invoke", "lambda:InvokeWithResponseStream", "lambda:InvokeAsync")
_SETTLE_SECONDS = 120.0


def control_plane(calls: Mapping[str, int]) -> dict[str, int]:
    """The Lambda control-plane calls among the simulator's counters (every Lambda operation but invokes)."""
    return {
        key: count
        for key, count in sorted(calls.items())
        if key.startswith("lambda:") and key not in _INVOKES and count
    }


# ---------------------------------------------------------------------------- 1. bursts


@define
class Burst:
    count: int
    seconds: float  # first launch → last exit
    first_exit: float
    ok: int
    failures: list[str]
    calls: dict[str, int]  # control-plane calls, settled


async def _settled_calls(sim: Simulator, before: Mapping[str, int]) -> dict[str, int]:
    """The control-plane calls since ``before``, once settled: the deletes that follow removals in the
    background caught up with the creates and nothing changed for a second, or (a version that keeps
    its functions) nothing changed for five; at the latest after two minutes."""
    deadline = time.monotonic() + _SETTLE_SECONDS
    unchanged = 0
    last: dict[str, int] | None = None
    while True:
        calls = control_plane(diff_calls(await sim.calls(), before))
        unchanged = unchanged + 1 if calls == last else 0
        caught_up = calls.get("lambda:DeleteFunction", 0) >= calls.get("lambda:CreateFunction", 0)
        if (caught_up and unchanged >= 1) or unchanged >= 5 or time.monotonic() > deadline:
            return calls
        last = calls
        await asyncio.sleep(1.0)


async def burst(cli: DockerCLI, sim: Simulator, count: int) -> Burst:
    before = await sim.calls()
    began = time.perf_counter()

    async def one() -> tuple[float, str]:
        code, out, err = await cli("run", "--rm", IMAGE, *COMMAND, timeout=600)
        ended = time.perf_counter() - began
        fine = code == 0 and out.encode() == OUTPUT
        return ended, "" if fine else f"exit {code}, output {out[-80:]!r}, {err.strip()[-200:]!r}"

    results = await asyncio.gather(*(one() for _ in range(count)))
    ends = [ended for ended, _ in results]
    failures = [failure for _, failure in results if failure]
    calls = await _settled_calls(sim, before)
    return Burst(count, max(ends), min(ends), count - len(failures), failures, calls)


# ---------------------------------------------------------------------------- 2. warm run vs bare


async def _function_of(lam: LambdaClients, container_id: str, inspected: str) -> str:
    """The function that runs ``container_id``: the one its inspect names (a label or a field), else
    the one named after it (one per container), else the only function there is (one per image
    configuration)."""
    names: list[str] = []
    async for page in lam.control.get_paginator("list_functions").paginate():
        names += [str(function["FunctionName"]) for function in page.get("Functions", ())]
    for found in (
        [name for name in names if f'"{name}"' in inspected or f":function:{name}" in inspected],
        [name for name in names if container_id[:24] in name],
        names,
    ):
        if len(found) == 1:
            return found[0]
    raise AssertionError(f"cannot tell the function of container {container_id} among {names}")


async def _wait_active(lam: LambdaClients, name: str) -> None:
    deadline = time.monotonic() + 120
    while (await lam.control.get_function_configuration(FunctionName=name)).get("State") != "Active":
        if time.monotonic() > deadline:
            raise AssertionError(f"function {name} not Active after 120 s")
        await asyncio.sleep(0.2)


@define
class Pinned:
    """The kept container, its function, and the payload the backend sends for its runs."""

    container_id: str
    function: str
    payload: Callable[[], bytes]


async def pin(session: aiohttp.ClientSession, lam: LambdaClients) -> Pinned:
    """A container of the image created and kept: its function exists (made now, or shared) and Active."""
    body = {"Image": IMAGE, "Cmd": COMMAND}
    async with session.post(f"/{API_VERSION}/containers/create", json=body) as response:
        response.raise_for_status()
        container_id = str((await response.json())["Id"])
    async with session.get(f"/{API_VERSION}/containers/{container_id}/json") as response:
        response.raise_for_status()
        text = await response.text()
    inspected = json.loads(text)
    config = structure(inspected["Config"], ContainerConfig)
    command = run_command(config, container_id)
    function = await _function_of(lam, container_id, text)
    await _wait_active(lam, function)

    def payload() -> bytes:
        return build_payload(
            command, container_id=container_id, run=f"{container_id}-bare-{uuid.uuid4().hex}"
        )

    return Pinned(container_id, function, payload)


Phases = defaultdict[str, list[float]]


def _laps(phases: Phases) -> Callable[[str], None]:
    last = time.perf_counter()

    def lap(phase: str) -> None:
        nonlocal last
        now = time.perf_counter()
        phases[phase].append(now - last)
        last = now

    return lap


async def _batch(level: int, one: Callable[[], Awaitable[None]]) -> float:
    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(level)))
    return time.perf_counter() - began


@define
class WarmFigures:
    times: dict[int, dict[str, list[float]]]  # level → variant → batch seconds per round
    phases: Phases  # run at N=1, client-side
    server: dict[str, list[float]]  # run at N=1, access-log ms per route
    cli_times: list[float]  # the docker CLI's run at N=1, with bare rounds beside
    cli_bare: list[float]
    calls: dict[str, int]  # control-plane calls during the warm rounds
    #: level → variant → process ("product", "simulator", "client") → CPU seconds over all its rounds
    cpu: dict[int, dict[str, dict[str, float]]]


async def measure_warm(
    cli: DockerCLI,
    docker_socket: str,
    log_path: str,
    sim: Simulator,
    lam: LambdaClients,
    pinned: Pinned,
    rounds: Mapping[int, int],
    cli_rounds: int,
    product_pid: int,
) -> WarmFigures:
    phases: Phases = defaultdict(list)
    pids = {"product": product_pid, "simulator": sim.pid, "client": None}
    cpu: dict[int, dict[str, dict[str, float]]] = {}
    async with unix_session(docker_socket, "http://docker") as session:

        async def run_one(laps: Callable[[str], None]) -> None:
            status, output = await run_api(session, docker_socket, COMMAND, laps)
            if status != 0 or output != OUTPUT:
                raise AssertionError(f"warm run: exit {status}, output {output!r}")

        async def bare_one() -> None:
            await invoke_stream(lam, pinned.function, pinned.payload())

        await run_one(lambda _: None)  # connections, the function's environment, caches
        await bare_one()
        before = await sim.calls()
        times: dict[int, dict[str, list[float]]] = {}
        server: dict[str, list[float]] = {}
        for level in sorted(rounds):
            offset = log_size(log_path)
            timed_phases = phases if level == 1 else defaultdict(list)

            used = cpu.setdefault(level, {variant: dict.fromkeys(pids, 0.0) for variant in VARIANTS})

            async def measure(
                variant: str,
                level: int = level,
                laps: Phases = timed_phases,
                used: dict[str, dict[str, float]] = used,
            ) -> float:
                # Each batch runs alone (rounds interleave, batches never overlap): the CPU the
                # processes used meanwhile is the batch's. The simulator's execution environments (its
                # child processes) are not counted: the same for both variants.
                before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                if variant == "run":
                    seconds = await _batch(level, lambda: run_one(_laps(laps)))
                else:
                    seconds = await _batch(level, bare_one)
                for name, pid in pids.items():
                    used[variant][name] += cpu_seconds(pid) - before[name]
                return seconds

            # The function's environments for this many at once, made before the timed rounds (the
            # bare batch makes them; the runs share them where the version shares the function).
            await _batch(level, bare_one)
            samples = await interleave(rounds[level], lambda _: VARIANTS, measure)
            times[level] = {variant: [sample[variant] for sample in samples] for variant in VARIANTS}
            if level == 1:
                server = access_durations(log_path, offset)

        async def measure_cli(variant: str) -> float:
            began = time.perf_counter()
            if variant == "bare":
                await bare_one()
            else:
                code, out, err = await cli("run", "--rm", IMAGE, *COMMAND)
                if code != 0 or out.encode() != OUTPUT:
                    raise AssertionError(f"docker run: exit {code}, {out!r} {err.strip()[-200:]}")
            return time.perf_counter() - began

        cli_samples = await interleave(cli_rounds, lambda _: ("cli", "bare"), measure_cli)
        calls = await _settled_calls(sim, before)
    return WarmFigures(
        times, phases, server, [s["cli"] for s in cli_samples], [s["bare"] for s in cli_samples], calls, cpu
    )
