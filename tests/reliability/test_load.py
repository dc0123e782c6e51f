"""Load: a thousand requests at once, all answered, with back-pressure instead of failure.

``sockerless serve lambda`` runs as a process of its own on the simulator with
``server.max_inflight_requests=64``, and CreateFunction slowed down so that creates hold their slots.
A burst of 1 000 concurrent internal-API requests (inspect, list, create, logs) is answered in full:
each request gets its answer or ``503`` with ``Retry-After``, while waits sent with it are never
refused; a client that honours ``Retry-After`` gets everything done. The backend's resident memory is
measured around repeated bursts: it grows by a bounded amount and stops growing. The same burst
through ``sockerless frontend`` reaches Docker clients the same way.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from pathlib import Path
from typing import Any

import aiohttp
import attrs

from tests.reliability.processes import (
    IMAGE,
    SOCKERLESS,
    BackendProcess,
    Process,
    base_environment,
    eventually,
    lambda_flags,
)

BURST = 1000
MAX_INFLIGHT = 64
#: Resident memory (MiB) the backend may gain over the first two bursts (which add ~65 containers), at
#: its peak (64 list answers of ~90 containers being built at once, then kept by Python's allocator),
#: and at its peak over three more read bursts once it has served three (the peak levels off at
#: about 75 MiB over the start on the 2-core machine; a leak keeps it rising).
FIRST_BURST_GROWTH_MIB = 48
PEAK_GROWTH_MIB = 128
LATER_GROWTH_MIB = 24


def rss_mib(pid: int) -> tuple[float, float]:
    """Resident memory now and at its peak (VmRSS, VmHWM), in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


@attrs.define
class Burst:
    statuses: collections.Counter[int] = attrs.Factory(collections.Counter)
    retries: int = 0
    seconds: float = 0.0
    slowest_first_answer: float = 0.0


async def _burst(
    session: aiohttp.ClientSession, requests: list[tuple[str, str, dict[str, Any]]], *, retry: bool
) -> Burst:
    """Send every request at once; with ``retry``, resend each 503 after its Retry-After."""
    result = Burst()
    began = time.monotonic()

    async def one(method: str, path: str, options: dict[str, Any]) -> None:
        first = True
        while True:
            sent = time.monotonic()
            async with asyncio.timeout(120), session.request(method, path, **options) as response:
                body = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
                content_type = response.content_type
            if first:
                result.slowest_first_answer = max(result.slowest_first_answer, time.monotonic() - sent)
                result.statuses[status] += 1
                first = False
            assert status in (200, 201, 503), (method, path, status, body[:200])
            if status != 503:
                return
            assert retry_after == "1" and content_type == "application/json" and b"busy" in body, body
            if not retry:
                return
            result.retries += 1
            await asyncio.sleep(int(retry_after))

    await asyncio.gather(*(one(method, path, options) for method, path, options in requests))
    result.seconds = time.monotonic() - began
    return result


#: The four kinds of request, on the internal API and on the Docker API.
INTERNAL = {
    "inspect": "/internal/v1/containers/{id}",
    "list": "/internal/v1/containers",
    "create": "/internal/v1/containers",
    "logs": "/internal/v1/containers/{id}/logs",
}
DOCKER_API = {
    "inspect": "/v1.44/containers/{id}/json",
    "list": "/v1.44/containers/json",
    "create": "/v1.44/containers/create",
    "logs": "/v1.44/containers/{id}/logs",
}


def _mixed(
    rng: random.Random, ids: list[str], paths: dict[str, str]
) -> list[tuple[str, str, dict[str, Any]]]:
    """Inspect 40%, list 30%, create 15%, logs 15%, in a seeded order."""
    requests: list[tuple[str, str, dict[str, Any]]] = []
    for _ in range(BURST):
        draw, target = rng.random(), rng.choice(ids)
        if draw < 0.40:
            requests.append(("GET", paths["inspect"].format(id=target), {}))
        elif draw < 0.70:
            requests.append(("GET", paths["list"], {"params": {"all": "1"}}))
        elif draw < 0.85:
            body = {"Image": IMAGE, "Cmd": ["sh", "-c", "exit 0"]}
            requests.append(("POST", paths["create"], {"json": body}))
        else:
            requests.append(("GET", paths["logs"].format(id=target), {"params": {"stdout": "1"}}))
    return requests


