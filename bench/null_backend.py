"""A backend that does nothing, served by the real internal-API server: the cost of the hop alone.

Item 1 runs its lifecycle (create → start → wait → logs → remove) against this backend, through the
same client, server, middlewares and JSON access log as ``sockerless serve lambda``, in a process of
its own. Nothing is stored and no AWS call is made, so its time is what the five HTTP round trips
between two processes cost on this machine: the part of the overhead no backend work can remove.

Run as ``python -m bench.null_backend <socket path>``; SIGINT or SIGTERM stops it.
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


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.null_backend <socket path>", file=sys.stderr)
        return 2
    configure_logging("info", "json")  # as `sockerless serve` logs by default: one line per request
    server = InternalAPIServer(NullBackend(), socket_path=argv[0])
    asyncio.run(run_until_signalled(server.start, server.stop))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
