"""A small backend for the frontend's tests: each container's command runs as a local process.

It does what the design gives a backend to do, so that the frontend can be shown to pass it through:
it keeps its containers in a real store (``sockerless.store.Store``, a throwaway in-memory database),
keeps each container's output in memory and follows it itself (``logs_follow: true``, with
``condition`` = ``not-running`` or ``next-exit``, ``tail``, ``since``/``until`` and the stream flags),
and it does ``--rm`` itself at the exit. A removed container's exit status comes from the store's
removed containers, as does how long its output stays readable by ID (and name): the grace period.
:class:`LocalBackendWithoutFollow` is the same backend declaring ``logs_follow: false``: the server
then answers a follow with what it has.

Like Lambda it has logs but no attach, no exec, no networks and no volumes.
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
from attrs import define

from sockerless.backend import BaseBackend, ContainerLogs, Filters, LogLine, LogsOptions
from sockerless.config import StoreConfig
from sockerless.errors import Conflict, InvalidParameter, NotFound, NotModified
from sockerless.filters import matches, select_containers
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
from sockerless.store import ContainerRecord, Store
from sockerless.views import container_inspect, container_summary
from sockerless.waiters import ContainerWaiters, ExitStatus, answered

__all__ = ["LocalBackend", "LocalBackendWithoutFollow", "Output"]

Record = ContainerRecord[None]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@define(eq=False)
class Output:
    """One container's output and how far its runs have got: what a follower waits on.

    A run is complete once its process has exited and both of its pipes are read to the end, so a
    follower that sees it complete has every line of it.
    """

    tty: bool
    lines: list[LogLine] = attrs.Factory(list)
    runs_started: int = 0
    runs_complete: int = 0
    changed: asyncio.Condition = attrs.Factory(asyncio.Condition)

    async def append(self, line: LogLine) -> None:
        async with self.changed:
            self.lines.append(line)
            self.changed.notify_all()

    async def run_complete(self) -> None:
        async with self.changed:
            self.runs_complete += 1
            self.changed.notify_all()


class LocalBackend(BaseBackend):
    name: ClassVar[str] = "local"
    capabilities: ClassVar[Capabilities] = Capabilities(
        logs=True, logs_follow=True, image_pull=True, max_timeout_seconds=60
    )

    def __init__(self, *, removed_grace: float = 60.0) -> None:
        self.removed_grace = removed_grace
        self._store: Store[None] | None = None
        #: Each container's output by ID, a removed container's while the store still answers for it.
        self.outputs: dict[str, Output] = {}
        self.images: dict[str, Image] = {}
        self.created: dict[str, int] = {}
        self.pulls: list[ImagePullRequest] = []
        #: Calls by name: the tests count what the frontend asks of the backend.
        self.calls: Counter[str] = Counter()
        #: Log streams being followed now (a client that leaves must end its follower).
        self.followers = 0
        self.waiters = ContainerWaiters()
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._runs: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        config = StoreConfig(removed_grace_seconds=self.removed_grace)
        self._store = await Store.open(":memory:", state_class=type(None), config=config)

    async def close(self) -> None:
        for process in self._processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        await asyncio.gather(*self._runs.values(), return_exceptions=True)
        self.waiters.close()
        if self._store is not None:
            await self._store.close()

    # ------------------------------------------------------------------ lookups

    @property
    def store(self) -> Store[None]:
        assert self._store is not None, "the backend is not started"
        return self._store

    def _resolve(self, ref: str) -> Record:
        return self.store.resolve_container(ref)

    def _output_of(self, ref: str) -> Output:
        """A container's output, also for a removed one within the grace period."""
        try:
            return self.outputs[self._resolve(ref).id]
        except NotFound:
            removed = self.store.removed_container(ref)
            if removed is None or removed.id not in self.outputs:
                raise
            return self.outputs[removed.id]

    # ------------------------------------------------------------------ system

    async def info(self) -> BackendInfo:
        records = self.store.containers()
        running = sum(1 for r in records if r.status == "running")
        return BackendInfo(
            id="local-1",
            name="local",
            server_version="0.1.0",
            containers=len(records),
            containers_running=running,
            containers_stopped=len(records) - running,
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
        name = name.lstrip("/") if name else None
        container_id = secrets.token_hex(32)
        record: Record = ContainerRecord(
            id=container_id,
            name=name or f"local_{container_id[:8]}",
            created=_now(),
            image=request.config.image,
            config=request.config,
            host_config=request.host_config,
            backend_state=None,
        )
        await self.store.add_container(record)  # Conflict (Docker's message) when the name is taken
        self.outputs[container_id] = Output(tty=request.config.tty)
        return ContainerCreateResponse(id=container_id)

    async def list_containers(
        self, *, all: bool, limit: int | None, filters: Filters
    ) -> list[ContainerSummary]:
        now = _now()
        selected = select_containers(
            self.store.containers(), filters, all=all, limit=limit, resolve=self._resolve
        )
        return [container_summary(record, now) for record in selected]

    async def inspect_container(self, ref: str) -> Container:
        self.calls["inspect"] += 1
        return container_inspect(self._resolve(ref), runtime=self.name)

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
        output = self.outputs[record.id]
        output.runs_started += 1
        self._processes[record.id] = process
        self._runs[record.id] = asyncio.create_task(self._run(record, output, process))

    async def _run(self, record: Record, output: Output, process: asyncio.subprocess.Process) -> None:
        async def pump(reader: asyncio.StreamReader | None, stream: int) -> None:
            assert reader is not None
            while line := await reader.readline():
                await output.append(LogLine(stream=stream, timestamp=_now(), data=line))

        await asyncio.gather(pump(process.stdout, 1), pump(process.stderr, 2))
        code = await process.wait()
        self._processes.pop(record.id, None)
        self._runs.pop(record.id, None)
        record.status, record.finished_at, record.pid = "exited", _now(), 0
        record.exit_code = code if code >= 0 else 128 - code
        await output.run_complete()
        self.waiters.exited(record.id, ExitStatus(record.exit_code))
        if record.host_config.auto_remove and self.store.get_container(record.id) is record:
            await self._forget(record)  # --rm is the backend's: the output stays readable for a while

    async def _forget(self, record: Record) -> None:
        await self.store.delete_container(record.id)
        self.waiters.removed(record.id, ExitStatus(record.exit_code))
        # The outputs of containers the store no longer answers for go (their grace period is over).
        self.outputs = {
            container_id: output
            for container_id, output in self.outputs.items()
            if self.store.get_container(container_id) or self.store.removed_container(container_id)
        }

    async def _signal(self, record: Record, sig: int) -> None:
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
        if self.store.get_container(record.id) is record:
            await self._forget(record)

    async def wait_container(self, ref: str, condition: WaitCondition) -> Awaitable[WaitResponse]:
        try:
            record = self._resolve(ref)
        except NotFound:
            removed = self.store.removed_container(ref)
            if removed is None:
                raise
            return answered(ExitStatus(removed.exit_code, removed.error))
        return self.waiters.wait(
            record.id, condition, status=record.status, last=ExitStatus(record.exit_code)
        )

    async def container_logs(self, ref: str, options: LogsOptions) -> ContainerLogs:
        """The lines so far, and with ``follow`` the rest as it comes. The follower is registered here,
        before the answer's headers go out: what is printed after this call is in the stream."""
        self.calls["logs"] += 1
        output = self._output_of(ref)
        seen = len(output.lines)
        shown = select(output.lines[:seen], options)
        if not options.follow:
            return ContainerLogs(tty=output.tty, lines=iterate(shown))
        # not-running: the run going on now, if any; next-exit: the coming run (or the one going on).
        last_run = (
            output.runs_complete + 1 if options.condition is WaitCondition.NEXT_EXIT else output.runs_started
        )
        later = attrs.evolve(options, tail=None)  # the tail is of the lines already there
        return ContainerLogs(tty=output.tty, lines=self._follow(output, shown, seen, last_run, later))

    async def _follow(
        self, output: Output, shown: list[LogLine], seen: int, last_run: int, options: LogsOptions
    ) -> AsyncIterator[LogLine]:
        """``shown``, then every line after the first ``seen`` as it comes, until run ``last_run`` is
        complete (at once when it is already)."""
        self.followers += 1
        try:
            for line in shown:
                yield line
            while True:
                async with output.changed:
                    await output.changed.wait_for(
                        lambda: len(output.lines) > seen or output.runs_complete >= last_run
                    )
                    fresh, seen = output.lines[seen:], len(output.lines)
                    done = output.runs_complete >= last_run
                for line in select(fresh, options):
                    yield line
                if done:
                    return
        finally:
            self.followers -= 1

    async def prune_containers(self, filters: Filters) -> PruneResponse:
        deleted = []
        for record in self.store.containers():
            if record.status != "running" and matches(record, {"label": list(filters.get("label", []))}):
                await self._forget(record)
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


class LocalBackendWithoutFollow(LocalBackend):
    """The same backend declaring ``logs_follow: false``: a follow is answered with what it has."""

    capabilities: ClassVar[Capabilities] = attrs.evolve(LocalBackend.capabilities, logs_follow=False)
