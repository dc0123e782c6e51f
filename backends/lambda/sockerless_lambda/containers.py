"""Containers as Lambda functions: create, start, stop, kill, restart, remove, wait, logs, list, prune.

One container is one function (``<prefix><24 hex of the ID>``); one start is one invocation.
The store holds the container and its function; ``backend_fields`` keeps the Lambda side:

* ``function_name``, ``function_arn``, ``function_state`` (``creating`` until CreateFunction answered;
  stored as ``creating`` until the next write, so a crash in between has reconciliation check it);
* ``invocation``: ``queued`` (start accepted, Invoke not sent), ``sent`` (it may be running), ``done``.
  A start that can invoke at once (function Active, gate not full) is stored as ``sent`` directly;
* ``request_id`` of the current run and ``past_request_ids`` of earlier ones;
* ``log_tail``: the run's ``LogType=Tail`` output, shown until CloudWatch has the run;
* ``logs``/``logs_until_ms``/``logs_settled``: settled output (and the run it covers) kept so
  CloudWatch is never read twice for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import Any

from sockerless.backend import ContainerLogs, Filters, LogLine, LogsOptions
from sockerless.errors import Conflict, NotFound, NotModified, SockerlessError
from sockerless.filters import matches
from sockerless.logfilter import iterate, select
from sockerless.models import (
    Container,
    ContainerCreateRequest,
    ContainerCreateResponse,
    PruneResponse,
    WaitCondition,
    WaitResponse,
    parse_time,
)
from sockerless.observability import log_after_answer
from sockerless.store import ContainerRecord, Store
from sockerless.views import SummaryCache, SummaryRows, container_inspect
from sockerless.waiters import ContainerWaiters, ExitStatus
from sockerless_lambda.aws import AwsClients, call
from sockerless_lambda.config import LambdaConfig
from sockerless_lambda.errors import AwsOperation
from sockerless_lambda.functions import delete_function, function_spec, validate_container_name
from sockerless_lambda.images import ImageService
from sockerless_lambda.invocations import (
    EXIT_FAILURE,
    EXIT_KILLED,
    EXIT_UNKNOWN,
    FunctionNotReady,
    InvocationOutcome,
    Invoker,
    InvokeSent,
    OutcomeUnknown,
)
from sockerless_lambda.logs import LogEvent, LogReader, RunSummary, output_lines

__all__ = ["ContainerService", "Fields"]

log = logging.getLogger("sockerless.lambda.containers")


class Fields:
    """Keys of ``ContainerRecord.backend_fields``."""

    FUNCTION_NAME = "function_name"
    FUNCTION_ARN = "function_arn"
    FUNCTION_STATE = "function_state"
    INVOCATION = "invocation"
    REQUEST_ID = "request_id"
    PAST_REQUEST_IDS = "past_request_ids"
    LOG_TAIL = "log_tail"
    LOGS = "logs"
    LOGS_UNTIL_MS = "logs_until_ms"
    LOGS_SETTLED = "logs_settled"


CREATING = "creating"
QUEUED, SENT, DONE = "queued", "sent", "done"

#: After a run's END/REPORT line shows, wait this long for stragglers before keeping its logs for good.
LOG_SETTLE_SECONDS = 3.0
#: Settled output kept per container (bytes, the newest kept); longer output is cut at the front.
LOG_KEEP_BYTES = 256 * 1024
#: How long ``docker logs`` waits for a CloudWatch read in flight before answering with what is cached.
LOGS_MAX_WAIT_SECONDS = 5.0
#: Until this long after a run ended, ``docker logs`` that needs CloudWatch for the run (its Tail was
#: cut, or the lines' own times are asked) waits for the run's END to show there instead of answering
#: with part of it. CloudWatch delivers typically 1-5 s after a line is written.
LOGS_DELIVERY_SECONDS = 15.0
_PAST_REQUESTS_KEPT = 20
_TAIL_KEEP = 4096


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a background write's exception as seen (its caller reports the failure that matters)."""
    if not task.cancelled():
        task.exception()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


