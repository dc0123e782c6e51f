"""Write invocation logs to CloudWatch Logs (in moto) the way Lambda names and batches them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp
from attrs import frozen

from .moto_api import MotoError
from .operations import AwsScope

__all__ = ["CloudWatchWriter", "InvocationLog", "LogStreamEvent", "LogTarget", "LogsApi", "log_stream_name"]

log = logging.getLogger(__name__)

# PutLogEvents limits: 10,000 events and 1,048,576 bytes per batch, counting 26 bytes per event.
_MAX_BATCH_EVENTS = 10_000
_MAX_BATCH_BYTES = 1_048_576
_EVENT_OVERHEAD = 26
_TAIL_BYTES = 4096


@frozen
class LogStreamEvent:
    """One event waiting to be put into a log stream: a platform record or an output line."""

    timestamp_ms: int
    message: str


def log_stream_name(function_name: str, version: str, custom_group: bool, now: datetime | None = None) -> str:
    """``YYYY/MM/DD/[$LATEST]<guid>``; with a custom LogGroup the function name leads the brackets."""
    day = (now or datetime.now(UTC)).strftime("%Y/%m/%d")
    owner = function_name if custom_group else ""
    return f"{day}/{owner}[{version}]{uuid.uuid4().hex}"


class LogsApi(Protocol):
    """Where CloudWatch Logs calls go: moto over HTTP (``MotoApi``) or in-process (``InProcessLogs``)."""

    async def logs(self, scope: AwsScope, action: str, body: Mapping[str, Any]) -> dict[str, Any]: ...


class CloudWatchWriter:
    """Creates groups and streams once, and puts events in as few PutLogEvents calls as the limits allow."""

    def __init__(self, moto: LogsApi) -> None:
        self._moto = moto
        self._groups: dict[tuple[str, str], asyncio.Future[None]] = {}

    async def create_stream(self, scope: AwsScope, group: str, stream: str) -> None:
        await self._ensure_group(scope, group)
        try:
            await self._moto.logs(scope, "CreateLogStream", {"logGroupName": group, "logStreamName": stream})
        except MotoError as exc:
            if exc.code != "ResourceAlreadyExistsException":
                raise

    async def put_events(
        self, scope: AwsScope, group: str, stream: str, events: Sequence[LogStreamEvent]
    ) -> None:
        for batch in _batches(events):
            body = {
                "logGroupName": group,
                "logStreamName": stream,
                "logEvents": [{"timestamp": e.timestamp_ms, "message": e.message} for e in batch],
            }
            try:
                await self._moto.logs(scope, "PutLogEvents", body)
            except MotoError as exc:
                if exc.code != "ResourceNotFoundException":
                    raise
                # Someone deleted the group or stream under us: Lambda recreates it, so do we.
                self._groups.pop((scope.region, group), None)
                await self.create_stream(scope, group, stream)
                await self._moto.logs(scope, "PutLogEvents", body)

    async def _ensure_group(self, scope: AwsScope, group: str) -> None:
        # One CreateLogGroup per group even when a hundred first invocations arrive at once.
        key = (scope.region, group)
        ready = self._groups.get(key)
        if ready is not None:
            await asyncio.shield(ready)
            return
        ready = self._groups[key] = asyncio.get_running_loop().create_future()
        try:
            await self._moto.logs(scope, "CreateLogGroup", {"logGroupName": group})
        except MotoError as exc:
            if exc.code != "ResourceAlreadyExistsException":
                self._fail(key, ready, exc)
                raise
        except BaseException as exc:
            self._fail(key, ready, exc)
            raise
        ready.set_result(None)

    def _fail(self, key: tuple[str, str], ready: asyncio.Future[None], exc: BaseException) -> None:
        del self._groups[key]
        if isinstance(exc, asyncio.CancelledError):
            ready.cancel()
            return
        ready.set_exception(exc)
        ready.exception()  # mark it retrieved: the waiters, if any, raise their own copy


def _batches(events: Sequence[LogStreamEvent]) -> list[list[LogStreamEvent]]:
    batches: list[list[LogStreamEvent]] = []
    current: list[LogStreamEvent] = []
    size = 0
    for event in events:
        event_size = len(event.message.encode()) + _EVENT_OVERHEAD
        if current and (len(current) >= _MAX_BATCH_EVENTS or size + event_size > _MAX_BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(event)
        size += event_size
    if current:
        batches.append(current)
    return batches


@frozen
class LogTarget:
    """Where an invocation's records go: the writer, the caller's scope, the group and the stream."""

    writer: CloudWatchWriter
    scope: AwsScope
    group: str
    stream: str


class InvocationLog:
    """One invocation's records: buffered, flushed every ``flush_seconds`` and at the end.

    A run shorter than ``flush_seconds`` costs a single PutLogEvents (plus CreateLogStream for a
    new stream). The last 4 KB are kept for ``LogType=Tail``.
    """

    def __init__(self, target: LogTarget, *, stream_exists: bool, flush_seconds: float) -> None:
        self._target = target
        self.group, self.stream = target.group, target.stream
        self._stream_exists = stream_exists
        self._flush_seconds = flush_seconds
        self._pending: list[LogStreamEvent] = []
        self._last_ms = 0
        self._tail: deque[str] = deque()
        self._tail_bytes = 0
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._flusher = asyncio.create_task(self._flush_loop(), name=f"cloudwatch flush {target.stream}")

    def append(self, message: str, timestamp_ms: int) -> None:
        # PutLogEvents wants the events of a batch in chronological order.
        self._last_ms = max(self._last_ms, timestamp_ms)
        self._pending.append(LogStreamEvent(self._last_ms, message))
        self._wake.set()
        self._tail.append(message)
        self._tail_bytes += len(message)
        while self._tail_bytes - len(self._tail[0]) >= _TAIL_BYTES:
            self._tail_bytes -= len(self._tail.popleft())

    def tail(self) -> bytes:
        """The last 4 KB of the records, as ``LogType=Tail`` returns them."""
        return "".join(self._tail).encode()[-_TAIL_BYTES:]

    async def close(self) -> None:
        """Flush what is left and stop the periodic flush."""
        self._closing.set()
        self._wake.set()
        await self._flusher

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._flush_seconds)
            self._wake.clear()
            await self._flush()
            if self._closing.is_set() and not self._pending:
                return

    async def _flush(self) -> None:
        events, self._pending = self._pending, []
        if not events:
            return
        try:
            if not self._stream_exists:
                await self._target.writer.create_stream(self._target.scope, self.group, self.stream)
                self._stream_exists = True
            await self._target.writer.put_events(self._target.scope, self.group, self.stream, events)
        except (MotoError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            # Losing log lines must not fail the invocation; say so loudly instead.
            log.warning(
                "could not write %d log events to %s %s: %s", len(events), self.group, self.stream, exc
            )
