"""Crashes lose nothing.

* The backend (``sockerless serve lambda``, a process of its own) is SIGKILLed at seeded points of
  many concurrent container lifecycles (during create, right after CreateFunction, mid-invocation,
  during remove) and restarted on the same SQLite file, round after round. The simulator runs in
  another process and survives. After each restart: every container whose create got a 201 is there
  (unless its removal was asked for), none stays ``running`` past the recovery deadline, no function
  ran twice, every function tagged with this instance is in the store or reported by
  ``sockerless-backend-lambda orphans``, and the file passes ``PRAGMA integrity_check``.
* The simulator dies (SIGKILL) and comes back on the same port while the backend runs: meanwhile
  every request is answered promptly with a clean status (never a 500, never a hang), and the
  backend works again once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite
import attrs
import pytest

from sockerless.cli import instance_id_for
from sockerless.config import load_settings
from tests.reliability.processes import (
    IMAGE,
    BackendProcess,
    SimulatorProcess,
    base_environment,
    eventually,
    integrity_check,
    lambda_flags,
    reported_orphans,
)

#: Function timeout and recovery margin given to the backend (lambda_flags): a run whose answer is
#: lost is settled from CloudWatch at most this long after it started, plus a read interval.
RECOVERY_BOUND = 5 + 2 + 10
PHASES = ("create", "after-create", "invocation", "remove")
INSTANCE_TAG = "sockerless:instance"
#: What a request may answer while the cloud is unreachable: anything but a 500.
CLEAN = {200, 201, 204, 304, 404, 409, 502, 503, 504}
#: The longest any request may take while the cloud is unreachable (retries included).
OUTAGE_ANSWER_SECONDS = 15.0


# ---------------------------------------------------------------------------- the store setting


async def test_the_store_synchronous_setting_reaches_sqlite(
    lambda_simulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``store.synchronous`` goes from the settings, through the backend and the store (which take the
    ``store`` section whole), to the ``PRAGMA`` SQLite runs on the state file's connection."""
    from sockerless import cli
    from sockerless.store import database
    from sockerless_lambda.backend import LambdaBackend
    from sockerless_lambda.config import LambdaConfig

    statements: list[str] = []
    connect = aiosqlite.connect

    async def tracing_connect(path: str, **options: Any) -> aiosqlite.Connection:
        connection = await connect(path, **options)
        await connection.set_trace_callback(statements.append)  # what SQLite itself is asked to run
        return connection

    monkeypatch.setattr(database.aiosqlite, "connect", tracing_connect)
    settings = load_settings(
        backend_name="lambda",
        backend_section=LambdaConfig,
        environ={},
        flags={
            "store.path": str(tmp_path / "state.sqlite3"),
            "store.synchronous": "full",
            "lambda.region": lambda_simulator.region,
            "lambda.role_arn": lambda_simulator.role_arn,
            "lambda.endpoint_url": lambda_simulator.endpoint_url,
        },
    )
    backend = cli._backend(LambdaBackend, settings)
    await backend.start()
    await backend.close()
    assert [s for s in statements if s.startswith("PRAGMA synchronous")] == ["PRAGMA synchronous = FULL"]


# ---------------------------------------------------------------------------- backend crashes


@attrs.define
class Lifecycle:
    """One container's plan and what the client was told (only confirmed answers count)."""

    name: str
    delay: float  # seconds after the round begins: lifecycles are spread over every stage at the kill
    exit_code: int
    start: bool
    remove: bool
    #: Its image configuration's memory, different for every lifecycle: a function of its own (shared
    #: functions are one per configuration), told apart from the others by its MemorySize.
    memory_mb: int = 128
    id: str = ""
    started: bool = False  # the start got its 204
    remove_sent: bool = False
    removed: bool = False
    waited: int | None = None


@attrs.define
class CrashFigures:
    kills: int = 0
    lifecycles: int = 0
    created: int = 0
    survivors_checked: int = 0
    recovered_exits: int = 0
    settled_across_the_kill: int = 0  # started (204) but not seen exiting before the kill
    unknown_exits: int = 0
    orphans_reported: int = 0
    phases: Counter[str] = attrs.Factory(Counter)
    runs_in_flight_at_kills: list[int] = attrs.Factory(list)  # the invocation phase's kills


