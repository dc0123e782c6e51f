"""``--rm`` when the frontend streams the output itself: remove after the output has been read.

A backend removes an auto-remove container, and its logs, as soon as it exits. A real attach has
streamed the output by then; the frontend's emulated attach and log follow read it from the
backend's logs, a moment later, and would find nothing. So for an attached create (the clients set
``AttachStdout``/``AttachStderr`` unless detached) on a backend the frontend emulates streams for,
the frontend defers the removal, as the docker CLI itself did before API 1.25:

* create sends ``AutoRemove: false`` and the label :data:`AUTO_REMOVE_LABEL`; inspect and list
  show ``AutoRemove: true`` and hide the label;
* an emulated attach or log follow that ends because the container exited removes it, unless
  another stream of this frontend still reads it (the last one removes);
* start schedules a fallback that removes it after its exit once no stream reads it and a short
  grace period has passed (the SDK's blocking ``run()`` asks for the logs right after start).

The ``removed`` wait (``docker run --rm``) is passed through: it ends when the removal happens.
A frontend restarted in between leaves the exited container behind, visible in ``docker ps -a``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import Any

from sockerless.client import BackendClient
from sockerless.errors import Conflict, NotFound, SockerlessError
from sockerless.frontend.context import FollowSettings
from sockerless.frontend.follow import ExitWatcher
from sockerless.models import Container, WaitCondition

__all__ = [
    "AUTO_REMOVE_LABEL",
    "AutoRemover",
    "defer_auto_remove",
    "is_deferred",
    "shows_auto_remove",
]

log = logging.getLogger("sockerless.frontend.autoremove")

AUTO_REMOVE_LABEL = "sockerless.frontend.auto-remove"

#: After the exit, how long the fallback waits for a stream that has yet to ask for the output.
FALLBACK_GRACE_SECONDS = 5.0


def defer_auto_remove(body: Mapping[str, Any], streams_are_emulated: bool) -> dict[str, Any]:
    """The create body to send: ``--rm`` of an attached create moved to the label, else unchanged."""
    result = dict(body)
    host_config = body.get("HostConfig")
    if (
        not isinstance(host_config, Mapping)
        or host_config.get("AutoRemove") is not True
        or not (body.get("AttachStdout") or body.get("AttachStderr"))
        or not streams_are_emulated
    ):
        return result
    labels = body.get("Labels")
    result["HostConfig"] = {**host_config, "AutoRemove": False}
    result["Labels"] = {**(labels if isinstance(labels, Mapping) else {}), AUTO_REMOVE_LABEL: "true"}
    return result


def is_deferred(container: Container) -> bool:
    return (container.config.labels or {}).get(AUTO_REMOVE_LABEL) == "true"


def shows_auto_remove(container: Container) -> Container:
    """Inspect as the client asked for it: ``AutoRemove: true``, without the frontend's label."""
    if is_deferred(container):
        container.host_config.auto_remove = True
        labels = dict(container.config.labels or {})
        labels.pop(AUTO_REMOVE_LABEL, None)
        container.config.labels = labels
    return container


class AutoRemover:
    """Counts this frontend's streams per container and removes deferred ``--rm`` containers."""

    def __init__(
        self, client: BackendClient, settings: FollowSettings, *, grace: float = FALLBACK_GRACE_SECONDS
    ) -> None:
        self._client = client
        self._settings = settings
        self._grace = grace
        self._readers: Counter[str] = Counter()
        self._idle: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def reading(self, container_id: str) -> AsyncIterator[None]:
        """Mark a stream of this frontend as reading the container's output."""
        self._readers[container_id] += 1
        self._idle.setdefault(container_id, asyncio.Event()).clear()
        try:
            yield
        finally:
            self._readers[container_id] -= 1
            if self._readers[container_id] <= 0:
                del self._readers[container_id]
                self._idle.pop(container_id, asyncio.Event()).set()

    async def remove_if_unread(self, container_id: str) -> None:
        """Remove the container unless a stream still reads it (that one removes it when done)."""
        if self._readers.get(container_id):
            return
        try:
            await self._client.remove_container(container_id)
        except (NotFound, Conflict):
            pass  # removed already, or running again
        except SockerlessError as exc:
            log.warning(
                "deferred auto-remove failed",
                extra={"fields": {"container": container_id, "error": exc.message}},
            )

    def schedule_fallback(self, container_id: str) -> None:
        task = asyncio.create_task(self._fallback(container_id), name=f"auto-remove-{container_id[:12]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fallback(self, container_id: str) -> None:
        async with ExitWatcher(
            self._client, container_id, WaitCondition.NOT_RUNNING, self._settings
        ) as watcher:
            await watcher.exited.wait()
            if watcher.gone:
                return
        await asyncio.sleep(self._grace)
        while (idle := self._idle.get(container_id)) is not None:
            await idle.wait()
        await self.remove_if_unread(container_id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
