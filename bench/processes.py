"""The processes a benchmark item starts, and their files.

Topology (unless an item says otherwise): three processes on this machine.

* the Lambda simulator, standalone (``python -m sockerless_lambda_simulator.cli``): moto in-process
  behind the runtime that runs each function's command as a local process;
* the product, as its own command (``sockerless serve lambda`` or ``sockerless up``) pointed at the
  simulator with ``--lambda-endpoint-url``, or a bench-only server (``bench.launcher``,
  ``bench.null_backend``, ``bench.floor_server``);
* this process, the client: aiohttp or ``BackendClient`` over the product's sockets, aiobotocore for
  direct AWS calls.

Everything lives in one temporary directory under /tmp (short: Unix socket paths are limited to
108 bytes) that is removed at the end; every process is started in its own session and stopped
(SIGTERM/SIGINT, then SIGKILL after a grace period) when the item ends, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp
from attrs import define

from bench.common import backend_flags, simulator_flags

__all__ = [
    "CLOUDWATCH_READS",
    "Product",
    "Served",
    "Simulator",
    "bench_dir",
    "cloudwatch_reads",
    "diff_calls",
    "free_port",
    "product",
    "product_env",
    "run_command",
    "sockerless",
    "start_process",
    "stop_process",
    "unix_session",
    "wait_for_http",
]

#: CloudWatch Logs read operations as the simulator's stats name them.
CLOUDWATCH_READS = ("logs:FilterLogEvents", "logs:GetLogEvents", "logs:DescribeLogStreams")
FAKE_CREDENTIAL = "testing"
_STOP_GRACE_SECONDS = 20.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bench_dir() -> tempfile.TemporaryDirectory[str]:
    """A short temporary directory under /tmp (``with bench_dir() as path``), removed at the end."""
    return tempfile.TemporaryDirectory(prefix="skb-", dir="/tmp", ignore_cleanup_errors=True)


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def product_env(workdir: str) -> dict[str, str]:
    """The environment of a product process: fake AWS credentials, state and runtime dirs in
    ``workdir``, and this checkout on the path (for the bench's own servers)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "SOCKERLESS_"))}
    env.update(
        AWS_ACCESS_KEY_ID=FAKE_CREDENTIAL,
        AWS_SECRET_ACCESS_KEY=FAKE_CREDENTIAL,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        XDG_STATE_HOME=os.path.join(workdir, "state"),
        XDG_RUNTIME_DIR=os.path.join(workdir, "run"),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH", "")])),
    )
    return env


async def start_process(
    argv: Sequence[str], *, env: Mapping[str, str] | None, log_path: str, stdout_pipe: bool = False
) -> asyncio.subprocess.Process:
    """Start ``argv`` in its own session; stderr (and stdout unless piped) go to ``log_path``."""
    with open(log_path, "ab") as log_file:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if stdout_pipe else log_file,
            stderr=log_file,
            env=None if env is None else dict(env),
            start_new_session=True,
        )


async def stop_process(
    process: asyncio.subprocess.Process, sig: int = signal.SIGTERM, grace: float = _STOP_GRACE_SECONDS
) -> int | None:
    """Signal, wait ``grace`` seconds, then SIGKILL the whole session; returns the exit code."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    # Anything the process left in its session (it should leave nothing) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    return process.returncode


async def run_command(
    argv: Sequence[str], env: Mapping[str, str], timeout: float = 120
) -> tuple[int, str, str]:
    """Run a client command (the docker CLI, wrk) to its end: exit code, stdout, stderr. A command
    still running after ``timeout`` seconds is killed and the timeout raised."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        start_new_session=True,
    )
    reading = asyncio.ensure_future(process.communicate())
    done, _ = await asyncio.wait([reading], timeout=timeout)
    if not done:
        await stop_process(process, signal.SIGKILL, grace=5)
        reading.cancel()
        raise TimeoutError(f"{argv[0]} {' '.join(argv[1:3])} ... ran over {timeout:g} s")
    out, err = reading.result()
    return process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


def unix_session(socket_path: str, base_url: str = "http://local") -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        base_url=base_url,
        connector=aiohttp.UnixConnector(path=socket_path, limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
    )


async def wait_for_http(
    probe: Callable[[], Awaitable[Any]], *, deadline: float = 60.0, every: float = 0.005
) -> float:
    """Call ``probe`` until it succeeds; returns when it did (``time.monotonic()``)."""
    give_up = time.monotonic() + deadline
    while True:
        try:
            await probe()
            return time.monotonic()
        except (aiohttp.ClientError, OSError):
            if time.monotonic() > give_up:
                raise
        await asyncio.sleep(every)


# ---------------------------------------------------------------------------- the simulator


