"""One start of a container: wait for its function, invoke it under the concurrency gate, record the exit.

Each started container has one background task (its run, or the recovery of a run this process did
not send). The invocation states are written before the step they describe can happen (see
:mod:`.state`), so a backend killed at any moment finds at its next start what may have been sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import attrs
from attrs import define, field

from sockerless.errors import NotFound, SockerlessError
from sockerless.events import EventBus
from sockerless.models import ContainerCreateRequest
from sockerless.store import Store
from sockerless.waiters import ContainerWaiters, ExitStatus
from sockerless_lambda.aws import AwsClients, aws_error_code, call
from sockerless_lambda.bootstrap_runs import BootstrapRuns
from sockerless_lambda.config import LambdaConfig
from sockerless_lambda.errors import AwsOperation
from sockerless_lambda.functions import create_function, function_spec
from sockerless_lambda.invocations import (
    EXIT_FAILURE,
    EXIT_KILLED,
    EXIT_UNKNOWN,
    FunctionNotReady,
    InvocationOutcome,
    Invoker,
    InvokeSent,
    OutcomeUnknown,
    may_have_run,
)
from sockerless_lambda.output import OutputService
from sockerless_lambda.shared_functions import SharedFunctions
from sockerless_lambda.state import DONE, SENT, LambdaState, Record

__all__ = ["Runs", "last_exit"]

log = logging.getLogger("sockerless.lambda.runs")


def last_exit(record: Record) -> ExitStatus:
    """How the container's last run ended, as a wait answers it."""
    return ExitStatus(record.exit_code, record.error, daemon_error=record.backend_state.daemon_error)


