"""``LambdaBackend``: the Backend protocol on AWS Lambda, wiring the parts together.

The parts, one concept each: :mod:`.aws` (session and clients), :mod:`.containers` (the Docker
container verbs), :mod:`.runs` (one start's run), :mod:`.invocations` (one invocation),
:mod:`.output` (a run's output into the log store), :mod:`.cloudwatch` (the shared CloudWatch
reader), :mod:`.images` (images, prepared by :mod:`.prepare`), :mod:`.reconcile` (start-up recovery,
orphans), :mod:`.state` (the typed per-container state). Everything this class does not override
answers 501 (exec, attach, networks, volumes, image load).
"""

from __future__ import annotations

import asyncio
import logging
import platform
from collections.abc import AsyncIterator, Awaitable, Coroutine
from typing import Any, ClassVar, TypeVar

import attrs

from sockerless import models
from sockerless.backend import BackendRuntime, BaseBackend, ContainerLogs, Filters, LogsOptions
from sockerless.errors import SockerlessError, Unavailable
from sockerless.events import EventBus, EventsOptions, EventStream
from sockerless.store import Store
from sockerless.waiters import ContainerWaiters
from sockerless.wire import Encoded
from sockerless_lambda import __version__
from sockerless_lambda.aws import AwsClients, AwsSettings, aws_error_code, call
from sockerless_lambda.cloudwatch import LogReader
from sockerless_lambda.config import LambdaConfig
from sockerless_lambda.containers import ContainerService
from sockerless_lambda.errors import AwsOperation
from sockerless_lambda.functions import MANAGED_TAG, validate_container_name
from sockerless_lambda.images import ImageService
from sockerless_lambda.invocations import Invoker
from sockerless_lambda.prepare import ImagePreparer
from sockerless_lambda.reconcile import find_orphans, reconcile_containers
from sockerless_lambda.simulation import Simulator, load_simulator_factory
from sockerless_lambda.state import LambdaState

__all__ = ["LambdaBackend"]

log = logging.getLogger("sockerless.lambda")
T = TypeVar("T")

_FAKE_CREDENTIALS = ("testing", "testing")  # the simulator accepts anything; never real AWS
#: State.Error of a run the embedded simulator ended because sockerless stopped.
KILLED_AT_STOP = (
    "killed: sockerless stopped while the container ran, and the embedded Lambda simulator that ran it "
    "stopped with it"
)
#: A wait still pending when sockerless stops (its container's exit is not known yet).
WAIT_CUT_AT_STOP = (
    "sockerless is stopping before the container's exit is known; a run still in flight goes on in "
    "Lambda, and its exit is recorded when sockerless starts again (wait again then)"
)


