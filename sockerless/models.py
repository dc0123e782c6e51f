"""The internal API's payloads as attrs classes: Docker's shapes, with their wire names.

The names, times and the one converter are in :mod:`sockerless.wire`. The hooks for the two shapes
Docker does not derive from the fields (the flat create body, a wait answer without an empty
``Error``) are registered below.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs
import cattrs
from attrs import define, frozen

from sockerless.errors import InvalidParameter
from sockerless.hostconfig import HostConfig, LogConfig
from sockerless.wire import (
    ZERO_TIME,
    converter,
    field,
    flat,
    python_names,
)

__all__ = [
    "AuthRequest",
    "AuthResponse",
    "BackendInfo",
    "Capabilities",
    "CapabilityReport",
    "Container",
    "ContainerConfig",
    "ContainerCreateRequest",
    "ContainerCreateResponse",
    "ContainerState",
    "ContainerSummary",
    "ExecConfig",
    "ExecInstance",
    "GraphDriver",
    "HostConfig",
    "IdResponse",
    "Image",
    "ImageDeleteResponseItem",
    "ImagePruneResponse",
    "ImagePullRequest",
    "ImageSummary",
    "LogConfig",
    "PruneResponse",
    "RootFS",
    "VersionInfo",
    "WaitCondition",
    "WaitError",
    "WaitResponse",
]

#: Any JSON value, kept as sent (Docker fields no backend acts on).
JSON = Any


# Abbreviations Docker spells in capitals; everything else is plain PascalCase.
# ---------------------------------------------------------------------------- containers


@define
class ContainerConfig:
    """Docker's ``ContainerConfig``: what the image and the create call say the process is."""

    hostname: str = ""
    domainname: str = ""
    user: str = ""
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    exposed_ports: dict[str, JSON] | None = None
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    env: list[str] | None = None
    cmd: list[str] | None = field(default=None, str_slice=True)
    healthcheck: JSON = None
    args_escaped: bool | None = None
    image: str = ""
    volumes: dict[str, JSON] | None = None
    working_dir: str = ""
    entrypoint: list[str] | None = field(default=None, str_slice=True)
    network_disabled: bool | None = None
    mac_address: str | None = None
    on_build: list[str] | None = None
    labels: dict[str, str] | None = None
    stop_signal: str | None = None
    stop_timeout: int | None = None
    shell: list[str] | None = field(default=None, str_slice=True)

    def env_dict(self) -> dict[str, str]:
        """``Env`` as a mapping; entries without ``=`` carry no value and are dropped, as Docker does."""
        result: dict[str, str] = {}
        for entry in self.env or ():
            key, sep, value = entry.partition("=")
            if sep:
                result[key] = value
        return result


@define
class ContainerCreateRequest:
    """The create body: Config fields at top level plus ``HostConfig`` and ``NetworkingConfig``."""

    config: ContainerConfig
    host_config: HostConfig = attrs.Factory(HostConfig)
    networking_config: JSON = None
    platform: str | None = None


@frozen
class IdResponse:
    """An ID, as exec create answers it."""

    id: str


@frozen
class ContainerCreateResponse:
    id: str
    warnings: list[str] = attrs.Factory(list)


@define
class ContainerState:
    status: str = "created"
    running: bool = False
    paused: bool = False
    restarting: bool = False
    oom_killed: bool = field(default=False, wire="OOMKilled")
    dead: bool = False
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME


@define
class NetworkSettings:
    """Docker sends every key, empty where there is no network (the CLI's templates read them)."""

    bridge: str = ""
    sandbox_id: str = field(default="", wire="SandboxID")
    sandbox_key: str = ""
    ports: dict[str, JSON] = attrs.Factory(dict)
    hairpin_mode: bool = False
    link_local_ipv6_address: str = field(default="", wire="LinkLocalIPv6Address")
    link_local_ipv6_prefix_len: int = field(default=0, wire="LinkLocalIPv6PrefixLen")
    secondary_ip_addresses: list[JSON] | None = field(default=None, wire="SecondaryIPAddresses")
    secondary_ipv6_addresses: list[JSON] | None = field(default=None, wire="SecondaryIPv6Addresses")
    endpoint_id: str = field(default="", wire="EndpointID")
    gateway: str = ""
    global_ipv6_address: str = field(default="", wire="GlobalIPv6Address")
    global_ipv6_prefix_len: int = field(default=0, wire="GlobalIPv6PrefixLen")
    ip_address: str = field(default="", wire="IPAddress")
    ip_prefix_len: int = field(default=0, wire="IPPrefixLen")
    ipv6_gateway: str = field(default="", wire="IPv6Gateway")
    mac_address: str = ""
    networks: dict[str, JSON] = attrs.Factory(dict)


