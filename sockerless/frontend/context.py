"""What every frontend handler needs: the backend client, the backend's capabilities, the settings.

Built once at start-up by :class:`~sockerless.frontend.app.DockerFrontend` and stored on the
aiohttp application; handlers reach it with :func:`frontend_of`.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from attrs import define, field

from sockerless.client import BackendClient
from sockerless.models import Capabilities, CapabilityReport, VersionInfo

if TYPE_CHECKING:
    from sockerless.frontend.autoremove import AutoRemover

__all__ = [
    "API_VERSION",
    "MIN_API_VERSION",
    "AttachMode",
    "FollowSettings",
    "FrontendContext",
    "frontend_of",
]

T = TypeVar("T")

#: The Docker Engine API version the frontend speaks, and the oldest it accepts (Docker's own minimum).
API_VERSION = "1.44"
MIN_API_VERSION = "1.24"


class AttachMode(enum.StrEnum):
    """How attach is answered for a backend without attach: emulated from logs, or refused."""

    READ_ONLY = "read-only"
    STRICT = "strict"


@define(frozen=True)
class FollowSettings:
    """Bounded polling for log follow and read-only attach on backends that cannot follow.

    ``interval`` is the pause between two fetches while output arrives; it grows by ``backoff``
    up to ``max_interval`` while nothing new arrives.
    """

    interval: float = 1.0
    max_interval: float = 5.0
    backoff: float = 1.5


@define
class FrontendContext:
    client: BackendClient
    report: CapabilityReport
    auto_remover: AutoRemover
    backend_version: VersionInfo = field(factory=lambda: VersionInfo(version=""))
    attach_mode: AttachMode = AttachMode.READ_ONLY
    follow: FollowSettings = field(factory=FollowSettings)
    #: Emulate ``logs?follow=1`` by polling when the backend cannot follow.
    emulate_follow: bool = True
    #: State-changing backend calls shielded from client disconnects; drained at shutdown.
    detached: set[asyncio.Task[Any]] = field(factory=set)

    @property
    def backend_name(self) -> str:
        return self.report.backend

    @property
    def capabilities(self) -> Capabilities:
        return self.report.capabilities

    @property
    def emulates_attach(self) -> bool:
        """Attach is answered from the logs: the backend has logs but no attach, and the mode allows it."""
        caps = self.capabilities
        return caps.logs and not caps.attach and self.attach_mode is AttachMode.READ_ONLY

    @property
    def emulates_follow(self) -> bool:
        """``logs?follow=1`` is answered by polling: the backend has logs but cannot follow."""
        caps = self.capabilities
        return caps.logs and not caps.logs_follow and self.emulate_follow

    async def detach(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a state-changing backend call so that a client hanging up cannot cut it in half."""
        task = asyncio.ensure_future(coro)
        self.detached.add(task)
        task.add_done_callback(self.detached.discard)
        return await asyncio.shield(task)


FRONTEND_KEY = web.AppKey("sockerless_frontend", FrontendContext)


def frontend_of(request: web.Request) -> FrontendContext:
    return request.app[FRONTEND_KEY]