class ContainerService:
    """The Docker container verbs on Lambda. Owns the background runs (one task per started container)."""

    def __init__(
        self,
        *,
        config: LambdaConfig,
        instance_id: str,
        store: Store,
        clients: AwsClients,
        invoker: Invoker,
        reader: LogReader,
        waiters: ContainerWaiters,
        images: ImageService,
    ) -> None:
        self._config = config
        self._instance_id = instance_id
        self._store = store
        self._clients = clients
        self._invoker = invoker
        self._reader = reader
        self._waiters = waiters
        self._images = images
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._rows = SummaryCache()

    # ------------------------------------------------------------------ create

    async def create(self, request: ContainerCreateRequest, name: str | None) -> ContainerCreateResponse:
        container_id = secrets.token_hex(32)
        name = validate_container_name(name) if name else f"lambda_{container_id[:12]}"
        spec = function_spec(
            request, container_id=container_id, name=name, instance_id=self._instance_id, config=self._config
        )
        image = await self._images.remember(request.config.image)
        record = ContainerRecord(
            id=container_id,
            name=name,
            created=_now(),
            image=request.config.image,
            config=request.config,
            host_config=request.host_config,
            image_id=image.id,
            backend_fields={Fields.FUNCTION_NAME: spec.name, Fields.FUNCTION_STATE: CREATING},
        )
        # Recorded first: a crash during CreateFunction leaves a record reconciliation can finish or clean.
        await self._store.add_container(record)
        try:
            created = await call(
                AwsOperation("lambda", "CreateFunction", "create function", spec.name),
                self._clients.control.create_function,
                **spec.params,
            )
            if self._config.invocation_type == "Event":
                await self._disable_async_retries(spec.name)
        except asyncio.CancelledError:
            # Shutting down mid-call: CreateFunction may have reached AWS. The record stays "creating",
            # and the next start finishes it or drops it (reconcile), as after a crash.
            raise
        except BaseException:
            await self._store.delete_container(container_id)
            self._rows.forget(container_id)
            raise
        # Not written now: the stored record stays "creating" until the next write (the start) carries
        # these. A crash before then costs reconciliation one GetFunction, which finds the function and
        # fills them in; the create's answer itself is durable, as the record is.
        record.backend_fields[Fields.FUNCTION_ARN] = created.get("FunctionArn", "")
        record.backend_fields[Fields.FUNCTION_STATE] = created.get("State", "Pending")
        log_after_answer(log, "container created", {"container": container_id, "function": spec.name})
        return ContainerCreateResponse(id=container_id, warnings=spec.warnings)

    async def _disable_async_retries(self, function_name: str) -> None:
        """Lambda retries a failed Event invocation twice by default: a container runs once."""
        operation = AwsOperation(
            "lambda", "PutFunctionEventInvokeConfig", "configure async invoke", function_name
        )
        try:
            await call(
                operation,
                self._clients.control.put_function_event_invoke_config,
                FunctionName=function_name,
                MaximumRetryAttempts=0,
            )
        except SockerlessError:
            await delete_function(self._clients, function_name)
            raise

    # ------------------------------------------------------------------ start / stop / kill / restart

    async def start(self, ref: str) -> None:
        record = self._store.resolve_container(ref)
        if record.status == "running":
            raise NotModified(f"container {record.id} is already running")
        if record.status == "removing":
            raise Conflict(f"container {record.id} is being removed")
        if record.backend_fields.get(Fields.FUNCTION_STATE) == CREATING:
            raise Conflict(f"container {record.id} is still being created")
        fields = record.backend_fields
        if fields.get(Fields.REQUEST_ID):
            past = [*fields.get(Fields.PAST_REQUEST_IDS, []), fields[Fields.REQUEST_ID]]
            fields[Fields.PAST_REQUEST_IDS] = past[-_PAST_REQUESTS_KEPT:]
        # The usual start: the function is Active and the concurrency gate has room, so the Invoke goes
        # out right after this write, which records it as sent (one write, not queued then sent).
        # Otherwise the start is queued, and the run records "sent" once it has its turn.
        gate = self._invoker.gate
        direct = fields.get(Fields.FUNCTION_STATE) == "Active" and not gate.locked()
        if direct:
            await gate.acquire()  # has room: returns without waiting
        fields.update(
            {Fields.INVOCATION: SENT if direct else QUEUED, Fields.REQUEST_ID: "", Fields.LOG_TAIL: ""}
        )
        record.status, record.started_at, record.finished_at = "running", _now(), None
        record.exit_code, record.error = 0, ""
        try:
            await self._store.save_state(record)
        except BaseException:
            if direct:
                gate.release()
            raise
        self.launch(record, self.run(record, holding_slot=direct))

    def launch(self, record: ContainerRecord, work: Awaitable[None]) -> None:
        """Run ``work`` (the container's run or its recovery) as the container's one background task."""

        async def owned() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("container run failed unexpectedly", extra={"fields": {"container": record.id}})

        task = asyncio.create_task(owned(), name=f"lambda-run-{record.id[:12]}")
        self._runs[record.id] = task
        task.add_done_callback(
            lambda done: self._runs.pop(record.id, None) if self._runs.get(record.id) is done else None
        )

    async def stop(self, ref: str) -> None:
        """A no-op: Lambda cannot end an invocation; it runs to completion or to the function timeout."""
        record = self._store.resolve_container(ref)
        if record.status != "running":
            raise NotModified(f"container {record.id} is not running")
        log.info("stop is a no-op on Lambda", extra={"fields": {"container": record.id}})

    async def kill(self, ref: str) -> None:
        """A no-op that succeeds on a running container, as often as asked: Lambda cannot signal or
        cancel an invocation. A container that is not running is a 409, as the internal API says."""
        record = self._store.resolve_container(ref)
        if record.status != "running":
            raise Conflict(f"Container {record.id} is not running")
        log.info(
            "kill is a no-op on Lambda", extra={"fields": {"container": record.id, "status": record.status}}
        )

    async def restart(self, ref: str) -> None:
        """Start again unless still running (the running invocation cannot be stopped)."""
        record = self._store.resolve_container(ref)
        if record.status != "running":
            await self.start(record.id)

    # ------------------------------------------------------------------ the run

    async def run(self, record: ContainerRecord, *, holding_slot: bool = False) -> None:
        """One start: wait for the function, invoke it under the concurrency gate, record the exit.

        ``holding_slot``: the start took a place in the gate already (and recorded the Invoke as sent).
        """
        fields = record.backend_fields
        function_name = str(fields[Fields.FUNCTION_NAME])
        outcome: InvocationOutcome
        try:
            async with self._slot(holding_slot):
                if fields.get(Fields.FUNCTION_STATE) != "Active":
                    await self._invoker.wait_until_active(function_name)
                    fields[Fields.FUNCTION_STATE] = "Active"

                async def mark_sent() -> None:
                    if fields.get(Fields.INVOCATION) != SENT:
                        fields[Fields.INVOCATION] = SENT
                        await self._store.save_state(record)

                try:
                    result = await self._invoker.invoke(function_name, before_send=mark_sent)
                except OutcomeUnknown as unknown:
                    log.warning(
                        "invocation outcome lost; reading it from CloudWatch",
                        extra={"fields": {"container": record.id, "detail": unknown.detail}},
                    )
                    outcome = await self.outcome_from_logs(record, request_id=unknown.request_id)
                else:
                    if isinstance(result, InvokeSent):
                        fields[Fields.REQUEST_ID] = result.request_id
                        await self._store.save_state(record)
                        outcome = await self.outcome_from_logs(record, request_id=result.request_id)
                    else:
                        outcome = result
        except FunctionNotReady as exc:
            outcome = InvocationOutcome(EXIT_FAILURE, exc.message)
        except NotFound as exc:
            if self._store.get_container(record.id) is None:
                return  # removed meanwhile
            outcome = InvocationOutcome(EXIT_FAILURE, exc.message)
        except SockerlessError as exc:
            outcome = InvocationOutcome(EXIT_FAILURE, exc.message)
        await self.finish(record, outcome)

    @contextlib.asynccontextmanager
    async def _slot(self, held: bool) -> AsyncIterator[None]:
        """A place in the concurrency gate for one invocation: taken here unless the start took it."""
        if not held:
            await self._invoker.gate.acquire()
        try:
            yield
        finally:
            self._invoker.gate.release()

    async def recover(self, record: ContainerRecord) -> None:
        """Finish a run this process did not send (a restart): its outcome comes from CloudWatch."""
        outcome = await self.outcome_from_logs(
            record, request_id=str(record.backend_fields.get(Fields.REQUEST_ID, ""))
        )
        await self.finish(record, outcome)

    async def outcome_from_logs(self, record: ContainerRecord, *, request_id: str = "") -> InvocationOutcome:
        """The run's end as CloudWatch shows it, waiting at most until the function timeout plus a margin."""
        fields = record.backend_fields
        function_name = str(fields[Fields.FUNCTION_NAME])
        started = record.started_at or record.created
        self._reader.track(function_name, started - dt.timedelta(seconds=5))
        margin = self._config.recovery_margin
        deadline_wall = started.timestamp() + self._config.timeout + margin
        summary = await self._watch_run(record, request_id, max(0.0, deadline_wall - time.time()))
        if summary is None:
            return InvocationOutcome(
                EXIT_UNKNOWN,
                f"the outcome of the Lambda invocation of {function_name} is unknown: no END line in "
                f"CloudWatch within the function timeout ({self._config.timeout} s) plus "
                f"{margin:g} s",
                request_id=request_id,
            )
        return InvocationOutcome(summary.exit_code, summary.error, request_id=summary.request_id)

    async def _watch_run(self, record: ContainerRecord, request_id: str, seconds: float) -> RunSummary | None:
        """The run's end once CloudWatch shows it (the reader's shared reads), or None after ``seconds``."""
        fields = record.backend_fields
        started = record.started_at or record.created
        return await self._reader.watch_run(
            str(fields[Fields.FUNCTION_NAME]),
            request_id=request_id,
            after_ms=_ms(started) - 2000,  # clocks of this host and Lambda's may differ slightly
            exclude=fields.get(Fields.PAST_REQUEST_IDS, []),
            deadline=time.monotonic() + seconds,
        )

    async def finish(self, record: ContainerRecord, outcome: InvocationOutcome) -> None:
        """Record the exit, release waiters, and remove the container if it was started with ``--rm``."""
        if self._store.get_container(record.id) is not record:
            return  # removed (and maybe replaced) while the run was in flight
        fields = record.backend_fields
        fields[Fields.INVOCATION] = DONE
        fields[Fields.REQUEST_ID] = outcome.request_id or fields.get(Fields.REQUEST_ID, "")
        fields[Fields.LOG_TAIL] = outcome.log_tail[-_TAIL_KEEP:]
        record.status, record.exit_code, record.error, record.finished_at = (
            "exited",
            outcome.exit_code,
            outcome.error,
            _now(),
        )
        await self._store.save_state(record)
        self._waiters.exited(record.id, ExitStatus(outcome.exit_code, outcome.error))
        log_after_answer(
            log,
            "container exited",
            {"container": record.id, "exit_code": outcome.exit_code, "request_id": outcome.request_id},
        )
        if record.host_config.auto_remove:
            try:
                await self.remove_record(record)
            except SockerlessError as exc:
                log.warning(
                    "auto-remove failed", extra={"fields": {"container": record.id, "error": exc.message}}
                )

    # ------------------------------------------------------------------ remove / prune

    async def remove(self, ref: str, *, force: bool) -> None:
        record = self._store.resolve_container(ref)
        if record.status == "running" and not force:
            raise Conflict(
                f"You cannot remove a running container {record.id[:12]}. "
                "Stop the container before attempting removal or force remove"
            )
        await self.remove_record(record)

    async def remove_record(self, record: ContainerRecord) -> None:
        """Delete the function (already gone is fine), then the record; release ``removed`` waiters."""
        was_running = record.status == "running"
        run = self._runs.pop(record.id, None)
        if run is not None and run is not asyncio.current_task():
            # The invocation itself cannot be stopped: it may go on in the cloud until it ends.
            run.cancel()
        previous = record.status
        record.status = "removing"
        # "removing" is written while DeleteFunction is under way rather than before it: a crash after
        # the write lets reconciliation finish the removal; a crash before it leaves the container as
        # it was, its function maybe gone, and the unanswered remove can simply be repeated.
        marking = asyncio.ensure_future(self._store.save_state(record))
        try:
            await delete_function(self._clients, str(record.backend_fields[Fields.FUNCTION_NAME]))
        except SockerlessError:
            with contextlib.suppress(Exception):  # the DeleteFunction error is the one to report
                await marking
            record.status = previous
            await self._store.save_state(record)
            raise
        finally:
            if not marking.done():
                marking.add_done_callback(_retrieve)
        await marking
        await self._store.delete_container(record.id)
        self._rows.forget(record.id)
        self._reader.forget(str(record.backend_fields[Fields.FUNCTION_NAME]))
        status = ExitStatus(EXIT_KILLED, "") if was_running else ExitStatus(record.exit_code, record.error)
        self._waiters.removed(record.id, record.name, status)
        log_after_answer(log, "container removed", {"container": record.id})

    async def prune(self, filters: Filters) -> PruneResponse:
        until = [parse_time(value) for value in filters.get("until", [])]
        label_filters = {"label": list(filters.get("label", []))}
        deleted: list[str] = []
        for record in list(self._store.containers()):
            if record.status not in ("exited", "dead", "created") or not matches(record, label_filters):
                continue
            if record.backend_fields.get(Fields.FUNCTION_STATE) == CREATING:
                continue
            if any(limit is not None and record.created >= limit for limit in until):
                continue
            await self.remove_record(record)
            deleted.append(record.id)
        return PruneResponse(containers_deleted=deleted)

    # ------------------------------------------------------------------ wait / inspect / list

    def wait(self, ref: str, condition: WaitCondition) -> asyncio.Future[WaitResponse]:
        try:
            record = self._store.resolve_container(ref)
        except NotFound:
            stone = self._waiters.tombstone(ref)
            if stone is None:
                raise
            future: asyncio.Future[WaitResponse] = asyncio.get_running_loop().create_future()
            future.set_result(stone[1].response())
            return future
        return self._waiters.wait(
            record.id, condition, status=record.status, last=ExitStatus(record.exit_code, record.error)
        )

    def inspect(self, ref: str) -> Container:
        return container_inspect(self._store.resolve_container(ref))

    def summaries(self, *, all: bool, limit: int | None, filters: Filters) -> SummaryRows:
        records = [
            record
            for record in self._store.containers()
            if (all or limit is not None or record.status == "running") and matches(record, filters)
        ]
        return self._rows.rows(records[:limit] if limit is not None else records, _now())

    def running_count(self) -> int:
        return sum(1 for record in self._store.containers() if record.status == "running")

    async def close(self) -> None:
        """Cancel the runs; their invocations were persisted as sent and are recovered at the next start."""
        runs = list(self._runs.values())
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        self._runs.clear()

    def runs(self) -> Iterable[asyncio.Task[None]]:
        return list(self._runs.values())

    # ------------------------------------------------------------------ logs

    async def logs(self, ref: str, options: LogsOptions) -> ContainerLogs:
        record = self._store.resolve_container(ref)
        fields = record.backend_fields
        # The run's own Tail holds all of its output when it holds the whole run: then only a read
        # that needs the lines' own times (timestamps, since, until) has a reason to go to CloudWatch.
        needs_times = options.timestamps or options.since is not None or options.until is not None
        if not needs_times and _tail_is_whole_output(record):
            lines = _kept_lines(fields) + _tail_lines(record)
            return ContainerLogs(tty=record.config.tty, lines=iterate(select(lines, options)), final=True)
        lines = await self._log_lines(record, needs_times=needs_times)
        final = (
            record.status == "exited"
            and bool(fields.get(Fields.REQUEST_ID))
            and fields.get(Fields.LOGS_SETTLED) == fields.get(Fields.REQUEST_ID)
        )
        return ContainerLogs(tty=record.config.tty, lines=iterate(select(lines, options)), final=final)

    async def _log_lines(self, record: ContainerRecord, *, needs_times: bool) -> list[LogLine]:
        fields = record.backend_fields
        kept = _kept_lines(fields)
        request_id = str(fields.get(Fields.REQUEST_ID, ""))
        finished = record.status != "running"
        if record.started_at is None or (
            finished and request_id and fields.get(Fields.LOGS_SETTLED) == request_id
        ):
            return kept  # never started, or settled: nothing more to read
        function_name = str(fields[Fields.FUNCTION_NAME])
        since = (
            _from_ms(fields[Fields.LOGS_UNTIL_MS] + 1) if Fields.LOGS_UNTIL_MS in fields else record.created
        )
        if not self._reader.tracking(function_name):
            self._reader.track(function_name, since)
        await self._reader.refresh(max_wait=LOGS_MAX_WAIT_SECONDS)
        end_age = self._reader.run_end_age(function_name, request_id) if request_id else None
        if end_age is None and (needs_times or not _tail_holds_run(fields)):
            # The cache may predate the run's last lines: wait (bounded) for CloudWatch to have them all.
            await self._await_delivery(record, request_id)
            end_age = self._reader.run_end_age(function_name, request_id) if request_id else None
        events = [e for e in self._reader.events(function_name) if e.timestamp_ms >= _ms(since)]
        if finished and end_age is not None:
            confirmed = end_age >= LOG_SETTLE_SECONDS or _tail_confirms(fields, events)
            if confirmed and fields.get(Fields.INVOCATION) == DONE:
                await self._settle(record, events)
            return kept + output_lines(events)
        tail = str(fields.get(Fields.LOG_TAIL, ""))
        if finished and tail and record.started_at is not None:
            started_ms = _ms(record.started_at)
            before = [e for e in events if e.timestamp_ms < started_ms]
            run_events = len(events) > len(before)
            if f"START RequestId: {request_id}" in tail or not run_events:
                return kept + output_lines(before) + _tail_lines(record)
        return kept + output_lines(events)

    async def _await_delivery(self, record: ContainerRecord, request_id: str) -> None:
        """Wait until the ended run's END line is read from CloudWatch, at most until
        :data:`LOGS_DELIVERY_SECONDS` after it ended (sharing the reader's paced reads)."""
        fields = record.backend_fields
        if not request_id or fields.get(Fields.INVOCATION) != DONE or record.finished_at is None:
            return  # still running, or no run to wait for
        left = record.finished_at.timestamp() + LOGS_DELIVERY_SECONDS - time.time()
        if left <= 0:
            return
        summary = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(left):  # also bounds a CloudWatch read that is slow to answer
                summary = await self._watch_run(record, request_id, left)
        if summary is None:
            log.info(
                "logs: the run's end is not in CloudWatch yet; answering with what is there",
                extra={"fields": {"container": record.id, "request_id": request_id}},
            )

    async def _settle(self, record: ContainerRecord, events: list[LogEvent]) -> None:
        """Keep this output for good (capped) and stop reading CloudWatch for it."""
        fields = record.backend_fields
        stored: list[list[Any]] = list(fields.get(Fields.LOGS, []))
        stored.extend(
            [_ms(line.timestamp), line.data.decode("utf-8", "replace")] for line in output_lines(events)
        )
        size = 0
        for index in range(len(stored) - 1, -1, -1):
            size += len(stored[index][1])
            if size > LOG_KEEP_BYTES:
                stored = stored[index + 1 :]
                break
        fields[Fields.LOGS] = stored
        fields[Fields.LOGS_UNTIL_MS] = max([e.timestamp_ms for e in events], default=_ms(_now()))
        fields[Fields.LOGS_SETTLED] = fields.get(Fields.REQUEST_ID, "")
        try:
            await self._store.save_state(record)
        except NotFound:
            return
        self._reader.forget(str(fields[Fields.FUNCTION_NAME]))


