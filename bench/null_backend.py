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
  DeleteFunction and the deletion before the remove's answer. The floor of a durable backend
  that uses sockerless's store.
* ``BareSQLiteBackend`` makes the same writes at the same points with a bare ``sqlite3``
  connection, as cheaply as SQLite allows: one table keyed by ID, WAL with ``synchronous=NORMAL``,
  autocommit, the create request's JSON written once, and each later write changing only the
  status column. The floor of any backend that keeps those writes in SQLite.

Run as ``python -m bench.null_backend <socket path> [<endpoint URL> <role ARN> [<store path> [bare]]]``
(with the endpoint, the calls-only backend on that simulator; with a store path too, the durable
one; with ``bare`` after it, the bare-SQLite one); SIGINT or SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import sqlite3
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
from sockerless.wire import unstructure

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
        await self._accepted(container_id, request)
        await self._lam.control.create_function(**function_params(_function(container_id), self._role_arn))
        self._containers.add(container_id)
        return ContainerCreateResponse(id=container_id)

    async def _accepted(self, container_id: str, request: ContainerCreateRequest) -> None:
        """A container is accepted (before its function is created)."""

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

    async def _accepted(self, container_id: str, request: ContainerCreateRequest) -> None:
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

    async def start_container(self, ref: str) -> None:
        record = self._record(ref)
        record.status, record.started_at = "running", dt.datetime.now(dt.UTC)
        record.backend_fields["invocation"] = "sent"
        await self._store.save_state(record)
        await super().start_container(ref)

    async def _exited(self, ref: str, status_code: int) -> None:
        record = self._record(ref)
        record.status, record.exit_code, record.finished_at = "exited", status_code, dt.datetime.now(dt.UTC)
        await self._store.save_state(record)

    async def remove_container(self, ref: str, *, force: bool, volumes: bool) -> None:
        record = self._record(ref)
        record.status = "removing"
        marking = asyncio.ensure_future(self._store.save_state(record))
        await super().remove_container(ref, force=force, volumes=volumes)
        await marking
        await self._store.delete_container(ref)

    def _record(self, ref: str) -> ContainerRecord:
        record = self._store.get_container(self._known(ref))
        if record is None:
            raise NotFound(f"No such container: {ref}")
        return record


class BareSQLiteBackend(CallsOnlyBackend):
    """The durable-calls backend's writes with a bare ``sqlite3`` connection (see the module docstring)."""

    name = "bare-sqlite"

    def __init__(self, lam: LambdaClients, role_arn: str, path: str) -> None:
        super().__init__(lam, role_arn)
        self._path = path
        self._db: sqlite3.Connection | None = None

    @property
    def _sql(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("not started")
        return self._db

    async def start(self) -> None:
        self._db = sqlite3.connect(self._path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS containers (id TEXT PRIMARY KEY, status TEXT, doc TEXT) WITHOUT ROWID"
        )

    async def close(self) -> None:
        await super().close()
        if self._db is not None:
            self._db.close()

    def _status(self, ref: str, status: str) -> None:
        self._sql.execute("UPDATE containers SET status = ? WHERE id = ?", (status, ref))

    async def _accepted(self, container_id: str, request: ContainerCreateRequest) -> None:
        doc = json.dumps({"config": unstructure(request), "function": _function(container_id)})
        self._sql.execute("INSERT INTO containers VALUES (?, 'created', ?)", (container_id, doc))

    async def start_container(self, ref: str) -> None:
        self._status(self._known(ref), "running")
        await super().start_container(ref)

    async def _exited(self, ref: str, status_code: int) -> None:
        self._status(ref, f"exited {status_code}")

    async def remove_container(self, ref: str, *, force: bool, volumes: bool) -> None:
        # "removing" once DeleteFunction is on its way, as the durable-calls backend writes it.
        asyncio.get_running_loop().call_soon(self._status, self._known(ref), "removing")
        await super().remove_container(ref, force=force, volumes=volumes)
        self._sql.execute("DELETE FROM containers WHERE id = ?", (ref,))


def _function(container_id: str) -> str:
    return f"calls-only-{container_id[:24]}"


async def _serve(argv: list[str]) -> None:
    if len(argv) == 1:
        server = InternalAPIServer(NullBackend(), socket_path=argv[0])
        await run_until_signalled(server.start, server.stop)
        return
    async with lambda_clients(argv[1]) as lam:
        backend: CallsOnlyBackend
        if len(argv) == 5:
            backend = BareSQLiteBackend(lam, argv[2], argv[3])
        elif len(argv) == 4:
            backend = DurableCallsBackend(lam, argv[2], argv[3])
        else:
            backend = CallsOnlyBackend(lam, argv[2])
        server = InternalAPIServer(backend, socket_path=argv[0])
        await run_until_signalled(server.start, server.stop)


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 3, 4, 5) or (len(argv) == 5 and argv[4] != "bare"):
        usage = (
            "usage: python -m bench.null_backend <socket path> "
            "[<endpoint URL> <role ARN> [<store path> [bare]]]"
        )
        print(usage, file=sys.stderr)
        return 2
    configure_logging("info", "json")  # as `sockerless serve` logs by default: one line per request
    asyncio.run(_serve(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
