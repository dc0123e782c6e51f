"""Invocations: resolve the function, run its command, log like Lambda, answer like Lambda."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import signal
import time
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from attrs import define, frozen

from .cloudwatch import CloudWatchWriter, InvocationLog, LogsApi, LogTarget, log_stream_name
from .errors import AwsError, FunctionNotFound, FunctionPending
from .functions import FunctionCache, FunctionConfig, FunctionRef
from .moto_api import MotoApi
from .operations import AwsScope
from .runtime import ProcessOutcome, ProcessSpec, run_process
from .state import FunctionStateOverlay
from .stats import Stats
from .streaming import InvocationStream, buffered_stream

__all__ = ["InvocationResult", "InvocationRunner", "InvocationType"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class InvocationType(StrEnum):
    REQUEST_RESPONSE = "RequestResponse"
    EVENT = "Event"
    DRY_RUN = "DryRun"


@frozen
class InvocationResult:
    request_id: str
    executed_version: str
    payload: bytes
    function_error: str | None
    """``"Unhandled"`` when the invocation failed, ``"Handled"`` when the function reported its error,
    as the ``X-Amz-Function-Error`` header says."""
    log_tail: bytes


@frozen
class _Failure:
    error_type: str
    message: str
    """The errorMessage of the payload, ``RequestId: <id> Error: ...``."""
    log_line: str
    """What Lambda writes to the log for this failure."""


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
        """Cancel running invocations (their processes are killed) and wait for them."""
        tasks = list(self._running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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
        if config.image_uri not in self._warned_images:
            self._warned_images.add(config.image_uri)
            log.warning(
                "image %s is NOT pulled: the simulator runs the function's ImageConfig command "
                "(%s) directly on this machine, without isolation",
                config.image_uri,
                " ".join(config.argv),
            )
        spec = ProcessSpec(
            argv=config.argv,
            env=self._child_environment(scope, config, environment),
            stdin=payload,
            timeout_seconds=float(config.timeout_seconds),
            cwd=_host_directory(config.working_directory),
        )
        return await run_process(spec, records.output)

    def _child_environment(
        self, scope: AwsScope, config: FunctionConfig, environment: _Environment
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

        For now the run ends before the stream starts (``buffered_stream``). It is tracked, so ``close``
        ends it; a caller that goes away does not (the run goes on, as in Lambda).
        """
        request_id = request_id or str(uuid.uuid4())
        task = self._track(self.invoke(scope, config, payload, request_id), config, request_id)
        return buffered_stream(await asyncio.shield(task))


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

    def failure(self, failure: _Failure) -> None:
        if not self._json:
            self._append(failure.log_line)

    def end(self, outcome: ProcessOutcome | None, failure: _Failure | None) -> None:
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