def _kept_lines(fields: dict[str, Any]) -> list[LogLine]:
    """Output settled for good: earlier runs, and this one once it settled."""
    return [LogLine(1, _from_ms(ts), text.encode()) for ts, text in fields.get(Fields.LOGS, [])]


def _tail_holds_run(fields: dict[str, Any]) -> bool:
    """The run's ``LogType=Tail`` (its last 4 KB of log) starts with its START line: nothing was cut."""
    request_id, tail = str(fields.get(Fields.REQUEST_ID, "")), str(fields.get(Fields.LOG_TAIL, ""))
    return bool(request_id) and all(f"{mark} RequestId: {request_id}" in tail for mark in ("START", "END"))


def _tail_is_whole_output(record: ContainerRecord) -> bool:
    """The container's whole output is at hand without CloudWatch: its last run ended and its Tail
    holds that whole run, and every earlier run's output is kept (settled) already."""
    fields = record.backend_fields
    if record.status != "exited" or fields.get(Fields.INVOCATION) != DONE or not _tail_holds_run(fields):
        return False
    settled = fields.get(Fields.LOGS_SETTLED)
    if settled == fields.get(Fields.REQUEST_ID):
        return False  # kept already, with CloudWatch's times
    past = fields.get(Fields.PAST_REQUEST_IDS, [])
    return not past or settled == past[-1]


