"""A container's output: from the run's log tail, or from CloudWatch, into the store's log store.

Lambda gives a run's output two ways, and the backend writes each run's into the log store once:

* the synchronous Invoke's ``LogType=Tail``: the last 4 KB of the run's log, at once with the answer.
  When it holds the whole run (its ``START`` and ``END`` lines) the output is complete the moment
  the run ends, without reading CloudWatch; its lines carry the time the run ended until someone
  asks for the lines' own times, which only CloudWatch has (then they are refined in place);
* CloudWatch Logs, typically 1-5 s late, through the one shared :class:`~.cloudwatch.LogReader`:
  read while someone follows a running container, and after a run whose tail did not hold it all
  (long output, ``Event`` invocations, a run recovered after a restart), until the run's ``END``
  line has shown and a settle delay has passed for stragglers.

Followers (``logs -f``, a read-only attach) read the log store, which wakes them as lines are
appended; the output is closed once the run's output is complete, and they end. Nothing is read
twice: positions, not contents, say what a follower has seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from attrs import define, field

from sockerless.backend import ContainerLogs, LogLine, LogsOptions
from sockerless.errors import NotImplementedByBackend, SockerlessError
from sockerless.hostconfig import LOG_READING_UNSUPPORTED, keeps_output
from sockerless.models import WaitCondition
from sockerless.store import Store
from sockerless_lambda.cloudwatch import (
    OVERLAP_SECONDS,
    CloudWatchEvent,
    LogReader,
    RunSummary,
    is_platform_line,
    output_lines,
    run_ended,
    run_started,
    summarize_run,
)
from sockerless_lambda.state import LambdaState, OutputSource, Record

__all__ = ["LOGS_DELIVERY_SECONDS", "LOG_SETTLE_SECONDS", "OutputService", "tail_output"]

log = logging.getLogger("sockerless.lambda.output")

#: After a run's END line shows in CloudWatch, how long to go on reading for lines delivered late.
LOG_SETTLE_SECONDS = 3.0
#: How long after a run ended CloudWatch gets to deliver what the tail did not hold (the default of
#: ``lambda.log_delivery_seconds``).
LOGS_DELIVERY_SECONDS: Final = 15.0
#: How long ``docker logs`` of a running container waits for a CloudWatch read in flight.
LOGS_MAX_WAIT_SECONDS: Final = 5.0
#: Reads start this long before the run, for the clocks of this host and Lambda's.
_CLOCK_MARGIN: Final = dt.timedelta(seconds=5)
_LATE_NOTE: Final = (
    "[sockerless] CloudWatch did not deliver this run's whole output within {seconds:g} s of its end; "
    "{shown}\n"
)


def tail_output(tail: str, request_id: str, when: dt.datetime) -> list[LogLine] | None:
    """The container output in a run's ``LogType=Tail``, every line stamped ``when``, when the tail
    holds the whole run (its START and END lines); None when it was cut at Lambda's 4 KB."""
    if not request_id or not all(f"{mark} RequestId: {request_id}" in tail for mark in ("START", "END")):
        return None
    stamp = int(when.timestamp() * 1000)
    text = _platform_lines_apart(tail, request_id)
    return output_lines(CloudWatchEvent(stamp, line) for line in text.splitlines(keepends=True))


def _platform_lines_apart(tail: str, request_id: str) -> str:
    """The tail with this run's platform lines each starting a line of their own, wherever they are:
    output whose last line has no newline must not carry ``END RequestId: ...`` into the output."""
    marks = re.compile(rf"(?<=[^\n])((?:START|END|REPORT) RequestId: {re.escape(request_id)})")
    return marks.sub(lambda match: "\n" + match.group(1), tail)


def _whole_lines_of_cut_tail(tail: str, request_id: str, when: dt.datetime) -> list[LogLine]:
    """What a cut tail still holds whole: everything after its first (cut) line."""
    stamp = int(when.timestamp() * 1000)
    if request_id:
        tail = _platform_lines_apart(tail, request_id)
    return output_lines(CloudWatchEvent(stamp, text) for text in tail.splitlines(keepends=True)[1:])


