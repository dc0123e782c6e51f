"""Invocations: resolve the function, run it (directly or in Lambda's environments), answer like Lambda.

How a command is started is in ``launch``; the log records and failures are in ``records``."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from enum import StrEnum
from typing import Any, TypeVar

from .cloudwatch import CloudWatchWriter, InvocationLog, LogsApi, LogTarget, log_stream_name
from .environments import (
    BUFFERED_RESPONSE_LIMIT,
    Dispatch,
    ExecutionEnvironment,
    deadline_ms,
)
from .errors import AwsError, FunctionNotFound, FunctionPending
from .functions import FunctionCache, FunctionConfig, FunctionRef
from .images import EcrImages
from .launch import DirectEnvironment, Launcher, trace_id
from .moto_api import MotoApi
from .operations import AwsScope
from .records import Failure, Records, exited_with_status, failure_of, no_reason, process_outcome
from .state import FunctionStateOverlay
from .stats import Stats
from .streaming import InvocationResult, InvocationStream, StreamOutcome, _error_of, buffered_stream

__all__ = ["InvocationResult", "InvocationRunner", "InvocationType", "RuntimeModel"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class RuntimeModel(StrEnum):
    LAMBDA = "lambda"
    """Lambda's: environments, Init, the Runtime API."""
    DIRECT = "direct"
    """Not what Lambda does: one process per invocation, payload on stdin, output lines as the answer."""


class InvocationType(StrEnum):
    REQUEST_RESPONSE = "RequestResponse"
    EVENT = "Event"
    DRY_RUN = "DryRun"