class Simulator:
    """The Lambda simulator as its own process, with its stats endpoint."""

    def __init__(self, workdir: str, extra_flags: Sequence[str] = ()) -> None:
        """``extra_flags``: simulator flags on top of the bench's ``SIMULATOR_SETTINGS``."""
        self._workdir = workdir
        self._extra_flags = list(extra_flags)
        self._process: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self.endpoint_url = ""
        self.role_arn = ""

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    async def start(self) -> None:
        self._process = await start_process(
            [
                sys.executable,
                "-m",
                "sockerless_lambda_simulator.cli",
                "--log-level",
                "error",
                *simulator_flags(),
                *self._extra_flags,
            ],
            env=product_env(self._workdir),
            log_path=os.path.join(self._workdir, "simulator.log"),
            stdout_pipe=True,
        )
        assert self._process.stdout is not None
        lines = {}
        for _ in range(2):
            raw = await asyncio.wait_for(self._process.stdout.readline(), 60)
            if not raw:
                raise RuntimeError(f"the simulator did not start; see {self._workdir}/simulator.log")
            key, _, value = raw.decode().strip().partition("=")
            lines[key] = value
        self.endpoint_url, self.role_arn = lines["endpoint_url"], lines["role_arn"]
        self._session = aiohttp.ClientSession(base_url=self.endpoint_url)

    async def stats(self) -> dict[str, Any]:
        assert self._session is not None
        async with self._session.get("/_sim/stats") as response:
            response.raise_for_status()
            data: dict[str, Any] = await response.json()
            return data

    async def calls(self) -> dict[str, int]:
        return dict((await self.stats())["calls"])

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._process is not None:
            await stop_process(self._process, signal.SIGINT)
            self._process = None

    async def __aenter__(self) -> Simulator:
        async with contextlib.AsyncExitStack() as cleanup:
            cleanup.push_async_callback(self.stop)  # a start that fails half way stops what it started
            await self.start()
            cleanup.pop_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def diff_calls(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    keys = sorted(set(after) | set(before))
    return {key: after.get(key, 0) - before.get(key, 0) for key in keys if after.get(key) != before.get(key)}


def cloudwatch_reads(calls: Mapping[str, int]) -> int:
    return sum(calls.get(key, 0) for key in CLOUDWATCH_READS)


# ---------------------------------------------------------------------------- the product


class Product:
    """A server process: ``sockerless serve lambda``, ``sockerless up`` or a bench-only server."""

    def __init__(self, workdir: str, name: str, argv: Sequence[str]) -> None:
        self.workdir = workdir
        self.name = name
        self.argv = list(argv)
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.process: asyncio.subprocess.Process | None = None
        self.spawned_at = 0.0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        self.spawned_at = time.monotonic()
        self.process = await start_process(self.argv, env=product_env(self.workdir), log_path=self.log_path)

    async def wait_answering(self, url: str, path: str, deadline: float = 60.0) -> float:
        """Seconds from spawn until ``GET path`` answers 200 at ``url`` (``unix:///path`` or
        ``http://host:port``)."""
        if url.startswith("unix://"):
            session = unix_session(url.removeprefix("unix://"))
        else:
            session = aiohttp.ClientSession(base_url=url)
        async with session:

            async def probe() -> None:
                if self.process is not None and self.process.returncode is not None:
                    raise RuntimeError(f"{self.name} exited; see {self.log_path}")
                async with session.get(path) as response:
                    response.raise_for_status()

            answered = await wait_for_http(probe, deadline=deadline)
        return answered - self.spawned_at

    async def stop(self) -> int | None:
        if self.process is None:
            return None
        process, self.process = self.process, None
        return await stop_process(process, signal.SIGTERM)


@contextlib.asynccontextmanager
async def product(
    workdir: str, name: str, argv: Sequence[str], url: str, ready_path: str
) -> AsyncIterator[Product]:
    """A server process, started and answering ``ready_path`` at ``url``; stopped on leaving."""
    started = Product(workdir, name, argv)
    try:
        await started.start()
        await started.wait_answering(url, ready_path)
        yield started
    finally:
        await started.stop()


@define
class Served:
    """A running ``sockerless serve lambda`` or ``sockerless up``: its process and addresses."""

    process: Product
    url: str  # the internal API: unix:///path or http://127.0.0.1:port
    docker_socket: str  # ``up`` only: the Docker frontend's socket

    @property
    def log_path(self) -> str:
        return self.process.log_path


def sockerless_argv(
    command: str,
    sim: Simulator,
    *,
    store: str,
    socket: str = "",
    tcp: str = "",
    docker_socket: str = "",
    extra: Sequence[str] = (),
) -> list[str]:
    """``sockerless serve lambda`` or ``sockerless up`` on the standalone simulator, with the product's
    defaults for everything the bench does not name."""
    argv = [sys.executable, "-m", "sockerless.cli", command]
    argv += ["lambda"] if command == "serve" else ["--backend", "lambda", "--frontend-socket", docker_socket]
    argv += ["--server-tcp", tcp] if tcp else ["--server-socket", socket]
    argv += ["--store-path", store, "--lambda-region", "us-east-1"]
    argv += ["--lambda-endpoint-url", sim.endpoint_url, "--lambda-role-arn", sim.role_arn, *backend_flags()]
    return [*argv, *extra]


@contextlib.asynccontextmanager
async def sockerless(
    workdir: str,
    sim: Simulator,
    command: str = "serve",
    *,
    name: str = "",
    store: str = "",
    tcp: str = "",
    extra: Sequence[str] = (),
) -> AsyncIterator[Served]:
    """``sockerless serve lambda`` (its internal API on a Unix socket, or on ``tcp``) or ``sockerless
    up`` (plus the Docker frontend), answering, with its log in ``<name>.log``."""
    name = name or command
    socket = os.path.join(workdir, f"{name}.sock")
    docker_socket = os.path.join(workdir, f"{name}-docker.sock") if command == "up" else ""
    argv = sockerless_argv(
        command,
        sim,
        store=store or os.path.join(workdir, f"{name}.sqlite3"),
        socket=socket,
        tcp=tcp,
        docker_socket=docker_socket,
        extra=extra,
    )
    url = f"http://{tcp}" if tcp else f"unix://{socket}"
    ready = (f"unix://{docker_socket}", "/_ping") if docker_socket else (url, "/internal/v1/capabilities")
    async with product(workdir, name, argv, *ready) as process:
        yield Served(process, url, docker_socket)
