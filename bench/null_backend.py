"""Backends that do (almost) nothing, served by the real internal-API server: what the hop costs.

Item 1 runs its lifecycle (create → start → wait → logs → remove) against these, through the same
client, server, middlewares and JSON access log as ``sockerless serve lambda``, each in a process of
its own. Neither stores anything or logs lines of its own.

* ``NullBackend`` makes no AWS call: its time is what the five HTTP round trips between two
  processes cost on this machine, the part of the overhead no backend work can remove.
* ``CallsOnlyBackend`` makes exactly the floor's AWS calls (CreateFunction with the same parameters,
  Invoke with ``LogType=Tail``, DeleteFunction) and nothing else: the best any backend behind the
  internal API could do, with none of the bookkeeping that makes ours durable.

Run as ``python -m bench.null_backend <socket path> [<endpoint URL> <role ARN>]`` (with the endpoint,
the calls-only backend on that simulator); SIGINT or SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from sockerless.backend import BaseBackend, ContainerLogs, LogLine, LogsOptions
from sockerless.errors import NotFound
from sockerless.models import (
    Capabilities,
    ContainerCreateRequest,
    ContainerCreateResponse,
    WaitCondition,
    WaitResponse,
)
from sockerless.observability import configure_logging
from sockerless.server import InternalAPIServer, run_until_signalled

from .common import aws_client
from .item1_overhead import function_params

OUTPUT = b"hi\n"


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
        self._containers.add(container_id)
        return ContainerCreateResponse(id=container_id)

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

        return ContainerLogs(tty=False, lines=lines(), final=True)

    async def remove_container(self, ref: str, *, force: bool, volumes: bool) -> None:
        self._containers.discard(self._known(ref))


class CallsOnlyBackend(NullBackend):
    """The floor's AWS calls behind the internal API, and nothing else (see the module docstring)."""

    name = "calls-only"

    def __init__(self, lam: Any, role_arn: str) -> None:
        super().__init__()
        self._lam = lam
        self._role_arn = role_arn
        self._exits: dict[str, asyncio.Future[WaitResponse]] = {}
        self._runs: set[asyncio.Task[None]] = set()

    async def create_container(
        self, request: ContainerCreateRequest, name: str | None
    ) -> ContainerCreateResponse:
        container_id = secrets.token_hex(32)
        await self._lam.create_function(**function_params(_function(container_id), self._role_arn))
        self._containers.add(container_id)
        return ContainerCreateResponse(id=container_id)

    async def start_container(self, ref: str) -> None:
        exited = self._exits[self._known(ref)] = asyncio.get_running_loop().create_future()

        async def run() -> None:
            response = await self._lam.invoke(FunctionName=_function(ref), LogType="Tail")
            await response["Payload"].read()
            exited.set_result(WaitResponse(status_code=1 if response.get("FunctionError") else 0))

        task = asyncio.create_task(run())
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)

    async def wait_container(self, ref: str, condition: WaitCondition) -> Awaitable[WaitResponse]:
        return self._exits[self._known(ref)]

    async def remove_container(self, ref: str, *, force: bool, volumes: bool) -> None:
        await self._lam.delete_function(FunctionName=_function(self._known(ref)))
        self._containers.discard(ref)
        self._exits.pop(ref, None)


def _function(container_id: str) -> str:
    return f"calls-only-{container_id[:24]}"


async def _serve(argv: list[str]) -> None:
    if len(argv) == 1:
        server = InternalAPIServer(NullBackend(), socket_path=argv[0])
        await run_until_signalled(server.start, server.stop)
        return
    async with aws_client("lambda", argv[1]) as lam:
        server = InternalAPIServer(CallsOnlyBackend(lam, argv[2]), socket_path=argv[0])
        await run_until_signalled(server.start, server.stop)


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 3):
        usage = "usage: python -m bench.null_backend <socket path> [<endpoint URL> <role ARN>]"
        print(usage, file=sys.stderr)
        return 2
    configure_logging("info", "json")  # as `sockerless serve` logs by default: one line per request
    asyncio.run(_serve(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
