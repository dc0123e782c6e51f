"""A small backend for the frontend's tests: each container's command runs as a local process.

It has what Lambda has and lacks what Lambda lacks (logs but no follow, no attach, no exec, no
networks, no volumes), so the frontend's emulations are exercised against any backend, not only
Lambda. Output is kept in memory with timestamps. Two quirks of the Lambda backend can be turned
on: ``log_delay`` makes lines of a running container visible only that long after they were
printed (CloudWatch), and ``restamp_after_exit`` stamps every line with the exit time in the first
fetch after the exit (the quick tail Lambda returns before CloudWatch has the lines). As with
Lambda, the logs of an exited container are final, and ``--rm`` removes the container and its
logs at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import os
import secrets
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from typing import Any, ClassVar

import attrs

from sockerless.backend import BaseBackend, ContainerLogs, Filters, LogLine, LogsOptions
from sockerless.errors import Conflict, InvalidParameter, NotFound, NotModified
from sockerless.filters import matches
from sockerless.logfilter import iterate, select
from sockerless.models import (
    AuthRequest,
    AuthResponse,
    BackendInfo,
    Capabilities,
    Container,
    ContainerCreateRequest,
    ContainerCreateResponse,
    ContainerSummary,
    Image,
    ImagePullRequest,
    ImageSummary,
    PruneResponse,
    WaitCondition,
    WaitResponse,
)
from sockerless.references import normalize_reference
from sockerless.store import ContainerRecord
from sockerless.views import container_inspect, container_summary
from sockerless.waiters import ContainerWaiters, ExitStatus

__all__ = ["LocalBackend"]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LocalBackend(BaseBackend):
    name: ClassVar[str] = "local"
    capabilities: ClassVar[Capabilities] = Capabilities(logs=True, image_pull=True, max_timeout_seconds=60)

    def __init__(
        self, *, log_delay: float = 0.0, restamp_after_exit: bool = False, final_logs: bool = False
    ) -> None:
        self.final_logs = final_logs  # mark an exited container's logs final, as the Lambda backend does
        self.log_delay = log_delay
        self.restamp_after_exit = restamp_after_exit
        self._restamped: set[str] = set()
        self.records: dict[str, ContainerRecord] = {}
        self.output: dict[str, list[LogLine]] = {}
        self.images: dict[str, Image] = {}
        self.created: dict[str, int] = {}
        self.pulls: list[ImagePullRequest] = []
        self.calls: Counter[str] = Counter()
        self.waiters = ContainerWaiters(tombstone_seconds=60)
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._runs: dict[str, asyncio.Task[None]] = {}

    async def close(self) -> None:
        for process in self._processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        await asyncio.gather(*self._runs.values(), return_exceptions=True)
        self.waiters.close()

    # ------------------------------------------------------------------ lookups

    def _resolve(self, ref: str) -> ContainerRecord:
        ref = ref.lstrip("/")
        if ref in self.records:
            return self.records[ref]
        for record in self.records.values():
            if record.name == ref:
                return record
        found = [r for r in self.records.values() if len(ref) >= 3 and r.id.startswith(ref)]
        if len(found) == 1:
            return found[0]
        raise NotFound(f"No such container: {ref}")

    # ------------------------------------------------------------------ system

    async def info(self) -> BackendInfo:
        running = sum(1 for r in self.records.values() if r.status == "running")
        return BackendInfo(
            id="local-1",
            name="local",
            server_version="0.1.0",
            containers=len(self.records),
            containers_running=running,
            containers_stopped=len(self.records) - running,
            images=len(self.images),
            driver="local",
            operating_system="local processes",
            architecture="x86_64",
        )

    # ------------------------------------------------------------------ containers

    async def create_container(
        self, request: ContainerCreateRequest, name: str | None
    ) -> ContainerCreateResponse:
        self.calls["create"] += 1
        if not request.config.cmd and not request.config.entrypoint:
            raise InvalidParameter("No command specified")
        if name:
            for record in self.records.values():
                if record.name == name:
                    raise Conflict(f'Conflict. The container name "/{name}" is already in use')
        container_id = secrets.token_hex(32)
        self.records[container_id] = ContainerRecord(
            id=container_id,
            name=name or f"local_{container_id[:8]}",
            created=_now(),
            image=request.config.image,
            config=request.config,
            host_config=request.host_config,
        )
        self.output[container_id] = []
        return ContainerCreateResponse(id=container_id)

    async def list_containers(
        self, *, all: bool, limit: int | None, filters: Filters
    ) -> list[ContainerSummary]:
        now = _now()
        rows = [
            container_summary(record, now)
            for record in self.records.values()
            if (all or record.status == "running") and matches(record, filters)
        ]
        return rows[:limit] if limit else rows

    async def inspect_container(self, ref: str) -> Container:
        self.calls["inspect"] += 1
        return container_inspect(self._resolve(ref))

    async def start_container(self, ref: str) -> None:
        record = self._resolve(ref)
        if record.status == "running":
            raise NotModified("already running")
        argv = [*(record.config.entrypoint or []), *(record.config.cmd or [])]
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **record.config.env_dict()},
            start_new_session=True,
        )
        record.status, record.started_at, record.pid = "running", _now(), process.pid
        self._restamped.discard(record.id)
        self._processes[record.id] = process
        self._runs[record.id] = asyncio.create_task(self._run(record, process))

    async def _run(self, record: ContainerRecord, process: asyncio.subprocess.Process) -> None:
        async def pump(reader: asyncio.StreamReader | None, stream: int) -> None:
            assert reader is not None
            while line := await reader.readline():
                self.output[record.id].append(LogLine(stream=stream, timestamp=_now(), data=line))

        await asyncio.gather(pump(process.stdout, 1), pump(process.stderr, 2))
        code = await process.wait()
        self._processes.pop(record.id, None)
        self._runs.pop(record.id, None)
        record.status, record.finished_at, record.pid = "exited", _now(), 0
        record.exit_code = code if code >= 0 else 128 - code
        self.waiters.exited(record.id, ExitStatus(record.exit_code))
        if record.host_config.auto_remove:
            self._forget(record)

    def _forget(self, record: ContainerRecord) -> None:
        self.records.pop(record.id, None)
        self.output.pop(record.id, None)
        self.waiters.removed(record.id, record.name, ExitStatus(record.exit_code))

    async def _signal(self, record: ContainerRecord, sig: int) -> None:
        process = self._processes.get(record.id)
        run = self._runs.get(record.id)
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
        if run is not None:
            await asyncio.shield(run)

    async def stop_container(self, ref: str, *, timeout: int | None, signal: str | None) -> None:
        record = self._resolve(ref)
        if record.status != "running":
            raise NotModified("not running")
        await self._signal(record, 9)

    async def kill_container(self, ref: str, *, signal: str | None) -> None:
        record = self._resolve(ref)
        if record.status != "running":
            raise Conflict(f"Container {record.id} is not running")
        await self._signal(record, 9)

    async def restart_container(self, ref: str, *, timeout: int | None) -> None:
        record = self._resolve(ref)
        if record.status == "running":
            await self._signal(record, 9)
        await self.start_container(record.id)

    async def remove_container(self, ref: str, *, force: bool, volumes: bool) -> None:
        record = self._resolve(ref)
        if record.status == "running":
            if not force:
                raise Conflict(
                    f"You cannot remove a running container {record.id[:12]}. "
                    "Stop the container before attempting removal or force remove"
                )
            await self._signal(record, 9)
        if record.id in self.records:
            self._forget(record)

    async def wait_container(self, ref: str, condition: WaitCondition) -> Awaitable[WaitResponse]:
        try:
            record = self._resolve(ref)
        except NotFound:
            stone = self.waiters.tombstone(ref.lstrip("/"))
            if stone is None:
                raise
            future: asyncio.Future[WaitResponse] = asyncio.get_running_loop().create_future()
            future.set_result(stone[1].response())
            return future
        return self.waiters.wait(
            record.id, condition, status=record.status, last=ExitStatus(record.exit_code)
        )

    async def container_logs(self, ref: str, options: LogsOptions) -> ContainerLogs:
        self.calls["logs"] += 1
        record = self._resolve(ref)
        lines = self.output[record.id]
        if record.status == "running":
            visible_until = _now() - dt.timedelta(seconds=self.log_delay)
            lines = [line for line in lines if line.timestamp <= visible_until]
        elif self.restamp_after_exit and record.finished_at and record.id not in self._restamped:
            self._restamped.add(record.id)
            lines = [attrs.evolve(line, timestamp=record.finished_at) for line in lines]
        final = self.final_logs and record.status == "exited"
        return ContainerLogs(tty=record.config.tty, lines=iterate(select(lines, options)), final=final)

    async def prune_containers(self, filters: Filters) -> PruneResponse:
        deleted = []
        for record in list(self.records.values()):
            if record.status != "running" and matches(record, {"label": list(filters.get("label", []))}):
                self._forget(record)
                deleted.append(record.id)
        return PruneResponse(containers_deleted=deleted)

    # ------------------------------------------------------------------ images

    async def pull_image(self, request: ImagePullRequest) -> AsyncIterator[dict[str, Any]]:
        self.pulls.append(request)
        reference = normalize_reference(request.reference)
        yield {"status": f"Pulling from {reference}"}
        if "missing" in reference:
            raise NotFound(f"pull access denied for {reference}: repository does not exist")
        digest = "sha256:" + hashlib.sha256(reference.encode()).hexdigest()
        familiar = request.reference if "/" in request.reference.split(":")[0] else reference
        self.images[reference] = Image(id=digest, repo_tags=[familiar.removeprefix("docker.io/library/")])
        self.created.setdefault(digest, len(self.created) + 1)  # pull order, as seconds
        yield {"status": f"Digest: {digest}"}
        yield {"status": f"Status: Downloaded newer image for {reference}"}

    async def list_images(self) -> list[ImageSummary]:
        rows: dict[str, ImageSummary] = {}
        for reference, image in sorted(self.images.items()):
            row = rows.setdefault(image.id, ImageSummary(id=image.id, created=self.created.get(image.id, 0)))
            tag = normalize_reference(reference).removeprefix("docker.io/library/")
            row.repo_tags.append(tag)
        return list(rows.values())

    async def inspect_image(self, name: str) -> Image:
        self.calls["inspect_image"] += 1
        try:
            reference = normalize_reference(name)
        except InvalidParameter:
            raise NotFound(f"No such image: {name}") from None
        if reference not in self.images:
            raise NotFound(f"No such image: {name}")
        return self.images[reference]

    async def tag_image(self, name: str, repo: str, tag: str) -> None:
        image = await self.inspect_image(name)
        self.images[normalize_reference(f"{repo}:{tag}")] = image

    async def auth(self, request: AuthRequest) -> AuthResponse:
        if request.password != "secret":
            raise InvalidParameter("login failed: wrong password")
        return AuthResponse()
