"""CloudWatch Logs: one shared, rate-limited reader of the whole log group, and Lambda's own lines.

CloudWatch's read quotas are per account and region (``FilterCloudWatchEvents``: 5 requests/s), so
reading per container breaks at a handful of containers. Every function logs to the one
configured group, in streams named ``YYYY/MM/DD/<function_name>[<version>]<guid>``; one
``FilterCloudWatchEvents`` over the group returns events of every stream, and the stream name routes
each event to its function. :class:`LogReader` is that one reader:

* a function is read while someone subscribes to it (a run whose output is still coming, a
  run whose end is awaited); with no subscription nothing is read at all;
* calls are paced to one per ``interval`` seconds in total, however many functions are read, and
  a caller who needs fresh events now (:meth:`LogReader.refresh`) joins the read in flight;
* each read starts a little before the previous one (events arrive 1-5 s late), events already
  delivered are dropped by ID, and a new subscription is backfilled from the time it asks for;
* each subscriber gets its function's new events, oldest first, as each read brings them.

Platform lines (``START``/``END``/``REPORT``/``INIT_START``, runtime error lines, timeouts) are
not container output; the backend reads them to learn how a run ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from attrs import define, field, frozen

from sockerless.backend import LogLine
from sockerless.errors import SockerlessError
from sockerless.logfilter import split_lines
from sockerless_lambda.aws import AwsClients, aws_error_code, call
from sockerless_lambda.errors import AwsOperation
from sockerless_lambda.invocations import EXIT_FAILURE, EXIT_KILLED, outcome_from_error

__all__ = [
    "CloudWatchEvent",
    "LogReader",
    "RunSummary",
    "function_of_stream",
    "is_platform_line",
    "output_lines",
    "run_ended",
    "run_started",
    "summarize_run",
]

log = logging.getLogger("sockerless.lambda.logs")

_STREAM = re.compile(r"\d{4}/\d{2}/\d{2}/(?P<function>[A-Za-z0-9_-]+)\[")
_PLATFORM_PREFIXES = (
    "INIT_START ",
    "INIT_REPORT ",
    "INIT_RUNTIME_DONE",
    "START RequestId: ",
    "END RequestId: ",
    "REPORT RequestId: ",
    "RUNTIME_DONE",
    "EXTENSION ",
    "TELEMETRY ",
    "RESTORE_START ",
    "RESTORE_REPORT ",
)
_START = re.compile(r"START RequestId: (?P<rid>\S+)")
_END = re.compile(r"(?:END|REPORT) RequestId: (?P<rid>\S+)")
_RUNTIME_ERROR = re.compile(r"RequestId: (?P<rid>\S+) Error: (?P<message>.*)", re.DOTALL)
_TIMED_OUT = re.compile(r"\S+ (?P<rid>[0-9a-fA-F-]{8,}) (?P<message>Task timed out after [\d.]+ seconds)")
_ERROR_TYPE = re.compile(r"(?:Runtime|Sandbox)\.[A-Za-z]+")
_REPORT_TIMEOUT = re.compile(r"Status: timeout")
# A failed run's REPORT ends "Status: error\tError Type: <type>": with no error line of the runtime's
# before it, the function reported the error itself (FunctionError Handled): exit 1, named.
_REPORT_ERROR = re.compile(r"Status: error\s+Error Type: (?P<type>\S+)")

#: Re-read this much before the previous fetch: CloudWatch delivers events 1-5 s late, sometimes more
#: (the default of ``lambda.log_read_overlap``).
OVERLAP_SECONDS = 20.0


@frozen
class CloudWatchEvent:
    timestamp_ms: int
    message: str
    event_id: str = ""
    stream: str = ""
    """The log stream: one execution environment, which runs one invocation at a time."""

    @property
    def timestamp(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.timestamp_ms / 1000, dt.UTC)

    @property
    def order(self) -> tuple[int, int, str]:
        """Where the event stands in its stream: by time, then (events of one millisecond) by ID,
        which CloudWatch gives in the order the events were put (numeric strings of one length)."""
        return (self.timestamp_ms, len(self.event_id), self.event_id)


@frozen
class RunSummary:
    """How one run ended, read from its platform lines."""

    request_id: str
    exit_code: int
    error: str
    ended_ms: int


def function_of_stream(stream_name: str) -> str | None:
    """The function a stream of the shared group belongs to: ``2024/05/01/skls-ab12[$LATEST]9f...``."""
    match = _STREAM.match(stream_name)
    return match.group("function") if match else None


def is_platform_line(message: str) -> bool:
    """Lambda's own lines, as opposed to what the container printed."""
    text = message.rstrip("\n")
    if text.startswith(_PLATFORM_PREFIXES) or _ERROR_TYPE.fullmatch(text):
        return True
    if _RUNTIME_ERROR.match(text) or _TIMED_OUT.match(text):
        return True
    if text.startswith("{") and '"platform.' in text:
        try:
            record = json.loads(text)
        except ValueError:
            return False
        return isinstance(record, dict) and str(record.get("type", "")).startswith("platform.")
    return False


