"""What every handler shares: the backend client, what the backend said it can do, and the settings.

Built once at start-up by :class:`~sockerless.frontend.server.DockerFrontend` and kept on the aiohttp
application. It holds nothing per container: every answer about a container comes from the backend.
"""

from __future__ import annotations

import enum
from typing import Any, Final

import aiohttp
from aiohttp import web
from attrs import frozen

from sockerless.api.client import BackendClient
from sockerless.api.route import Route
from sockerless.backend import unsupported
from sockerless.http.serving import ShieldedTasks
from sockerless.models import Capabilities, CapabilityReport, VersionInfo

__all__ = ["FRONTEND_KEY", "AttachMode", "FrontendContext", "frontend_of"]


class AttachMode(enum.StrEnum):
    """Attach on a backend without attach: shown from its logs (output only), or refused with 501."""

    READ_ONLY = "read-only"
    STRICT = "strict"


@frozen
class FrontendContext:
    client: BackendClient
    report: CapabilityReport
    backend_version: VersionInfo
    attach_mode: AttachMode
    #: State changes a client hanging up must not cut in half; shutdown waits for them.
    shielded: ShieldedTasks

    @property
    def backend_name(self) -> str:
        return self.report.backend

    @property
    def capabilities(self) -> Capabilities:
        return self.report.capabilities

    @property
    def attaches_from_logs(self) -> bool:
        """Attach is answered read-only from the backend's logs: it has logs but no attach, and the
        configuration allows it."""
        caps = self.capabilities
        return caps.logs and not caps.attach and self.attach_mode is AttachMode.READ_ONLY

    def require(self, capability: str | None) -> None:
        """Answer a capability the backend lacks here, in the backend's own wording, without asking it."""
        if capability is not None and not getattr(self.capabilities, capability):
            raise unsupported(self.backend_name, capability)

    async def forward(self, route: Route, *args: Any, **kwargs: Any) -> aiohttp.ClientResponse:
        """:meth:`BackendClient.forward` once the backend has the route's capability (a 501 here, in the
        backend's own wording, otherwise); the caller releases the response."""
        self.require(route.capability)
        return await self.client.forward(route, *args, **kwargs)


FRONTEND_KEY: Final = web.AppKey("sockerless_frontend", FrontendContext)


def frontend_of(request: web.Request) -> FrontendContext:
    return request.app[FRONTEND_KEY]
