"""Removed containers: what a backend still answers for a container after its removal, and the cloud
cleanup it still owes, durable in ``removed_containers``.

``Store.delete_container`` writes a container's removal in the same transaction as the delete of its
row: its ID, name, last exit, Tty flag, when it expires (``store.removed_grace_seconds`` later, wall
clock) and the backend's cleanup still to do (text the backend chooses; empty when nothing is left).
Until it expires, ``wait`` and ``logs`` of the container answer from here and from its output, by ID,
name or unique ID prefix, in this process or the next. The sweep deletes a removed container, and its
output with it, once it has expired and its cleanup is done; one whose cleanup is pending stays.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Final

import attrs
from attrs import frozen

from sockerless.store.database import Database, Plan, Statement
from sockerless.store.logs import LogStore
from sockerless.store.prefixes import prefix_matches

__all__ = ["RemovedContainer", "RemovedContainers"]

log = logging.getLogger(__name__)

#: How long the background sweep waits before trying again after a failure.
SWEEP_RETRY_SECONDS: Final = 60.0

#: The columns in the order of :class:`RemovedContainer`'s fields.
_INSERT: Final = (
    "INSERT OR REPLACE INTO removed_containers (id, name, exit_code, error, tty, expires_at, cleanup)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SELECT: Final = (
    "SELECT id, name, exit_code, error, tty, expires_at, cleanup FROM removed_containers"
    " ORDER BY expires_at, id"
)


@frozen
class RemovedContainer:
    """A removed container as it can still be asked for, and what its backend still has to clean up."""

    id: str
    name: str  # without the leading "/"; '' when not known (a removal recorded by an older version)
    exit_code: int
    error: str
    tty: bool
    expires_at: float  # Unix time
    #: The backend's cloud cleanup still to do, in its own words ('' when nothing is left).
    cleanup: str = ""


class RemovedContainers:
    """The removed containers in memory (loaded at open), their writes, and the sweep that deletes them.

    Created by ``Store.open``; ``clock`` is wall-clock seconds (removals outlive a restart).
    """

    def __init__(
        self, database: Database, logs: LogStore, *, grace: float, clock: Callable[[], float]
    ) -> None:
        self._db = database
        self._logs = logs
        self._grace = grace
        self._clock = clock
        #: By ID, in order of expiry (every removal lives equally long and is added at the end).
        self._by_id: dict[str, RemovedContainer] = {}
        self._by_name: dict[str, dict[str, None]] = {}  # name -> its IDs, in order of removal
        self._sorted_ids: list[str] = []
        self._changed = asyncio.Event()  # a removal, or a cleanup done: the sweep looks again
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the removed containers, delete those that expired meanwhile, start the background sweep."""
        for row in await self._db.fetch(_SELECT):
            container_id, name, exit_code, error, tty, expires_at, cleanup = row
            self._add(RemovedContainer(container_id, name, exit_code, error, bool(tty), expires_at, cleanup))
            self._logs.mark_removed(container_id)
        self._sorted_ids = sorted(self._by_id)
        await self.sweep()
        self._sweeper = asyncio.create_task(self._sweep_when_due())

    async def close(self) -> None:
        """Stop the sweep (a deletion it has begun is the database's to finish)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    # ------------------------------------------------------------------------ reading

    def find(self, ref: str) -> RemovedContainer | None:
        """The container removed under ``ref`` that has not expired: full ID, then name with or without
        "/" (the latest removal of that name), then unique ID prefix (3+ hex characters)."""
        found = self._by_id.get(ref)
        if found is None:
            ids = self._by_name.get(ref.removeprefix("/"))
            if ids:
                found = self._by_id[next(reversed(ids))]
            else:
                matches = prefix_matches(self._sorted_ids, ref)
                found = self._by_id[matches[0]] if len(matches) == 1 else None
        return found if found is not None and found.expires_at > self._clock() else None

    def pending(self) -> list[RemovedContainer]:
        """The removed containers whose cleanup is still to do, oldest removal first."""
        return [removed for removed in self._by_id.values() if removed.cleanup]

    # ------------------------------------------------------------------------ writing

    def removal(
        self,
        container_id: str,
        *,
        name: str,
        tty: bool,
        exit_code: int,
        error: str,
        cleanup: str,
        output_completing: bool = False,
    ) -> Plan[None]:
        """What recording a removal writes and changes, for ``Store.delete_container`` to commit in the
        same transaction as the delete of the container's row (``output_completing``: see
        :meth:`LogStore.mark_removed`)."""
        removed = RemovedContainer(
            container_id, name, exit_code, error, tty, self._clock() + self._grace, cleanup
        )
        statement = Statement(_INSERT, [attrs.astuple(removed)])

        def apply() -> None:
            self._forget(container_id)  # a second removal of an ID: the later one counts
            self._add(removed)
            bisect.insort(self._sorted_ids, container_id)
            self._logs.mark_removed(container_id, output_completing=output_completing)
            self._changed.set()

        return Plan([statement], apply)

    async def cleanup_done(self, container_id: str) -> None:
        """The backend's cleanup of this removed container is done: the sweep may delete it once it
        expires. Nothing happens for a container without a pending cleanup."""

        def plan() -> Plan[None]:
            removed = self._by_id.get(container_id)
            if removed is None or not removed.cleanup:
                return Plan([], _nothing)
            statement = Statement(
                "UPDATE removed_containers SET cleanup = '' WHERE id = ?", [(container_id,)]
            )

            def apply() -> None:
                self._by_id[container_id] = attrs.evolve(removed, cleanup="")  # keeps its place
                self._changed.set()

            return Plan([statement], apply)

        await self._db.write(plan)

    # ------------------------------------------------------------------------ the sweep

    async def sweep(self) -> None:
        """Delete every removed container that has expired and whose cleanup is done, its output with it."""
        for removed in self._due(self._clock()):
            await self._logs.delete(removed.id, functools.partial(self._deletion, removed.id))

    def _due(self, now: float) -> list[RemovedContainer]:
        due: list[RemovedContainer] = []
        for removed in self._by_id.values():  # in order of expiry: stops at the first one still kept
            if removed.expires_at > now:
                break
            if not removed.cleanup:
                due.append(removed)
        return due

    def _next_expiry(self, now: float) -> float | None:
        """When the next removed container expires; None when all have (those left wait for their
        cleanup, which wakes the sweep)."""
        return next(
            (removed.expires_at for removed in self._by_id.values() if removed.expires_at > now), None
        )

    def _deletion(self, container_id: str) -> Plan[None]:
        statement = Statement("DELETE FROM removed_containers WHERE id = ?", [(container_id,)])
        return Plan([statement], lambda: self._forget(container_id))

    async def _sweep_when_due(self) -> None:
        """Sweep at each expiry, and when a removal or a done cleanup is noted; with nothing to expire
        it waits, without a timeout, for one of those."""
        while True:
            self._changed.clear()
            try:
                await self.sweep()
            except Exception:  # a background task: reported, retried, never silently dead
                log.exception("deleting removed containers failed; retrying in %.0f s", SWEEP_RETRY_SECONDS)
                await asyncio.sleep(SWEEP_RETRY_SECONDS)
                continue
            now = self._clock()
            due = self._next_expiry(now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), None if due is None else max(0.0, due - now))

    # ------------------------------------------------------------------------ memory

    def _add(self, removed: RemovedContainer) -> None:
        self._by_id[removed.id] = removed
        if removed.name:
            self._by_name.setdefault(removed.name, {})[removed.id] = None

    def _forget(self, container_id: str) -> None:
        """Out of the index, if it is there (the sweep and a test's sweep may both delete one)."""
        removed = self._by_id.pop(container_id, None)
        if removed is None:
            return
        index = bisect.bisect_left(self._sorted_ids, container_id)
        if index < len(self._sorted_ids) and self._sorted_ids[index] == container_id:
            del self._sorted_ids[index]
        ids = self._by_name.get(removed.name)
        if ids is not None:
            ids.pop(container_id, None)
            if not ids:
                del self._by_name[removed.name]


def _nothing() -> None:
    return None
