"""Docker's wait conditions, for any backend: who waits for which exit or removal.

A backend tells :class:`ContainerWaiters` when a container exits and when it is removed; the
server awaits the future :meth:`ContainerWaiters.wait` hands out. The conditions follow Docker:

* ``not-running``: resolves at once for a container that is not running now, with its last exit
  (0 for one that was created and never started, as moby answers ``!Running`` as already met);
  a running container waits for its exit.
* ``next-exit``: the next exit, whatever the state now (``docker run`` issues it before start, and
  so waits for the coming run of a container that was only created).
* ``removed``: the removal (``docker run --rm``).

A removed container's last exit status stays answerable for a grace period (the Docker SDK's
``run(auto_remove=True)`` may call wait after the container is already gone): the store keeps it
(``Store.removed_container``), and :func:`answered` makes the wait's answer of it.

No wait here has a timeout of its own: each ends when the backend reports the exit or removal,
and backends bound how long a run can last (or the client drops the connection, which cancels
the future).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from attrs import define, frozen

from sockerless.models import WaitCondition, WaitError, WaitResponse

__all__ = ["ContainerWaiters", "ExitStatus", "answered"]

#: Container statuses in which ``not-running`` must wait: running now (or restarting into a run).
_WAITING_STATUSES = frozenset({"running", "restarting"})


@frozen
class ExitStatus:
    """How a container's last run ended.

    ``error`` is Docker's ``State.Error``: why the run ended as it did (a timeout, a command that
    could not be run), shown by inspect. The wait answer carries it as ``Error`` only when
    ``daemon_error`` says the status is not the container's own: the backend could not run the
    command at all, or could not learn how its run ended. That is Docker's "waiting itself failed":
    the CLI then prints "Error waiting for container: ..." and exits 125, while for a container that
    ran and ended it exits with ``StatusCode``.
    """

    exit_code: int = 0
    error: str = ""
    daemon_error: bool = False

    def response(self) -> WaitResponse:
        failure = WaitError(self.error or "the backend failed") if self.daemon_error else None
        return WaitResponse(status_code=self.exit_code, error=failure)


@define(eq=False)
class _Pending:
    condition: WaitCondition
    future: asyncio.Future[WaitResponse]


def answered(status: ExitStatus) -> asyncio.Future[WaitResponse]:
    """A wait already answered with ``status`` (a condition that holds now, a removed container)."""
    future: asyncio.Future[WaitResponse] = asyncio.get_running_loop().create_future()
    future.set_result(status.response())
    return future


class ContainerWaiters:
    """Futures waiting for exits and removals, by container ID."""

    def __init__(self) -> None:
        self._pending: dict[str, list[_Pending]] = {}

    def wait(
        self, container_id: str, condition: WaitCondition, *, status: str, last: ExitStatus
    ) -> asyncio.Future[WaitResponse]:
        """A future resolved when ``condition`` holds for a container now in ``status``.

        ``last`` is how its previous run ended, the answer when the condition already holds.
        """
        if condition is WaitCondition.NOT_RUNNING and status not in _WAITING_STATUSES:
            return answered(last)
        future: asyncio.Future[WaitResponse] = asyncio.get_running_loop().create_future()
        waiters = self._pending.setdefault(container_id, [])
        entry = _Pending(condition, future)
        waiters.append(entry)
        future.add_done_callback(lambda _: self._forget(container_id, entry))
        return future

    def exited(self, container_id: str, status: ExitStatus) -> None:
        """The container's run ended: release ``not-running`` and ``next-exit`` waiters."""
        self._release(container_id, status, lambda condition: condition is not WaitCondition.REMOVED)

    def removed(self, container_id: str, status: ExitStatus) -> None:
        """The container is gone: release every waiter (the store answers later waits)."""
        self._release(container_id, status, lambda _: True)

    def pending_count(self, container_id: str) -> int:
        return len(self._pending.get(container_id, ()))

    def fail_all(self, error: Exception) -> None:
        """Answer every pending wait with ``error`` (shutdown: the exit will not be known here)."""
        for waiters in list(self._pending.values()):
            for entry in list(waiters):
                if not entry.future.done():
                    entry.future.set_exception(error)
                    entry.future.exception()  # read here too: a client gone meanwhile leaves no warning

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