@define
class GraphDriver:
    name: str = ""
    data: dict[str, str] | None = None


@define
class Container:
    """``GET /containers/{id}`` (inspect)."""

    id: str
    name: str
    created: str
    path: str = ""
    args: list[str] = attrs.Factory(list)
    state: ContainerState = attrs.Factory(ContainerState)
    image: str = ""
    config: ContainerConfig = attrs.Factory(ContainerConfig)
    host_config: HostConfig = attrs.Factory(HostConfig)
    network_settings: NetworkSettings = attrs.Factory(NetworkSettings)
    mounts: list[JSON] = attrs.Factory(list)
    platform: str = "linux"
    driver: str = ""
    restart_count: int = 0
    log_path: str = ""
    # Docker always sends these; its clients decode them into non-nil values.
    resolv_conf_path: str = ""
    hostname_path: str = ""
    hosts_path: str = ""
    mount_label: str = ""
    process_label: str = ""
    app_armor_profile: str = ""
    exec_ids: list[str] | None = field(default=None, wire="ExecIDs")
    graph_driver: GraphDriver = attrs.Factory(GraphDriver)


@flat
@define
class ContainerSummary:
    """One row of ``GET /containers`` (list)."""

    id: str
    names: list[str]
    image: str
    image_id: str = field(default="", wire="ImageID")
    command: str = ""
    created: int = 0
    state: str = "created"
    status: str = "Created"
    ports: list[JSON] = attrs.Factory(list)
    labels: dict[str, str] = attrs.Factory(dict)
    mounts: list[JSON] = attrs.Factory(list)
    size_rw: int | None = None
    host_config: dict[str, JSON] = attrs.Factory(lambda: {"NetworkMode": "default"})
    network_settings: dict[str, JSON] = attrs.Factory(lambda: {"Networks": {}})


class WaitCondition(enum.StrEnum):
    NOT_RUNNING = "not-running"
    NEXT_EXIT = "next-exit"
    REMOVED = "removed"

    @classmethod
    def from_query(cls, raw: str | None) -> WaitCondition:
        """The ``condition`` query parameter; absent or empty means ``not-running``, as in Docker."""
        try:
            return cls(raw or cls.NOT_RUNNING.value)
        except ValueError:
            raise InvalidParameter(
                f"invalid condition {raw!r}: expected not-running, next-exit or removed"
            ) from None


@frozen
class WaitError:
    message: str


@frozen
class WaitResponse:
    status_code: int
    error: WaitError | None = None


@frozen
class PruneResponse:
    containers_deleted: list[str] = attrs.Factory(list)
    space_reclaimed: int = 0


# ---------------------------------------------------------------------------- exec


@define
class ExecConfig:
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    detach_keys: str = ""
    tty: bool = False
    env: list[str] | None = None
    cmd: list[str] | None = field(default=None, str_slice=True)
    privileged: bool = False
    user: str = ""
    working_dir: str = ""


@define
class ExecInstance:
    id: str = field(wire="ID")
    running: bool = False
    exit_code: int | None = None
    process_config: JSON = None
    open_stdin: bool = False
    open_stderr: bool = False
    open_stdout: bool = False
    container_id: str = field(default="", wire="ContainerID")
    pid: int = 0


# ---------------------------------------------------------------------------- images


@frozen
class ImagePullRequest:
    reference: str
    auth: str = ""


@define
class RootFS:
    type: str = "layers"
    layers: list[str] = attrs.Factory(list)


@define
class Image:
    id: str
    repo_tags: list[str] = attrs.Factory(list)
    repo_digests: list[str] = attrs.Factory(list)
    created: str = ZERO_TIME
    size: int = 0
    config: ContainerConfig = attrs.Factory(ContainerConfig)
    architecture: str = "amd64"
    os: str = field(default="linux", wire="Os")
    root_fs: RootFS = field(factory=RootFS, wire="RootFS")
    # Docker always sends these.
    parent: str = ""
    comment: str = ""
    docker_version: str = ""
    author: str = ""
    virtual_size: int = 0
    graph_driver: GraphDriver = attrs.Factory(GraphDriver)
    metadata: dict[str, JSON] = attrs.Factory(lambda: {"LastTagTime": ZERO_TIME})


