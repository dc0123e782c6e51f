"""Docker's wait conditions, for any backend: who waits for which exit, and tombstones.

A backend tells :class:`ContainerWaiters` when a container exits and when it is removed; the
server awaits the future :meth:`ContainerWaiters.wait` hands out. The conditions follow Docker:

* ``not-running``: resolves at once for a container that has run and is not running now; a
  container that was created but not started yet waits for the exit of its coming start
  (``docker wait`` issued before ``docker start``).
* ``next-exit``: the next exit, whatever the state now (``docker run`` issues it before start).
* ``removed``: the removal (``docker run --rm``).

A removed container's last exit status stays answerable for a grace period (a tombstone): the
Docker SDK's ``run(auto_remove=True)`` may call wait after the container is already gone.

No wait here has a timeout of its own: each ends when the backend reports the exit or removal,
and backends bound how long a run can last (or the client drops the connection, which cancels
the future).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from attrs import define, frozen

from sockerless.models import WaitCondition, WaitError, WaitResponse

__all__ = ["DEFAULT_TOMBSTONE_SECONDS", "ContainerWaiters", "ExitStatus", "Tombstone"]

DEFAULT_TOMBSTONE_SECONDS = 300.0

#: Container statuses in which ``not-running`` must wait: running now, or about to run.
_WAITING_STATUSES = frozenset({"created", "running", "restarting"})


@frozen
class ExitStatus:
    """How a container's last run ended. ``error`` is set only for a real failure (Docker's State.Error)."""

    exit_code: int = 0
    error: str = ""

    def response(self) -> WaitResponse:
        return WaitResponse(status_code=self.exit_code, error=WaitError(self.error) if self.error else None)


@frozen
class Tombstone:
    """A removed container, as it can still be asked for: its ID, last exit and Tty flag (its logs)."""

    container_id: str
    status: ExitStatus
    tty: bool = False


@define
class _Tombstone:
    name: str
    status: ExitStatus
    expires: float
    tty: bool


@define(eq=False)
class _Pending:
    condition: WaitCondition
    future: asyncio.Future[WaitResponse]


class ContainerWaiters:
    """Futures waiting for exits and removals, by container ID, plus tombstones of removed containers."""

    def __init__(
        self,
        *,
        tombstone_seconds: float = DEFAULT_TOMBSTONE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tombstone_seconds = tombstone_seconds
        self._clock = clock
        self._pending: dict[str, list[_Pending]] = {}
        self._tombstones: dict[str, _Tombstone] = {}

    def wait(
        self, container_id: str, condition: WaitCondition, *, status: str, last: ExitStatus
    ) -> asyncio.Future[WaitResponse]:
        """A future resolved when ``condition`` holds for a container now in ``status``.

        ``last`` is how its previous run ended, the answer when the condition already holds.
        """
        future: asyncio.Future[WaitResponse] = asyncio.get_running_loop().create_future()
        if condition is WaitCondition.NOT_RUNNING and status not in _WAITING_STATUSES:
            future.set_result(last.response())
            return future
        waiters = self._pending.setdefault(container_id, [])
        entry = _Pending(condition, future)
        waiters.append(entry)
        future.add_done_callback(lambda _: self._forget(container_id, entry))
        return future

    def exited(self, container_id: str, status: ExitStatus) -> None:
        """The container's run ended: release ``not-running`` and ``next-exit`` waiters."""
        self._release(container_id, status, lambda condition: condition is not WaitCondition.REMOVED)

    def removed(self, container_id: str, name: str, status: ExitStatus, *, tty: bool = False) -> None:
        """The container is gone: release every waiter and keep its status as a tombstone."""
        self._purge_expired()
        # Re-inserted at the end, so the dict stays in expiry order (see _purge_expired).
        self._tombstones.pop(container_id, None)
        self._tombstones[container_id] = _Tombstone(
            name.lstrip("/"), status, self._clock() + self._tombstone_seconds, tty
        )
        self._release(container_id, status, lambda _: True)

    def tombstone(self, ref: str) -> Tombstone | None:
        """A recently removed container named by ID, unique ID prefix or name."""
        self._purge_expired()
        found = self._tombstones.get(ref)
        if found is not None:
            return Tombstone(ref, found.status, found.tty)
        name = ref.lstrip("/")
        for container_id, stone in self._tombstones.items():
            if stone.name == name:
                return Tombstone(container_id, stone.status, stone.tty)
        if len(ref) >= 3:
            matches = [cid for cid in self._tombstones if cid.startswith(ref)]
            if len(matches) == 1:
                stone = self._tombstones[matches[0]]
                return Tombstone(matches[0], stone.status, stone.tty)
        return None

    def pending_count(self, container_id: str) -> int:
        return len(self._pending.get(container_id, ()))

    def close(self) -> None:
        """Cancel every pending wait (shutdown)."""
        for waiters in list(self._pending.values()):
            for entry in list(waiters):
                entry.future.cancel()
        self._pending.clear()

    def _release(
        self, container_id: str, status: ExitStatus, selected: Callable[[WaitCondition], bool]
    ) -> None:
        for entry in list(self._pending.get(container_id, ())):
            if selected(entry.condition) and not entry.future.done():
                entry.future.set_result(status.response())

    def _forget(self, container_id: str, entry: _Pending) -> None:
        waiters = self._pending.get(container_id)
        if waiters is None:
            return
        if entry in waiters:
            waiters.remove(entry)
        if not waiters:
            del self._pending[container_id]

    def _purge_expired(self) -> None:
        """Drop expired tombstones, oldest first. Every tombstone lives equally long and is added at
        the end, so the dict is in expiry order and this stops at the first live one: a removal costs
        the same with 10 or 10 000 tombstones, where a scan of them all cost 50 µs per thousand."""
        now = self._clock()
        stones = self._tombstones
        while stones:
            oldest = next(iter(stones))
            if stones[oldest].expires > now:
                return
            del stones[oldest]