async def test_a_thousand_requests_at_once_are_all_answered_with_back_pressure(
    lambda_simulator: Any, tmp_path: Path, short_dir: Path
) -> None:
    flags = lambda_flags(
        lambda_simulator,
        str(tmp_path / "state.sqlite3"),
        server_max_inflight_requests=str(MAX_INFLIGHT),
        server_log_level="warning",
    )
    backend = BackendProcess(
        str(short_dir / "backend.sock"), flags, tmp_path / "backend.log", base_environment()
    )
    await backend.start()
    try:
        ids = []
        for index in range(20):
            status, body, _ = await backend.call(
                "POST", "/containers", json={"Image": IMAGE, "Cmd": ["sh", "-c", f"echo {index}"]}
            )
            assert status == 201, body
            ids.append(body["Id"])
        for container_id in ids[:10]:
            assert (await backend.call("POST", f"/containers/{container_id}/start"))[0] == 204
            assert (await backend.call("POST", f"/containers/{container_id}/wait"))[0] == 200
        # Creates hold their slot for 300 ms: a burst with 150 of them fills the 64 slots.
        lambda_simulator.add_fault(
            {"kind": "latency", "operation": "lambda:CreateFunction", "latency_ms": 300}
        )
        rng = random.Random(1000)
        before, _ = rss_mib(backend.pid)

        # Waits are long-lived (they last as long as a run): back-pressure never refuses one, even
        # while the burst fills every slot. These answer at once: their containers have exited.
        waits = [("POST", f"/internal/v1/containers/{c}/wait", {}) for c in ids[:10]] * 5
        first, waited = await asyncio.gather(
            _burst(backend.session, _mixed(rng, ids, INTERNAL), retry=False),
            _burst(backend.session, waits, retry=False),
        )
        assert sum(first.statuses.values()) == BURST  # every request answered
        assert first.statuses[503] > 0  # back-pressure, not failure
        assert waited.statuses == {200: len(waits)}
        held = await _burst(backend.session, _mixed(rng, ids, INTERNAL), retry=True)
        assert held.statuses[503] > 0 and held.retries >= held.statuses[503]  # and all done in the end
        creates = sum(1 for method, *_ in _mixed(random.Random(1000), ids, INTERNAL) if method == "POST")
        assert len(await backend.containers()) >= 20 + creates
        grown, _ = rss_mib(backend.pid)

        # The same traffic without creates, again and again: memory levels off and stays there.
        reads = [request for request in _mixed(rng, ids, INTERNAL) * 2 if request[0] == "GET"][:BURST]
        for _ in range(3):
            await _burst(backend.session, reads, retry=True)
        _, settled = rss_mib(backend.pid)
        for _ in range(3):
            await _burst(backend.session, reads, retry=True)
        after, peak = rss_mib(backend.pid)
        print(
            f"load: first burst {dict(first.statuses)} in {first.seconds:.1f} s (slowest answer "
            f"{first.slowest_first_answer:.2f} s); with retries {dict(held.statuses)} + {held.retries} "
            f"retries in {held.seconds:.1f} s; RSS {before:.0f} -> {grown:.0f} MiB after both, "
            f"peak {settled:.0f} -> {peak:.0f} MiB over 3 more read bursts after 3 (now {after:.0f})"
        )
        assert grown - before < FIRST_BURST_GROWTH_MIB
        assert peak - before < PEAK_GROWTH_MIB
        assert peak - settled < LATER_GROWTH_MIB  # the peak (VmHWM) no longer rises: nothing leaks
        assert await backend.terminate() == 0
    finally:
        await backend.kill()


async def test_the_burst_through_the_docker_frontend(
    lambda_simulator: Any, tmp_path: Path, short_dir: Path
) -> None:
    env = base_environment()
    flags = lambda_flags(
        lambda_simulator,
        str(tmp_path / "state.sqlite3"),
        server_max_inflight_requests=str(MAX_INFLIGHT),
        server_log_level="warning",
    )
    backend = BackendProcess(str(short_dir / "backend.sock"), flags, tmp_path / "backend.log", env)
    frontend = Process(
        [
            *SOCKERLESS,
            "frontend",
            "--frontend-socket",
            str(short_dir / "docker.sock"),
            "--frontend-backend",
            f"unix://{short_dir / 'backend.sock'}",
            "--server-log-level",
            "warning",
        ],
        tmp_path / "frontend.log",
        env,
    )
    await backend.start()
    try:
        await frontend.spawn()
        connector = aiohttp.UnixConnector(path=str(short_dir / "docker.sock"), limit=0)
        async with aiohttp.ClientSession(base_url="http://docker", connector=connector) as docker:

            async def up() -> bool:
                try:
                    async with docker.get("/_ping") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(up, timeout=30, what="the frontend serving")
            status, body, _ = await backend.call(
                "POST", "/containers", json={"Image": IMAGE, "Cmd": ["true"]}
            )
            assert status == 201, body
            lambda_simulator.add_fault(
                {"kind": "latency", "operation": "lambda:CreateFunction", "latency_ms": 300}
            )
            requests = _mixed(random.Random(2000), [body["Id"]], DOCKER_API)
            result = await _burst(docker, requests, retry=True)
            peak_rss = rss_mib(frontend.pid)[1]
            print(
                f"load through the frontend: {dict(result.statuses)}, {result.retries} retries, "
                f"{result.seconds:.1f} s, frontend peak RSS {peak_rss:.0f} MiB"
            )
            assert sum(result.statuses.values()) == BURST
        assert await frontend.terminate() == 0
    finally:
        await frontend.kill()
        await backend.kill()
