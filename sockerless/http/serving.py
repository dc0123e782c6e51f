"""Running an application on a :class:`Listener`, and stopping it within a grace period.

Both servers are an :class:`HTTPServer`: it binds, serves, and at shutdown stops accepting, lets the
requests in flight and the state changes they started (:class:`ShieldedTasks`) finish within the
grace period, cancels what is left, and removes its socket file.
"""

from __future__ import annotations

import asyncio
import contextlib
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

    def __attrs_post_init__(self) -> None:
        self.app.on_shutdown.append(self._drain)

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
        await self.listener.stop_accepting()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        await self.listener.close()

    async def _drain(self, app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        # aiohttp then waits up to CANCEL_SECONDS for each request, and as long again once cancelled.
        grace = max(0.0, self._grace - 2 * CANCEL_SECONDS)
        deadline = loop.time() + grace
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._inflight.drained(), grace)
        cancelled = await self._shielded.drain(deadline - loop.time())
        if cancelled:
            self._log.warning(
                "shutdown: cancelled state changes still in flight after the grace period",
                extra={"fields": {"count": cancelled, "grace_seconds": self._grace}},
            )
