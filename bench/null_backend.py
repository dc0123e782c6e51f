"""Backends that do (almost) nothing, served by the real internal-API server: what the hop costs.

Item 1 runs its lifecycle (create → start → wait → logs → remove) against these, through the same
client, server, middlewares and JSON access log as ``sockerless serve lambda``, each in a process of
its own. None logs lines of its own.

* ``NullBackend`` makes no AWS call: its time is what the five HTTP round trips between two
  processes cost on this machine, the part of the overhead no backend work can remove.
* ``CallsOnlyBackend`` makes exactly the floor's AWS calls (CreateFunction with the same parameters,
  Invoke with ``LogType=Tail``, DeleteFunction) and nothing else: the best any backend behind the
  internal API could do, with none of the bookkeeping that makes ours durable.
* ``DurableCallsBackend`` makes the same calls and, with sockerless's store, only the writes that
  keep an accepted container across a crash, where ours makes them: the record before
  CreateFunction, the run before Invoke, the exit before the wait's answer, ``removing`` during
  DeleteFunction and the deletion before the remove's answer. The floor of a durable backend.

Run as ``python -m bench.null_backend <socket path> [<endpoint URL> <role ARN> [<store path>]]``
(with the endpoint, the calls-only backend on that simulator; with a store path too, the durable
one); SIGINT or SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable

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
from sockerless.store import ContainerRecord, Store

from .common import LambdaClients, lambda_clients
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

    def __init__(self, lam: LambdaClients, role_arn: str) -> None:
        super().__init__()
        self._lam = lam
        self._role_arn = role_arn
        self._exits: dict[str, asyncio.Future[WaitResponse]] = {}
        self._runs: set[asyncio.Task[None]] = set()

    async def create_container(
        self, request: ContainerCreateRequest, name: str | None
    ) -> ContainerCreateResponse:
        container_id = secrets.token_hex(32)
        await self._lam.control.create_function(**function_params(_function(container_id), self._role_arn))
        self._containers.add(container_id)
        return ContainerCreateResponse(id=container_id)

    async def start_container(self, ref: str) -> None:
        exited = self._exits[self._known(ref)] = asyncio.get_running_loop().create_future()

        async def run() -> None:
            response = await self._lam.invoke.invoke(FunctionName=_function(ref), LogType="Tail")
            await response["Payload"].read()
            status_code = 1 if response.get("FunctionError") else 0
            await self._exited(ref, status_code)
            exited.set_result(WaitResponse(status_code=status_code))

        task = asyncio.create_task(run())
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)

    async def wait_container(self, ref: str, condition: WaitCondition) -> Awaitable[WaitResponse]:
        return self._exits[self._known(ref)]

    async def _exited(self, ref: str, status_code: int) -> None:
        """The run ended (before the waiters hear it)."""

    async def remove_container(self, ref: str, *, force: bool, volumes: bool) -> None:
        await self._lam.control.delete_function(FunctionName=_function(self._known(ref)))
        self._containers.discard(ref)
        self._exits.pop(ref, None)


class DurableCallsBackend(CallsOnlyBackend):
    """The floor's AWS calls plus the store writes durability needs (see the module docstring)."""

    name = "durable-calls"

    def __init__(self, lam: LambdaClients, role_arn: str, store_path: str) -> None:
        super().__init__(lam, role_arn)
        self._store_path = store_path
        self._opened: Store | None = None

    @property
    def _store(self) -> Store:
        if self._opened is None:
            raise RuntimeError("not started")
        return self._opened

    async def start(self) -> None:
        self._opened = await Store.open(self._store_path)

    async def close(self) -> None:
        await super().close()
        if self._opened is not None:
            await self._opened.close()

    async def create_container(
        self, request: ContainerCreateRequest, name: str | None
    ) -> ContainerCreateResponse:
        container_id = secrets.token_hex(32)
        record = ContainerRecord(
            id=container_id,
            name=f"durable_{container_id[:12]}",
            created=dt.datetime.now(dt.UTC),
            image=request.config.image,
            config=request.config,
            host_config=request.host_config,
            backend_fields={"function_name": _function(container_id)},
        )
        await self._store.add_container(record)
        await self._lam.control.create_function(**function_params(_function(container_id), self._role_arn))
        self._containers.add(container_id)
        return ContainerCreateResponse(id=container_id)

    async def start_container(self, ref: str) -> None:
        record = self._record(ref)
        record.status, record.started_at = "running", dt.datetime.now(dt.UTC)
        record.backend_fields["invocation"] = "sent"
        await self._store.save_container(record)
        await super().start_container(ref)

    async def _exited(self, ref: str, status_code: int) -> None:
        record = self._record(ref)
        record.status, record.exit_code, record.finished_at = "exited", status_code, dt.datetime.now(dt.UTC)
        await self._store.save_container(record)

    async def remove_container(self, ref: str, *, force: bool, volumes: bool) -> None:
        record = self._record(ref)
        record.status = "removing"
        marking = asyncio.ensure_future(self._store.save_container(record))
        await super().remove_container(ref, force=force, volumes=volumes)
        await marking
        await self._store.delete_container(ref)

    def _record(self, ref: str) -> ContainerRecord:
        record = self._store.get_container(self._known(ref))
        if record is None:
            raise NotFound(f"No such container: {ref}")
        return record


def _function(container_id: str) -> str:
    return f"calls-only-{container_id[:24]}"


async def _serve(argv: list[str]) -> None:
    if len(argv) == 1:
        server = InternalAPIServer(NullBackend(), socket_path=argv[0])
        await run_until_signalled(server.start, server.stop)
        return
    async with lambda_clients(argv[1]) as lam:
        backend = (
            DurableCallsBackend(lam, argv[2], argv[3]) if len(argv) == 4 else CallsOnlyBackend(lam, argv[2])
        )
        server = InternalAPIServer(backend, socket_path=argv[0])
        await run_until_signalled(server.start, server.stop)


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 3, 4):
        usage = "usage: python -m bench.null_backend <socket path> [<endpoint URL> <role ARN> [<store path>]]"
        print(usage, file=sys.stderr)
        return 2
    configure_logging("info", "json")  # as `sockerless serve` logs by default: one line per request
    asyncio.run(_serve(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
