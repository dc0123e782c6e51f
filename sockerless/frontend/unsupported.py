"""The frontend's 501s: which Docker calls a backend cannot serve, and the message each one gets.

Two kinds. Calls gated on a capability the backend declares (exec, networks, volumes, attach,
logs, image pull and load) answer 501 only when the capability is off. Calls no sockerless
backend serves (build, commit, stats, top, ...) always answer 501. Every message names the
backend and the operation, so ``docker`` prints ``Error response from daemon: <message>``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from sockerless.backend import CI_RUNNER_HINT
from sockerless.errors import NotImplementedByBackend
from sockerless.frontend.context import FrontendContext, frontend_of

__all__ = [
    "ALWAYS_UNSUPPORTED",
    "CAPABILITY_OPERATIONS",
    "Handler",
    "requires",
    "unsupported",
    "unsupported_handler",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Capability -> (operation as the message names it, what to do instead).
CAPABILITY_OPERATIONS: dict[str, tuple[str, str]] = {
    "exec": ("exec", CI_RUNNER_HINT),
    "attach": ("attach", CI_RUNNER_HINT),
    "networks": ("networks", ""),
    "volumes": ("volumes", ""),
    "logs": ("logs", ""),
    "image_pull": ("image pull", ""),
    "image_load": ("image load", "Push the image to a registry the backend can pull from instead."),
}

#: Docker calls no backend serves: operation -> hint.
ALWAYS_UNSUPPORTED: dict[str, str] = {
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
    "exec resize": "",
    "image build": "Build and push the image with your usual tools; the backend pulls it.",
    "image commit": "",
    "image import": "Push the image to a registry the backend can pull from instead.",
    "image push": "Push the image with your usual tools.",
    "image removal": "Images live in the registry; remove them there.",
    "image history": "",
    "image export": "",
    "image search": "",
    "image prune": "Images live in the registry; prune them there.",
    "events": "",
    "disk usage": "",
}


def unsupported(frontend: FrontendContext, operation: str) -> NotImplementedByBackend:
    """The 501 for ``operation``: a capability name or a key of :data:`ALWAYS_UNSUPPORTED`."""
    if operation in CAPABILITY_OPERATIONS:
        name, hint = CAPABILITY_OPERATIONS[operation]
    else:
        name, hint = operation, ALWAYS_UNSUPPORTED[operation]
    return NotImplementedByBackend.for_operation(frontend.backend_name, name, hint)


def requires(capability: str) -> Callable[[Handler], Handler]:
    """Gate a handler on the backend's declared capability."""
    if capability not in CAPABILITY_OPERATIONS:
        raise ValueError(f"unknown capability {capability!r}")

    def decorate(handler: Handler) -> Handler:
        async def gated(request: web.Request) -> web.StreamResponse:
            frontend = frontend_of(request)
            if not getattr(frontend.capabilities, capability):
                raise unsupported(frontend, capability)
            return await handler(request)

        gated.__name__ = handler.__name__
        gated.__doc__ = handler.__doc__
        return gated

    return decorate


def unsupported_handler(operation: str) -> Handler:
    """A handler that always answers 501 for ``operation``."""
    if operation not in ALWAYS_UNSUPPORTED:
        raise ValueError(f"unknown operation {operation!r}")

    async def handler(request: web.Request) -> web.StreamResponse:
        raise unsupported(frontend_of(request), operation)

    handler.__name__ = "unsupported_" + operation.replace(" ", "_")
    return handler
