"""SIGTERM drains: ``sockerless serve lambda`` (a process of its own, on the simulator) stops accepting,
lets runs and requests in flight (a create, waits, followed logs) finish within
``server.shutdown_grace``, then ends the waits and follows that outlast it cleanly (a wait answers why
it ends without the exit, a follow ends after the output there was), cuts what is left, writes every
log line it queued, and exits 0 within the grace period. The next start
finds a consistent store: an invocation still running at the shutdown is settled to its true exit code
(read from CloudWatch, never invoked again), a create cut at the deadline is finished or reported,
never lost silently.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sockerless.streams import decode_frames
from tests.lambda_settings import simulator_client_options
from tests.reliability.processes import (
    API,
    IMAGE,
    BackendProcess,
    base_environment,
    eventually,
    integrity_check,
    lambda_flags,
    reported_orphans,
)

GRACE = 2.0
FOLLOW = {"stdout": "1", "stderr": "1", "follow": "1"}
#: SIGTERM to exit: the grace period (cancelling what is left included), plus closing the backend.
EXIT_BOUND = GRACE + 1.0


async def _serve(simulator: Any, tmp_path: Path, short_dir: Path, log: str) -> BackendProcess:
    flags = lambda_flags(
        simulator, str(tmp_path / "state.sqlite3"), server_shutdown_grace=str(GRACE), lambda_timeout="30"
    )
    backend = BackendProcess(str(short_dir / "backend.sock"), flags, tmp_path / log, base_environment())
    return await backend.start()


_CONFIGURATIONS = itertools.count(1)


async def _create(backend: BackendProcess, command: str, **options: Any) -> str:
    """A container of an image configuration of its own (its memory): its create makes a CreateFunction
    of its own, which the tests catch in flight (shared functions are one per configuration)."""
    memory = (128 + next(_CONFIGURATIONS)) * 1024 * 1024
    body = {"Image": IMAGE, "Cmd": ["sh", "-c", command], "HostConfig": {"Memory": memory}}
    status, answer, _ = await backend.call("POST", "/containers", json=body, **options)
    assert status == 201, answer
    return str(answer["Id"])


async def _opened(backend: BackendProcess, method: str, path: str, **options: Any) -> aiohttp.ClientResponse:
    """A request whose answer streams (a wait, a followed log), once its headers have come."""
    async with asyncio.timeout(10):
        response = await backend.session.request(method, API + path, **options)
    assert response.status == 200, await response.text()
    return response


def _log_records(backend: BackendProcess) -> list[dict[str, Any]]:
    """The backend's JSON log lines (its output file also holds what Python itself wrote)."""
    return [json.loads(line) for line in backend.log_text().splitlines() if line.startswith("{")]


async def _sigterm(backend: BackendProcess) -> tuple[int, float]:
    assert backend.process is not None
    began = time.monotonic()
    backend.process.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(backend.process.wait(), 30)
    return code, time.monotonic() - began