def run_started(message: str) -> str | None:
    """The request ID of a run's ``START`` line; None for any other line."""
    match = _START.match(message)
    return match.group("rid") if match else None


def run_ended(message: str) -> str | None:
    """The request ID of a run's ``END`` or ``REPORT`` line; None for any other line."""
    match = _END.match(message)
    return match.group("rid") if match else None


def output_lines(events: Iterable[CloudWatchEvent]) -> list[LogLine]:
    """Container output as Docker log lines (everything is stdout: Lambda merges the streams)."""
    lines: list[LogLine] = []
    for event in events:
        if not is_platform_line(event.message):
            lines.extend(split_lines(event.message, event.timestamp))
    return lines


def summarize_run(
    events: Iterable[CloudWatchEvent], *, request_id: str = "", after_ms: int = 0, exclude: Iterable[str] = ()
) -> RunSummary | None:
    """The end of a run, if its ``END``/``REPORT`` line is there.

    The run is ``request_id``, or (unknown ID, e.g. after a crash) the first run that started
    at or after ``after_ms`` and is not in ``exclude`` (earlier runs of the same container).
    """
    ordered = list(events)
    target = request_id
    if not target:
        excluded = set(exclude)
        for event in ordered:
            match = _START.match(event.message)
            if match and event.timestamp_ms >= after_ms and match.group("rid") not in excluded:
                target = match.group("rid")
                break
        if not target:
            return None
    ended_ms: int | None = None
    exit_code, error, failure = 0, "", ""
    for event in ordered:
        text = event.message.rstrip("\n")
        if failure and _ERROR_TYPE.fullmatch(text):  # the error type follows the error line
            exit_code, error = outcome_from_error(text, failure)
            continue
        end = _END.match(text)
        if end and end.group("rid") == target:
            ended_ms = event.timestamp_ms if ended_ms is None else ended_ms
            if text.startswith("REPORT") and _REPORT_TIMEOUT.search(text) and exit_code != EXIT_KILLED:
                exit_code, error = outcome_from_error("Sandbox.Timedout", "")
            elif text.startswith("REPORT") and not failure and (reported := _REPORT_ERROR.search(text)):
                exit_code, error = EXIT_FAILURE, f"function error: {reported.group('type')}"
            continue
        failed = _RUNTIME_ERROR.match(text) or _TIMED_OUT.match(text)
        if failed and failed.group("rid") == target:
            failure = failed.group("message")
            exit_code, error = outcome_from_error("", failure)
    if ended_ms is None:
        return None
    return RunSummary(request_id=target, exit_code=exit_code, error=error, ended_ms=ended_ms)


Deliver = Callable[[list[CloudWatchEvent]], Awaitable[None]]


@define
class _Subscription:
    deliver: Deliver
    since_ms: int
    #: IDs of the events delivered, with their times: dropped once older than a read can reach again
    #: (a rescan reaches back to ``since_ms``).
    seen: dict[str, int]