async def _lifecycle(backend: BackendProcess, plan: Lifecycle) -> None:
    """create → start → wait → remove, as far as the plan says and the backend lives."""
    await asyncio.sleep(plan.delay)
    body = {
        "Image": IMAGE,
        "Cmd": ["sh", "-c", f"sleep 1; exit {plan.exit_code}"],
        "HostConfig": {"Memory": plan.memory_mb * 1024 * 1024},
    }
    status, answer, _ = await backend.call("POST", "/containers", params={"name": plan.name}, json=body)
    assert status == 201, answer
    plan.id = answer["Id"]
    if not plan.start:
        return
    status, answer, _ = await backend.call("POST", f"/containers/{plan.id}/start")
    assert status == 204, answer
    plan.started = True
    status, answer, _ = await backend.call("POST", f"/containers/{plan.id}/wait", timeout=60)
    assert status == 200, answer
    plan.waited = answer["StatusCode"]
    if not plan.remove:
        return
    plan.remove_sent = True
    status, answer, _ = await backend.call("DELETE", f"/containers/{plan.id}")
    assert status == 204, answer
    plan.removed = True


async def _crash_round(
    backend: BackendProcess, simulator: SimulatorProcess, plans: list[Lifecycle], phase: str, threshold: int
) -> int:
    """Run the lifecycles; SIGKILL the backend when the phase's trigger is reached. Returns how many runs
    were in flight then."""
    if phase == "create":
        await simulator.add_fault(kind="latency", operation="lambda:CreateFunction", latency_ms=400)
    elif phase == "remove":
        await simulator.add_fault(kind="latency", operation="lambda:DeleteFunction", latency_ms=400)
    before = await simulator.stats()

    def count(stats: dict[str, Any]) -> int:
        if phase == "invocation":
            key, kind = "started", "invocations"
        else:
            key, kind = ("lambda:DeleteFunction" if phase == "remove" else "lambda:CreateFunction"), "calls"
        return int(stats[kind].get(key, 0)) - int(before[kind].get(key, 0))

    work = [asyncio.create_task(_lifecycle(backend, plan)) for plan in plans]

    running = 0

    async def triggered() -> bool:
        nonlocal running
        # A remove is answered before its DeleteFunction, which the control-plane pacer may still hold
        # back: the remove trigger can come after every lifecycle ended (bounded by the timeout).
        if phase != "remove" and all(task.done() for task in work):
            raise AssertionError(f"every lifecycle ended before the {phase} trigger ({threshold})")
        stats = await simulator.stats()
        running = int(stats["invocations"]["running"])
        # Mid-invocation: the threshold-th run has started and runs are in flight. (How many run at once
        # depends on how fast creates go, so the trigger counts runs started, as the others count calls.)
        return count(stats) >= threshold and (phase != "invocation" or running > 0)

    await eventually(triggered, timeout=60, every=0.01, what=f"the {phase} trigger")
    await backend.kill()
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:  # a lifecycle ends normally or because the backend died under it
        if isinstance(result, BaseException) and not isinstance(
            result, aiohttp.ClientError | asyncio.TimeoutError
        ):
            raise result
    await simulator.clear_faults()
    return running