async def test_sigterm_drains_what_is_in_flight_and_the_next_start_settles_the_rest(
    lambda_simulator: Any, tmp_path: Path, short_dir: Path
) -> None:
    backend = await _serve(lambda_simulator, tmp_path, short_dir, "backend.log")
    restarted: BackendProcess | None = None
    try:
        outlasting = await _create(backend, "sleep 6; echo late; exit 7")  # runs past the grace period
        quick = await _create(backend, "sleep 1; echo quick; exit 2")  # ends within it
        for container_id in (outlasting, quick):
            assert (await backend.call("POST", f"/containers/{container_id}/start"))[0] == 204

        async def both_running() -> bool:
            return lambda_simulator.stats.running == 2

        await eventually(both_running, timeout=20, what="both invocations running")
        # Waits and followed logs (the backend serves those) answer their headers at once: each is in
        # flight once they are here, and lasts as long as its run.
        quick_wait = await _opened(backend, "POST", f"/containers/{quick}/wait")
        long_wait = await _opened(backend, "POST", f"/containers/{outlasting}/wait")
        quick_follow = await _opened(backend, "GET", f"/containers/{quick}/logs", params=FOLLOW)
        long_follow = await _opened(backend, "GET", f"/containers/{outlasting}/logs", params=FOLLOW)
        lambda_simulator.add_fault(
            {"kind": "latency", "operation": "lambda:CreateFunction", "latency_ms": 1000}
        )
        creates_before = lambda_simulator.stats.snapshot()["calls"].get("lambda:CreateFunction", 0)
        creating = asyncio.ensure_future(_create(backend, "exit 0"))

        async def create_in_flight() -> bool:
            return lambda_simulator.stats.snapshot()["calls"].get("lambda:CreateFunction", 0) > creates_before

        await eventually(create_in_flight, timeout=10, what="the create reaching Lambda")

        code, took = await _sigterm(backend)
        print(f"shutdown: exit {code} {took:.2f} s after SIGTERM (grace {GRACE} s)")
        assert code == 0, backend.log_text()[-2000:]
        assert took < EXIT_BOUND, f"exited {took:.1f} s after SIGTERM (grace {GRACE} s)"
        created = await creating  # drained: its 201 came back
        assert json.loads(await quick_wait.read()) == {"StatusCode": 2}
        assert decode_frames(await quick_follow.read()) == ([(1, b"quick\n")], b"")  # its output, whole
        # Released at the end of the grace period, cleanly: the container still runs in Lambda, so the
        # wait says it ends without the exit, and the follow ends after the output there was.
        answer = json.loads(await long_wait.read())
        assert answer["StatusCode"] == -1 and "sockerless is stopping" in answer["Error"]["Message"], answer
        assert decode_frames(await long_follow.read()) == ([], b"")
        # The log writer thread wrote everything before the process exited, the last line included.
        records = _log_records(backend)
        assert any(r["message"] == "request" and r["status"] == 201 for r in records)  # the drained create
        assert records[-1]["message"] == "stopped", records[-3:]
        with pytest.raises(aiohttp.ClientError):
            await backend.call("GET", "/containers")  # nobody listens any more

        lambda_simulator.clear_faults()
        restarted = await _serve(lambda_simulator, tmp_path, short_dir, "backend-restarted.log")

        async def settled() -> bool:
            status, body, _ = await restarted.call("GET", f"/containers/{outlasting}")
            return status == 200 and body["State"]["Status"] == "exited"

        await eventually(settled, timeout=30, every=0.2, what="the outlasting run settling")
        state = (await restarted.call("GET", f"/containers/{outlasting}"))[1]["State"]
        assert (state["ExitCode"], state["Error"]) == (7, "")
        status, output, _ = await restarted.call(
            "GET", f"/containers/{outlasting}/logs", params={"stdout": "1"}
        )
        assert status == 200 and output.endswith(b"late\n")
        assert {c["Id"] for c in await restarted.containers()} == {outlasting, quick, created}
        assert lambda_simulator.stats.snapshot()["invocations"]["started"] == 2  # nothing ran twice
        assert await restarted.terminate() == 0
        assert integrity_check(str(tmp_path / "state.sqlite3")) == "ok"
    finally:
        for process in (backend, restarted):
            if process is not None:
                await process.kill()


async def test_a_create_that_outlasts_the_grace_period_is_cut_and_accounted_for(
    lambda_simulator: Any, tmp_path: Path, short_dir: Path
) -> None:
    state_path = str(tmp_path / "state.sqlite3")
    backend = await _serve(lambda_simulator, tmp_path, short_dir, "backend.log")
    restarted: BackendProcess | None = None
    try:
        lambda_simulator.add_fault(
            {"kind": "latency", "operation": "lambda:CreateFunction", "latency_ms": int(GRACE * 1000) + 3000}
        )
        creating = asyncio.ensure_future(_create(backend, "exit 0"))

        async def create_in_flight() -> bool:
            return lambda_simulator.stats.snapshot()["calls"].get("lambda:CreateFunction", 0) > 0

        await eventually(create_in_flight, timeout=10, what="the create reaching Lambda")
        code, took = await _sigterm(backend)
        print(f"shutdown with a create outlasting the grace: exit {code} {took:.2f} s after SIGTERM")
        assert code == 0, backend.log_text()[-2000:]
        assert took < EXIT_BOUND, f"exited {took:.1f} s after SIGTERM (grace {GRACE} s)"
        assert "cancelled state changes still in flight" in backend.log_text()
        with pytest.raises(aiohttp.ClientError):
            await creating  # no 201: the client knows it did not get a container

        lambda_simulator.clear_faults()
        restarted = await _serve(lambda_simulator, tmp_path, short_dir, "backend-restarted.log")
        stored = {"skls-" + c["Id"][:24] for c in await restarted.containers()}
        assert await restarted.terminate() == 0
        # The cut CreateFunction may or may not have reached Lambda (here it did not: the simulator reads
        # the body after the delay). Either way its function is in the store or reported, and no record
        # is left half-created.
        functions = await lambda_simulator_functions(lambda_simulator)
        orphans = await reported_orphans(lambda_simulator, state_path, base_environment())
        assert functions <= stored | orphans
        assert stored <= functions
        assert integrity_check(state_path) == "ok"
    finally:
        for process in (backend, restarted):
            if process is not None:
                await process.kill()


async def lambda_simulator_functions(simulator: Any) -> set[str]:
    from aiobotocore.session import get_session

    options = simulator_client_options(simulator)
    async with get_session().create_client("lambda", **options) as client:
        return {function["FunctionName"] for function in (await client.list_functions())["Functions"]}
