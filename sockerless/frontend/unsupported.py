"""The Docker calls no sockerless backend serves, and the 501 each one gets.

Sockerless runs containers on capacity without a daemon on a host: nothing to ask for processes, files
or metrics, and images live in a registry. These calls never reach a backend. Calls that depend on a
capability a backend may or may not have (exec, attach, networks, ...) are answered from the backend's
capability report instead, in the wording of :func:`sockerless.backend.unsupported`. Every message
names the backend and the operation, so ``docker`` prints ``Error response from daemon: <message>``.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from sockerless.backend import CAPABILITY_OPERATIONS
from sockerless.backend import unsupported as capability_unsupported
from sockerless.errors import NotImplementedByBackend
from sockerless.frontend.context import FrontendContext, frontend_of
from sockerless.http.middlewares import Handler

__all__ = ["ALWAYS_UNSUPPORTED", "unsupported", "unsupported_handler"]

#: Docker calls no backend serves: operation -> what to do instead ("" when there is nothing).
ALWAYS_UNSUPPORTED: Final[dict[str, str]] = {
    "attaching stdin": "Run without -i and pass input through the command or the environment.",
    "attach over websocket": "",
    "container stats": "Use the cloud provider's metrics.",
    "container top": "",
    "container changes": "",
    "container export": "",
    "container update": "Remove and re-create the container with the new settings.",
    "container rename": "",
    "container pause": "",
    "container unpause": "",
    "container archive": "Copy files in the image or through the command instead.",
    "image build": "Build and push the image with your usual tools; the backend pulls it.",
    "image commit": "",
    "image import": "Push the image to a registry the backend can pull from instead.",
    "image push": "Push the image with your usual tools.",
    "image history": "",
    "image export": "",
    "image search": "",
    "events": "",
}


def unsupported(frontend: FrontendContext, operation: str) -> NotImplementedByBackend:
    """The 501 for ``operation``: a capability (see ``CAPABILITY_OPERATIONS``) or a key of
    :data:`ALWAYS_UNSUPPORTED`."""
    if operation in CAPABILITY_OPERATIONS:
        return capability_unsupported(frontend.backend_name, operation)
    return NotImplementedByBackend.for_operation(
        frontend.backend_name, operation, ALWAYS_UNSUPPORTED[operation]
    )


def unsupported_handler(operation: str) -> Handler:
    """A handler that always answers 501 for ``operation``."""
    if operation not in ALWAYS_UNSUPPORTED:
        raise ValueError(f"unknown operation {operation!r}")

    async def handler(request: web.Request) -> web.StreamResponse:
        raise unsupported(frontend_of(request), operation)

    handler.__name__ = "unsupported_" + operation.replace(" ", "_")
    return handler