async def _check_after_restart(
    backend: BackendProcess,
    simulator: SimulatorProcess,
    plans: list[Lifecycle],
    state_path: str,
    env: dict[str, str],
    figures: CrashFigures,
) -> None:
    async def settled() -> bool:
        return not any(c["State"] in ("running", "removing") for c in await backend.containers())

    await eventually(settled, timeout=RECOVERY_BOUND, every=0.2, what="no container running")
    containers = {c["Id"]: c for c in await backend.containers()}
    by_memory = await _functions_by_memory(simulator)
    function_of = {
        container_id: by_memory.get(await _memory_mb(backend, container_id), "")
        for container_id in containers
    }
    function_of.update({plan.id: by_memory.get(plan.memory_mb, "") for plan in plans if plan.id})
    runs = await simulator.runs_by_function()
    assert max(runs.values(), default=0) <= 1, f"a function ran twice: {runs}"
    for plan in plans:
        if not plan.id or plan.remove_sent:
            assert not plan.removed or plan.id not in containers, f"{plan.name}: removed but present"
            continue
        figures.survivors_checked += 1
        assert plan.id in containers, f"{plan.name}: created (201) but lost after the crash"
        container = containers[plan.id]
        if plan.start and container["State"] == "exited":
            code = int(container["Status"].split("(")[1].split(")")[0])
            assert code in (plan.exit_code, 255), f"{plan.name}: exit {code}, ran {plan.exit_code}"
            # Unknown only when the Invoke never reached Lambda (persisted as sent, then the kill).
            assert code != 255 or not runs.get(function_of[plan.id]), f"{plan.name} ran, exit unknown"
            figures.recovered_exits += code == plan.exit_code
            figures.settled_across_the_kill += plan.started and plan.waited is None and code == plan.exit_code
            figures.unknown_exits += code == 255
        if plan.waited is not None:
            assert plan.waited == plan.exit_code
    stored = {function_of[container_id] for container_id in containers}
    assert await backend.terminate() == 0
    tagged = await simulator.tagged_functions(INSTANCE_TAG, instance_id_for(state_path))
    orphans = await reported_orphans(simulator, state_path, env)
    idle = _stored_shared_functions(state_path)  # known to the store, deleted when due
    assert tagged <= stored | idle | orphans, (
        f"functions leaked unreported: {sorted(tagged - stored - idle - orphans)}"
    )
    assert stored <= tagged, f"containers without their function: {sorted(stored - tagged)}"
    figures.orphans_reported = len(orphans)
    assert integrity_check(state_path) == "ok"


async def _functions_by_memory(simulator: SimulatorProcess) -> dict[int, str]:
    found: dict[int, str] = {}
    async with simulator.client("lambda") as client:
        async for page in client.get_paginator("list_functions").paginate():
            found.update({function["MemorySize"]: function["FunctionName"] for function in page["Functions"]})
    return found


async def _memory_mb(backend: BackendProcess, container_id: str) -> int:
    status, body, _ = await backend.call("GET", f"/containers/{container_id}")
    assert status == 200, body
    return int(body["HostConfig"]["Memory"]) // (1024 * 1024)


def _stored_shared_functions(state_path: str) -> set[str]:
    """The shared functions the store knows (read while the backend is stopped)."""
    connection = sqlite3.connect(state_path)
    try:
        rows = connection.execute("SELECT document FROM backend_objects").fetchall()
    finally:
        connection.close()
    return {json.loads(document)["name"] for (document,) in rows}


