"""Running an application on a :class:`Listener`, and stopping it within a grace period.

Both servers are an :class:`HTTPServer`: it binds, serves, and at shutdown stops accepting, lets the
requests in flight and the state changes they started (:class:`ShieldedTasks`) finish within the
grace period, cancels what is left, and removes its socket file. The grace period runs from the
moment it stops accepting, whatever its owner waits for in it (:meth:`HTTPServer.within_grace`), and
:meth:`HTTPServer.hurry` ends it at once (a second Ctrl-C).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiohttp import web
from attrs import define, field

from sockerless.http.listener import Listener
from sockerless.http.middlewares import InFlight

__all__ = ["HTTPServer", "ShieldedTasks"]

T = TypeVar("T")

#: At the end of the grace period, how long aiohttp waits for a request still running before it
#: cancels it, and then for the cancelled request to end (taken from the grace period).
CANCEL_SECONDS = 0.25


class ShieldedTasks:
    """State changes that a client hanging up must not cut in half: each runs as a task of its own,
    shielded from the request's cancellation, and shutdown waits for it."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    async def run(self, work: Awaitable[T]) -> T:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds, then cancel what is left; returns how many were cancelled."""
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(list(self._tasks), timeout=max(0.0, timeout))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)


@define(kw_only=True)
class HTTPServer:
    """One aiohttp application served on one listener, with a graceful stop."""

    app: web.Application
    listener: Listener
    _grace: float
    _inflight: InFlight
    _shielded: ShieldedTasks
    _log: logging.Logger
    _runner: web.AppRunner | None = field(default=None, init=False)
    _deadline: float | None = field(default=None, init=False)
    _hurried: asyncio.Event = field(factory=asyncio.Event, init=False)

    def __attrs_post_init__(self) -> None:
        self.app.on_shutdown.append(self._drain)

    @property
    def grace(self) -> float:
        return self._grace

    @property
    def requests_in_flight(self) -> int:
        return self._inflight.active

    async def drained(self) -> None:
        """Return once no request is in flight."""
        await self._inflight.drained()

    async def stop_accepting(self) -> None:
        """No new connection from now on; the grace period starts (once). Its last moments are kept for
        aiohttp to cancel what is left (see :data:`CANCEL_SECONDS`)."""
        if self._deadline is None:
            usable = max(0.0, self._grace - 2 * CANCEL_SECONDS)
            self._deadline = asyncio.get_running_loop().time() + usable
        await self.listener.stop_accepting()

    def hurry(self, within: float = 0.0) -> None:
        """Shorten the grace period to end ``within`` seconds from now (0: at once; a second Ctrl-C)."""
        now = asyncio.get_running_loop().time()
        self._deadline = now + within if self._deadline is None else min(self._deadline, now + within)
        self._hurried.set()

    def remaining(self) -> float:
        """Seconds left of the grace period (all of it before the stop began)."""
        if self._deadline is None:
            return max(0.0, self._grace - 2 * CANCEL_SECONDS)
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    async def within_grace(self, work: Awaitable[Any]) -> bool:
        """Wait for ``work`` until the grace period ends (:meth:`hurry` may shorten it meanwhile); True
        if it ended in time (otherwise it is cancelled)."""
        task = asyncio.ensure_future(work)
        try:
            while not task.done() and self.remaining() > 0:
                self._hurried.clear()
                hurried = asyncio.ensure_future(self._hurried.wait())
                try:
                    await asyncio.wait(
                        [task, hurried], timeout=self.remaining(), return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    hurried.cancel()
                    await asyncio.gather(hurried, return_exceptions=True)
        finally:
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return not task.cancelled() and task.exception() is None

    async def start(self) -> None:
        """Serve on the listener, which must be bound; on failure nothing is left listening."""
        # The grace period is spent in _drain (on_shutdown); what still runs after it is cancelled.
        runner = web.AppRunner(
            self.app, handler_cancellation=True, shutdown_timeout=CANCEL_SECONDS, access_log=None
        )
        try:
            await runner.setup()
            self._runner = runner
            await self.listener.serve(runner)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop accepting, drain within the grace period, cancel the rest, remove the socket file."""
        await self.stop_accepting()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        await self.listener.close()

    async def _drain(self, app: web.Application) -> None:
        # aiohttp then waits up to CANCEL_SECONDS for each request, and as long again once cancelled:
        # the time kept out of the deadline.
        await self.within_grace(self._inflight.drained())
        cancelled = await self._shielded.drain(self.remaining())
        if cancelled:
            self._log.warning(
                "shutdown: cancelled state changes still in flight after the grace period",
                extra={"fields": {"count": cancelled, "grace_seconds": self._grace}},
            )
