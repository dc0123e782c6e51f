"""Log follow for backends that can only answer "the logs so far" (``logs_follow: false``).

:class:`ExitWatcher` learns when the container stops, from one long-lived backend wait (no
polling while the wait holds). :class:`LogFollower` polls the backend's logs at a bounded rate:
one fetch per interval, the interval growing while nothing new arrives, and emits only lines it
has not emitted before. It ends when the container has exited and a fetch made after the exit
brings nothing new: the backend's logs for an exited container are then final.

Deduplication is by position in the output: a line is identified by its stream and content, and
each fetch's new lines are those after the end of what was already seen (:func:`continuation`).
Timestamps are not trusted for this, since a backend may re-stamp lines between fetches.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from types import TracebackType

import attrs

from sockerless.backend import LogLine, LogsOptions
from sockerless.client import BackendClient
from sockerless.errors import NotFound, SockerlessError
from sockerless.frontend.context import FollowSettings
from sockerless.models import WaitCondition

__all__ = ["ExitWatcher", "LogFollower", "continuation"]

log = logging.getLogger("sockerless.frontend.follow")

#: Consecutive failed fetches after which following gives up (the backend is down, not slow).
MAX_CONSECUTIVE_FAILURES = 5


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


def continuation(history: list[int], view: list[int]) -> int | None:
    """Where the lines not seen yet start in ``view``, given the ``history`` of lines already seen.

    Both are lists of line keys in order. Logs only grow, so usually ``view`` starts with
    ``history`` (the fast path). A backend may also show a shortened view for a while (a tail of
    the output before the full logs arrive) or re-stamp lines: then the longest end of the history
    found in the view marks the place (the earliest such place, so that nothing is lost).
    None: no line of the history is in the view.
    """
    seen, size = len(history), len(view)
    if seen <= size and view[:seen] == history:
        return seen
    if not history:
        return 0
    best_length, best_end = 0, None
    last = history[-1]
    for end in range(1, size + 1):
        if view[end - 1] != last:
            continue
        length = 1
        while length < seen and length < end and view[end - 1 - length] == history[seen - 1 - length]:
            length += 1
        if length > best_length:
            best_length, best_end = length, end
    return best_end


def _key(line: LogLine) -> int:
    """A line's identity for following: its stream and content. Timestamps are not part of it, because
    a backend may re-stamp lines (a quick tail first, CloudWatch's own times later)."""
    return hash((line.stream, line.data))


class LogFollower:
    """Follows a container's logs by polling ``client.fetch_logs``; iterate :meth:`lines`.

    Every fetch asks for the logs as the client asked for them (``since``, ``until``, streams)
    without a tail; the first fetch applies the tail itself, and later ones emit what follows the
    lines already seen (:func:`continuation`). ``after``: lines stamped at or before it belong to
    an earlier run and are not shown.
    """

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
        self._tail = options.tail
        self._options = attrs.evolve(options, follow=False, timestamps=True, tail=None)
        self._settings = settings
        self._watcher = watcher
        self._clock = clock
        self._after = after
        self.fetches = 0

    async def lines(self) -> AsyncIterator[LogLine]:
        history: list[int] | None = None
        interval = self._settings.interval
        failures = 0
        while True:
            exited_before_fetch = self._watcher.exited.is_set()
            fetched_at = self._clock()
            try:
                fetched = await self._client.fetch_logs(self._ref, self._options)
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
            if history is None:
                fresh = self._first(fetched.lines)
                history = [_key(line) for line in fetched.lines]
            else:
                fresh = self._new(history, fetched.lines)
                history.extend(_key(line) for line in fresh)
            for line in fresh:
                yield line
            if fetched.final:
                return  # the backend says nothing more will come: no settling poll needed
            if not fresh and (exited_before_fetch or self._watcher.gone):
                return  # exited, and a fetch after the exit brought nothing new: final
            until = self._options.until
            if not fresh and until is not None and fetched_at > until:
                return
            interval = self._settings.interval if fresh else interval * self._settings.backoff
            interval = min(interval, self._settings.max_interval)
            await self._pause(interval, exited_before_fetch)

    def _first(self, lines: list[LogLine]) -> list[LogLine]:
        after = self._after
        shown = [line for line in lines if after is None or line.timestamp > after]
        if self._tail is not None:
            shown = shown[len(shown) - self._tail :] if self._tail > 0 else []
        return shown

    @staticmethod
    def _new(history: list[int], lines: list[LogLine]) -> list[LogLine]:
        start = continuation(history, [_key(line) for line in lines])
        if start is not None:
            return lines[start:]
        # Nothing seen is in this view (a backend that dropped old lines): new is what was not seen.
        known = set(history)
        return [line for line in lines if _key(line) not in known]

    async def _pause(self, interval: float, exited_before_fetch: bool) -> None:
        """Sleep ``interval``; an exit noticed meanwhile ends the sleep at once (once only)."""
        if exited_before_fetch or self._watcher.exited.is_set():
            # After the exit, settle at the base pace rather than immediately: late lines need time.
            if exited_before_fetch:
                await asyncio.sleep(self._settings.interval)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._watcher.exited.wait(), interval)