@define
class LogReader:
    """The one reader of the shared log group (see the module docstring)."""

    _clients: AwsClients
    _group: str = field(alias="log_group", kw_only=True)
    _interval: float = field(default=1.0, alias="interval", kw_only=True)
    _overlap_ms: int = field(
        default=int(OVERLAP_SECONDS * 1000), alias="overlap_ms", kw_only=True, converter=int
    )
    _clock: Callable[[], float] = field(default=time.monotonic, alias="clock", kw_only=True)
    _subscriptions: dict[str, _Subscription] = field(factory=dict, init=False)
    _covered_to_ms: int | None = field(default=None, init=False)  # wall-clock time the last read began
    _backfill_ms: int | None = field(default=None, init=False)
    _fetch: asyncio.Task[None] | None = field(default=None, init=False)
    _loop: asyncio.Task[None] | None = field(default=None, init=False)
    _last_call: float = field(default=-1e9, init=False)
    _fetched_at: float = field(default=-1e9, init=False)

    def subscribe(self, function_name: str, since: dt.datetime, deliver: Deliver) -> None:
        """Deliver ``function_name``'s events from ``since`` on, as reads bring them (backfilled at the
        next read if ``since`` is earlier than what reads cover). Replaces an earlier subscription."""
        since_ms = int(since.timestamp() * 1000)
        self._subscriptions[function_name] = _Subscription(deliver, since_ms, {})
        if self._covered_to_ms is None or since_ms < self._covered_to_ms - self._overlap_ms:
            self._backfill_ms = since_ms if self._backfill_ms is None else min(self._backfill_ms, since_ms)
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._keep_reading(), name="cloudwatch-reader")

    def rescan(self, function_name: str) -> None:
        """Read the function's events again from the time its subscription asked for, at the next
        read: an event CloudWatch delivered later than the overlap of consecutive reads is found
        there (the ones delivered already are not delivered twice)."""
        subscription = self._subscriptions.get(function_name)
        if subscription is not None:
            since_ms = subscription.since_ms
            self._backfill_ms = since_ms if self._backfill_ms is None else min(self._backfill_ms, since_ms)

    def unsubscribe(self, function_name: str) -> None:
        self._subscriptions.pop(function_name, None)

    def subscribed(self, function_name: str) -> bool:
        return function_name in self._subscriptions

    async def refresh(self, *, max_wait: float) -> None:
        """Make what was delivered at most one interval old, joining a read in flight; waits at most
        ``max_wait`` seconds (then the read goes on, and its events are delivered when it ends)."""
        if self._fetch is None or self._fetch.done():
            if self._backfill_ms is None and self._clock() - self._fetched_at < self._interval:
                return
            self._fetch = asyncio.create_task(self._fetch_once())
        try:
            await asyncio.wait_for(asyncio.shield(self._fetch), max_wait)
        except TimeoutError:
            log.info("logs: CloudWatch read still in progress; answering with what is delivered")

    async def close(self) -> None:
        for task in (self._loop, self._fetch):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):  # shutting down
                    await task

    # -- the reads

    async def _keep_reading(self) -> None:
        """While anything is subscribed, read once per interval (shared by every subscriber)."""
        while self._subscriptions:
            try:
                await self.refresh(max_wait=max(60.0, self._interval * 10))
            except SockerlessError as exc:
                log.warning(
                    "logs: reading CloudWatch failed; retrying", extra={"fields": {"error": exc.message}}
                )
            await asyncio.sleep(max(0.0, self._fetched_at + self._interval - self._clock()))

    async def _pace(self) -> None:
        wait = self._last_call + self._interval - self._clock()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_call = self._clock()

    async def _fetch_once(self) -> None:
        try:
            await self._read_window()
        finally:
            self._fetched_at = self._clock()

    async def _read_window(self) -> None:
        starts = [] if self._covered_to_ms is None else [self._covered_to_ms - self._overlap_ms]
        if self._backfill_ms is not None:
            starts.append(self._backfill_ms)
        if not starts or not self._subscriptions:
            return
        start_ms = max(0, min(starts))
        self._backfill_ms = None
        began_ms = int(time.time() * 1000)
        operation = AwsOperation("logs", "FilterLogEvents", "filter log events", self._group)
        params: dict[str, Any] = {"logGroupName": self._group, "startTime": start_ms, "interleaved": True}
        while True:
            await self._pace()
            try:
                page = await call(operation, self._clients.logs.filter_log_events, **params)
            except SockerlessError as exc:
                if aws_error_code(exc) == "ResourceNotFoundException":
                    break  # no group yet: nothing has been logged
                self._backfill_ms = (
                    start_ms if self._backfill_ms is None else min(self._backfill_ms, start_ms)
                )
                raise
            await self._route(page.get("events", ()))
            token = page.get("nextToken")
            if not token:
                break
            params["nextToken"] = token
        self._covered_to_ms = began_ms
        for subscription in self._subscriptions.values():
            horizon = min(began_ms - 2 * self._overlap_ms, subscription.since_ms)
            subscription.seen = {key: ms for key, ms in subscription.seen.items() if ms >= horizon}

    async def _route(self, raw_events: Iterable[Any]) -> None:
        fresh: dict[str, list[CloudWatchEvent]] = {}
        for raw in raw_events:
            function_name = function_of_stream(str(raw.get("logStreamName", "")))
            subscription = self._subscriptions.get(function_name or "")
            if subscription is None:
                continue
            timestamp_ms = int(raw.get("timestamp", 0))
            event_id = str(
                raw.get("eventId") or f"{raw.get('logStreamName')}/{timestamp_ms}/{raw.get('message')}"
            )
            if event_id in subscription.seen:
                continue
            subscription.seen[event_id] = timestamp_ms
            stream = str(raw.get("logStreamName", ""))
            event = CloudWatchEvent(timestamp_ms, str(raw.get("message", "")), event_id, stream)
            fresh.setdefault(str(function_name), []).append(event)
        for function_name, events in fresh.items():
            subscription = self._subscriptions.get(function_name)
            if subscription is not None:
                events.sort(key=lambda event: event.order)
                await subscription.deliver(events)
