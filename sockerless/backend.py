"""The ``Backend`` protocol: Docker nouns and verbs, the only thing the server calls.

A backend plugin subclasses :class:`BaseBackend`, declares its ``name``, ``capabilities`` and
``config_class`` once, and overrides what it implements. Everything it leaves alone answers
501 with a message naming the backend and the operation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from attrs import Factory, define, frozen

from sockerless import __version__
from sockerless.config import StoreConfig
from sockerless.errors import InvalidParameter, NotFound, NotImplementedByBackend
from sockerless.models import (
    AuthRequest,
    AuthResponse,
    BackendInfo,
    Capabilities,
    CapabilityReport,
    Container,
    ContainerCreateRequest,
    ContainerCreateResponse,
    ContainerSummary,
    ExecConfig,
    ExecInstance,
    IdResponse,
    Image,
    ImageDeleteResponseItem,
    ImagePruneResponse,
    ImagePullRequest,
    ImageSummary,
    PruneResponse,
    VersionInfo,
    WaitCondition,
    WaitResponse,
)
from sockerless.wire import Encoded

__all__ = [
    "CAPABILITY_OPERATIONS",
    "CI_RUNNER_HINT",
    "AttachOptions",
    "Backend",
    "BackendRuntime",
    "BaseBackend",
    "ContainerLogs",
    "Duplex",
    "Filters",
    "LogLine",
    "LogsOptions",
    "Session",
    "unsupported",
]

JSONObject = dict[str, Any]

#: Filters as ``{key: [values]}``; the server normalises both wire encodings to this.
Filters = Mapping[str, list[str]]

CI_RUNNER_HINT = "CI runners require exec-capable backends (ecs, cloudrun, aca, docker)."

#: Each capability a route or a Docker call may need -> (the operation as a 501 names it, what to do
#: instead). The one table both servers word their capability 501s from.
CAPABILITY_OPERATIONS: Mapping[str, tuple[str, str]] = {
    "exec": ("exec", CI_RUNNER_HINT),
    "attach": ("attach", CI_RUNNER_HINT),
    "networks": ("networks", ""),
    "volumes": ("volumes", ""),
    "logs": ("logs", ""),
    "image_pull": ("image pull", ""),
    "image_load": ("image load", "Push the image to a registry the backend can pull from instead."),
}


def unsupported(backend_name: str, capability: str) -> NotImplementedByBackend:
    """The 501 for a capability ``backend_name`` lacks (a key of :data:`CAPABILITY_OPERATIONS`)."""
    operation, hint = CAPABILITY_OPERATIONS[capability]
    return NotImplementedByBackend.for_operation(backend_name, operation, hint)


@frozen
class LogsOptions:
    """What a ``logs`` call asks for, as Docker's query says it.

    With ``follow`` the lines keep coming as the backend learns them. ``condition`` says when such a
    stream ends: ``not-running`` (Docker's rule) once the container is not running and its output is
    complete, at once for a container that is not running; ``next-exit`` waits for the container's
    next run to start and ends once that run's output is complete (what a read-only attach needs).
    """

    stdout: bool = True
    stderr: bool = True
    follow: bool = False
    timestamps: bool = False
    tail: int | None = None  # None means all
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    condition: WaitCondition = WaitCondition.NOT_RUNNING

    def __attrs_post_init__(self) -> None:
        if not self.stdout and not self.stderr:
            raise InvalidParameter("you must choose at least one stream")
        if self.follow and self.condition is WaitCondition.REMOVED:
            # Checked with the rest of the query: every backend refuses it, before any lookup.
            raise InvalidParameter("logs follow ends at not-running or next-exit, not at removed")


@frozen
class LogLine:
    """One line of container output: ``stream`` 1 is stdout, 2 is stderr; ``data`` keeps its newline."""

    stream: int
    timestamp: dt.datetime
    data: bytes


@frozen
class ContainerLogs:
    """What ``logs`` returns once the container is known: its Tty flag and the lines.

    The backend has checked everything it can before returning (no such container, bad options), so
    that the server can still answer an error; ``lines`` then only yields (and, when following, waits).
    """

    tty: bool
    lines: AsyncIterator[LogLine]


@frozen
class AttachOptions:
    stream: bool = True
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    logs: bool = False
    detach_keys: str = ""


class Duplex(Protocol):
    """An upgraded connection as a backend's session sees it: bytes in, bytes out."""

    async def read(self) -> bytes | None:
        """The next bytes from the client; None once it has closed its side."""
        ...

    async def write(self, data: bytes) -> None: ...


class Session(Protocol):
    """An attach or exec start a backend has accepted. The server answers ``101`` with
    ``content_type`` and then runs the session on the upgraded connection until it ends."""

    @property
    def content_type(self) -> str: ...

    async def run(self, connection: Duplex) -> None: ...


@define
class BackendRuntime:
    """What the host process hands a backend: where to keep state and who it is."""

    state_path: str
    instance_id: str
    #: The ``store`` section: SQLite's synchronous mode, the output kept per container, ...
    store: StoreConfig = Factory(StoreConfig)


@runtime_checkable
class Backend(Protocol):
    """The domain interface of every backend. All methods raise :mod:`sockerless.errors` types."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def runs_in_flight(self) -> int: ...
    async def runs_ended(self) -> None: ...
    async def release_clients(self) -> None: ...

    def capability_report(self) -> CapabilityReport: ...
    async def info(self) -> BackendInfo: ...
    async def version(self) -> VersionInfo: ...

    async def create_container(
        self, request: ContainerCreateRequest, name: str | None
    ) -> ContainerCreateResponse: ...
    async def list_containers(
        self, *, all: bool, limit: int | None, filters: Filters
    ) -> Sequence[ContainerSummary] | Encoded[list[ContainerSummary]]:
        """The rows, newest first (or their JSON, encoded already: see :class:`sockerless.wire.Encoded`)."""
        ...

    async def inspect_container(self, ref: str) -> Container | Encoded[Container]: ...
    async def start_container(self, ref: str) -> None: ...
    async def stop_container(self, ref: str, *, timeout: int | None, signal: str | None) -> None: ...
    async def kill_container(self, ref: str, *, signal: str | None) -> None: ...
    async def restart_container(self, ref: str, *, timeout: int | None) -> None: ...
    async def remove_container(self, ref: str, *, force: bool, volumes: bool) -> None: ...
    async def wait_container(self, ref: str, condition: WaitCondition) -> Awaitable[WaitResponse]: ...
    async def container_logs(self, ref: str, options: LogsOptions) -> ContainerLogs: ...
    async def attach_container(self, ref: str, options: AttachOptions) -> Session: ...
    async def prune_containers(self, filters: Filters) -> PruneResponse: ...

    async def create_exec(self, ref: str, config: ExecConfig) -> IdResponse: ...
    async def inspect_exec(self, exec_id: str) -> ExecInstance: ...
    async def start_exec(self, exec_id: str, options: JSONObject) -> Session: ...

    def pull_image(self, request: ImagePullRequest) -> AsyncIterator[JSONObject]: ...
    async def list_images(self) -> list[ImageSummary]: ...
    async def inspect_image(self, name: str) -> Image: ...
    async def tag_image(self, name: str, repo: str, tag: str) -> None: ...
    def load_image(self, body: AsyncIterator[bytes]) -> AsyncIterator[JSONObject]: ...
    async def remove_image(
        self, name: str, *, force: bool, noprune: bool
    ) -> list[ImageDeleteResponseItem]: ...
    async def prune_images(self, filters: Filters) -> ImagePruneResponse: ...
    async def auth(self, request: AuthRequest) -> AuthResponse: ...

    async def create_network(self, body: JSONObject) -> JSONObject: ...
    async def list_networks(self, filters: Filters) -> list[JSONObject]: ...
    async def inspect_network(self, network_id: str) -> JSONObject: ...
    async def remove_network(self, network_id: str) -> None: ...
    async def connect_network(self, network_id: str, body: JSONObject) -> None: ...
    async def disconnect_network(self, network_id: str, body: JSONObject) -> None: ...
    async def prune_networks(self, filters: Filters) -> JSONObject: ...

    async def create_volume(self, body: JSONObject) -> JSONObject: ...
    async def list_volumes(self, filters: Filters) -> JSONObject: ...
    async def inspect_volume(self, name: str) -> JSONObject: ...
    async def remove_volume(self, name: str, *, force: bool) -> None: ...
    async def prune_volumes(self, filters: Filters) -> JSONObject: ...


class BaseBackend:
    """Default implementations: every operation a backend does not override answers 501.

    Subclasses set ``name``, ``capabilities`` and ``config_class`` and take
    ``(config, runtime)`` in their constructor.
    """

    name: ClassVar[str] = "base"
    capabilities: ClassVar[Capabilities] = Capabilities()
    config_class: ClassVar[type[Any] | None] = None
    #: ``--flag`` aliases a plugin offers on its command line, mapped to a config key path.
    cli_aliases: ClassVar[Mapping[str, str]] = {}
    version_string: ClassVar[str] = __version__

    def _unsupported(self, operation: str, hint: str = "") -> NotImplementedByBackend:
        return NotImplementedByBackend.for_operation(self.name, operation, hint)

    async def start(self) -> None:
        """Open clients and reconcile state; called once before the server accepts requests."""

    async def close(self) -> None:
        """Cancel background work and close clients; called once at shutdown."""

    # shutdown, in this order: runs_ended (bounded by the grace period), release_clients, close
    def runs_in_flight(self) -> int:
        """Containers running now whose run this process carries (what shutdown waits for)."""
        return 0

    async def runs_ended(self) -> None:
        """Return once no run is in flight; shutdown waits for it within its grace period."""

    async def release_clients(self) -> None:
        """Shutdown waits no longer: settle what is known, answer every pending wait (with why it
        ends, when the container's exit is not known) and end every followed log after the output
        it has, so clients get a clean end rather than a cut connection."""

    def capability_report(self) -> CapabilityReport:
        return CapabilityReport(
            backend=self.name, version=self.version_string, capabilities=self.capabilities
        )

    async def info(self) -> BackendInfo:
        raise self._unsupported("info")

    async def version(self) -> VersionInfo:
        return VersionInfo(version=self.version_string)

    # containers
    async def create_container(
        self, request: ContainerCreateRequest, name: str | None
    ) -> ContainerCreateResponse:
        raise self._unsupported("container create")

    async def list_containers(
        self, *, all: bool, limit: int | None, filters: Filters
    ) -> Sequence[ContainerSummary] | Encoded[list[ContainerSummary]]:
        raise self._unsupported("container list")

    async def inspect_container(self, ref: str) -> Container | Encoded[Container]:
        raise self._unsupported("container inspect")

    async def start_container(self, ref: str) -> None:
        raise self._unsupported("container start")

    async def stop_container(self, ref: str, *, timeout: int | None, signal: str | None) -> None:
        raise self._unsupported("container stop")

    async def kill_container(self, ref: str, *, signal: str | None) -> None:
        raise self._unsupported("container kill")

    async def restart_container(self, ref: str, *, timeout: int | None) -> None:
        raise self._unsupported("container restart")

    async def remove_container(self, ref: str, *, force: bool, volumes: bool) -> None:
        raise self._unsupported("container remove")

    async def wait_container(self, ref: str, condition: WaitCondition) -> Awaitable[WaitResponse]:
        raise self._unsupported("container wait")

    async def container_logs(self, ref: str, options: LogsOptions) -> ContainerLogs:
        raise self._unsupported("logs")

    async def attach_container(self, ref: str, options: AttachOptions) -> Session:
        raise self._unsupported("attach", CI_RUNNER_HINT)

    async def prune_containers(self, filters: Filters) -> PruneResponse:
        raise self._unsupported("container prune")

    # exec
    async def create_exec(self, ref: str, config: ExecConfig) -> IdResponse:
        raise self._unsupported("exec", CI_RUNNER_HINT)

    async def inspect_exec(self, exec_id: str) -> ExecInstance:
        raise NotFound(f"No such exec instance: {exec_id}")

    async def start_exec(self, exec_id: str, options: JSONObject) -> Session:
        raise self._unsupported("exec", CI_RUNNER_HINT)

    # images
    def pull_image(self, request: ImagePullRequest) -> AsyncIterator[JSONObject]:
        raise self._unsupported("image pull")

    async def list_images(self) -> list[ImageSummary]:
        return []  # no image of its own: inspect finds none either

    async def inspect_image(self, name: str) -> Image:
        raise NotFound(f"No such image: {name}")

    async def tag_image(self, name: str, repo: str, tag: str) -> None:
        raise self._unsupported("image tag")

    def load_image(self, body: AsyncIterator[bytes]) -> AsyncIterator[JSONObject]:
        raise self._unsupported(
            "image load", "Push the image to a registry the backend can pull from instead."
        )

    async def remove_image(self, name: str, *, force: bool, noprune: bool) -> list[ImageDeleteResponseItem]:
        raise self._unsupported("image removal")

    async def prune_images(self, filters: Filters) -> ImagePruneResponse:
        """Nothing pruned: true of a backend that keeps no images of its own, and ``docker system
        prune`` goes on."""
        return ImagePruneResponse()

    async def auth(self, request: AuthRequest) -> AuthResponse:
        """Credentials arrive with each pull (``X-Registry-Auth``); a login has nothing to check."""
        return AuthResponse()

    # networks
    async def create_network(self, body: JSONObject) -> JSONObject:
        raise self._unsupported("networks")

    async def list_networks(self, filters: Filters) -> list[JSONObject]:
        raise self._unsupported("networks")

    async def inspect_network(self, network_id: str) -> JSONObject:
        # Not a 501: `docker inspect NAME` walks every kind of object and goes on only past a 404.
        raise NotFound(f"No such network: {network_id}")

    async def remove_network(self, network_id: str) -> None:
        raise self._unsupported("networks")

    async def connect_network(self, network_id: str, body: JSONObject) -> None:
        raise self._unsupported("networks")

    async def disconnect_network(self, network_id: str, body: JSONObject) -> None:
        raise self._unsupported("networks")

    async def prune_networks(self, filters: Filters) -> JSONObject:
        raise self._unsupported("networks")

    # volumes
    async def create_volume(self, body: JSONObject) -> JSONObject:
        raise self._unsupported("volumes")

    async def list_volumes(self, filters: Filters) -> JSONObject:
        raise self._unsupported("volumes")

    async def inspect_volume(self, name: str) -> JSONObject:
        raise NotFound(f"No such volume: {name}")

    async def remove_volume(self, name: str, *, force: bool) -> None:
        raise self._unsupported("volumes")

    async def prune_volumes(self, filters: Filters) -> JSONObject:
        raise self._unsupported("volumes")