@define(kw_only=True)
class Runs:
    """The background runs, one task per started container."""

    _config: LambdaConfig
    _store: Store[LambdaState]
    _invoker: Invoker
    _functions: SharedFunctions
    _output: OutputService
    _waiters: ContainerWaiters
    _clients: AwsClients
    _instance_id: str
    _events: EventBus
    #: Called once a run's exit is recorded (an auto-remove container is removed then).
    _on_exit: Callable[[Record], Awaitable[None]]
    _tasks: dict[str, asyncio.Task[None]] = field(factory=dict, init=False)
    _bootstrap: BootstrapRuns = field(init=False)

    def __attrs_post_init__(self) -> None:
        self._bootstrap = BootstrapRuns(
            config=self._config, clients=self._clients, invoker=self._invoker, output=self._output
        )

    def launch(self, record: Record, work: Awaitable[None]) -> None:
        """Run ``work`` (the container's run or its recovery) as the container's one background task."""

        async def owned() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("container run failed unexpectedly", extra={"fields": {"container": record.id}})

        task = asyncio.create_task(owned(), name=f"lambda-run-{record.id[:12]}")
        self._tasks[record.id] = task
        task.add_done_callback(
            lambda done: self._tasks.pop(record.id, None) if self._tasks.get(record.id) is done else None
        )

    def cancel(self, container_id: str) -> None:
        """Stop following a run (its container is being removed); the invocation itself cannot be stopped."""
        task = self._tasks.pop(container_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def tasks(self) -> Iterable[asyncio.Task[None]]:
        return list(self._tasks.values())

    def in_flight(self) -> int:
        """Runs (or recoveries of runs) this process is carrying now."""
        return len(self._tasks)

    async def ended(self) -> None:
        """Return once no run is in flight (those started meanwhile included)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks.values()))

    async def settle_as_killed(self, error: str) -> int:
        """Record every run sent and still in flight as killed (exit 137, ``error``): for runs that
        end with this process (the embedded simulator stops with it). Starts not sent yet are left
        queued: the next start sends them. Returns how many were settled."""
        sent: list[Record] = []
        for container_id in list(self._tasks):
            record = self._store.get_container(container_id)
            if record is not None and record.status == "running" and record.backend_state.invocation == SENT:
                sent.append(record)
        from_cloudwatch = [record for record in sent if not record.backend_state.bootstrap]
        if from_cloudwatch:
            await self._output.read_now(from_cloudwatch)  # what CloudWatch has of them so far
        settled = 0
        for record in sent:
            task = self._tasks.get(record.id)
            self.cancel(record.id)
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
            if record.status != "running" or not self._owns(record):
                continue  # ended (or was removed) meanwhile
            record.backend_state.output_complete = True  # nothing more of it can come
            await self.finish(record, InvocationOutcome(EXIT_KILLED, error))
            settled += 1
        return settled

    async def close(self) -> None:
        """Cancel the runs; their invocations were persisted as sent and are recovered at the next start."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    # ------------------------------------------------------------------ the run

    async def run(self, record: Record, *, holding_slot: bool = False) -> None:
        """One start: wait for the function, invoke it under the concurrency gate, record the exit.

        ``holding_slot``: the start took a place in the gate already (and recorded the Invoke as sent).
        """
        state = record.backend_state
        outcome: InvocationOutcome
        try:
            async with self._slot(holding_slot):
                generation = self._functions.generation(state.function_key)
                try:
                    result = await self._invoke(record)
                except NotFound as exc:
                    if aws_error_code(exc) != "ResourceNotFoundException" or not self._owns(record):
                        raise
                    # Its function is gone (the embedded simulator restarted, or someone deleted it):
                    # the stored specification makes it again. The failed call proved nothing ran.
                    await self._recreate_function(record, generation)
                    result = await self._invoke(record)
                if isinstance(result, OutcomeUnknown):
                    log.warning(
                        "invocation outcome lost; reading it from CloudWatch",
                        extra={"fields": {"container": record.id, "detail": result.detail}},
                    )
                    state.request_id = result.request_id or state.request_id
                    outcome = await self.outcome_from_logs(record)
                elif isinstance(result, InvokeSent):
                    state.request_id = result.request_id
                    await self._store.save_state(record)
                    outcome = await self.outcome_from_logs(record)
                else:
                    outcome = result
        # The command did not run (or may have, after a 5xx): the wait answer says why (Docker's start
        # failed, here after the start was answered), not a status of the container's own.
        except FunctionNotReady as exc:
            if exc.state == "Failed":
                state.function_state = "Failed"  # the next start asks again before it is answered
            outcome = InvocationOutcome(EXIT_FAILURE, exc.message, daemon_error=True, never_ran=True)
        except NotFound as exc:
            if self._store.get_container(record.id) is None:
                return  # removed meanwhile
            outcome = InvocationOutcome(EXIT_FAILURE, exc.message, daemon_error=True, never_ran=True)
        except SockerlessError as exc:
            never_ran = not may_have_run(exc)
            outcome = InvocationOutcome(EXIT_FAILURE, exc.message, daemon_error=True, never_ran=never_ran)
        await self.finish(record, outcome)

    async def _invoke(self, record: Record) -> InvocationOutcome | InvokeSent | OutcomeUnknown:
        """Wait for the function to be Active (unless known to be), then invoke it once."""
        state = record.backend_state
        if state.function_key:
            await self._functions.ready(state.function_key)  # no call at all when it is known Active
            state.function_state = "Active"
        elif state.function_state != "Active":
            await self._invoker.wait_until_active(state.function_name)
            state.function_state = "Active"

        async def mark_sent() -> None:
            if state.invocation != SENT:
                state.invocation = SENT
                await self._store.save_state(record)

        if state.bootstrap:
            return await self._bootstrap.run(record, mark_sent)
        try:
            return await self._invoker.invoke(state.function_name, before_send=mark_sent)
        except OutcomeUnknown as unknown:
            return unknown

    async def _recreate_function(self, record: Record, generation: int) -> None:
        """CreateFunction again from what the container was created as, under its function's name: a
        shared function once for all its containers (those that saw it gone at ``generation``)."""
        state = record.backend_state
        if state.function_key:
            await self._functions.replace(state.function_key, generation)
            return
        config = record.config
        if state.image_uri:  # a local tag resolved at create: its target, which the registry knows
            config = attrs.evolve(config, image=state.image_uri)
        request = ContainerCreateRequest(config=config, host_config=record.host_config)
        spec = function_spec(
            request,
            container_id=record.id,
            name=record.name,
            instance_id=self._instance_id,
            config=self._config,
            bootstrap=state.bootstrap,
        )
        # Under the name it had, even if the configured prefix changed since.
        name = state.function_name
        spec = attrs.evolve(spec, name=name, params={**spec.params, "FunctionName": name})
        log.info(
            "the container's function no longer exists: creating it again",
            extra={"fields": {"container": record.id, "function": state.function_name}},
        )
        created = await create_function(self._clients, spec, self._config)
        state.function_arn = str(created.get("FunctionArn", ""))
        state.function_state = str(created.get("State", "Pending"))
        await self._store.save_state(record)

    def _owns(self, record: Record) -> bool:
        """The record is still the stored one (not removed, nor replaced, meanwhile)."""
        return self._store.get_container(record.id) is record

    @contextlib.asynccontextmanager
    async def _slot(self, held: bool) -> AsyncIterator[None]:
        """A place in the concurrency gate for one invocation: taken here unless the start took it."""
        if not held:
            await self._invoker.gate.acquire()
        try:
            yield
        finally:
            self._invoker.gate.release()

    async def recover(self, record: Record) -> None:
        """Finish a run this process did not send (a restart): its outcome comes from CloudWatch.

        When its function no longer exists (the embedded simulator restarted, or it was deleted),
        nothing more of the run will come: what CloudWatch holds now decides at once, and without
        an END line there the outcome is unknown (255) rather than waited for until the timeout.
        A bootstrap run's comes from its durable copy (:mod:`.bootstrap_runs`), by the same rule.
        """
        if record.backend_state.bootstrap:
            exists = await self._function_exists(record)
            await self.finish(record, await self._bootstrap.recover(record, function_exists=exists))
            return
        if await self._function_exists(record):
            await self.finish(record, await self.outcome_from_logs(record))
            return
        state = record.backend_state
        summary = await self._output.watch_outcome(record, time.monotonic())  # one read
        if summary is None:
            outcome = InvocationOutcome(
                EXIT_UNKNOWN,
                f"the outcome of the Lambda invocation of {state.function_name} is unknown: the function "
                "no longer exists (deleted, or the embedded simulator restarted) and CloudWatch holds no "
                "end of the run",
                request_id=state.request_id,
                daemon_error=True,
            )
        else:
            outcome = InvocationOutcome(summary.exit_code, summary.error, request_id=summary.request_id)
        state.output_complete = True  # what CloudWatch held is all there will be
        await self.finish(record, outcome)

    async def _function_exists(self, record: Record) -> bool:
        """One GetFunctionConfiguration; any answer but "not found" counts as existing."""
        name = record.backend_state.function_name
        try:
            await call(
                AwsOperation("lambda", "GetFunctionConfiguration", "get function", name),
                self._clients.control.get_function_configuration,
                FunctionName=name,
            )
        except SockerlessError as exc:
            return aws_error_code(exc) != "ResourceNotFoundException"
        return True

    async def outcome_from_logs(self, record: Record) -> InvocationOutcome:
        """The run's end as CloudWatch shows it, waiting at most until the function timeout plus a margin.

        An ``Event`` invocation may wait in Lambda's queue up to ``event_max_age`` (the
        MaximumEventAgeInSeconds set on the function) before it starts: that is awaited too, and a
        run whose START has not shown by then (plus the delivery window) was dropped by Lambda.
        """
        started = record.started_at or record.created
        margin = self._config.recovery_margin
        queued = self._config.event_max_age if self._config.invocation_type == "Event" else 0
        wall_to_monotonic = time.monotonic() - time.time()
        deadline = wall_to_monotonic + started.timestamp() + queued + self._config.timeout + margin
        start_deadline = None
        if queued:
            start_deadline = (
                wall_to_monotonic + started.timestamp() + queued + self._config.log_delivery_seconds
            )
        summary = await self._output.watch_outcome(record, deadline, start_deadline=start_deadline)
        state = record.backend_state
        if summary is None and queued and not self._output.run_seen(record.id):
            return InvocationOutcome(
                EXIT_FAILURE,
                f"lambda: the Event invocation {state.request_id} of {state.function_name} never started: "
                f"Lambda drops an event still queued after its maximum age ({queued} s, "
                "lambda.event_max_age), and CloudWatch shows no START of it since",
                request_id=state.request_id,
                daemon_error=True,
                never_ran=True,
            )
        if summary is None:
            return InvocationOutcome(
                EXIT_UNKNOWN,
                f"the outcome of the Lambda invocation of {state.function_name} is unknown: no END line in "
                f"CloudWatch within the function timeout ({self._config.timeout} s) plus {margin:g} s"
                + (f" after up to {queued} s in Lambda's queue" if queued else ""),
                request_id=state.request_id,
                daemon_error=True,
            )
        return InvocationOutcome(summary.exit_code, summary.error, request_id=summary.request_id)

    async def finish(self, record: Record, outcome: InvocationOutcome) -> None:
        """Record the exit and release the waiters; the output completes after (at once from a whole
        tail); then ``on_exit`` (an auto-remove container is removed, its output completing after)."""
        if self._store.get_container(record.id) is not record:
            return  # removed (and maybe replaced) while the run was in flight
        state = record.backend_state
        state.invocation = DONE
        state.request_id = outcome.request_id or state.request_id
        record.finished_at = outcome.finished or dt.datetime.now(dt.UTC)
        record.started_at = outcome.started or record.started_at
        await self._output.take_tail(record, outcome.log_tail)
        record.status, record.exit_code, record.error = "exited", outcome.exit_code, outcome.error
        state.daemon_error = outcome.daemon_error
        if outcome.never_ran:
            state.output_complete = True  # nothing ran, nothing to read: followers end with the exit
        await self._store.save_state(record)
        self._waiters.exited(record.id, last_exit(record))
        self._events.container("die", record, exitCode=str(outcome.exit_code))
        log.info(
            "container exited",
            extra={
                "fields": {
                    "container": record.id,
                    "exit_code": outcome.exit_code,
                    "request_id": state.request_id,
                }
            },
        )
        await self._output.exit_recorded(record, outcome.log_tail)
        await self._on_exit(record)