@flat
@define
class ImageSummary:
    """One row of the image list (``docker images``): an image ID with every tag it has."""

    id: str
    parent_id: str = ""
    repo_tags: list[str] = attrs.Factory(list)
    repo_digests: list[str] = attrs.Factory(list)
    created: int = 0
    size: int = 0
    shared_size: int = -1
    labels: dict[str, str] = attrs.Factory(dict)
    containers: int = -1


@frozen
class ImageDeleteResponseItem:
    """One line of ``docker rmi``'s answer: a reference untagged, or an image deleted (Docker sends
    only the key that is set)."""

    untagged: str | None = None
    deleted: str | None = None


@frozen
class ImagePruneResponse:
    images_deleted: list[ImageDeleteResponseItem] = attrs.Factory(list)
    space_reclaimed: int = 0


@frozen
class AuthRequest:
    username: str = field(default="", wire="username")
    password: str = field(default="", wire="password", repr=False)
    server_address: str = field(default="", wire="serveraddress")


@frozen
class AuthResponse:
    status: str = "Login Succeeded"
    identity_token: str = ""


# ---------------------------------------------------------------------------- system


@python_names
@frozen
class Capabilities:
    exec: bool = False
    attach: bool = False
    logs: bool = False
    logs_follow: bool = False
    volumes: bool = False
    networks: bool = False
    health_checks: bool = False
    image_pull: bool = False
    image_load: bool = False
    max_timeout_seconds: int = 0
    agent_required: bool = False
    #: Additive verbs: a report without them (an older backend) reads as False, and frontends answer 501.
    rename: bool = False
    events: bool = False


@python_names
@frozen
class CapabilityReport:
    backend: str
    version: str
    capabilities: Capabilities


@frozen
class BackendInfo:
    id: str = field(default="", wire="ID")
    name: str = ""
    server_version: str = ""
    containers: int = 0
    containers_running: int = 0
    containers_paused: int = 0
    containers_stopped: int = 0
    images: int = 0
    driver: str = ""
    operating_system: str = ""
    os_type: str = field(default="linux", wire="OSType")
    architecture: str = ""
    ncpu: int = field(default=0, wire="NCPU")
    mem_total: int = 0
    kernel_version: str = ""


@frozen
class VersionInfo:
    version: str
    api_version: str = "1.44"
    min_api_version: str = field(default="1.24", wire="MinAPIVersion")
    os: str = field(default="linux", wire="Os")
    arch: str = "amd64"
    git_commit: str = ""
    build_time: str = ""


# ---------------------------------------------------------------------------- what the converter does apart


def _unstructure_create(conv: cattrs.Converter, request: ContainerCreateRequest) -> dict[str, Any]:
    """Docker's create body: the Config fields at top level, then HostConfig and NetworkingConfig."""
    body: dict[str, Any] = conv.unstructure(request.config)
    body["HostConfig"] = conv.unstructure(request.host_config)
    body["NetworkingConfig"] = request.networking_config
    if request.platform is not None:
        body["Platform"] = request.platform
    return body


def _structure_create(conv: cattrs.Converter, body: Any) -> ContainerCreateRequest:
    if not isinstance(body, Mapping):
        raise TypeError(f"expected an object, got {type(body).__name__}")
    host_config = body.get("HostConfig")
    return ContainerCreateRequest(
        config=conv.structure(body, ContainerConfig),
        host_config=conv.structure(host_config, HostConfig) if host_config is not None else HostConfig(),
        networking_config=body.get("NetworkingConfig"),
    )


def _unstructure_wait(response: WaitResponse) -> dict[str, Any]:
    """An Error object, even an empty one, makes `docker run` exit 125: omitted when there is none."""
    body: dict[str, Any] = {"StatusCode": response.status_code}
    if response.error is not None:
        body["Error"] = {"Message": response.error.message}
    return body


converter.register_structure_hook(ContainerCreateRequest, lambda body, _: _structure_create(converter, body))
converter.register_unstructure_hook(
    ContainerCreateRequest, lambda request: _unstructure_create(converter, request)
)
converter.register_unstructure_hook(WaitResponse, _unstructure_wait)


def _unstructure_image_delete(item: ImageDeleteResponseItem) -> dict[str, Any]:
    """Docker's ``{"Untagged": R}`` or ``{"Deleted": ID}``: the key that is not set is left out."""
    body: dict[str, Any] = {}
    if item.untagged is not None:
        body["Untagged"] = item.untagged
    if item.deleted is not None:
        body["Deleted"] = item.deleted
    return body


converter.register_unstructure_hook(ImageDeleteResponseItem, _unstructure_image_delete)
