"""Invocations: resolve the function, run its command, log like Lambda, answer like Lambda."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import math
import os
import random
import signal
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from attrs import define, frozen

from .cloudwatch import CloudWatchWriter, InvocationLog, LogsApi, LogTarget, log_stream_name
from .environments import (
    BOOTSTRAP_IMAGE_PATH,
    BUFFERED_RESPONSE_LIMIT,
    Dispatch,
    ExecutionEnvironment,
    deadline_ms,
)
from .errors import AwsError, FunctionNotFound, FunctionPending
from .functions import FunctionCache, FunctionConfig, FunctionRef
from .moto_api import MotoApi
from .operations import AwsScope
from .runtime import ProcessOutcome, ProcessSpec, run_process
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


@frozen
class _Failure:
    error_type: str
    message: str
    """The errorMessage of the payload, ``RequestId: <id> Error: ...``."""
    log_line: str
    """What Lambda writes to the log for this failure."""
    body: bytes | None = None
    """The caller's error document when the runtime wrote it (``/init/error``), else made of the above."""


@define
class _Environment:
    """A warm execution environment: here, one log stream reused by consecutive invocations."""

    group: str
    stream: str
    generation: int
    stream_exists: bool = False


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
    ) -> None:
        self._moto = moto
        self._overlay = overlay
        self._stats = stats
        self._account_id = account_id
        self._base_environment = dict(base_environment)
        self._flush_seconds = flush_seconds
        self._event_retry_delays = tuple(event_retry_delays)
        self._event_delay = event_delay
        self._event_duplicate_probability = event_duplicate_probability
        self._event_duplicate_after = event_duplicate_after
        self._rng = rng or random.Random()  # noqa: S311 - simulated dice, not security
        self._writer = CloudWatchWriter(logs or moto)
        self.functions = FunctionCache()
        self._idle: dict[tuple[str, str, str], list[_Environment]] = {}
        self._generations: dict[tuple[str, str], int] = {}
        self._running: set[asyncio.Task[Any]] = set()
        self._warned_images: set[str] = set()
        self._runtime_model = RuntimeModel(runtime_model)
        self._init_timeout = init_timeout_seconds
        self._idle_seconds = environment_idle_seconds
        self._bootstrap_binaries = dict(bootstrap_binaries) if bootstrap_binaries is not None else None
        self._warned_functions: set[tuple[str, str]] = set()
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
        records = _Records(config, request_id, invocation_log)
        self._stats.invocation_started()
        outcome_label = "aborted"
        reusable = False
        try:
            records.start()
            outcome = await self._run(scope, config, payload, environment, records)
            failure = _failure(config, request_id, outcome)
            # The runtime reported the error (Lambda's /error call; here: the command's last line),
            # so the runtime itself did not fail: Lambda answers FunctionError "Handled".
            reported = records.reported_error() if _exited_with_status(outcome) else None
            if reported is not None:
                failure = _Failure(str(reported["errorType"]), str(reported["errorMessage"]), "")
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

    async def _run(
        self,
        scope: AwsScope,
        config: FunctionConfig,
        payload: bytes,
        environment: _Environment,
        records: _Records,
    ) -> ProcessOutcome | None:
        if not config.argv:
            log.warning(
                "function %s has no ImageConfig EntryPoint or Command: the simulator does not read the "
                "image, so it has nothing to run and fails the invocation",
                config.name,
            )
            return None
        self._warn_not_pulled(config)
        spec = ProcessSpec(
            argv=config.argv,
            env=self._child_environment(scope, config, environment),
            stdin=payload,
            timeout_seconds=float(config.timeout_seconds),
            cwd=_host_directory(config.working_directory),
        )
        return await run_process(spec, records.output)

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
        records = _Records(config, request_id, invocation_log)
        environment.sink = records.output
        dispatch = Dispatch(request_id, payload, 0, config.arn, _trace_id(), live=live)
        self._stats.invocation_started()
        outcome_label = "aborted"
        reusable = False
        failure: _Failure | None = None
        result_failure: _Failure | None = None
        try:
            init_ms: float | None = None
            if cold:
                records.init_start()
                init_ms, failure = await self._run_init(
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
                retry_ms, failure = await self._run_init(
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
                    failure = _failure(config, request_id, _outcome(status, timed_out, 0.0, 0))
                    if failure is None:  # exit status 0 while an invocation waits for its answer
                        failure = _no_reason(request_id)
                reusable = end == "next"
            duration_ms = (loop.time() - started) * 1000.0
            outcome = _outcome(status, timed_out, duration_ms, peak_kb[0])
            result_failure = failure
            if result_failure is None and dispatch.error_type is not None:
                result_failure = _Failure(dispatch.error_type, "", "", dispatch.error_body)
            elif result_failure is None and dispatch.body_over and live is None:
                result_failure = _Failure(
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

    async def _run_init(
        self,
        scope: AwsScope,
        config: FunctionConfig,
        environment: ExecutionEnvironment,
        timeout: float,
        request_id: str,
        *,
        in_invoke: bool = False,
    ) -> tuple[float, _Failure | None]:
        """Start the runtime and wait until it asks for an invocation: (Init duration in ms, failure)."""
        request_prefix = f"RequestId: {request_id} Error: "
        started = time.monotonic()

        def elapsed() -> float:
            return (time.monotonic() - started) * 1000.0

        if not config.argv:
            # Lambda would start the image's own ENTRYPOINT/CMD; the simulator does not pull images, so it
            # cannot: an entrypoint error that says why, never a run that seems to have succeeded.
            problem = (
                "the simulator does not pull images, so it cannot run the image's own ENTRYPOINT/CMD "
                f"({config.image_uri}): give the function an ImageConfig EntryPoint or Command"
            )
            log.warning("function %s: %s", config.name, problem)
            return elapsed(), _Failure(
                "Runtime.InvalidEntrypoint", request_prefix + problem, f"{request_prefix}{problem}"
            )
        argv, problem = self._runtime_argv(config)
        if argv is None:
            return elapsed(), _Failure(
                "Runtime.InvalidEntrypoint", request_prefix + problem, f"{request_prefix}{problem}"
            )
        env = self._child_environment(scope, config, environment)
        env.update(
            AWS_LAMBDA_RUNTIME_API=environment.runtime_api,
            TMPDIR=environment.tmp_dir,
            SOCKERLESS_BOOTSTRAP_TMP_DIR=environment.tmp_dir,
        )
        spawn_problem = environment.spawn(argv, env, _host_directory(config.working_directory))
        if spawn_problem is not None:
            return elapsed(), _Failure(
                "Runtime.InvalidEntrypoint",
                request_prefix + spawn_problem,
                f"{request_prefix}{spawn_problem}",
            )
        state = await environment.wait_init(timeout)
        if state == "ready":
            return elapsed(), None
        status = await environment.stop_process()
        if state == "error" and environment.init_error is not None:
            error_type, body = environment.init_error
            return elapsed(), _Failure(error_type, "", "", body)
        if state == "timeout":
            if in_invoke:
                after = f"Task timed out after {config.timeout_seconds:.2f} seconds"
                return elapsed(), _Failure(
                    "Sandbox.Timedout", request_prefix + after, f"{_iso_now()} {request_id} {after}"
                )
            return elapsed(), _Failure(
                "Runtime.InitTimeout", f"{request_prefix}Init timed out after {timeout:.2f} seconds", ""
            )
        failure = _failure(config, request_id, _outcome(status, False, 0.0, 0)) or _no_reason(request_id)
        return elapsed(), failure

    def _warn_not_pulled(self, config: FunctionConfig) -> None:
        """Once per image: its command runs here, not in the image."""
        if config.image_uri not in self._warned_images:
            self._warned_images.add(config.image_uri)
            log.warning(
                "image %s is NOT pulled: the simulator runs the function's ImageConfig command "
                "(%s) directly on this machine, without isolation",
                config.image_uri,
                " ".join(config.argv),
            )

    def _runtime_argv(self, config: FunctionConfig) -> tuple[tuple[str, ...] | None, str]:
        """The command that starts the function's runtime here, or None and why it cannot start."""
        if config.argv[0] != BOOTSTRAP_IMAGE_PATH:
            self._warn_not_pulled(config)
            return config.argv, ""
        binary = self._bootstrap_binary(config.architecture)
        if binary is None:
            return None, (
                f"{BOOTSTRAP_IMAGE_PATH}: no bootstrap binary for {config.architecture} on this machine: "
                "build it with ./dev setup (or give the simulator's bootstrap_binaries setting)"
            )
        if (config.name, config.version) not in self._warned_functions:
            self._warned_functions.add((config.name, config.version))
            log.warning(
                "function %s: image %s is NOT pulled: its entrypoint %s is the sockerless bootstrap, so "
                "the bootstrap from the package (%s) runs on this machine, without isolation",
                config.name,
                config.image_uri,
                BOOTSTRAP_IMAGE_PATH,
                binary,
            )
        return (binary, *config.argv[1:]), ""

    def _bootstrap_binary(self, architecture: str) -> str | None:
        if self._bootstrap_binaries is not None:
            path = self._bootstrap_binaries.get(architecture)
            return path if path and os.path.isfile(path) else None
        try:
            # The backend's package is optional: the simulator runs without it.
            bootstrap = importlib.import_module("sockerless_lambda.bootstrap")
        except ImportError:
            return None
        try:
            return str(bootstrap.binary_path(architecture))
        except (FileNotFoundError, ValueError):
            return None

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

    def _child_environment(
        self, scope: AwsScope, config: FunctionConfig, environment: _Environment | ExecutionEnvironment
    ) -> dict[str, str]:
        env = {**self._base_environment, **config.environment}
        # Lambda's reserved variables win over the function's (real Lambda rejects them at create).
        env.update(
            AWS_REGION=scope.region,
            AWS_DEFAULT_REGION=scope.region,
            AWS_LAMBDA_FUNCTION_NAME=config.name,
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(config.memory_mb),
            AWS_LAMBDA_FUNCTION_VERSION=config.version,
            AWS_LAMBDA_LOG_GROUP_NAME=environment.group,
            AWS_LAMBDA_LOG_STREAM_NAME=environment.stream,
            AWS_LAMBDA_INITIALIZATION_TYPE="on-demand",
            AWS_ACCESS_KEY_ID=scope.access_key,
        )
        if config.log_format == "JSON":
            env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
        return env

    def _acquire_environment(self, region: str, config: FunctionConfig) -> _Environment:
        idle = self._idle.get((region, config.name, config.version))
        if idle:
            return idle.pop()
        return _Environment(
            group=config.log_group,
            stream=log_stream_name(config.name, config.version, config.custom_log_group),
            generation=self._generations.get((region, config.name), 0),
        )

    def _release_environment(
        self, region: str, config: FunctionConfig, environment: _Environment, reusable: bool
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


class _Records:
    """The log records of one invocation, in the function's LogFormat (Text or JSON)."""

    def __init__(self, config: FunctionConfig, request_id: str, sink: InvocationLog) -> None:
        self._config = config
        self._request_id = request_id
        self._sink = sink
        self._json = config.log_format == "JSON"
        self._last_line = ""

    def output(self, line: str, timestamp_ms: int) -> None:
        if line.strip():
            self._last_line = line
        # Each of Lambda's log records ends with a newline, also the last line of output printed
        # without one: the tail and CloudWatch both show it as a line of its own, and the platform
        # lines after it (END, REPORT) start lines of their own.
        self._sink.append(line if line.endswith("\n") else line + "\n", timestamp_ms)

    def payload(self) -> bytes:
        """The last output line when it is JSON (our stand-in for a handler's result), else ``null``."""
        candidate = self._last_line.strip()
        try:
            json.loads(candidate)
        except ValueError:
            return b"null"
        return candidate.encode()

    def reported_error(self) -> dict[str, Any] | None:
        """The error the command reported as its last output line, a JSON object with string
        ``errorType`` and ``errorMessage`` (our stand-in for the Runtime API's ``/error`` call)."""
        try:
            document = json.loads(self._last_line.strip() or "null")
        except ValueError:
            return None
        if (
            isinstance(document, dict)
            and isinstance(document.get("errorType"), str)
            and isinstance(document.get("errorMessage"), str)
        ):
            return document
        return None

    def start(self) -> None:
        record = {"requestId": self._request_id, "version": self._config.version}
        self._platform(
            "platform.start", record, f"START RequestId: {self._request_id} Version: {self._config.version}"
        )

    def init_start(self) -> None:
        # A container image has no managed runtime version: "container" stands in for it.
        self._platform(
            "platform.initStart",
            {"initializationType": "on-demand", "phase": "init", "runtimeVersion": "container"},
            "INIT_START Runtime Version: container",
        )

    def init_report(self, duration_ms: float, phase: str, failure: _Failure) -> None:
        """A failed Init: Lambda's ``INIT_REPORT`` line (Phase ``init``, or ``invoke`` when Lambda
        ran Init again inside the invocation)."""
        timed_out = failure.error_type in ("Runtime.InitTimeout", "Sandbox.Timedout")
        status = "timeout" if timed_out else "error"
        if self._json:
            record: dict[str, Any] = {
                "initializationType": "on-demand",
                "phase": phase,
                "status": status,
                "metrics": {"durationMs": round(duration_ms, 2)},
            }
            if not timed_out:
                record["errorType"] = failure.error_type
            self._platform("platform.initReport", record, "")
            return
        line = f"INIT_REPORT Init Duration: {duration_ms:.2f} ms\tPhase: {phase}\tStatus: {status}"
        if not timed_out:
            line += f"\tError Type: {failure.error_type}"
        self._append(line)

    def failure(self, failure: _Failure) -> None:
        if not self._json and failure.log_line:
            self._append(failure.log_line)

    def end(
        self, outcome: ProcessOutcome | None, failure: _Failure | None, *, init_ms: float | None = None
    ) -> None:
        timed_out = outcome is not None and outcome.timed_out
        duration_ms = outcome.duration_ms if outcome is not None else 0.0
        if timed_out:
            duration_ms = self._config.timeout_seconds * 1000.0
        billed_ms = max(1, math.ceil(duration_ms))
        # Sampled while the command runs: a run shorter than the first sample shows the 1 MB floor.
        used_mb = max(1, math.ceil(outcome.max_rss_kb / 1024)) if outcome is not None else 1
        status = "success" if failure is None else ("timeout" if timed_out else "error")
        if self._json:
            record: dict[str, Any] = {
                "requestId": self._request_id,
                "metrics": {
                    "durationMs": round(duration_ms, 2),
                    "billedDurationMs": billed_ms,
                    "memorySizeMB": self._config.memory_mb,
                    "maxMemoryUsedMB": used_mb,
                    **({"initDurationMs": round(init_ms, 2)} if init_ms is not None else {}),
                },
                "status": status,
            }
            if failure is not None:
                record["errorType"] = failure.error_type
            self._platform("platform.report", record, "")
            return
        self._append(f"END RequestId: {self._request_id}")
        report = (
            f"REPORT RequestId: {self._request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {billed_ms} ms\tMemory Size: {self._config.memory_mb} MB\t"
            f"Max Memory Used: {used_mb} MB\t"
        )
        if init_ms is not None:
            report += f"Init Duration: {init_ms:.2f} ms\t"
        if failure is not None:
            report += (
                f"Status: {status}\t" if timed_out else f"Status: error\tError Type: {failure.error_type}\t"
            )
        self._append(report)

    def _platform(self, event_type: str, record: dict[str, Any], text: str) -> None:
        if self._json:
            self._append(json.dumps({"time": _iso_now(), "type": event_type, "record": record}))
        else:
            self._append(text)

    def _append(self, message: str) -> None:
        # Lambda's own records end with a newline, like the output lines they frame.
        self._sink.append(message + "\n", _now_ms())


def _failure(config: FunctionConfig, request_id: str, outcome: ProcessOutcome | None) -> _Failure | None:
    prefix = f"RequestId: {request_id} Error: "
    if outcome is None:
        # No command: like an image that does not speak the Runtime API and says nothing.
        reason = "Runtime exited without providing a reason"
        return _Failure("Runtime.ExitError", prefix + reason, f"{prefix}{reason}\nRuntime.ExitError")
    if outcome.spawn_error is not None:
        return _Failure(
            "Runtime.InvalidEntrypoint",
            prefix + outcome.spawn_error,
            f"{prefix}{outcome.spawn_error}\nRuntime.InvalidEntrypoint",
        )
    if outcome.timed_out:
        after = f"Task timed out after {config.timeout_seconds:.2f} seconds"
        return _Failure("Sandbox.Timedout", prefix + after, f"{_iso_now()} {request_id} {after}")
    if outcome.exit_code == 0:
        return None
    if outcome.signal is not None:
        # Go's wording, which Lambda's runtime reports: "signal: killed".
        name = (signal.strsignal(outcome.signal) or str(outcome.signal)).lower()
        reason = f"Runtime exited with error: signal: {name}"
    else:
        reason = f"Runtime exited with error: exit status {outcome.exit_code}"
    return _Failure("Runtime.ExitError", prefix + reason, f"{prefix}{reason}\nRuntime.ExitError")


def _exited_with_status(outcome: ProcessOutcome | None) -> bool:
    """The command ran and exited with a non-zero status of its own (no signal, no timeout)."""
    return (
        outcome is not None
        and not outcome.timed_out
        and outcome.spawn_error is None
        and outcome.exit_code not in (None, 0)
    )


def _host_directory(path: str | None) -> str | None:
    """The image's WorkingDirectory when this machine has it (a stat: cheap), else ``None``."""
    return path if path and os.path.isdir(path) else None


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def _iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _outcome(status: int | None, timed_out: bool, duration_ms: float, max_rss_kb: int) -> ProcessOutcome:
    """A runtime's end as a ProcessOutcome, from its wait status (None: it did not exit)."""
    code = os.waitstatus_to_exitcode(status) if status is not None else None
    return ProcessOutcome(
        exit_code=code if code is not None and code >= 0 else None,
        signal=-code if code is not None and code < 0 else None,
        timed_out=timed_out,
        duration_ms=duration_ms,
        max_rss_kb=max_rss_kb,
    )


def _no_reason(request_id: str) -> _Failure:
    """A runtime that exited with status 0 (or ended otherwise without saying why)."""
    prefix = f"RequestId: {request_id} Error: "
    reason = "Runtime exited without providing a reason"
    return _Failure("Runtime.ExitError", prefix + reason, f"{prefix}{reason}\nRuntime.ExitError")


def _trace_id() -> str:
    """An X-Ray trace header as Lambda passes it (``Lambda-Runtime-Trace-Id``); not sampled."""
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"


async def _live_chunks(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    """The response's bytes as the runtime sends them, until the invocation's end (``None``)."""
    while True:
        chunk = await queue.get()
        if chunk is None:
            return
        yield chunk