class LambdaBackend(BaseBackend):
    """Containers as AWS Lambda functions (container images), output from CloudWatch Logs."""

    name: ClassVar[str] = "lambda"
    capabilities: ClassVar[models.Capabilities] = models.Capabilities(
        exec=False,
        attach=False,
        logs=True,
        logs_follow=True,
        volumes=False,
        networks=False,
        health_checks=False,
        image_pull=True,
        image_load=False,
        max_timeout_seconds=900,
        agent_required=False,
        rename=True,
        events=True,
    )
    config_class: ClassVar[type[Any] | None] = LambdaConfig
    cli_aliases: ClassVar[dict[str, str]] = {"--simulate": "lambda.simulate"}
    version_string: ClassVar[str] = __version__

    def __init__(self, config: LambdaConfig, runtime: BackendRuntime) -> None:
        self.config = config
        self.runtime = runtime
        self.simulator: Simulator | None = None  # in simulate mode only
        self._clients: AwsClients | None = None
        self._store: Store[LambdaState] | None = None
        self._waiters = ContainerWaiters()
        self._events = EventBus()
        self._reader: LogReader | None = None
        self._images: ImageService | None = None
        self._preparer: ImagePreparer | None = None
        self._containers: ContainerService | None = None
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise

    async def start_clients(self) -> None:
        """Open the AWS clients (starting the embedded simulator first in simulate mode)."""
        config = self.config
        settings = AwsSettings(
            region=config.region or "",
            endpoint_url=config.endpoint_url,
            profile=config.profile,
            function_timeout=config.timeout,
            max_concurrent_invocations=config.max_concurrent_invocations,
            max_attempts=config.max_attempts,
            control_plane_rate=config.control_plane_rate,
            get_function_rate=config.get_function_rate,
        )
        if config.simulate:
            self.simulator = load_simulator_factory()(region=config.region or "us-east-1")
            await self.simulator.start()
            settings.region, settings.endpoint_url = self.simulator.region, self.simulator.endpoint_url
            settings.profile, settings.static_credentials = None, _FAKE_CREDENTIALS
            # The effective settings: the simulator's region and role unless configured.
            self.config = attrs.evolve(
                config, region=self.simulator.region, role_arn=config.role_arn or self.simulator.role_arn
            )
            log.info("simulate: using the embedded Lambda simulator at %s", settings.endpoint_url)
        self._clients = await AwsClients.open(settings)

    @property
    def clients(self) -> AwsClients:
        return _started(self._clients)

    async def _start(self) -> None:
        await self.start_clients()
        config, clients = self.config, self.clients
        # Its AWS round trips overlap the store's load, which is this process's own work.
        log_group = asyncio.ensure_future(self._ensure_log_group())
        try:
            self._store = await Store.open(
                self.runtime.state_path, state_class=LambdaState, config=self.runtime.store
            )
            self._reader = LogReader(
                clients,
                log_group=config.log_group,
                interval=config.log_read_interval,
                overlap_ms=config.log_read_overlap * 1000,
            )
            if config.prepare_images:
                self._preparer = ImagePreparer.open(config, clients.settings)
            self._images = ImageService(
                self._store,
                architecture=config.architecture,
                events=self._events,
                preparer=self._preparer,
                as_is_when_unfetchable=config.images_as_is_when_unfetchable,
            )
            self._containers = ContainerService(
                config=config,
                instance_id=self.runtime.instance_id,
                store=self._store,
                clients=clients,
                invoker=Invoker(
                    clients,
                    limit=config.max_concurrent_invocations,
                    max_attempts=config.max_attempts,
                    invocation_type=config.invocation_type,
                    activation_timeout=config.activation_timeout,
                    capacity_wait=config.capacity_wait,
                ),
                reader=self._reader,
                waiters=self._waiters,
                images=self._images,
                events=self._events,
            )
            await log_group
        except BaseException:
            log_group.cancel()
            await asyncio.gather(log_group, return_exceptions=True)
            raise
        await reconcile_containers(self._containers, self._store, clients)
        self._containers.functions.start_sweeper()  # cancelled by close (ContainerService.close)
        self._spawn(self._report_orphans())

    async def close(self) -> None:
        """Cancel background work (runs are recovered at the next start), then close clients and the store."""
        self._events.close()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._containers is not None:
            await self._containers.close()
        if self._reader is not None:
            await self._reader.close()
        if self._preparer is not None:
            await self._preparer.close()
            self._preparer = None
        self._waiters.close()
        if self._store is not None:
            await self._store.close()
            self._store = None
        if self._clients is not None:
            await self._clients.close()
            self._clients = None
        if self.simulator is not None:
            await self.simulator.stop()
            self.simulator = None

    # ------------------------------------------------------------------ shutdown

    def runs_in_flight(self) -> int:
        return self._containers.runs.in_flight() if self._containers is not None else 0

    async def runs_ended(self) -> None:
        if self._containers is not None:
            await self._containers.runs.ended()

    async def release_clients(self) -> None:
        """The embedded simulator stops with this process and kills the runs it carries: they are
        recorded as killed now (their waits answer 137). On AWS a run goes on after this process
        exits, and the next start records its exit: a wait still pending answers that it ends
        without it. Followed logs end after the output they have."""
        if self._containers is None or self._store is None:
            return
        if self.simulator is not None:
            settled = await self._containers.runs.settle_as_killed(KILLED_AT_STOP)
            if settled:
                log.warning(
                    "stopping: runs still in flight are ended with the embedded simulator (exit 137)",
                    extra={"fields": {"runs": settled}},
                )
        elif self._containers.runs.in_flight():
            log.warning(
                "stopping: runs still in flight go on in Lambda; the next start records their exits",
                extra={"fields": {"runs": self._containers.runs.in_flight()}},
            )
        self._waiters.fail_all(Unavailable(WAIT_CUT_AT_STOP))
        self._store.logs.end_follows()

    async def background_done(self) -> None:
        """Wait for the background work start() left running (the orphan report), for tests and tools
        that count AWS calls from a quiet start."""
        await asyncio.gather(*self._background, return_exceptions=True)

    async def cleanups_settled(self) -> None:
        """Wait until the functions of removed containers being deleted in the background are deleted
        (or their deletion failed and stays pending), for tests that look for them in Lambda."""
        await self._service.cleanups_settled()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _ensure_log_group(self) -> None:
        """The shared group, with retention and our tag; without permission, a warning (Lambda creates it)."""
        logs, group = self.clients.logs, self.config.log_group
        try:
            await call(
                AwsOperation("logs", "CreateLogGroup", "create log group", group),
                logs.create_log_group,
                logGroupName=group,
                tags={MANAGED_TAG: "true"},
            )
        except SockerlessError as exc:
            # Denied, throttled past the retries, or AWS unreachable: serving does not need the group
            # (Lambda creates it on first use, without retention or tags), so start anyway.
            if aws_error_code(exc) != "ResourceAlreadyExistsException":
                log.warning(
                    "cannot create the log group; Lambda creates it without retention: %s", exc.message
                )
        if self.config.log_retention_days:
            try:
                await call(
                    AwsOperation("logs", "PutRetentionPolicy", "set retention of log group", group),
                    logs.put_retention_policy,
                    logGroupName=group,
                    retentionInDays=self.config.log_retention_days,
                )
            except SockerlessError as exc:  # denied, or no group (creation was denied): not fatal
                log.warning("cannot set the log group's retention: %s", exc.message)

    async def _report_orphans(self) -> None:
        try:
            orphans = await find_orphans(self.clients, self.store, self.config, self.runtime.instance_id)
        except SockerlessError as exc:
            log.warning("cannot look for orphaned functions: %s", exc.message)
            return
        for orphan in orphans:
            log.warning(
                "orphaned Lambda function: tagged as sockerless's but unknown to the store; "
                "list or delete with 'sockerless-backend-lambda orphans [--delete]'",
                extra={
                    "fields": {
                        "function": orphan.function_name,
                        "instance": orphan.instance,
                        "mine": orphan.mine,
                    }
                },
            )

    @property
    def store(self) -> Store[LambdaState]:
        """The state store (open between start() and close())."""
        return _started(self._store)

    @property
    def _service(self) -> ContainerService:
        return _started(self._containers)

    @property
    def _image_service(self) -> ImageService:
        return _started(self._images)

    # ------------------------------------------------------------------ system

    async def info(self) -> models.BackendInfo:
        records = list(self.store.containers())
        running = sum(1 for r in records if r.status == "running")
        return models.BackendInfo(
            id=self.runtime.instance_id,
            name=f"sockerless-lambda ({self.config.region or 'simulated'})",
            server_version=self.version_string,
            containers=len(records),
            containers_running=running,
            containers_stopped=len(records) - running,
            images=self._image_service.count(),
            driver="lambda",
            operating_system="AWS Lambda",
            architecture="aarch64" if self.config.architecture == "arm64" else "x86_64",
            kernel_version=platform.release(),
        )

    async def version(self) -> models.VersionInfo:
        arch = "arm64" if self.config.architecture == "arm64" else "amd64"
        return models.VersionInfo(version=self.version_string, arch=arch)

    # ------------------------------------------------------------------ containers

    async def create_container(
        self, request: models.ContainerCreateRequest, name: str | None
    ) -> models.ContainerCreateResponse:
        return await self._service.create(request, name)

    async def list_containers(
        self, *, all: bool, limit: int | None, filters: Filters
    ) -> Encoded[list[models.ContainerSummary]]:
        return self._service.summaries(all=all, limit=limit, filters=filters)

    async def inspect_container(self, ref: str) -> Encoded[models.Container]:
        return self._service.inspect(ref)

    async def start_container(self, ref: str) -> None:
        await self._service.start(ref)

    async def stop_container(self, ref: str, *, timeout: int | None, signal: str | None) -> None:
        await self._service.stop(ref)

    async def kill_container(self, ref: str, *, signal: str | None) -> None:
        await self._service.kill(ref)

    async def restart_container(self, ref: str, *, timeout: int | None) -> None:
        await self._service.restart(ref)

    async def remove_container(self, ref: str, *, force: bool, volumes: bool) -> None:
        await self._service.remove(ref, force=force)

    async def wait_container(
        self, ref: str, condition: models.WaitCondition
    ) -> Awaitable[models.WaitResponse]:
        return self._service.wait(ref, condition)

    async def container_logs(self, ref: str, options: LogsOptions) -> ContainerLogs:
        return await self._service.logs(ref, options)

    async def prune_containers(self, filters: Filters) -> models.PruneResponse:
        return await self._service.prune(filters)

    async def rename_container(self, ref: str, name: str) -> None:
        """In the store only: the function is named after the container's ID, not its name."""
        record = self.store.resolve_container(ref)
        old_name = record.name
        await self.store.rename_container(record, validate_container_name(name))
        self._events.container("rename", record, oldName="/" + old_name)

    # ------------------------------------------------------------------ events

    async def events(self, options: EventsOptions) -> EventStream:
        return self._events.subscribe(options)

    # ------------------------------------------------------------------ images

    async def pull_image(self, request: models.ImagePullRequest) -> AsyncIterator[dict[str, Any]]:
        async for line in self._image_service.pull(request):
            yield line

    async def list_images(self) -> list[models.ImageSummary]:
        return self._image_service.summaries()

    async def inspect_image(self, name: str) -> models.Image:
        return self._image_service.inspect(name)

    async def tag_image(self, name: str, repo: str, tag: str) -> None:
        await self._image_service.tag(name, repo, tag)

    async def remove_image(
        self, name: str, *, force: bool, noprune: bool
    ) -> list[models.ImageDeleteResponseItem]:
        return await self._image_service.remove(name, force=force)

    async def prune_images(self, filters: Filters) -> models.ImagePruneResponse:
        return await self._image_service.prune(filters)


def _started(part: T | None) -> T:
    if part is None:
        raise RuntimeError("the Lambda backend is not started (call start() first)")
    return part
