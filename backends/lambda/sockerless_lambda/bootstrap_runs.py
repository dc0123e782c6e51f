"""A run through the bootstrap (docs/bootstrap.md): the invocation's response stream into the log store
as it arrives, its exit record as the container's exit, and the durable copy when the stream lost them.

* The run's ID (``<container ID>-<start>``) is in the state before the invoke is sent.
* ``InvokeWithResponseStream`` carries the payload v1; a throttle or a function not ready before the
  stream began is retried as an Invoke is (:meth:`.Invoker.invoke_stream`); once it began nothing is
  resent.
* Stdout and stderr frames go into the log store as they come, split at newlines (a last part without
  one is a line of its own: nothing waits for a newline), byte for byte; followers are woken by it.
  Frames of other streams are skipped; stream 255 is the exit record.
* No exit record, and no error from Lambda (the connection was lost, the backend restarted): the
  durable copy in CloudWatch is read with ``FilterLogEvents`` (filter pattern ``{ $.run = "ID" }``,
  each line checked again here) and joined with what the stream delivered by each stream's offset,
  until its exit line shows or the function's timeout plus the delivery window passed (then the
  outcome is unknown: 255). The exit record says ``response_cut``: the rest is read from the copy too.
* ``InvokeComplete`` with an ``ErrorCode`` and no exit record (the bootstrap itself died, Lambda
  timed the environment out): the error's outcome, by :func:`.outcome_from_error`'s rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sockerless.errors import SockerlessError
from sockerless_lambda.aws import AwsClients, aws_error_code, call
from sockerless_lambda.bootstrap.frames import EXIT_STREAM, STDERR, STDOUT, FrameParser, lines_of
from sockerless_lambda.bootstrap.payload import build_payload, function_timeout, run_command
from sockerless_lambda.bootstrap.records import (
    DurableLine,
    ExitRecord,
    durable_filter_pattern,
    parse_durable_line,
)
from sockerless_lambda.config import LambdaConfig
from sockerless_lambda.errors import AwsOperation
from sockerless_lambda.invocations import (
    EXIT_FAILURE,
    EXIT_UNKNOWN,
    InvocationOutcome,
    Invoker,
    OutcomeUnknown,
    outcome_from_error,
)
from sockerless_lambda.output import OutputService
from sockerless_lambda.state import OutputSource, Record

__all__ = ["BootstrapRuns", "StreamedOutput"]

log = logging.getLogger("sockerless.lambda.bootstrap")

#: Reads of the durable copy start this long before the run's start (clocks of this host and Lambda's).
_CLOCK_MARGIN_MS = 5 * 60 * 1000
#: The part of a line after a frame's last newline waits this long for the rest of its line ...
PARTIAL_LINE_SECONDS = 0.05
#: ... and at most this many bytes: a longer line is stored in parts (bytes unchanged).
PARTIAL_LINE_BYTES = 1024 * 1024


class StreamedOutput:
    """A run's stdout and stderr into the log store, with the bytes of each received so far (its
    offset), so the durable copy adds only what the stream did not deliver.

    A frame is one read of a pipe, so a line may come in parts. The part after a frame's last newline
    waits for the rest of its line (as Docker's log copier waits), so a line stays one log entry (one
    timestamp in ``logs -t``); it is stored alone when nothing follows within ``PARTIAL_LINE_SECONDS``
    (a prompt), when it reaches ``PARTIAL_LINE_BYTES``, or when the run ends. Bytes are never changed.
    """

    def __init__(
        self, output: OutputService, record: Record, delivered: dict[int, int] | None = None
    ) -> None:
        self._output = output
        self._record = record
        self.delivered = {STDOUT: 0, STDERR: 0, **(delivered or {})}
        self._partial: dict[int, tuple[bytes, dt.datetime]] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._flushes: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    async def add(self, stream: int, data: bytes, when: dt.datetime | None = None) -> None:
        if not data:
            return
        self.delivered[stream] += len(data)
        async with self._lock:
            self._cancel_timer(stream)
            held, since = self._partial.pop(stream, (b"", when or dt.datetime.now(dt.UTC)))
            data = held + data
            cut = data.rfind(b"\n") + 1
            whole, rest = data[:cut], data[cut:]
            if len(rest) >= PARTIAL_LINE_BYTES:
                whole, rest = data, b""
            if whole:
                await self._output.append_stream(self._record, lines_of(stream, whole, since))
                since = when or dt.datetime.now(dt.UTC)
            if rest:
                self._partial[stream] = (rest, since)
                loop = asyncio.get_running_loop()
                self._timers[stream] = loop.call_later(PARTIAL_LINE_SECONDS, self._flush_later, stream)

    async def flush(self) -> None:
        """Store the parts of lines still waiting (the run ended, or its output is read now)."""
        async with self._lock:
            for stream in list(self._partial):
                await self._store_partial(stream)

    def _flush_later(self, stream: int) -> None:
        self._timers.pop(stream, None)
        task = asyncio.create_task(
            self._flush_stream(stream), name=f"flush a partial line of {self._record.id}"
        )
        self._flushes.add(task)
        task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "storing a partial line failed",
                extra={"fields": {"container": self._record.id, "error": str(task.exception())}},
            )

    async def _flush_stream(self, stream: int) -> None:
        async with self._lock:
            await self._store_partial(stream)

    async def _store_partial(self, stream: int) -> None:
        self._cancel_timer(stream)
        held = self._partial.pop(stream, None)
        if held is not None:
            await self._output.append_stream(self._record, lines_of(stream, held[0], held[1]))

    def _cancel_timer(self, stream: int) -> None:
        timer = self._timers.pop(stream, None)
        if timer is not None:
            timer.cancel()

    async def add_at(self, stream: int, offset: int, data: bytes, when: dt.datetime | None) -> None:
        """Bytes of the durable copy at ``offset`` of their stream: only those not delivered yet."""
        have = self.delivered[stream]
        if offset + len(data) <= have:
            return
        if offset > have:
            log.warning(
                "the durable copy misses output",
                extra={"fields": {"container": self._record.id, "stream": stream, "missing": offset - have}},
            )
            self.delivered[stream] = offset
            have = offset
        await self.add(stream, data[have - offset :], when)


class _Answered:
    """A buffered Invoke's answer, read as the event stream of InvokeWithResponseStream is."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self._events = events

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        for event in self._events:
            yield event

    def close(self) -> None:
        """Nothing to release: the answer was read whole."""


