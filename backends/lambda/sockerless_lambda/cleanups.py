"""The cloud side of a removal: a removed container's function, deleted after the remove has answered.

A remove deletes the record and writes the removed container, its cleanup pending (the text
:func:`cleanup_of` makes: ``{"function": "skls-..."}``), in one transaction; it answers; then
:class:`Cleanups` deletes the function in the background. Once ``DeleteFunction`` succeeded, or found
the function already gone (``ResourceNotFoundException``), the store is told (``cleanup_done``). A
failure, after the retries of the ``call`` helper, is logged as a warning and stays pending in the
store: reconciliation retries it at the next start, before the server listens. ``close`` waits
:data:`CLOSE_WAIT_SECONDS` for the deletions in flight and leaves the rest pending (durable).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Final

from attrs import define, field

from sockerless.errors import SockerlessError
from sockerless.store import Store
from sockerless_lambda.aws import AwsClients
from sockerless_lambda.functions import delete_function
from sockerless_lambda.state import LambdaState

__all__ = ["CLOSE_WAIT_SECONDS", "Cleanups", "cleanup_of", "function_of"]

log = logging.getLogger("sockerless.lambda.cleanups")

#: How long ``close`` waits for the deletions in flight; the rest stay pending for the next start.
CLOSE_WAIT_SECONDS: Final = 2.0
#: DeleteFunction calls at once: Lambda's control plane takes about 15 requests/s per account, and a
#: prune or a start-up with many pending would otherwise send them all together.
DELETES_AT_ONCE: Final = 4


def cleanup_of(function_name: str) -> str:
    """The cleanup a removed container's record carries: its function, to delete."""
    return json.dumps({"function": function_name}, separators=(",", ":"))


def function_of(cleanup: str) -> str:
    """The function a removed container's cleanup names ('' for none)."""
    try:
        value = json.loads(cleanup)
    except ValueError:
        return ""
    name = value.get("function") if isinstance(value, dict) else None
    return name if isinstance(name, str) else ""


@define
class Cleanups:
    """The functions of removed containers being deleted, one background task per container."""

    _store: Store[LambdaState]
    _clients: AwsClients
    _tasks: dict[str, asyncio.Task[None]] = field(factory=dict, init=False)
    _gate: asyncio.Semaphore = field(factory=lambda: asyncio.Semaphore(DELETES_AT_ONCE), init=False)

    def start(self, container_id: str, cleanup: str) -> None:
        """Do the removed container's ``cleanup`` in the background, unless it is under way already."""
        if container_id in self._tasks:
            return
        task = asyncio.create_task(
            self._clean_up(container_id, cleanup), name=f"lambda-cleanup-{container_id[:12]}"
        )
        self._tasks[container_id] = task
        task.add_done_callback(
            lambda done: (
                self._tasks.pop(container_id, None) if self._tasks.get(container_id) is done else None
            )
        )

    def resume(self) -> None:
        """Start every cleanup the store holds as pending (the ones a previous process left)."""
        for removed in self._store.cleanups_pending():
            self.start(removed.id, removed.cleanup)

    async def settled(self) -> None:
        """Wait until no cleanup is under way, those started meanwhile included (done or failed)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def close(self) -> None:
        """Wait at most :data:`CLOSE_WAIT_SECONDS` for the cleanups under way, then cut the rest: they
        stay pending in the store, and the next start does them."""
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=CLOSE_WAIT_SECONDS)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        if late:
            log.info("%d function deletions left pending; the next start does them", len(late))

    async def _clean_up(self, container_id: str, cleanup: str) -> None:
        function = function_of(cleanup)
        about = {"container": container_id, "function": function}
        try:
            if function:
                async with self._gate:
                    await delete_function(self._clients, function)
                log.info("function of a removed container deleted", extra={"fields": about})
            else:  # not ours to read: nothing this version knows how to clean up
                log.warning("a removed container's cleanup names no function", extra={"fields": about})
            await self._store.cleanup_done(container_id)
        except SockerlessError as exc:
            log.warning(
                "deleting a removed container's function failed; the next start retries it",
                extra={"fields": {**about, "error": exc.message}},
            )
        except Exception:  # a background task: reported, never silently dead; the cleanup stays pending
            log.exception("deleting a removed container's function failed", extra={"fields": about})
