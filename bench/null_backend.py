"""Bench-only backends behind the real internal-API server, to take item 1's overhead apart.

* ``NullBackend`` does nothing: containers are IDs in a set, every run ends at once with exit 0 and
  prints ``hi``. A lifecycle against it costs the internal API's five HTTP round trips (the
  server, its middlewares and access lines, the client) and nothing else: the hop.
* ``CallsOnlyBackend`` makes the floor's AWS calls (CreateFunction, Invoke with ``LogType=Tail``,
  DeleteFunction, with the floor's clients and parameters) and nothing else: no store, no records,
  no log lines of its own. The same AWS calls behind the internal API: where the time of the hop
  and of a second process goes, apart from everything the real backend adds.

Run as ``python -m bench.null_backend <socket path> [<endpoint URL> <role ARN>]`` (with the endpoint,
the calls-only backend on that simulator); SIGINT or SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable

from sockerless.api.server import InternalAPIServer
from sockerless.backend import BaseBackend, ContainerLogs, LogLine, LogsOptions
from sockerless.cli import run_until_signalled
from sockerless.config import ServerConfig
from sockerless.errors import NotFound
from sockerless.models import (
    Capabilities,
    ContainerCreateRequest,
    ContainerCreateResponse,
    WaitCondition,
    WaitResponse,
)
from sockerless.observability import configure_logging

from .aws import LambdaClients, function_params, lambda_clients
from .lifecycles import COMMAND, OUTPUT


class NullBackend(BaseBackend):
    """Containers are IDs in a set; each run ends at once with exit 0 and prints ``hi``."""

    name = "null"
    capabilities = Capabilities(logs=True)

    def __init__(self) -> None:
        self._containers: set[str] = set()

    def _known(self, ref: str) -> str:
        if ref not in self._containers:
            raise NotFound(f"No such container: {ref}")
        return ref

    async def create_container(
        self, request: ContainerCreateRequest, name: str | None
    ) -> ContainerCreateResponse:
        container_id = secrets.token_hex(32)
        await self._created(container_id)
        self._containers.add(container_id)
        return ContainerCreateResponse(id=container_id)

    async def _created(self, container_id: str) -> None:
        """Before the container is known (the calls-only backend creates its function here)."""

    async def start_container(self, ref: str) -> None:
        self._known(ref)

    async def wait_container(self, ref: str, condition: WaitCondition) -> Awaitable[WaitResponse]:
        self._known(ref)
        done: asyncio.Future[WaitResponse] = asyncio.get_running_loop().create_future()
        done.set_result(WaitResponse(status_code=0))
        return done

    async def container_logs(self, ref: str, options: LogsOptions) -> ContainerLogs:
        self._known(ref)

        async def lines() -> AsyncIterator[LogLine]:
            yield LogLine(stream=1, timestamp=dt.datetime.now(dt.UTC), data=OUTPUT)

        return ContainerLogs(tty=False, lines=lines())

    async def remove_container(self, ref: str, *, force: bool, volumes: bool) -> None:
        self._containers.discard(self._known(ref))


class CallsOnlyBackend(NullBackend):
    """The floor's AWS calls behind the internal API, and nothing else (see the module docstring)."""

    name = "calls-only"

    def __init__(self, lam: LambdaClients, role_arn: str) -> None:
        super().__init__()
        self._lam = lam
        self._role_arn = role_arn
        self._exits: dict[str, asyncio.Future[WaitResponse]] = {}
        self._runs: set[asyncio.Task[None]] = set()

    async def _created(self, container_id: str) -> None:
        params = function_params(_function(container_id), self._role_arn, COMMAND)
        await self._lam.control.create_function(**params)

    async def start_container(self, ref: str) -> None:
        exited = self._exits[self._known(ref)] = asyncio.get_running_loop().create_future()

        async def run() -> None:
            response = await self._lam.invoke.invoke(FunctionName=_function(ref), LogType="Tail")
            await response["Payload"].read()
            exited.set_result(WaitResponse(status_code=1 if response.get("FunctionError") else 0))

        task = asyncio.create_task(run())
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)

    async def wait_container(self, ref: str, condition: WaitCondition) -> Awaitable[WaitResponse]:
        return self._exits[self._known(ref)]

    async def remove_container(self, ref: str, *, force: bool, volumes: bool) -> None:
        await self._lam.control.delete_function(FunctionName=_function(self._known(ref)))
        self._containers.discard(ref)
        self._exits.pop(ref, None)


def _function(container_id: str) -> str:
    return f"calls-only-{container_id[:24]}"


async def _serve(argv: list[str]) -> None:
    config = ServerConfig(socket=argv[0])
    if len(argv) == 1:
        server = InternalAPIServer(NullBackend(), config)
        await run_until_signalled(server.start, server.stop)
        return
    async with lambda_clients(argv[1]) as lam:
        server = InternalAPIServer(CallsOnlyBackend(lam, argv[2]), config)
        await run_until_signalled(server.start, server.stop)


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 3):
        print(
            "usage: python -m bench.null_backend <socket path> [<endpoint URL> <role ARN>]", file=sys.stderr
        )
        return 2
    configure_logging("info", "json")  # as `sockerless serve` logs by default: one line per request
    asyncio.run(_serve(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