class InvocationRunner:
    """Runs invocations, each in a task it owns until it ends or ``close`` cancels it."""

    def __init__(
        self,
        moto: MotoApi,
        overlay: FunctionStateOverlay,
        stats: Stats,
        *,
        account_id: str,
        base_environment: Mapping[str, str],
        flush_seconds: float,
        event_retry_delays: Sequence[float] = (),
        event_delay: float = 0.0,
        event_duplicate_probability: float = 0.0,
        event_duplicate_after: float = 0.1,
        rng: random.Random | None = None,
        logs: LogsApi | None = None,
        runtime_model: RuntimeModel = RuntimeModel.LAMBDA,
        init_timeout_seconds: float = 10.0,
        environment_idle_seconds: float = 300.0,
        bootstrap_binaries: Mapping[str, str] | None = None,
        images: EcrImages | None = None,
    ) -> None:
        self._moto = moto
        self._overlay = overlay
        self._stats = stats
        self._account_id = account_id
        self._flush_seconds = flush_seconds
        self._event_retry_delays = tuple(event_retry_delays)
        self._event_delay = event_delay
        self._event_duplicate_probability = event_duplicate_probability
        self._event_duplicate_after = event_duplicate_after
        self._rng = rng or random.Random()  # noqa: S311 - simulated dice, not security
        self._writer = CloudWatchWriter(logs or moto)
        self.functions = FunctionCache()
        self._launcher = Launcher(base_environment, bootstrap_binaries, images)
        self._idle: dict[tuple[str, str, str], list[DirectEnvironment]] = {}
        self._generations: dict[tuple[str, str], int] = {}
        self._running: set[asyncio.Task[Any]] = set()
        self._runtime_model = RuntimeModel(runtime_model)
        self._init_timeout = init_timeout_seconds
        self._idle_seconds = environment_idle_seconds
        self._warm: dict[tuple[str, str, str], list[ExecutionEnvironment]] = {}
        self._environments: set[ExecutionEnvironment] = set()
        self._cleanup: set[asyncio.Task[None]] = set()

    async def resolve(self, scope: AwsScope, ref: FunctionRef) -> FunctionConfig:
        """The function to run; ``FunctionNotFound`` or ``FunctionPending`` when it cannot run."""

        async def load() -> FunctionConfig | None:
            document = await self._moto.get_function(scope, ref.name, ref.qualifier)
            if document is None:
                return None
            configuration = document.get("Configuration")
            if isinstance(configuration, dict):
                self._overlay.rewrite(scope.region, configuration)
            return FunctionConfig.from_get_function(document)

        config = await self.functions.get(scope.region, ref, load)
        if config is None:
            arn = f"arn:aws:lambda:{scope.region}:{self._account_id}:function:{ref.name}"
            raise FunctionNotFound(f"{arn}:{ref.qualifier}" if ref.qualifier else arn)
        # An Inactive function is woken by the Invoke it refuses (Pending, then Active).
        state = self._overlay.invoked(scope.region, config.name)
        if state != "Active":
            raise FunctionPending(state)
        return config

    def function_changed(self, region: str, name: str) -> None:
        """Forget the cached configuration and the warm environments of a changed or deleted function."""
        self.functions.invalidate(region, name)
        key = (region, name)
        self._generations[key] = self._generations.get(key, 0) + 1
        for pool_key in [pool_key for pool_key in self._idle if pool_key[:2] == key]:
            del self._idle[pool_key]
        for pool_key in [pool_key for pool_key in self._warm if pool_key[:2] == key]:
            for environment in self._warm.pop(pool_key):
                self._discard_later(environment)

    def invoke_in_background(self, scope: AwsScope, config: FunctionConfig, payload: bytes) -> str:
        """Accept an ``Event`` invocation and return its request ID at once; it is delivered after
        ``event_delay`` (Lambda's queue), sometimes twice (Lambda delivers at least once)."""
        request_id = str(uuid.uuid4())
        accepted = time.monotonic()
        deliveries = [self._event_delay]
        if self._event_duplicate_probability and self._rng.random() < self._event_duplicate_probability:
            deliveries.append(self._event_delay + self._event_duplicate_after)
        for index, delay in enumerate(deliveries):
            self._stats.event_accepted()
            if index:
                self._stats.count_duplicate()
            task = self._track(
                self._invoke_event(scope, config, payload, request_id, accepted, delay), config, request_id
            )
            task.add_done_callback(lambda _: self._stats.event_done())
        return request_id

    async def _invoke_event(
        self,
        scope: AwsScope,
        config: FunctionConfig,
        payload: bytes,
        request_id: str,
        accepted: float,
        delay: float,
    ) -> InvocationResult | None:
        """Deliver an Event invocation after ``delay`` and, like Lambda, retry a failure (same request
        ID) after a delay, dropping it once older than the function's MaximumEventAgeInSeconds."""
        attempts, max_age = await self._moto.event_invoke_config(scope, config.name)
        # Nothing is seen of a dropped event: dropped as soon as it is known that it will be.
        if delay > max_age:
            self._drop_event(request_id, max_age)
            return None
        await asyncio.sleep(max(0.0, accepted + delay - time.monotonic()))
        result = await self.invoke(scope, config, payload, request_id)
        if result.function_error is None or not self._event_retry_delays:
            return result
        for retry_delay in self._event_retry_delays[:attempts]:
            if time.monotonic() + retry_delay - accepted > max_age:
                self._drop_event(request_id, max_age)
                break
            self._stats.count_retry()
            await asyncio.sleep(retry_delay)
            ref = FunctionRef(config.name, None if config.version == "$LATEST" else config.version)
            try:
                config = await self.resolve(scope, ref)
            except AwsError as exc:
                log.info("event %s is not retried: %s", request_id, exc)
                break
            result = await self.invoke(scope, config, payload, request_id)
            if result.function_error is None:
                break
        return result

    def _drop_event(self, request_id: str, max_age: int) -> None:
        # Lambda would send it to an on-failure destination, if one is configured: not modelled.
        log.info("event %s dropped: older than its MaximumEventAgeInSeconds (%d s)", request_id, max_age)
        self._stats.count_dropped_event()

    async def invoke_tracked(
        self, scope: AwsScope, config: FunctionConfig, payload: bytes
    ) -> InvocationResult:
        """A synchronous invocation that ``close`` can still end (its caller only awaits it)."""
        request_id = str(uuid.uuid4())
        return await self._track(self.invoke(scope, config, payload, request_id), config, request_id)

    async def close(self) -> None:
        """Cancel running invocations (their processes are killed) and wait for them; kill every
        environment."""
        tasks = list(self._running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._warm.clear()
        for environment in list(self._environments):
            self._discard_later(environment)
        await asyncio.gather(*list(self._cleanup), return_exceptions=True)

    def _track(
        self, run: Coroutine[Any, Any, _T], config: FunctionConfig, request_id: str
    ) -> asyncio.Task[_T]:
        task = asyncio.create_task(run, name=f"invoke {config.name} {request_id}")
        self._running.add(task)
        task.add_done_callback(self._finished)
        return task

    async def invoke(
        self, scope: AwsScope, config: FunctionConfig, payload: bytes, request_id: str | None = None
    ) -> InvocationResult:
        """Run one invocation to its end; logs are in CloudWatch when this returns."""
        request_id = request_id or str(uuid.uuid4())
        if self._runtime_model is RuntimeModel.LAMBDA:
            return await self._invoke_lambda(scope, config, payload, request_id)
        return await self._invoke_direct(scope, config, payload, request_id)

    async def _invoke_direct(
        self, scope: AwsScope, config: FunctionConfig, payload: bytes, request_id: str
    ) -> InvocationResult:
        environment = self._acquire_environment(scope.region, config)
        invocation_log = InvocationLog(
            LogTarget(self._writer, scope, environment.group, environment.stream),
            stream_exists=environment.stream_exists,
            flush_seconds=self._flush_seconds,
        )
        records = Records(config, request_id, invocation_log)
        self._stats.invocation_started()
        outcome_label = "aborted"
        reusable = False
        try:
            records.start()
            outcome = await self._launcher.run_direct(scope, config, payload, environment, records)
            failure = failure_of(config, request_id, outcome)
            # The runtime reported the error (Lambda's /error call; here: the command's last line),
            # so the runtime itself did not fail: Lambda answers FunctionError "Handled".
            reported = records.reported_error() if exited_with_status(outcome) else None
            if reported is not None:
                failure = Failure(str(reported["errorType"]), str(reported["errorMessage"]), "")
            outcome_label = (
                "succeeded"
                if failure is None
                else ("timed_out" if outcome and outcome.timed_out else "failed")
            )
            if failure is not None and reported is None:
                records.failure(failure)
            records.end(outcome, failure)
            reusable = failure is None
        finally:
            await invocation_log.close()
            environment.stream_exists = True
            self._release_environment(scope.region, config, environment, reusable)
            self._stats.invocation_finished(outcome_label)
        if reported is not None:
            body = json.dumps(reported).encode()
            return InvocationResult(request_id, config.version, body, "Handled", invocation_log.tail())
        if failure is not None:
            body = json.dumps({"errorType": failure.error_type, "errorMessage": failure.message}).encode()
            return InvocationResult(request_id, config.version, body, "Unhandled", invocation_log.tail())
        return InvocationResult(request_id, config.version, records.payload(), None, invocation_log.tail())

    # -- Lambda's model: environments, Init, the Runtime API ------------------------------------

    async def _invoke_lambda(
        self,
        scope: AwsScope,
        config: FunctionConfig,
        payload: bytes,
        request_id: str,
        live: asyncio.Queue[bytes | None] | None = None,
    ) -> InvocationResult:
        environment, cold = await self._acquire_lambda_environment(scope.region, config)
        invocation_log = InvocationLog(
            LogTarget(self._writer, scope, environment.group, environment.stream),
            stream_exists=environment.stream_exists,
            flush_seconds=self._flush_seconds,
        )
        records = Records(config, request_id, invocation_log)
        environment.sink = records.output
        dispatch = Dispatch(request_id, payload, 0, config.arn, trace_id(), live=live)
        self._stats.invocation_started()
        outcome_label = "aborted"
        reusable = False
        failure: Failure | None = None
        result_failure: Failure | None = None
        try:
            init_ms: float | None = None
            if cold:
                records.init_start()
                init_ms, failure = await self._launcher.init(
                    scope, config, environment, self._init_timeout, request_id
                )
                if failure is not None:
                    records.init_report(init_ms, "init", failure)
            records.start()
            loop = asyncio.get_running_loop()
            started = loop.time()
            timeout = float(config.timeout_seconds)
            if failure is not None:
                # Lambda resets the environment and runs Init again, inside this invocation.
                init_ms = None
                await environment.stop_process()
                retry_ms, failure = await self._launcher.init(
                    scope, config, environment, timeout, request_id, in_invoke=True
                )
                if failure is not None:
                    records.init_report(retry_ms, "invoke", failure)
            peak_kb = [0]
            timed_out = failure is not None and failure.error_type == "Sandbox.Timedout"
            status: int | None = None
            if failure is None:
                remaining = max(0.0, started + timeout - loop.time())
                dispatch.deadline_ms = deadline_ms(remaining)
                environment.dispatch(dispatch)
                end = await environment.wait_end(remaining, peak_kb)
                if end == "timeout":
                    timed_out = True
                    await environment.stop_process()
                elif end == "exited":
                    status = await environment.stop_process()
                if end != "next" and not dispatch.complete:
                    failure = failure_of(config, request_id, process_outcome(status, timed_out, 0.0, 0))
                    if failure is None:  # exit status 0 while an invocation waits for its answer
                        failure = no_reason(request_id)
                reusable = end == "next"
            duration_ms = (loop.time() - started) * 1000.0
            outcome = process_outcome(status, timed_out, duration_ms, peak_kb[0])
            result_failure = failure
            if result_failure is None and dispatch.error_type is not None:
                result_failure = Failure(dispatch.error_type, "", "", dispatch.error_body)
            elif result_failure is None and dispatch.body_over and live is None:
                result_failure = Failure(
                    "Function.ResponseSizeTooLarge",
                    "Response payload size exceeded maximum allowed payload size "
                    f"({BUFFERED_RESPONSE_LIMIT} bytes).",
                    "",
                )
            if failure is not None:
                records.failure(failure)
            records.end(outcome, result_failure, init_ms=init_ms)
            outcome_label = (
                "succeeded" if result_failure is None else ("timed_out" if timed_out else "failed")
            )
        finally:
            dispatch.close_live()
            await invocation_log.close()
            environment.stream_exists = True
            await self._release_lambda_environment(scope.region, config, environment, reusable)
            self._stats.invocation_finished(outcome_label)
        if result_failure is not None:
            body = (
                result_failure.body
                or json.dumps(
                    {"errorType": result_failure.error_type, "errorMessage": result_failure.message}
                ).encode()
            )
            return InvocationResult(request_id, config.version, body, "Unhandled", invocation_log.tail())
        return InvocationResult(request_id, config.version, bytes(dispatch.body), None, invocation_log.tail())

    async def _acquire_lambda_environment(
        self, region: str, config: FunctionConfig
    ) -> tuple[ExecutionEnvironment, bool]:
        """A warm environment of this function version (and generation), else a new one (cold)."""
        generation = self._generations.get((region, config.name), 0)
        pool = self._warm.get((region, config.name, config.version))
        while pool:
            environment = pool.pop()
            if environment.idle_timer is not None:
                environment.idle_timer.cancel()
                environment.idle_timer = None
            if environment.alive and environment.generation == generation:
                return environment, False
            self._discard_later(environment)
        environment = ExecutionEnvironment(
            name=f"{config.name}:{config.version}",
            generation=generation,
            group=config.log_group,
            stream=log_stream_name(config.name, config.version, config.custom_log_group),
        )
        self._environments.add(environment)
        try:
            await environment.open()
        except BaseException:
            self._discard_later(environment)
            raise
        return environment, True

    async def _release_lambda_environment(
        self, region: str, config: FunctionConfig, environment: ExecutionEnvironment, reusable: bool
    ) -> None:
        current = self._generations.get((region, config.name), 0)
        if not (reusable and environment.alive and environment.generation == current):
            self._environments.discard(environment)
            await environment.discard()
            return
        environment.finish_invocation()
        key = (region, config.name, config.version)
        self._warm.setdefault(key, []).append(environment)
        environment.idle_timer = asyncio.get_running_loop().call_later(
            self._idle_seconds, self._expire, key, environment
        )

    def _expire(self, key: tuple[str, str, str], environment: ExecutionEnvironment) -> None:
        environment.idle_timer = None
        pool = self._warm.get(key, [])
        if environment in pool:
            pool.remove(environment)
        self._discard_later(environment)

    def _discard_later(self, environment: ExecutionEnvironment) -> None:
        self._environments.discard(environment)
        task = asyncio.create_task(environment.discard(), name=f"discard environment {environment.name}")
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)

    def _acquire_environment(self, region: str, config: FunctionConfig) -> DirectEnvironment:
        idle = self._idle.get((region, config.name, config.version))
        if idle:
            return idle.pop()
        return DirectEnvironment(
            group=config.log_group,
            stream=log_stream_name(config.name, config.version, config.custom_log_group),
            generation=self._generations.get((region, config.name), 0),
        )

    def _release_environment(
        self, region: str, config: FunctionConfig, environment: DirectEnvironment, reusable: bool
    ) -> None:
        # Lambda discards an environment after a crash or a timeout; a changed function gets new ones.
        current = self._generations.get((region, config.name), 0)
        if reusable and environment.generation == current:
            self._idle.setdefault((region, config.name, config.version), []).append(environment)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("invocation %s failed", task.get_name(), exc_info=task.exception())

    async def invoke_stream(
        self, scope: AwsScope, config: FunctionConfig, payload: bytes, request_id: str | None = None
    ) -> InvocationStream:
        """A synchronous invocation whose response is read as a stream (InvokeWithResponseStream).

        In Lambda's model the runtime's bytes reach the stream as they arrive (streamed or buffered by
        the runtime); in the direct model the run ends before the stream starts (``buffered_stream``).
        It is tracked, so ``close`` ends it; a caller that goes away does not (the run goes on, as in
        Lambda).
        """
        request_id = request_id or str(uuid.uuid4())
        if self._runtime_model is RuntimeModel.DIRECT:
            task = self._track(self.invoke(scope, config, payload, request_id), config, request_id)
            return buffered_stream(await asyncio.shield(task))
        live: asyncio.Queue[bytes | None] = asyncio.Queue()
        run = self._track(self._invoke_lambda(scope, config, payload, request_id, live), config, request_id)
        outcome: asyncio.Future[StreamOutcome] = asyncio.get_running_loop().create_future()

        def ended(task: asyncio.Task[InvocationResult]) -> None:
            live.put_nowait(None)  # whatever happened, the body ends
            if outcome.done():
                return
            if task.cancelled():
                outcome.cancel()
            elif task.exception() is not None:
                outcome.set_exception(task.exception() or RuntimeError("invocation failed"))
                outcome.exception()  # retrieved: the task's own callback logs it
            else:
                result = task.result()
                if result.function_error is None:
                    outcome.set_result(StreamOutcome(None, "", result.log_tail))
                else:
                    code, details = _error_of(result.payload, result.function_error)
                    outcome.set_result(StreamOutcome(code, details, result.log_tail))

        run.add_done_callback(ended)
        return InvocationStream(request_id, config.version, _live_chunks(live), outcome)


async def _live_chunks(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    """The response's bytes as the runtime sends them, until the invocation's end (``None``)."""
    while True:
        chunk = await queue.get()
        if chunk is None:
            return
        yield chunk
