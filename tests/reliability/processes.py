"""The backend, the frontend and the Lambda simulator as processes of their own, for tests that kill them.

Every process is started by the test with its output in a file of the test's directory, and ended by
its own PID (SIGTERM, SIGKILL); nothing is ever looked up by name. Waits are polls with deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiobotocore.session import get_session

from tests.lambda_settings import simulator_arguments, simulator_client_options

API = "/internal/v1"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs:latest"
LOG_GROUP = "/sockerless/lambda"
#: The simulator process with the suites' settings (tests/lambda_settings.py); ``extra`` flags win.
SIMULATOR = [sys.executable, "-m", "sockerless_lambda_simulator.cli", *simulator_arguments()]
SOCKERLESS = [sys.executable, "-m", "sockerless.cli"]
LAMBDA_TOOL = [sys.executable, "-c", "import sys; from sockerless_lambda.cli import main; sys.exit(main())"]
#: Credentials the simulator accepts (it accepts anything) and that can never reach AWS.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
_STREAM_FUNCTION = re.compile(r"\d{4}/\d{2}/\d{2}/(?P<function>[A-Za-z0-9_-]+)\[")


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float, every: float = 0.05, what: str = "condition"
) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(every)


def base_environment(**extra: str) -> dict[str, str]:
    """The test's environment without any real AWS identity, plus fake credentials."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "SOCKERLESS_")) and key != "DOCKER_HOST"
    }
    environment.update(FAKE_AWS)
    # The suites' images (alpine, ECR names) are references only: no preparation, no network.
    environment["SOCKERLESS_LAMBDA_PREPARE_IMAGES"] = "false"
    environment.update(extra)
    return environment


class Process:
    """One child process, its output in ``log_path``; ended only by its own PID."""

    def __init__(self, command: Sequence[str], log_path: Path, env: Mapping[str, str]) -> None:
        self.command = list(command)
        self.log_path = log_path
        self.env = dict(env)
        self.process: asyncio.subprocess.Process | None = None

    async def spawn(self, *, stdout: int | None = None) -> asyncio.subprocess.Process:
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.command,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout if stdout is not None else log,
                stderr=log,
            )
        return self.process

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or closed."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            await asyncio.wait_for(self.process.wait(), 30)

    async def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit status (SIGKILL and a failure if it does not exit in time)."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            await self.kill()
            raise AssertionError(f"{self.command[:4]} did not exit within {timeout} s of SIGTERM") from None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# ---------------------------------------------------------------------------- the simulator


class SimulatorProcess(Process):
    """``sockerless-lambda-simulator`` in its own process: it outlives (or dies before) the backend."""

    def __init__(self, log_path: Path, *, port: int = 0, extra: Sequence[str] = ()) -> None:
        self.extra = list(extra)
        super().__init__([*SIMULATOR, "--port", str(port), *self.extra], log_path, base_environment())
        self.endpoint_url = ""
        self.role_arn = ""
        self.region = "us-east-1"
        self.port = port

    async def start(self) -> SimulatorProcess:
        process = await self.spawn(stdout=asyncio.subprocess.PIPE)
        assert process.stdout is not None
        values: dict[str, str] = {}
        while "control" not in values:
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            if not line:
                raise AssertionError(f"the simulator exited before it was up:\n{self.log_text()[-3000:]}")
            key, _, value = line.decode().strip().partition("=")
            values[key] = value
        self.endpoint_url, self.role_arn, self.region = (
            values["endpoint_url"],
            values["role_arn"],
            values["region"],
        )
        self.port = int(self.endpoint_url.rsplit(":", 1)[1])
        return self

    async def restart(self) -> SimulatorProcess:
        """A new simulator on the same port (moto's state is gone with the old process)."""
        await self.kill()
        self.command = [*SIMULATOR, "--port", str(self.port), *self.extra]
        return await self.start()

    async def _control(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, f"{self.endpoint_url}/_sim/{path}", json=body) as response,
        ):
            assert response.status < 300, await response.text()
            return await response.json() if response.status != 204 else None

    async def stats(self) -> dict[str, Any]:
        return dict(await self._control("GET", "stats"))

    async def add_fault(self, **rule: Any) -> None:
        await self._control("POST", "faults", rule)

    async def clear_faults(self) -> None:
        await self._control("DELETE", "faults")

    @contextlib.asynccontextmanager
    async def client(self, service: str) -> AsyncIterator[Any]:
        options = simulator_client_options(self)
        async with get_session().create_client(service, **options) as client:  # type: ignore[call-overload]
            yield client

    async def tagged_functions(self, tag: str, value: str) -> set[str]:
        """Names of the functions whose tag ``tag`` is ``value``."""
        found: set[str] = set()
        async with self.client("lambda") as client:
            kwargs: dict[str, Any] = {}
            while True:
                page = await client.list_functions(**kwargs)
                for function in page["Functions"]:
                    tags = (await client.list_tags(Resource=function["FunctionArn"]))["Tags"]
                    if tags.get(tag) == value:
                        found.add(function["FunctionName"])
                if not page.get("NextMarker"):
                    return found
                kwargs["Marker"] = page["NextMarker"]

    async def runs_by_function(self) -> dict[str, int]:
        """How many times each function started a run, from the ``START`` lines in CloudWatch."""
        runs: dict[str, int] = {}
        async with self.client("logs") as client:
            kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "interleaved": True}
            while True:
                try:
                    page = await client.filter_log_events(**kwargs)
                except client.exceptions.ResourceNotFoundException:
                    return runs
                for event in page["events"]:
                    match = _STREAM_FUNCTION.match(event["logStreamName"])
                    if match and event["message"].startswith("START RequestId: "):
                        runs[match["function"]] = runs.get(match["function"], 0) + 1
                if not page.get("nextToken"):
                    return runs
                kwargs["nextToken"] = page["nextToken"]


