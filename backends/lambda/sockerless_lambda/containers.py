"""Containers as Lambda functions: create, start, stop, kill, restart, remove, wait, logs, list, prune.

One container is one function (``<prefix><24 hex of the ID>``); one start is one invocation
(:mod:`.runs`); its output goes to the store's log store (:mod:`.output`). The container's Lambda
side is its typed :class:`~.state.LambdaState`, stored with its record.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
from collections.abc import Iterable

import attrs
from attrs import define, field

from sockerless.backend import ContainerLogs, Filters, LogsOptions
from sockerless.errors import Conflict, NotFound, NotModified, SockerlessError
from sockerless.events import EventBus
from sockerless.filters import matches, select_containers
from sockerless.hostconfig import check_log_config
from sockerless.models import (
    Container,
    ContainerCreateRequest,
    ContainerCreateResponse,
    ContainerSummary,
    PruneResponse,
    WaitCondition,
    WaitResponse,
)
from sockerless.store import ContainerRecord, Store
from sockerless.views import ViewCache
from sockerless.waiters import ContainerWaiters, ExitStatus, answered
from sockerless.wire import Encoded, parse_time
from sockerless_lambda.aws import AwsClients
from sockerless_lambda.bootstrap.payload import run_id
from sockerless_lambda.cleanups import Cleanups, cleanup_of
from sockerless_lambda.cloudwatch import LogReader
from sockerless_lambda.config import LambdaConfig
from sockerless_lambda.functions import (
    FunctionSpec,
    create_function,
    delete_function,
    function_spec,
    validate_container_name,
)
from sockerless_lambda.images import ImageService
from sockerless_lambda.invocations import EXIT_KILLED, Invoker, function_cannot_run
from sockerless_lambda.output import OutputService
from sockerless_lambda.runs import Runs, last_exit
from sockerless_lambda.shared_functions import SharedFunctions, shared_spec
from sockerless_lambda.state import CREATING, QUEUED, SENT, LambdaState, Record

__all__ = ["ContainerService"]

log = logging.getLogger("sockerless.lambda.containers")

_PAST_REQUESTS_KEPT = 20


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@define(kw_only=True)
class ContainerService:
    """The Docker container verbs on Lambda."""

    _config: LambdaConfig
    _instance_id: str
    _store: Store[LambdaState]
    _clients: AwsClients
    _invoker: Invoker
    _reader: LogReader
    _waiters: ContainerWaiters
    _images: ImageService
    _events: EventBus
    output: OutputService = field(init=False)
    functions: SharedFunctions = field(init=False)
    runs: Runs = field(init=False)
    _cleanups: Cleanups = field(init=False)
    _views: ViewCache = field(init=False, factory=lambda: ViewCache(runtime="lambda"))

    def __attrs_post_init__(self) -> None:
        self.output = OutputService(
            self._store,
            self._reader,
            delivery_seconds=self._config.log_delivery_seconds,
            rescan_seconds=self._config.log_read_overlap,
        )
        self.functions = SharedFunctions(
            store=self._store, clients=self._clients, invoker=self._invoker, config=self._config
        )
        self.runs = Runs(
            config=self._config,
            functions=self.functions,
            store=self._store,
            invoker=self._invoker,
            output=self.output,
            waiters=self._waiters,
            clients=self._clients,
            instance_id=self._instance_id,
            events=self._events,
            on_exit=self._exited,
        )
        self._cleanups = Cleanups(self._store, self._clients)

    # ------------------------------------------------------------------ create

    async def create(self, request: ContainerCreateRequest, name: str | None) -> ContainerCreateResponse:
        check_log_config(request.host_config.log_config)
        container_id = secrets.token_hex(32)
        name = validate_container_name(name) if name else f"lambda_{container_id[:12]}"
        request, uri = await self._images.for_create(request)  # the image's defaults; its prepared URI
        spec = function_spec(
            _pulling(request, uri),
            container_id=container_id,
            name=name,
            instance_id=self._instance_id,
            config=self._config,
        )
        image = await self._images.remember(request.config.image)
        record: Record = ContainerRecord(
            id=container_id,
            name=name,
            created=_now(),
            image=request.config.image,
            config=request.config,
            host_config=request.host_config,
            image_id=image.id,
            backend_state=LambdaState(
                function_name=spec.name, image_uri=spec.params["Code"]["ImageUri"], bootstrap=spec.bootstrap
            ),
        )
        if spec.bootstrap:
            await self._create_on_shared_function(record, spec)
        else:
            await self._create_own_function(record, spec)
        log.info(
            "container created",
            extra={"fields": {"container": container_id, "function": record.backend_state.function_name}},
        )
        self._events.container("create", record)
        return ContainerCreateResponse(id=container_id, warnings=spec.warnings)

    async def _create_on_shared_function(self, record: Record, spec: FunctionSpec) -> None:
        """The container joins its image configuration's function (see :mod:`.shared_functions`): a
        store write, and for the first container of the key the one CreateFunction, made under the
        key's lock so that concurrent creates of the key find it made."""
        key, shared = shared_spec(spec, instance_id=self._instance_id, config=self._config)
        state = record.backend_state
        async with self.functions.lock(key):
            function, must_create = await self.functions.join(key, shared)
            state.function_key, state.function_name = key, function.name
            state.function_arn, state.function_state = function.arn, function.state
            try:
                # Recorded before CreateFunction: a crash leaves a record reconciliation can finish or drop.
                await self._store.add_container(record)
            except BaseException:
                await self.functions.abandon(function, record.id)
                raise
            self.functions.add_user(key, record.id)
            if not must_create:
                return
            try:
                await self.functions.create(function)
            except asyncio.CancelledError:
                raise  # as in _create_own_function: reconciliation finishes or drops both
            except BaseException:
                await self._store.delete_container(record.id, remember=False)  # the client gets no ID
                await self.functions.abandon(function, record.id)
                raise
            state.function_arn, state.function_state = function.arn, function.state
            await self._store.save_state(record)

    async def _create_own_function(self, record: Record, spec: FunctionSpec) -> None:
        """The container's own function (not on the bootstrap: its command is the function's)."""
        container_id = record.id
        # Recorded first: a crash during CreateFunction leaves a record reconciliation can finish or clean.
        await self._store.add_container(record)
        try:
            created = await create_function(self._clients, spec, self._config)
        except asyncio.CancelledError:
            # Shutting down mid-call: CreateFunction may have reached AWS. The record stays "creating",
            # and the next start finishes it or drops it (reconcile), as after a crash.
            raise
        except BaseException:
            await self._store.delete_container(container_id, remember=False)  # the client gets no ID
            raise
        if created.get("State") == "Failed":
            # Lambda could not set it up (its image denied or gone, its subnets full...): it can never
            # run, and AWS says to delete it and create it again. The create fails with the reason.
            await delete_function(self._clients, spec.name)
            await self._store.delete_container(container_id, remember=False)
            raise function_cannot_run(spec.name, created, "it failed to become active")
        # Written before the answer: a record still "creating" at the next start is one whose client
        # got no ID, and may be dropped when its function is missing; this one must stay, also when
        # its function is gone by then (the embedded simulator forgets them: start creates it again).
        record.backend_state.function_arn = created.get("FunctionArn", "")
        record.backend_state.function_state = created.get("State", "Pending")
        await self._store.save_state(record)

    # ------------------------------------------------------------------ start / stop / kill / restart

    async def start(self, ref: str) -> None:
        record: Record = self._store.resolve_container(ref)
        state = record.backend_state
        if record.status == "running":
            raise NotModified(f"container {record.id} is already running")
        if record.status == "removing":
            raise Conflict(f"container {record.id} is being removed")
        if state.function_state == CREATING:
            raise Conflict(f"container {record.id} is still being created")
        if state.function_state == "Failed":
            # Its last run found it Failed (a shared one even after it was made again once): the start
            # fails with the reason while it still is.
            try:
                state.function_state = await self._invoker.check_not_failed(state.function_name)
            except NotFound:
                state.function_state = (
                    "Active"  # deleted since: the run's Invoke finds it gone and creates it
                )
        shared = self.functions.get(state.function_key) if state.function_key else None
        if shared is not None:
            # As its function is now: Active means one invoke and no control-plane call; anything else
            # is awaited (or the function made again) once for all its containers by the run.
            state.function_state = shared.state

        if state.request_id:
            state.past_request_ids = [*state.past_request_ids, state.request_id][-_PAST_REQUESTS_KEPT:]
        # The usual start: the function is Active and the concurrency gate has room, so the Invoke goes
        # out right after this write, which records it as sent (one write, not queued then sent).
        # Otherwise the start is queued, and the run records "sent" once it has its turn.
        gate = self._invoker.gate
        direct = state.function_state == "Active" and not gate.locked()
        if direct:
            await gate.acquire()  # has room: returns without waiting
        state.invocation, state.request_id = (SENT if direct else QUEUED), ""
        if state.bootstrap:  # the run's ID, saved below before its invoke can be sent
            state.starts += 1
            state.run_id = run_id(record.id, state.starts)
        record.status, record.started_at, record.finished_at = "running", _now(), None
        record.exit_code, record.error, state.daemon_error = 0, "", False
        try:
            await self.output.begin_run(record)
            await self._store.save_state(record)
        except BaseException:
            if direct:
                gate.release()
            raise
        self.runs.launch(record, self.runs.run(record, holding_slot=direct))
        self._events.container("start", record)

    async def stop(self, ref: str) -> None:
        """A no-op that succeeds (as the task card says), with a warning naming the container: Lambda
        cannot end an invocation; it runs to completion or to the function timeout."""
        record = self._store.resolve_container(ref)
        if record.status != "running":
            raise NotModified(f"container {record.id} is not running")
        self._warn_cannot_end("stop", record)

    async def kill(self, ref: str) -> None:
        """A no-op that succeeds on a running container, as often as asked, with a warning: Lambda
        cannot signal or cancel an invocation. A container that is not running is a 409, as the
        internal API says."""
        record = self._store.resolve_container(ref)
        if record.status != "running":
            raise Conflict(f"Container {record.id} is not running")
        self._warn_cannot_end("kill", record)

    async def restart(self, ref: str) -> None:
        """Start again a container that is not running. A running one is a 409: restarting means
        stopping the run first, which Lambda cannot do, and answering success would hide that."""
        record = self._store.resolve_container(ref)
        if record.status == "running":
            raise Conflict(
                f"cannot restart container {record.id[:12]}: it is running, and Lambda cannot stop a "
                "run (an invocation runs to its end or to the function timeout); wait for it to exit, "
                "then start it again"
            )
        await self.start(record.id)

    @staticmethod
    def _warn_cannot_end(verb: str, record: Record) -> None:
        log.warning(
            f"{verb} of a running container does nothing on Lambda: its invocation cannot be stopped and "
            "runs to its end or to the function timeout",
            extra={"fields": {"container": record.id, "name": record.name}},
        )

    # ------------------------------------------------------------------ remove / prune

    async def remove(self, ref: str, *, force: bool) -> None:
        record: Record = self._store.resolve_container(ref)
        if record.status == "running" and not force:
            raise Conflict(
                f"You cannot remove a running container {record.id[:12]}. "
                "Stop the container before attempting removal or force remove"
            )
        await self.remove_record(record)

    async def remove_record(self, record: Record, *, at_exit: bool = False) -> None:
        """Delete the record and record the removed container, its function still to delete, in one
        transaction; release the ``removed`` waiters; then delete the function in the background (see
        :mod:`.cleanups`): the remove answers without waiting for Lambda. The exit status and output
        stay readable by ID and name for the store's grace period, also after a restart.

        ``at_exit``: an auto-remove container, removed as its run ended (Docker removes it then). Its
        output may still be arriving from CloudWatch: it goes on into the log store, and followers
        (an attached ``docker run --rm``) read on until it is complete."""
        was_running = record.status == "running"
        self.runs.cancel(record.id)  # the invocation itself cannot be stopped: it may go on in the cloud
        status = ExitStatus(EXIT_KILLED, "") if was_running else last_exit(record)
        key = record.backend_state.function_key
        # A shared function is no one container's to delete: it goes idle with its last container.
        cleanup = "" if key else cleanup_of(record.backend_state.function_name)
        completing = at_exit and not record.backend_state.output_complete
        if not completing:
            self.output.forget(record.id)
        await self._store.delete_container(
            record.id,
            exit_code=status.exit_code,
            error=status.error,
            cleanup=cleanup,
            output_completing=completing,
        )
        self._views.forget(record.id)
        self._waiters.removed(record.id, status)
        if key:
            await self.functions.release(key, record.id)
        else:
            self._cleanups.start(record.id, cleanup)
        log.info("container removed", extra={"fields": {"container": record.id}})
        self._events.container("destroy", record)

    async def finish_cleanups(self) -> None:
        """Delete the functions of every removed container whose cleanup is pending (at start-up, those
        a previous process left), and wait for them; a failure stays pending for the next start."""
        self._cleanups.resume()
        await self._cleanups.settled()

    async def cleanups_settled(self) -> None:
        """Wait until the functions of removed containers being deleted are deleted or failed, and the
        idle shared functions due now are deleted (tests)."""
        await self._cleanups.settled()
        await self.functions.sweep()

    async def _exited(self, record: Record) -> None:
        """A run ended: an auto-remove container goes now (``docker run --rm``), its output completing
        after, as Docker removes it at its exit."""
        if not record.host_config.auto_remove or record.status != "exited":
            return
        if self._store.get_container(record.id) is not record:
            return
        try:
            await self.remove_record(record, at_exit=True)
        except SockerlessError as exc:
            log.warning(
                "auto-remove failed", extra={"fields": {"container": record.id, "error": exc.message}}
            )

    async def prune(self, filters: Filters) -> PruneResponse:
        until = [parse_time(value) for value in filters.get("until", [])]
        label_filters = {"label": list(filters.get("label", []))}
        deleted: list[str] = []
        for record in list(self._store.containers()):
            if record.status not in ("exited", "dead", "created") or not matches(record, label_filters):
                continue
            if record.backend_state.function_state == CREATING:
                continue
            if any(limit is not None and record.created >= limit for limit in until):
                continue
            await self.remove_record(record)
            deleted.append(record.id)
        return PruneResponse(containers_deleted=deleted)

    # ------------------------------------------------------------------ wait / inspect / list / logs

    def wait(self, ref: str, condition: WaitCondition) -> asyncio.Future[WaitResponse]:
        """A container removed within the store's grace period answers its last exit at once."""
        try:
            record = self._store.resolve_container(ref)
        except NotFound:
            removed = self._store.removed_container(ref)
            if removed is None:
                raise
            return answered(ExitStatus(removed.exit_code, removed.error))
        return self._waiters.wait(record.id, condition, status=record.status, last=last_exit(record))

    def inspect(self, ref: str) -> Encoded[Container]:
        return self._views.inspect(self._store.resolve_container(ref))

    def summaries(self, *, all: bool, limit: int | None, filters: Filters) -> Encoded[list[ContainerSummary]]:
        def select() -> list[Record]:
            return select_containers(
                self._store.containers(),
                filters,
                all=all,
                limit=limit,
                resolve=self._store.resolve_container,
            )

        query = (all, limit, tuple(sorted((key, tuple(values)) for key, values in filters.items())))
        return self._views.rows(query, self._store.containers_revision, _now(), select)

    async def logs(self, ref: str, options: LogsOptions) -> ContainerLogs:
        """The output; a container removed within the store's grace period is still readable."""
        try:
            record: Record = self._store.resolve_container(ref)
        except NotFound:
            removed = self._store.removed_container(ref)
            if removed is None:
                raise
            if not options.follow:
                await self.output.completed(removed.id)  # removed at its exit, its output still coming
            return ContainerLogs(tty=removed.tty, lines=self._store.logs.lines(removed.id, options))
        return await self.output.logs(record, options)

    def running(self) -> Iterable[Record]:
        return [record for record in self._store.containers() if record.status == "running"]

    async def close(self) -> None:
        await self.functions.close()
        await self.runs.close()
        await self.output.close()
        await self._cleanups.close()


def _pulling(request: ContainerCreateRequest, uri: str) -> ContainerCreateRequest:
    """The request as the function is built from it: ``uri`` as the image Lambda pulls."""
    if uri == request.config.image:
        return request
    return attrs.evolve(request, config=attrs.evolve(request.config, image=uri))
