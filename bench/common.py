"""What every benchmark item shares: results, statistics, the machine, and the processes it starts.

Topology (unless an item says otherwise): three processes on this machine.

* the Lambda simulator, standalone (``python -m sockerless_lambda_simulator.cli``): moto in-process
  behind the runtime that runs each function's command as a local process;
* the product, as its own command (``sockerless serve lambda`` or ``sockerless up``) pointed at the
  simulator with ``--lambda-endpoint-url``, or the bench-only launcher (``bench.launcher``);
* this process, the client: aiohttp over the product's Unix sockets, aiobotocore for direct AWS calls.

Everything lives in one temporary directory under /tmp (short: Unix socket paths are limited to
108 bytes) that is removed at the end; every process is started in its own session and stopped
(SIGTERM/SIGINT, then SIGKILL after a grace period) when the item ends, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

import aiohttp
import attrs
from attrs import define, field

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bench:latest"
#: CloudWatch Logs read operations as the simulator's stats name them.
CLOUDWATCH_READS = ("logs:FilterLogEvents", "logs:GetLogEvents", "logs:DescribeLogStreams")
_FAKE = "testing"
_STOP_GRACE_SECONDS = 20.0


# ---------------------------------------------------------------------------- results


@define
class Row:
    """One figure of an item: its value, its target and whether the value meets it."""

    figure: str
    value: str
    target: str = ""
    met: bool | None = None  # None: informational, no target


@define
class Table:
    """A supporting table (a breakdown, per-operation counts, ...)."""

    title: str
    headers: list[str]
    rows: list[list[str]]


@define
class ItemResult:
    number: str
    title: str
    setup: str
    command: str
    rows: list[Row] = field(factory=list)
    tables: list[Table] = field(factory=list)
    notes: list[str] = field(factory=list)
    seconds: float = 0.0
    data: dict[str, Any] = field(factory=dict)
    """Raw figures (numbers), for tests and for anyone scripting the benchmark."""

    def all_met(self) -> bool | None:
        verdicts = [row.met for row in self.rows if row.met is not None]
        return all(verdicts) if verdicts else None


def verdict(met: bool | None) -> str:
    return "" if met is None else ("met" if met else "**NOT met**")


# ---------------------------------------------------------------------------- statistics


def median(values: Iterable[float]) -> float:
    items = list(values)
    return statistics.median(items) if items else float("nan")


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100): a value that was actually observed."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# ---------------------------------------------------------------------------- the machine


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with (
        contextlib.suppress(OSError, ValueError, IndexError),
        open("/proc/meminfo", encoding="utf-8") as info,
    ):
        for line in info:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    return {
        "nproc": str(os.cpu_count() or "?"),
        "memory": memory,
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (this one when ``pid`` is None), in seconds."""
    if pid is None:
        return time.process_time()
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15)
    return 0.0


def log_size(log_path: str) -> int:
    try:
        return os.path.getsize(log_path)
    except OSError:
        return 0


def access_durations(log_path: str, offset: int = 0) -> dict[str, list[float]]:
    """Server-side durations (ms) per ``METHOD route`` from a product's JSON access log, from ``offset``."""
    found: dict[str, list[float]] = {}
    with contextlib.suppress(OSError), open(log_path, encoding="utf-8", errors="replace") as log_file:
        log_file.seek(offset)
        for line in log_file:
            if '"sockerless.access"' not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            route = _ID_SEGMENT.sub("/{id}", str(entry.get("path", "")))
            found.setdefault(f"{entry.get('method')} {route}", []).append(float(entry.get("duration_ms", 0)))
    return found


_ID_SEGMENT = re.compile(r"/[0-9a-f]{64}")


def rss_kb(pid: int) -> int:
    """VmRSS of a process, in KiB (0 when it is gone)."""
    with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/status", "rb") as status:
        for line in status:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------- processes and files