class RunFeed:
    """One run of a container as CloudWatch delivers it: its output lines (appended to the log
    store, or only collected) and its platform lines (how it ended).

    A run's lines are the events of the one log stream its ``START`` is in (one execution
    environment runs one invocation at a time), timestamped from its ``START`` to its ``END``,
    whatever order CloudWatch delivers them in: events shown before the ``START`` are held until it
    shows, stragglers shown after the ``END`` still count, and a second delivery of the same
    ``Event`` invocation (same request ID, another stream or later in the same one) is not this run.

    A feed that ``holds`` keeps the lines until :meth:`release`, then appends them in the order of
    their times: for a run no one follows, whose output CloudWatch may deliver out of order (an
    event shown late lands after those shown before it).
    """

    def __init__(
        self,
        record: Record,
        *,
        append: Callable[[list[LogLine]], Awaitable[None]] | None,
        hold: bool = False,
    ) -> None:
        state = record.backend_state
        started = record.started_at or record.created
        self.function_name = state.function_name
        self.since = started - _CLOCK_MARGIN
        self._after_ms = int((started - _CLOCK_MARGIN).timestamp() * 1000)
        self._excluded = set(state.past_request_ids)
        self.request_id = state.request_id
        self._append = append
        self.collected: list[LogLine] = []
        self.appended = 0
        self.ended_at: float | None = None  # monotonic time this reader first saw the run's END
        self._stream: str | None = None  # the stream of the run's START, once it showed
        self._start_ms = 0
        self._end_ms: int | None = None
        self._report_ms: int | None = None
        self._held: list[CloudWatchEvent] = []  # delivered before the run's START showed
        self._platform: list[CloudWatchEvent] = []
        self.closed = False
        self.holding = hold
        self._held_lines: list[tuple[tuple[int, int, str], LogLine]] = []
        self._changed = asyncio.Event()

    async def release(self) -> None:
        """Stop holding: the lines held so far go out, ordered by their times."""
        if not self.holding:
            return
        self.holding = False
        held = sorted(self._held_lines, key=lambda item: item[0])
        self._held_lines = []
        await self._emit([line for _, line in held])

    async def _emit(self, lines: list[LogLine]) -> None:
        if not lines or self.closed:
            return
        if self._append is None:
            self.collected.extend(lines)
        else:
            await self._append(lines)
        self.appended += len(lines)

    @property
    def started(self) -> bool:
        """Whether the run's START line has shown."""
        return self._stream is not None

    async def deliver(self, events: list[CloudWatchEvent]) -> None:
        if self._stream is None:
            if not self._find_start(events):
                self._held.extend(events)
                self._changed.set()
                return
            events = sorted([*self._held, *events], key=lambda event: event.order)
            self._held = []
        lines: list[tuple[tuple[int, int, str], LogLine]] = []
        for event in events:
            if event.stream != self._stream or event.timestamp_ms < self._start_ms:
                continue
            if is_platform_line(event.message):
                self._platform_line(event)
            elif self._end_ms is None or event.timestamp_ms <= self._end_ms:
                lines.extend((event.order, line) for line in output_lines([event]))
        if self.holding:
            self._held_lines.extend(lines)
        else:
            await self._emit([line for _, line in lines])
        self._changed.set()

    def _find_start(self, events: list[CloudWatchEvent]) -> bool:
        for event in sorted([*self._held, *events], key=lambda event: event.order):
            started = run_started(event.message.rstrip("\n"))
            if started is not None and self._belongs(started, event):
                self._stream, self._start_ms, self.request_id = event.stream, event.timestamp_ms, started
                return True
        return False

    def _platform_line(self, event: CloudWatchEvent) -> None:
        self._platform.append(event)
        text = event.message.rstrip("\n")
        if run_ended(text) != self.request_id:
            return
        if self._end_ms is None:
            self._end_ms = event.timestamp_ms
            self.ended_at = time.monotonic()
        if text.startswith("REPORT") and self._report_ms is None:
            self._report_ms = event.timestamp_ms

    def _belongs(self, request_id: str, event: CloudWatchEvent) -> bool:
        if self.request_id:
            return request_id == self.request_id
        return event.timestamp_ms >= self._after_ms and request_id not in self._excluded

    def summary(self) -> RunSummary | None:
        """How the run ended, once its END line has shown."""
        if self.ended_at is None:
            return None
        # Up to the run's REPORT: what follows in its stream is another invocation (a duplicate).
        upto = self._report_ms
        platform = sorted(
            (event for event in self._platform if upto is None or event.timestamp_ms <= upto),
            key=lambda event: event.order,
        )
        return summarize_run(platform, request_id=self.request_id)

    async def changed(self, timeout: float) -> None:
        """Until the next delivery, at most ``timeout`` seconds."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), max(0.0, timeout))


class _Follower:
    """A follower's lines, counted from the moment it is made until it ends or is closed, so that a
    start reads the run from CloudWatch at once for a container someone is waiting to follow."""

    def __init__(self, lines: AsyncIterator[LogLine], container_id: str, followers: Counter[str]) -> None:
        self._lines = lines
        self._container_id = container_id
        self._followers: Counter[str] | None = followers
        followers[container_id] += 1

    def __aiter__(self) -> _Follower:
        return self

    async def __anext__(self) -> LogLine:
        try:
            return await anext(self._lines)
        except BaseException:
            self._uncount()
            raise

    async def aclose(self) -> None:
        self._uncount()
        aclose = getattr(self._lines, "aclose", None)
        if aclose is not None:
            await aclose()

    def _uncount(self) -> None:
        if self._followers is not None:
            followers, self._followers = self._followers, None
            followers[self._container_id] -= 1
            if followers[self._container_id] <= 0:
                del followers[self._container_id]


@define
class OutputService:
    """Puts each run's output into the log store and tells the log store when it is complete."""

    _store: Store[LambdaState]
    _reader: LogReader
    _delivery: float = field(default=LOGS_DELIVERY_SECONDS, alias="delivery_seconds", kw_only=True)
    #: While a run's end is awaited, read its whole run again this often (``lambda.log_read_overlap``):
    #: an END delivered later than the overlap of consecutive reads is found then.
    _rescan: float = field(default=OVERLAP_SECONDS, alias="rescan_seconds", kw_only=True)
    _feeds: dict[str, RunFeed] = field(factory=dict, init=False)
    _locks: dict[str, asyncio.Lock] = field(factory=dict, init=False)
    _followers: Counter[str] = field(factory=Counter, init=False)
    _completions: dict[str, asyncio.Task[None]] = field(factory=dict, init=False)
    _refining: dict[str, asyncio.Task[None]] = field(factory=dict, init=False)

    # ------------------------------------------------------------------ a run's life

    async def begin_run(self, record: Record) -> None:
        """A start was accepted: the run's output comes after what the log store holds now."""
        self._drop(record.id)
        state = record.backend_state
        state.output_from = await self._store.logs.last_position(record.id)
        state.output_source, state.output_complete, state.output_timed = OutputSource.NONE, False, False
        self._store.logs.open_output(record.id)
        if self._followers[record.id] and not state.bootstrap:
            self._feed(record)  # someone waits for this run's output: read it as it comes

    async def take_tail(self, record: Record, log_tail: str) -> None:
        """Before the exit is written: when the run's tail holds the whole run and agrees with what
        CloudWatch delivered of it so far, the rest of the run's output goes into the log store now
        and the output is complete (written with the exit, in one save)."""
        state = record.backend_state
        lines = tail_output(log_tail, state.request_id, record.finished_at or dt.datetime.now(dt.UTC))
        if lines is None:
            return
        async with self._lock(record.id):
            feed = self._feeds.get(record.id)
            stored: list[LogLine] = []
            if feed is not None and feed.appended:
                stored = [line for _, line in await self._store.logs.read(record.id, after=state.output_from)]
                if [line.data for line in stored] != [line.data for line in lines[: len(stored)]]:
                    return  # CloudWatch showed other lines than the tail: it has the last word
            if feed is not None:
                feed.closed = True
            await self._keep(record, lines[len(stored) :])
        state.output_source = OutputSource.CLOUDWATCH if stored else OutputSource.TAIL
        state.output_complete = True

    async def exit_recorded(self, record: Record, log_tail: str) -> None:
        """The exit is written: a complete output is closed now; the rest comes from CloudWatch,
        bounded by the delivery window."""
        if record.backend_state.output_complete:
            await self._completed(record, saved=True)
            return
        if record.backend_state.bootstrap:
            # Its output came in its response (CloudWatch holds only its durable copy): what arrived is all.
            await self._completed(record)
            return
        record.backend_state.output_source = OutputSource.CLOUDWATCH
        self._feed(record, hold=not self._followers[record.id])
        self._spawn_completion(record, log_tail)

    async def watch_outcome(
        self, record: Record, deadline: float, *, start_deadline: float | None = None
    ) -> RunSummary | None:
        """The run's end as CloudWatch shows it (its output read meanwhile), or None at ``deadline``
        (a ``time.monotonic()`` value), or at ``start_deadline`` if its START has not shown by then
        (see :meth:`run_seen`). For runs whose Invoke answer is not at hand."""
        feed = self._feed(record, hold=not self._followers[record.id])
        with contextlib.suppress(Exception):  # read at least once, even past the deadline
            await self._reader.refresh(max_wait=60.0)
        next_rescan = time.monotonic() + self._rescan
        while True:
            summary = feed.summary()
            now = time.monotonic()
            remaining = deadline - now
            if summary is not None or remaining <= 0:
                return summary
            if start_deadline is not None and not feed.started:
                if now >= start_deadline:
                    return None
                remaining = min(remaining, start_deadline - now)
            if now >= next_rescan:
                self._reader.rescan(feed.function_name)
                next_rescan = now + self._rescan
            await feed.changed(min(remaining, max(0.0, next_rescan - now)))

    def run_seen(self, container_id: str) -> bool:
        """Whether the START of the container's run being read has shown in CloudWatch."""
        feed = self._feeds.get(container_id)
        return feed is not None and feed.started

    async def completed(self, container_id: str) -> None:
        """Until the output of the container's last run is complete (for a container removed at its
        exit whose output CloudWatch is still delivering; bounded by the delivery window)."""
        completion = self._completions.get(container_id)
        if completion is not None:
            await asyncio.wait([completion])

    async def read_now(self, records: list[Record]) -> None:
        """One shared CloudWatch read of these running containers' output, into the log store (a stop
        that settles them without their end: what CloudWatch has of them is kept)."""
        for record in records:
            self._feed(record)
        with contextlib.suppress(SockerlessError):
            await self._reader.refresh(max_wait=LOGS_MAX_WAIT_SECONDS)
        for record in records:
            await self._feed(record).release()

    def forget(self, container_id: str) -> None:
        """The container is being removed: stop reading its output; its followers end."""
        self._drop(container_id)
        self._locks.pop(container_id, None)
        self._store.logs.close_output(container_id)

    async def close(self) -> None:
        tasks = [*self._completions.values(), *self._refining.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for container_id in list(self._feeds):
            self._drop(container_id)

    async def append_stream(self, record: Record, lines: list[LogLine]) -> None:
        """Lines of a bootstrap run's response (or durable copy) into the log store, as they come."""
        async with self._lock(record.id):
            await self._keep(record, lines)

    async def delivered(self, record: Record) -> dict[int, int]:
        """Bytes of each stream the log store holds of the current run (a bootstrap run's offsets)."""
        counts: dict[int, int] = {}
        for _, line in await self._store.logs.read(record.id, after=record.backend_state.output_from):
            counts[line.stream] = counts.get(line.stream, 0) + len(line.data)
        return counts

    async def _keep(self, record: Record, lines: list[LogLine]) -> None:
        """Into the log store, unless the container's logging driver is ``none``: nothing is kept."""
        if not keeps_output(record.host_config.log_config):
            return
        await self._store.logs.append(record.id, lines)

    # ------------------------------------------------------------------ reading

    async def logs(self, record: Record, options: LogsOptions) -> ContainerLogs:
        """The container's output as ``logs`` asks for it; a follower reads on as lines come.

        With the ``none`` driver there is nothing to read: Docker's 501, but for the follow of the
        next run that a read-only attach is, which ends with the run and shows what was kept: nothing.
        """
        if not keeps_output(record.host_config.log_config) and not (
            options.follow and options.condition is WaitCondition.NEXT_EXIT
        ):
            raise NotImplementedByBackend(LOG_READING_UNSUPPORTED)
        state = record.backend_state
        if record.status == "running" and not state.output_complete and not state.bootstrap:
            # Someone looks at a running container: read its output as it comes.
            await self._feed(record).release()
            if not options.follow:
                await self._reader.refresh(max_wait=LOGS_MAX_WAIT_SECONDS)
        elif not state.output_complete and not options.follow:
            # Exited, its output still coming from CloudWatch: answer once it is complete, which the
            # delivery window bounds.
            completion = self._completions.get(record.id)
            if completion is not None:
                await asyncio.wait([completion])
        wants_times = options.timestamps or options.since is not None or options.until is not None
        if wants_times and state.output_source == OutputSource.TAIL and not state.output_timed:
            await self._refine_times(record)
        lines = self._store.logs.lines(record.id, options)
        return ContainerLogs(
            tty=record.config.tty, lines=self._counted(record.id, lines) if options.follow else lines
        )

    async def _counted(self, container_id: str, lines: AsyncIterator[LogLine]) -> AsyncIterator[LogLine]:
        """A follower, counted while it reads: a start reads CloudWatch at once for a followed container."""
        self._followers[container_id] += 1
        try:
            async for line in lines:
                yield line
        finally:
            self._followers[container_id] -= 1
            if self._followers[container_id] <= 0:
                del self._followers[container_id]

    # ------------------------------------------------------------------ completing

    def _feed(self, record: Record, *, hold: bool = False) -> RunFeed:
        feed = self._feeds.get(record.id)
        if feed is None:
            lock = self._lock(record.id)

            async def append(lines: list[LogLine]) -> None:
                async with lock:
                    if not feed_ref.closed:
                        await self._keep(record, lines)

            feed_ref = RunFeed(record, append=append, hold=hold)
            feed = self._feeds[record.id] = feed_ref
            self._reader.subscribe(feed.function_name, feed.since, feed.deliver)
        return feed

    def _spawn_completion(self, record: Record, log_tail: str) -> None:
        task = asyncio.create_task(
            self._complete_from_cloudwatch(record, log_tail), name=f"output-{record.id[:12]}"
        )
        self._completions[record.id] = task
        task.add_done_callback(
            lambda done: (
                self._completions.pop(record.id, None) if self._completions.get(record.id) is done else None
            )
        )

    async def _complete_from_cloudwatch(self, record: Record, log_tail: str) -> None:
        """Read until the run's END has shown and the settle delay has passed, or until the delivery
        window closes; then the output is complete. A window closed early says so in the output."""
        feed = self._feed(record)
        ended = record.finished_at or dt.datetime.now(dt.UTC)
        deadline = time.monotonic() + max(0.0, ended.timestamp() + self._delivery - time.time())
        try:
            while True:
                now = time.monotonic()
                if feed.ended_at is not None and now - feed.ended_at >= LOG_SETTLE_SECONDS:
                    break
                if now >= deadline:
                    await self._late(record, feed, log_tail, ended)
                    break
                wait = deadline - now if feed.ended_at is None else feed.ended_at + LOG_SETTLE_SECONDS - now
                await feed.changed(min(wait, deadline - now))
            await feed.release()
            async with self._lock(record.id):
                feed.closed = True
        except SockerlessError as exc:  # the store failed: what arrived is what there is
            log.warning(
                "output: completing a run's output failed",
                extra={"fields": {"container": record.id, "error": exc.message}},
            )
        await self._completed(record)

    async def _late(self, record: Record, feed: RunFeed, log_tail: str, ended: dt.datetime) -> None:
        """CloudWatch did not deliver the whole run in time: show what the tail holds, and say so."""
        await feed.release()
        async with self._lock(record.id):
            feed.closed = True
            lines: list[LogLine] = []
            if not feed.appended and log_tail:
                lines = _whole_lines_of_cut_tail(log_tail, record.backend_state.request_id, ended)
                shown = (
                    "shown is only what Lambda returned with the invocation (the end of its 4 KB log tail)"
                )
            else:
                shown = "what it delivered is shown, the rest may be missing"
            note = _LATE_NOTE.format(seconds=self._delivery, shown=shown).encode()
            lines.append(LogLine(stream=2, timestamp=dt.datetime.now(dt.UTC), data=note))
            await self._keep(record, lines)
        log.warning(
            "output: CloudWatch did not deliver the run's end in time",
            extra={"fields": {"container": record.id, "request_id": record.backend_state.request_id}},
        )

    async def _completed(self, record: Record, *, saved: bool = False) -> None:
        feed = self._feeds.get(record.id)
        if feed is not None:
            with contextlib.suppress(SockerlessError):  # the store failed: what arrived is what there is
                await feed.release()
        self._unsubscribe(record.id)
        state = record.backend_state
        state.output_complete = True
        if not saved and self._store.get_container(record.id) is record:
            await self._store.save_state(record)
        self._store.logs.close_output(record.id)
        if self._store.get_container(record.id) is not record:
            self._locks.pop(record.id, None)  # removed at its exit, as it ended: nothing more comes

    # ------------------------------------------------------------------ the lines' own times

    async def _refine_times(self, record: Record) -> None:
        """Give the run's lines taken from the tail CloudWatch's own times (one shared read, waiting
        at most until the delivery window of the run closes), once the same lines show there."""
        task = self._refining.get(record.id)
        if task is None:
            task = self._refining[record.id] = asyncio.create_task(self._refine(record))
            task.add_done_callback(lambda _: self._refining.pop(record.id, None))
        await asyncio.shield(task)

    async def _refine(self, record: Record) -> None:
        state = record.backend_state
        stored = await self._store.logs.read(record.id, after=state.output_from)
        feed = RunFeed(record, append=None)
        name = state.function_name
        ended = record.finished_at or dt.datetime.now(dt.UTC)
        deadline = time.monotonic() + max(0.0, ended.timestamp() + self._delivery - time.time())
        subscribed_here = not self._reader.subscribed(name)
        if subscribed_here:
            self._reader.subscribe(name, feed.since, feed.deliver)
        try:
            with contextlib.suppress(Exception):
                await self._reader.refresh(max_wait=LOGS_MAX_WAIT_SECONDS)
            while feed.ended_at is None and time.monotonic() < deadline:
                await feed.changed(deadline - time.monotonic())
        finally:
            if subscribed_here:
                self._reader.unsubscribe(name)
        if [line.data for line in feed.collected] != [line.data for _, line in stored]:
            log.info(
                "logs: CloudWatch does not show the run's lines yet; they keep the time the run ended",
                extra={"fields": {"container": record.id}},
            )
            return
        await self._store.logs.set_times(
            record.id, {seq: line.timestamp for (seq, _), line in zip(stored, feed.collected, strict=True)}
        )
        state.output_timed = True
        if self._store.get_container(record.id) is record:
            await self._store.save_state(record)

    # ------------------------------------------------------------------ bookkeeping

    def _lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())

    def _unsubscribe(self, container_id: str) -> None:
        feed = self._feeds.pop(container_id, None)
        if feed is not None:
            feed.closed = True
            self._reader.unsubscribe(feed.function_name)

    def _drop(self, container_id: str) -> None:
        self._unsubscribe(container_id)
        task = self._completions.pop(container_id, None)
        if task is not None and task is not asyncio.current_task():  # an auto-remove at completion
            task.cancel()
