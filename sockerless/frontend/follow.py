"""Log follow for backends that can only answer "the logs so far" (``logs_follow: false``).

:class:`ExitWatcher` learns when the container stops, from one long-lived backend wait (no
polling while the wait holds). :class:`LogFollower` polls the backend's logs at a bounded rate:
one fetch per interval, the interval growing while nothing new arrives, and emits only lines it
has not emitted before. It ends when the container has exited and a fetch made after the exit
brings nothing new: the backend's logs for an exited container are then final.

Deduplication: every fetch asks for the lines since ``floor`` (the newest timestamp seen minus a
look-back window, so that lines a backend delivers late still arrive), and a line is new unless
its (timestamp, stream, content, position among identical lines) was emitted before. Lines at or
below the floor are never emitted again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from types import TracebackType

import attrs

from sockerless.backend import LogLine, LogsOptions
from sockerless.client import BackendClient
from sockerless.errors import NotFound, SockerlessError
from sockerless.frontend.context import FollowSettings
from sockerless.models import WaitCondition

__all__ = ["ExitWatcher", "LogFollower"]

log = logging.getLogger("sockerless.frontend.follow")

#: Consecutive failed fetches after which following gives up (the backend is down, not slow).
MAX_CONSECUTIVE_FAILURES = 5

_LineKey = tuple[dt.datetime, int, bytes, int]


class ExitWatcher:
    """Sets :attr:`exited` when ``condition`` holds for the container (or the container is gone).

    One backend wait does the watching. Should the wait fail for another reason than the
    container being gone, the watcher falls back to inspecting the container once per interval.
    """

    def __init__(
        self,
        client: BackendClient,
        ref: str,
        condition: WaitCondition,
        settings: FollowSettings,
    ) -> None:
        self._client = client
        self._ref = ref
        self.container_id = ref
        self._condition = condition
        self._settings = settings
        self.exited = asyncio.Event()
        self.gone = False
        self._opened = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ExitWatcher:
        self._task = asyncio.create_task(self._watch(), name=f"exit-watcher-{self._ref}")
        # Return once the backend holds the wait, so an exit right after cannot be missed.
        opened = asyncio.ensure_future(self._opened.wait())
        try:
            await asyncio.wait({opened, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            opened.cancel()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        try:
            async with self._client.wait_container(self._ref, self._condition) as pending:
                self._opened.set()
                await pending.result()
        except NotFound:
            self.gone = True
        except SockerlessError as exc:
            log.info(
                "wait failed; watching the container by inspecting it",
                extra={"fields": {"container": self._ref, "error": exc.message}},
            )
            self._opened.set()
            await self._poll_inspect()
        finally:
            self._opened.set()
            self.exited.set()

    async def _poll_inspect(self) -> None:
        first_finished: str | None = None
        interval = self._settings.interval
        while True:
            try:
                container = await self._client.inspect_container(self._ref)
            except NotFound:
                self.gone = True
                return
            except SockerlessError:
                container = None
            if container is not None:
                state = container.state
                if first_finished is None:
                    first_finished = state.finished_at
                stopped = not state.running and state.status not in ("created", "restarting")
                if stopped and (
                    self._condition is not WaitCondition.NEXT_EXIT or state.finished_at != first_finished
                ):
                    return
            await asyncio.sleep(interval)
            interval = min(interval * self._settings.backoff, self._settings.max_interval)


@attrs.define
class _Seen:
    """What has been emitted: keys of lines above ``floor``; nothing at or below it is new."""

    floor: dt.datetime | None = None
    keys: set[_LineKey] = attrs.Factory(set)
    newest: dt.datetime | None = None

    def admit(self, lines: list[LogLine]) -> list[LogLine]:
        fresh: list[LogLine] = []
        positions: Counter[tuple[dt.datetime, int, bytes]] = Counter()
        for line in lines:
            identity = (line.timestamp, line.stream, line.data)
            key = (*identity, positions[identity])
            positions[identity] += 1
            if (self.floor is not None and line.timestamp <= self.floor) or key in self.keys:
                continue
            self.keys.add(key)
            fresh.append(line)
            if self.newest is None or line.timestamp > self.newest:
                self.newest = line.timestamp
        return fresh

    def raise_floor(self, floor: dt.datetime) -> None:
        if self.floor is None or floor > self.floor:
            self.floor = floor
            self.keys = {key for key in self.keys if key[0] > floor}


class LogFollower:
    """Follows a container's logs by polling ``client.fetch_logs``; iterate :meth:`lines`."""

    def __init__(
        self,
        client: BackendClient,
        ref: str,
        options: LogsOptions,
        settings: FollowSettings,
        watcher: ExitWatcher,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        after: dt.datetime | None = None,
    ) -> None:
        self._client = client
        self._ref = ref
        self._options = attrs.evolve(options, follow=False, timestamps=True)
        self._settings = settings
        self._watcher = watcher
        self._clock = clock
        self._after = after
        self.fetches = 0

    async def lines(self) -> AsyncIterator[LogLine]:
        seen = _Seen(floor=self._after)
        tail = self._options.tail
        first = True
        interval = self._settings.interval
        failures = 0
        while True:
            exited_before_fetch = self._watcher.exited.is_set()
            fetched_at = self._clock()
            since = self._options.since
            if seen.floor is not None and (since is None or seen.floor > since):
                since = seen.floor
            # The first fetch applies the tail; with --tail 0 it still reads one line, to learn
            # where "now" is in the backend's clock.
            request_tail = max(tail, 1) if first and tail is not None else None
            try:
                fetched = await self._client.fetch_logs(
                    self._ref, attrs.evolve(self._options, since=since, tail=request_tail)
                )
            except NotFound:
                return  # removed while we followed: nothing more will come
            except SockerlessError as exc:
                failures += 1
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    raise
                log.info(
                    "log fetch failed; retrying",
                    extra={"fields": {"container": self._ref, "error": exc.message}},
                )
                await self._pause(interval, exited_before_fetch)
                interval = min(interval * self._settings.backoff, self._settings.max_interval)
                continue
            failures = 0
            self.fetches += 1
            if first and request_tail is not None and len(fetched.lines) >= request_tail:
                # Older lines were cut by the tail: show the last ``tail`` and never the older ones.
                lines = fetched.lines
                shown = lines[len(lines) - request_tail :] if tail else []
                seen.admit(lines)
                seen.raise_floor(min(line.timestamp for line in lines))
                fresh = shown
            else:
                fresh = seen.admit(fetched.lines)
            first = False
            for line in fresh:
                yield line
            if seen.newest is not None:
                seen.raise_floor(seen.newest - dt.timedelta(seconds=self._settings.lookback))
            if not fresh and (exited_before_fetch or self._watcher.gone):
                return  # exited, and a fetch after the exit brought nothing new: final
            until = self._options.until
            if not fresh and until is not None and fetched_at > until:
                return
            interval = self._settings.interval if fresh else interval * self._settings.backoff
            interval = min(interval, self._settings.max_interval)
            await self._pause(interval, exited_before_fetch)

    async def _pause(self, interval: float, exited_before_fetch: bool) -> None:
        """Sleep ``interval``; an exit noticed meanwhile ends the sleep at once (once only)."""
        if exited_before_fetch or self._watcher.exited.is_set():
            # After the exit, settle at the base pace rather than immediately: late lines need time.
            if exited_before_fetch:
                await asyncio.sleep(self._settings.interval)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._watcher.exited.wait(), interval)