@contextlib.contextmanager
def bench_dir() -> Any:
    """A short temporary directory under /tmp, removed at the end."""
    path = tempfile.mkdtemp(prefix="skb-", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def product_env(workdir: str) -> dict[str, str]:
    """The environment of a product process: fake AWS credentials, state and runtime dirs in ``workdir``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "SOCKERLESS_"))}
    env.update(
        AWS_ACCESS_KEY_ID=_FAKE,
        AWS_SECRET_ACCESS_KEY=_FAKE,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        XDG_STATE_HOME=os.path.join(workdir, "state"),
        XDG_RUNTIME_DIR=os.path.join(workdir, "run"),
        PYTHONUNBUFFERED="1",
    )
    return env


async def start_process(
    argv: Sequence[str], *, env: dict[str, str] | None, log_path: str, stdout_pipe: bool = False
) -> asyncio.subprocess.Process:
    """Start ``argv`` in its own session; stderr (and stdout unless piped) go to ``log_path``."""
    with open(log_path, "ab") as log_file:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if stdout_pipe else log_file,
            stderr=log_file,
            env=env,
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

    def __init__(self, workdir: str) -> None:
        self._workdir = workdir
        self._process: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self.endpoint_url = ""
        self.role_arn = ""

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    async def start(self) -> None:
        env = product_env(self._workdir)
        self._process = await start_process(
            [sys.executable, "-m", "sockerless_lambda_simulator.cli", "--log-level", "error"],
            env=env,
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

    async def reset(self) -> None:
        assert self._session is not None
        async with self._session.post("/_sim/reset-stats") as response:
            response.raise_for_status()

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._process is not None:
            await stop_process(self._process, signal.SIGINT)
            self._process = None


@contextlib.asynccontextmanager
async def simulator(workdir: str) -> AsyncIterator[Simulator]:
    sim = Simulator(workdir)
    try:
        await sim.start()
        yield sim
    finally:
        await sim.stop()


def diff_calls(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    keys = set(after) | set(before)
    return {
        key: after.get(key, 0) - before.get(key, 0)
        for key in sorted(keys)
        if after.get(key, 0) != before.get(key, 0)
    }


def cloudwatch_reads(calls: dict[str, int]) -> int:
    return sum(calls.get(key, 0) for key in CLOUDWATCH_READS)


# ---------------------------------------------------------------------------- the product


class Product:
    """A product process: ``sockerless serve lambda``, ``sockerless up`` or the bench launcher."""

    def __init__(self, workdir: str, name: str, argv: Sequence[str]) -> None:
        self.workdir = workdir
        self.name = name
        self.argv = list(argv)
        self.process: asyncio.subprocess.Process | None = None
        self.spawned_at = 0.0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        self.spawned_at = time.monotonic()
        self.process = await start_process(
            self.argv, env=product_env(self.workdir), log_path=os.path.join(self.workdir, f"{self.name}.log")
        )

    async def wait_answering(self, socket_path: str, path: str, deadline: float = 60.0) -> float:
        """Seconds from spawn until ``GET path`` on ``socket_path`` answers 200."""
        async with unix_session(socket_path) as session:

            async def probe() -> None:
                if self.process is not None and self.process.returncode is not None:
                    raise RuntimeError(f"{self.name} exited; see {self.workdir}/{self.name}.log")
                async with session.get(path) as response:
                    response.raise_for_status()

            answered = await wait_for_http(probe, deadline=deadline)
        return answered - self.spawned_at

    async def stop(self) -> int | None:
        if self.process is None:
            return None
        process, self.process = self.process, None
        return await stop_process(process, signal.SIGTERM)


def serve_argv(
    workdir: str, sim: Simulator, *, socket: str, store: str, extra: Sequence[str] = ()
) -> list[str]:
    """``sockerless serve lambda`` against the standalone simulator, with the product's defaults."""
    return [
        sys.executable,
        "-m",
        "sockerless.cli",
        "serve",
        "lambda",
        "--server-socket",
        socket,
        "--store-path",
        store,
        "--lambda-region",
        "us-east-1",
        "--lambda-endpoint-url",
        sim.endpoint_url,
        "--lambda-role-arn",
        sim.role_arn,
        *extra,
    ]


def up_argv(workdir: str, sim: Simulator, *, socket: str, docker_socket: str, store: str) -> list[str]:
    """``sockerless up`` (backend and Docker frontend in one process) against the standalone simulator."""
    return [
        sys.executable,
        "-m",
        "sockerless.cli",
        "up",
        "--backend",
        "lambda",
        "--server-socket",
        socket,
        "--frontend-socket",
        docker_socket,
        "--store-path",
        store,
        "--lambda-region",
        "us-east-1",
        "--lambda-endpoint-url",
        sim.endpoint_url,
        "--lambda-role-arn",
        sim.role_arn,
    ]


@contextlib.asynccontextmanager
async def product(
    workdir: str, name: str, argv: Sequence[str], socket: str, ready_path: str
) -> AsyncIterator[Product]:
    started = Product(workdir, name, argv)
    try:
        await started.start()
        await started.wait_answering(socket, ready_path)
        yield started
    finally:
        await started.stop()


# ---------------------------------------------------------------------------- AWS clients


@contextlib.asynccontextmanager
async def aws_client(
    service: str, endpoint_url: str, *, pool: int = 256, attempts: int = 1
) -> AsyncIterator[Any]:
    """An aiobotocore client on the simulator, configured as the backend configures its own: the
    standard retry mode with ``attempts`` attempts, its fixed User-Agent and no client-side parameter
    validation (see ``sockerless_lambda.aws``), so that a comparison with the backend measures the
    backend, not client settings any caller could choose."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    from sockerless_lambda.aws import user_agent

    config = AioConfig(
        user_agent=user_agent(),
        parameter_validation=False,
        max_pool_connections=pool,
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=10,
        read_timeout=600,
    )
    async with get_session().create_client(
        service,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=_FAKE,
        aws_secret_access_key=_FAKE,
        config=config,
    ) as client:
        yield client


@define
class LambdaClients:
    """The floor's two Lambda clients, split as the backend splits its own: ``control`` (create,
    delete) retries as the backend's control client does, ``invoke`` makes one attempt."""

    control: Any
    invoke: Any


@contextlib.asynccontextmanager
async def lambda_clients(endpoint_url: str) -> AsyncIterator[LambdaClients]:
    """The floor's clients, with the backend's default retry policy for each (a retrying client
    checks every answer for a retryable error, about 50 µs a call; one with a single attempt does
    not, so a floor that made its control calls with one attempt would skip work the backend does)."""
    from sockerless_lambda.config import LambdaConfig

    attempts = attrs.fields(LambdaConfig).max_attempts.default
    async with (
        aws_client("lambda", endpoint_url, attempts=attempts) as control,
        aws_client("lambda", endpoint_url) as invoke,
    ):
        yield LambdaClients(control, invoke)


def dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True)