@pytest.mark.parametrize(
    ("lifecycles", "rounds", "seed"),
    [
        pytest.param(40, 4, 7, id="short"),
        # 321 s on 2 shared cores (control plane paced at 10/s, Pending waited out): over the suite's 300.
        pytest.param(200, 8, 11, id="long", marks=[pytest.mark.slow, pytest.mark.timeout(900)]),
    ],
)
async def test_backend_killed_at_random_points_loses_nothing(
    simulator: SimulatorProcess,
    backends: list[BackendProcess],
    tmp_path: Path,
    short_dir: Path,
    lifecycles: int,
    rounds: int,
    seed: int,
) -> None:
    rng = random.Random(seed)
    state_path, env = str(tmp_path / "state.sqlite3"), base_environment()
    # Deleted with its last container, as a function per container was (no function outlives a round).
    flags = lambda_flags(simulator, state_path, lambda_function_idle_seconds="0")
    figures = CrashFigures()
    for number in range(rounds):
        phase = PHASES[number] if number < len(PHASES) else rng.choice(PHASES)
        plans = [
            Lifecycle(
                name=f"r{number}-{index}",
                delay=rng.uniform(0, 2.0),
                exit_code=rng.randrange(7),
                start=rng.random() < 0.8,
                remove=rng.random() < (0.9 if phase == "remove" else 0.3),
                memory_mb=128 + number * lifecycles + index,
            )
            for index in range(lifecycles)
        ]
        started = sum(plan.start for plan in plans)
        removed = sum(plan.start and plan.remove for plan in plans)
        # Lifecycles begin over 2 s; each run lasts 1 s.
        low, high = {
            "create": (lifecycles // 4, lifecycles * 3 // 4),
            "after-create": (lifecycles // 4, lifecycles * 3 // 4),
            "invocation": (started // 4, started // 2),
            "remove": (removed // 4, removed * 3 // 4),
        }[phase]
        threshold = rng.randint(max(1, low), max(1, high))
        backend = BackendProcess(
            str(short_dir / "backend.sock"), flags, tmp_path / f"backend-{number}.log", env
        )
        backends.append(backend)
        await backend.start()
        running = await _crash_round(backend, simulator, plans, phase, threshold)
        if phase == "invocation":
            figures.runs_in_flight_at_kills.append(running)
        figures.kills += 1
        figures.phases[phase] += 1
        figures.lifecycles += len(plans)
        figures.created += sum(bool(plan.id) for plan in plans)
        restarted = BackendProcess(
            str(short_dir / "backend.sock"), flags, tmp_path / f"backend-{number}-restart.log", env
        )
        backends.append(restarted)
        await restarted.start()
        await _check_after_restart(restarted, simulator, plans, state_path, env, figures)
    print(f"backend crashes ({lifecycles} lifecycles, {rounds} rounds): {figures}")
    assert set(figures.phases) == set(PHASES)


# ---------------------------------------------------------------------------- the cloud dies


async def _answers_cleanly(
    backend: BackendProcess, method: str, path: str, expect: set[int], **options: Any
) -> tuple[int, float]:
    """One request while the cloud is away: a status from ``expect``, within the bound, never a 500."""
    began = time.monotonic()
    status, body, headers = await backend.call(method, path, timeout=OUTAGE_ANSWER_SECONDS, **options)
    assert status in expect, f"{method} {path}: {status} {body!r}"
    if status >= 400:
        assert headers["Content-Type"] == "application/json" and body["message"], body
    return status, time.monotonic() - began


async def _exit_of(backend: BackendProcess, container_id: str) -> tuple[int, str]:
    status, body, _ = await backend.call("GET", f"/containers/{container_id}")
    assert status == 200, body
    return int(body["State"]["ExitCode"]), str(body["State"]["Error"])


async def _run(backend: BackendProcess, command: str) -> str:
    body = {"Image": IMAGE, "Cmd": ["sh", "-c", command]}
    status, answer, _ = await backend.call("POST", "/containers", json=body)
    assert status == 201, answer
    container_id = str(answer["Id"])
    status, answer, _ = await backend.call("POST", f"/containers/{container_id}/start")
    assert status == 204, answer
    return container_id


async def _outage(
    simulator: SimulatorProcess,
    backends: list[BackendProcess],
    tmp_path: Path,
    short_dir: Path,
    *,
    containers: int,
    outages: int,
) -> dict[str, int]:
    state_path, env = str(tmp_path / "state.sqlite3"), base_environment()
    flags = lambda_flags(simulator, state_path, lambda_timeout="3")  # a lost run settles 5 s after it began
    backend = BackendProcess(str(short_dir / "backend.sock"), flags, tmp_path / "backend.log", env)
    backends.append(backend)
    await backend.start()
    figures = Counter[str]()
    for outage in range(outages):
        # Before: containers that exited, containers never started, runs in flight.
        exited, idle, running = [], [], []
        for index in range(containers):
            body = {"Image": IMAGE, "Cmd": ["sh", "-c", f"sleep {index % 3}; exit {index % 5}"]}
            status, answer, _ = await backend.call("POST", "/containers", json=body)
            assert status == 201, answer
            [exited, idle, running][index % 3].append(answer["Id"])
        for container_id in exited:
            assert (await backend.call("POST", f"/containers/{container_id}/start"))[0] == 204
            assert (await backend.call("POST", f"/containers/{container_id}/wait"))[0] == 200
        for container_id in running:
            assert (await backend.call("POST", f"/containers/{container_id}/start"))[0] == 204
        waits = [
            asyncio.create_task(backend.call("POST", f"/containers/{c}/wait", timeout=60)) for c in running
        ]

        async def invoked() -> bool:
            return int((await simulator.stats())["invocations"]["running"]) == len(running)

        await eventually(invoked, timeout=30, what="the runs in flight")
        await simulator.kill()

        # Down: every answer is prompt and clean; what needs no cloud works.
        # A create of a new image configuration needs the cloud (its CreateFunction); one of a known
        # configuration would be a store write only.
        bad_create = {"Image": IMAGE, "Cmd": ["true"], "HostConfig": {"Memory": 200 * 1024 * 1024}}
        checks = [
            _answers_cleanly(backend, "POST", "/containers", {502, 503, 504}, json=bad_create),
            _answers_cleanly(backend, "GET", "/containers", {200}, params={"all": "1"}),
            _answers_cleanly(backend, "GET", "/info", {200}),
            *(_answers_cleanly(backend, "GET", f"/containers/{c}", {200}) for c in exited[1:] + idle),
            *(
                _answers_cleanly(backend, "GET", f"/containers/{c}/logs", CLEAN, params={"stdout": "1"})
                for c in exited[1:]
            ),
            # A remove answers without the cloud: the function's deletion waits, durably, for it.
            *(_answers_cleanly(backend, "DELETE", f"/containers/{c}", {204}) for c in exited[:1]),
            *(_answers_cleanly(backend, "POST", f"/containers/{c}/start", {204}) for c in idle),
        ]
        for status, seconds in await asyncio.gather(*checks):
            figures[f"answered {status} while down"] += 1
            figures["slowest answer while down (ms)"] = max(
                figures["slowest answer while down (ms)"], round(seconds * 1000)
            )
        # A start while the cloud is away fails the run cleanly: exit 1, the reason in State.Error.
        for container_id in idle:

            async def failed(container_id: str = container_id) -> bool:
                return (await _exit_of(backend, container_id))[0] == 1

            await eventually(failed, timeout=OUTAGE_ANSWER_SECONDS, every=0.2, what="the start failing")
            assert "cannot reach AWS" in (await _exit_of(backend, container_id))[1]
        # A backend (re)started while the cloud is away starts, and serves what it has.
        assert await backend.terminate() == 0
        backend = BackendProcess(
            str(short_dir / "backend.sock"), flags, tmp_path / f"backend-down-{outage}.log", env
        )
        backends.append(backend)
        await backend.start()
        await _answers_cleanly(backend, "GET", "/containers", {200}, params={"all": "1"})

        await simulator.restart()
        # Back: the lost answers end as unknown within the bound, and everything works again.
        for wait in waits:  # their backend was replaced: the connection dropped, as clients see it
            with contextlib.suppress(aiohttp.ClientError):
                await wait
        for container_id in running:

            async def settled(container_id: str = container_id) -> bool:
                status, body, _ = await backend.call("GET", f"/containers/{container_id}")
                return status == 200 and body["State"]["Status"] == "exited"

            await eventually(settled, timeout=RECOVERY_BOUND, every=0.2, what="the lost run settling")
            code, error = await _exit_of(backend, container_id)
            figures[f"run in flight ended {code}"] += 1
            assert code == 255 and "unknown" in error, (code, error)
        new = await _run(backend, "echo back; exit 3")
        status, answer, _ = await backend.call("POST", f"/containers/{new}/wait", timeout=30)
        assert (status, answer["StatusCode"]) == (200, 3)
        for container_id in exited[1:] + idle + running + [new]:  # functions gone with moto's state: fine
            status, answer, _ = await backend.call("DELETE", f"/containers/{container_id}")
            assert status == 204, answer
        assert await backend.containers() == []
    assert await backend.terminate() == 0
    assert integrity_check(state_path) == "ok"
    return dict(figures)


async def test_the_simulator_dying_and_coming_back(
    simulator: SimulatorProcess, backends: list[BackendProcess], tmp_path: Path, short_dir: Path
) -> None:
    figures = await _outage(simulator, backends, tmp_path, short_dir, containers=6, outages=1)
    print(f"simulator outages: {figures}")


@pytest.mark.slow
async def test_the_simulator_dying_and_coming_back_long(
    simulator: SimulatorProcess, backends: list[BackendProcess], tmp_path: Path, short_dir: Path
) -> None:
    figures = await _outage(simulator, backends, tmp_path, short_dir, containers=60, outages=4)
    print(f"simulator outages (long): {figures}")