def _tail_lines(record: ContainerRecord) -> list[LogLine]:
    """The output lines of the run's Tail. Lambda's Text tail has no times: each carries the exit's."""
    stamp = record.finished_at or record.started_at or record.created
    return _tail_output(record.backend_fields, _ms(stamp))


def _tail_output(fields: dict[str, Any], timestamp_ms: int) -> list[LogLine]:
    """The container output in the run's Tail (platform lines left out), every line at ``timestamp_ms``.

    A Tail without the run's START line was cut at 4 KB, most likely inside a line: that part is left out.
    """
    tail = str(fields.get(Fields.LOG_TAIL, ""))
    texts = tail.splitlines(keepends=True)
    if f"START RequestId: {fields.get(Fields.REQUEST_ID, '')}" not in tail:
        texts = texts[1:]
    return output_lines([LogEvent(timestamp_ms, text) for text in texts])


def _tail_confirms(fields: dict[str, Any], events: list[LogEvent]) -> bool:
    """True when the run's ``LogType=Tail`` holds the whole run (its START and END) and CloudWatch
    already shows the same output: nothing is late, so the logs settle at once, with CloudWatch's
    times, instead of after :data:`LOG_SETTLE_SECONDS` of further reads."""
    if not _tail_holds_run(fields):
        return False
    expected = [line.data for line in _tail_output(fields, 0)]
    seen = [line.data for line in output_lines(events)]
    return not expected or seen[-len(expected) :] == expected


def _from_ms(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