# ---------------------------------------------------------------------------- the backend


def lambda_flags(simulator: SimulatorProcess, state_path: str, **overrides: str) -> list[str]:
    """``sockerless serve lambda`` flags against ``simulator``, with short timeouts for tests."""
    settings = {
        "store-path": state_path,
        "lambda-region": simulator.region,
        "lambda-role-arn": simulator.role_arn,
        "lambda-endpoint-url": simulator.endpoint_url,
        "lambda-log-read-interval": "0.25",
        "lambda-timeout": "5",
        "lambda-recovery-margin": "2",
        "lambda-max-attempts": "3",
        "server-log-level": "info",
    }
    settings.update({key.replace("_", "-"): value for key, value in overrides.items()})
    return [part for key, value in settings.items() for part in (f"--{key}", value)]


class BackendProcess(Process):
    """``sockerless serve lambda`` on a Unix socket, and a client session to it."""

    def __init__(
        self, socket_path: str, flags: Sequence[str], log_path: Path, env: Mapping[str, str]
    ) -> None:
        super().__init__(
            [*SOCKERLESS, "serve", "lambda", "--server-socket", socket_path, *flags], log_path, env
        )
        self.socket_path = socket_path
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.UnixConnector(path=self.socket_path, limit=0)
            self._session = aiohttp.ClientSession(base_url="http://backend", connector=connector)
        return self._session

    async def start(self, timeout: float = 60) -> BackendProcess:
        await self.spawn()

        async def serving() -> bool:
            if not self.running:
                raise AssertionError(f"the backend exited at start-up:\n{self.log_text()[-3000:]}")
            try:
                async with self.session.get(f"{API}/capabilities") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(serving, timeout=timeout, what="the backend serving")
        return self

    async def call(
        self, method: str, path: str, *, timeout: float = 30, **options: Any
    ) -> tuple[int, Any, Mapping[str, str]]:
        """One request: status, decoded body (JSON when it is JSON, else bytes) and headers."""
        async with asyncio.timeout(timeout):
            async with self.session.request(method, API + path, **options) as response:
                raw = await response.read()
                body: Any = raw
                if response.content_type == "application/json" and raw:
                    body = await response.json()
                return response.status, body, response.headers

    async def containers(self) -> list[dict[str, Any]]:
        status, body, _ = await self.call("GET", "/containers", params={"all": "1"})
        assert status == 200, body
        return list(body)

    async def close_session(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def kill(self) -> None:
        await super().kill()  # first: requests in flight see the connection drop, as clients would
        await self.close_session()

    async def terminate(self, timeout: float = 60) -> int:
        code = await super().terminate(timeout)
        await self.close_session()
        return code


async def run_tool(
    command: Sequence[str], env: Mapping[str, str], timeout: float = 60
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *command,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def reported_orphans(simulator: SimulatorProcess, state_path: str, env: Mapping[str, str]) -> set[str]:
    """The function names ``sockerless-backend-lambda orphans`` reports (run while the backend is stopped)."""
    flags = lambda_flags(simulator, state_path)
    code, out, err = await run_tool([*LAMBDA_TOOL, "orphans", *flags], env)
    assert code == 0, err
    return {line.split("\t", 1)[0] for line in out.splitlines() if line.startswith("skls-")}


def integrity_check(path: str) -> str:
    connection = sqlite3.connect(path)
    try:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        connection.close()