class BootstrapRuns:
    """Invokes bootstrap runs and recovers them; one per backend, shared by the runs."""

    def __init__(
        self, *, config: LambdaConfig, clients: AwsClients, invoker: Invoker, output: OutputService
    ) -> None:
        self._config = config
        self._clients = clients
        self._invoker = invoker
        self._output = output

    async def run(self, record: Record, before_send: Callable[[], Awaitable[None]]) -> InvocationOutcome:
        """Invoke the run and read its response to the end (or its durable copy); its outcome."""
        state = record.backend_state
        command = run_command(record.config, record.id)
        payload = build_payload(command, container_id=record.id, run=state.run_id)
        streamed = StreamedOutput(self._output, record)
        events: Any
        try:
            if self._config.response_streaming:
                request_id, events = await self._invoker.invoke_stream(
                    state.function_name, payload, before_send=before_send
                )
            else:
                request_id, answer = await self._invoker.invoke_buffered(
                    state.function_name, payload, before_send=before_send
                )
                events = _Answered(answer)
        except OutcomeUnknown as unknown:
            log.warning(
                "invocation answer lost; reading the run's durable copy",
                extra={"fields": {"container": record.id, "run": state.run_id, "detail": unknown.detail}},
            )
            return await self._from_durable(record, streamed, self._deadline(record))
        state.request_id = request_id
        parser = FrameParser()
        exit_record: ExitRecord | None = None
        complete: dict[str, Any] | None = None
        lost = ""
        try:
            async for event in events:
                if "PayloadChunk" in event:
                    for frame in parser.feed(bytes(event["PayloadChunk"].get("Payload") or b"")):
                        if frame.stream in (STDOUT, STDERR):
                            await streamed.add(frame.stream, frame.data)
                        elif frame.stream == EXIT_STREAM:
                            exit_record = self._parse_exit(record, frame.data) or exit_record
                elif "InvokeComplete" in event:
                    complete = dict(event["InvokeComplete"])
        except SockerlessError:
            raise  # the store failed
        except Exception as exc:  # the connection was lost, the stream broken
            lost = f"{type(exc).__name__}: {exc}"
        finally:
            with contextlib.suppress(Exception):
                events.close()
        await streamed.flush()
        if exit_record is not None:
            if exit_record.response_cut:
                # Some kept output did not fit the response: the durable copy has it.
                await self._from_durable(record, streamed, self._deadline(record), exit_record)
            return await self._exited(record, exit_record, streamed)
        error_code = str((complete or {}).get("ErrorCode") or "")
        if error_code:
            return self._failed(record, error_code, str((complete or {}).get("ErrorDetails") or ""))
        log.warning(
            "the run's response ended without its exit record; reading its durable copy",
            extra={
                "fields": {"container": record.id, "run": state.run_id, "detail": lost or "no exit frame"}
            },
        )
        return await self._from_durable(record, streamed, self._deadline(record))

    async def recover(self, record: Record, *, function_exists: bool) -> InvocationOutcome:
        """A run this process did not see to its end (a restart): from its durable copy, joined with
        what the log store holds of it. Without its function, nothing more comes: one read decides."""
        delivered = await self._output.delivered(record)
        streamed = StreamedOutput(self._output, record, delivered)
        deadline = self._deadline(record) if function_exists else time.monotonic()
        return await self._from_durable(record, streamed, deadline, function_gone=not function_exists)

    # ------------------------------------------------------------------ outcomes

    def _parse_exit(self, record: Record, data: bytes) -> ExitRecord | None:
        try:
            return ExitRecord.parse(data)
        except ValueError as exc:
            log.warning(
                "a malformed exit record", extra={"fields": {"container": record.id, "error": str(exc)}}
            )
            return None

    async def _exited(
        self, record: Record, exit_record: ExitRecord, streamed: StreamedOutput
    ) -> InvocationOutcome:
        """The command's exit as the bootstrap reported it; a stream cut at a limit says so last on stderr."""
        await streamed.flush()
        for note in exit_record.cut_notes():
            await streamed.add(STDERR, note)
        await streamed.flush()
        self._complete(record)
        return InvocationOutcome(
            exit_record.status,
            exit_record.state_error(self._config.timeout),
            request_id=record.backend_state.request_id,
            started=exit_record.started,
            finished=exit_record.finished,
        )

    def _failed(self, record: Record, error_code: str, details: str) -> InvocationOutcome:
        """Lambda's error for a run whose bootstrap gave no exit record (it died, or was timed out)."""
        exit_code, error = outcome_from_error(error_code, details)
        if exit_code == EXIT_FAILURE and not error:
            error = f"function error: {': '.join(part for part in (error_code, details) if part)}"
        self._complete(record)
        return InvocationOutcome(exit_code, error, request_id=record.backend_state.request_id)

    @staticmethod
    def _complete(record: Record) -> None:
        """Everything of the run's output is in the log store (written with the exit)."""
        record.backend_state.output_source = OutputSource.STREAM
        record.backend_state.output_complete = True

    def _deadline(self, record: Record) -> float:
        """When a run's durable copy is given up (monotonic): its function timeout plus
        ``lambda.recovery_margin`` after its start, as for a lost Invoke answer on the other path."""
        started = record.started_at or record.created
        end = started.timestamp() + function_timeout(self._config.timeout) + self._config.recovery_margin
        return time.monotonic() + max(0.0, end - time.time())

    # ------------------------------------------------------------------ the durable copy

    async def _from_durable(
        self,
        record: Record,
        streamed: StreamedOutput,
        deadline: float,
        exit_record: ExitRecord | None = None,
        *,
        function_gone: bool = False,
    ) -> InvocationOutcome:
        """Read the durable copy (its lines in ``seq`` order, output joined by offset) until its exit line
        shows or ``deadline`` passed; the exit then, else (no exit record at all) unknown, 255."""
        state = record.backend_state
        lines: dict[int, DurableLine] = {}
        next_seq = 0
        found: ExitRecord | None = None
        while True:
            last_read = time.monotonic() >= deadline
            try:
                await self._read_copy(record, lines)
            except SockerlessError as exc:
                log.warning(
                    "reading a run's durable copy failed",
                    extra={"fields": {"container": record.id, "error": exc.message}},
                )
            if last_read:
                # What came, in order, gaps and all: nothing more will.
                pending = sorted(seq for seq in lines if seq >= next_seq)
            else:
                pending = []
                while next_seq + len(pending) in lines:
                    pending.append(next_seq + len(pending))
            for seq in pending:
                line = lines[seq]
                next_seq = seq + 1
                if line.exit is not None:
                    found = line.exit
                    break
                await streamed.add_at(line.stream, line.offset, line.data, line.time)
            if found is not None or last_read:
                break
            await asyncio.sleep(max(0.0, min(self._config.log_read_interval, deadline - time.monotonic())))
        exit_record = exit_record or found
        if exit_record is not None:
            return await self._exited(record, exit_record, streamed)
        await streamed.flush()
        self._complete(record)  # nothing more of it will come
        if function_gone:
            why = (
                "its function no longer exists (nothing more of the run can come), and the bootstrap's "
                "durable copy in CloudWatch shows no exit"
            )
        else:
            why = (
                "its response ended without the exit record, and the bootstrap's durable copy in "
                "CloudWatch shows no exit within the function timeout "
                f"({function_timeout(self._config.timeout)} s) plus {self._config.recovery_margin:g} s"
            )
        return InvocationOutcome(
            EXIT_UNKNOWN,
            f"the outcome of the Lambda run {state.run_id} of {state.function_name} is unknown: {why}",
            request_id=state.request_id,
            daemon_error=True,
        )

    async def _read_copy(self, record: Record, lines: dict[int, DurableLine]) -> None:
        """One full read of the run's durable copy into ``lines`` (by ``seq``)."""
        state = record.backend_state
        group = self._config.log_group
        started = record.started_at or record.created
        operation = AwsOperation("logs", "FilterLogEvents", "filter log events", group)
        params: dict[str, Any] = {
            "logGroupName": group,
            "filterPattern": durable_filter_pattern(state.run_id),
            "startTime": max(0, int(started.timestamp() * 1000) - _CLOCK_MARGIN_MS),
        }
        while True:
            try:
                page = await call(operation, self._clients.logs.filter_log_events, **params)
            except SockerlessError as exc:
                if aws_error_code(exc) == "ResourceNotFoundException":
                    return  # no group yet: nothing was written
                raise
            for event in page.get("events", ()):
                line = parse_durable_line(str(event.get("message", "")).rstrip("\n"), state.run_id)
                if line is not None:
                    lines.setdefault(line.seq, line)
            token = page.get("nextToken")
            if not token:
                return
            params["nextToken"] = token
