"""The internal API's payloads as attrs classes, and the one converter that knows their wire names.

Field names are snake_case in Python; the wire name (Docker's PascalCase, or whatever the
contract says) is derived by :func:`wire_name` or given explicitly with ``field(wire=...)``.
Only :data:`converter` turns these objects into JSON-ready dicts and back, so business code
never touches raw dicts.
"""

from __future__ import annotations

import datetime as dt
import enum
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
import cattrs.cols
from attrs import define, frozen
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from sockerless.errors import InvalidParameter

__all__ = [
    "ZERO_TIME",
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
    "ImagePullRequest",
    "LogConfig",
    "PruneResponse",
    "RootFS",
    "VersionInfo",
    "WaitCondition",
    "WaitError",
    "WaitResponse",
    "converter",
    "format_time",
    "parse_time",
    "python_names",
    "structure",
    "unstructure",
]

T = TypeVar("T")

ZERO_TIME = "0001-01-01T00:00:00Z"

JSON = Any

# Abbreviations Docker spells in capitals; everything else is plain PascalCase.
_UPPER_WORDS = {"id": "ID", "oom": "OOM", "ncpu": "NCPU", "os": "OS", "ipc": "Ipc"}


def wire_name(attribute: attrs.Attribute[Any]) -> str:
    """The JSON name of an attribute: explicit ``wire`` metadata, else PascalCase of the Python name."""
    explicit = attribute.metadata.get("wire")
    if explicit is not None:
        return str(explicit)
    return "".join(part[:1].upper() + part[1:] for part in attribute.name.split("_"))


def field(*, wire: str | None = None, str_slice: bool = False, **kwargs: Any) -> Any:
    """An attrs field with wire metadata.

    ``str_slice`` marks Docker's ``strslice`` fields (``Cmd``, ``Entrypoint``, ``Shell``), which
    accept a bare string as well as a list.
    """
    metadata = dict(kwargs.pop("metadata", {}))
    if wire is not None:
        metadata["wire"] = wire
    if str_slice:
        metadata["str_slice"] = True
    return attrs.field(metadata=metadata, **kwargs)


# ---------------------------------------------------------------------------- time


def format_time(value: dt.datetime | None) -> str:
    """RFC 3339 with nanosecond-style precision as Docker prints it; None is Docker's zero time."""
    if value is None:
        return ZERO_TIME
    value = value.astimezone(dt.UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}000".rstrip("0")
    return text + "Z"


_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_time(text: str) -> dt.datetime | None:
    """Parse an RFC 3339 time (any fraction length), unix seconds with an optional fraction, or, as
    Docker's daemon does for filters such as ``until=24h``, a Go duration meaning that long ago."""
    text = text.strip()
    if not text or text == ZERO_TIME:
        return None
    try:
        return dt.datetime.fromtimestamp(float(text), dt.UTC)
    except OverflowError:
        raise InvalidParameter(f"invalid time {text!r}: out of range") from None
    except (ValueError, OSError):
        pass
    parts = _GO_DURATION_PART.findall(text)
    if parts and "".join(number + unit for number, unit in parts) == text:
        seconds = sum(float(number) * _GO_DURATION_UNITS[unit] for number, unit in parts)
        try:
            return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
        except OverflowError:
            raise InvalidParameter(f"invalid time {text!r}: out of range") from None
    body = text.replace("z", "Z").replace("Z", "+00:00")
    if "." in body:
        head, _, rest = body.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        body = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        parsed = dt.datetime.fromisoformat(body)
    except ValueError:
        raise InvalidParameter(f"invalid time {text!r}: expected RFC 3339 or unix seconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


# ---------------------------------------------------------------------------- containers


@define
class LogConfig:
    type: str = "json-file"
    config: dict[str, str] = attrs.Factory(dict)


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
class HostConfig:
    """Docker's ``HostConfig``. Fields a backend may act on are typed; the rest are kept as sent."""

    binds: list[str] | None = None
    container_id_file: str = field(default="", wire="ContainerIDFile")
    log_config: LogConfig = attrs.Factory(LogConfig)
    network_mode: str = ""
    port_bindings: dict[str, JSON] | None = None
    restart_policy: dict[str, JSON] | None = None
    auto_remove: bool = False
    volume_driver: str = ""
    volumes_from: list[str] | None = None
    mounts: list[JSON] | None = None
    console_size: list[int] | None = None
    annotations: dict[str, str] | None = None
    cap_add: list[str] | None = None
    cap_drop: list[str] | None = None
    cgroupns_mode: str = ""
    dns: list[str] | None = None
    dns_options: list[str] | None = None
    dns_search: list[str] | None = None
    extra_hosts: list[str] | None = None
    group_add: list[str] | None = None
    ipc_mode: str = ""
    cgroup: str = ""
    links: list[str] | None = None
    oom_score_adj: int = 0
    pid_mode: str = ""
    privileged: bool = False
    publish_all_ports: bool = False
    readonly_rootfs: bool = False
    security_opt: list[str] | None = None
    storage_opt: dict[str, str] | None = None
    tmpfs: dict[str, str] | None = None
    uts_mode: str = field(default="", wire="UTSMode")
    userns_mode: str = ""
    shm_size: int = 0
    sysctls: dict[str, str] | None = None
    runtime: str = ""
    isolation: str = ""
    cpu_shares: int = 0
    memory: int = 0
    nano_cpus: int = field(default=0, wire="NanoCpus")
    cgroup_parent: str = ""
    blkio_weight: int = 0
    blkio_weight_device: list[JSON] | None = None
    blkio_device_read_bps: list[JSON] | None = None
    blkio_device_write_bps: list[JSON] | None = None
    blkio_device_read_iops: list[JSON] | None = field(default=None, wire="BlkioDeviceReadIOps")
    blkio_device_write_iops: list[JSON] | None = field(default=None, wire="BlkioDeviceWriteIOps")
    cpu_period: int = 0
    cpu_quota: int = 0
    cpu_realtime_period: int = 0
    cpu_realtime_runtime: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    devices: list[JSON] | None = None
    device_cgroup_rules: list[str] | None = None
    device_requests: list[JSON] | None = None
    memory_reservation: int = 0
    memory_swap: int = 0
    memory_swappiness: int | None = None
    oom_kill_disable: bool | None = None
    pids_limit: int | None = None
    ulimits: list[JSON] | None = None
    cpu_count: int = 0
    cpu_percent: int = 0
    io_maximum_iops: int = field(default=0, wire="IOMaximumIOps")
    io_maximum_bandwidth: int = field(default=0, wire="IOMaximumBandwidth")
    masked_paths: list[str] | None = None
    readonly_paths: list[str] | None = None
    init: bool | None = None


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
    networks: dict[str, JSON] = attrs.Factory(dict)
    ports: dict[str, JSON] = attrs.Factory(dict)


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


def _flat(cls: type[T]) -> type[T]:
    """Mark a class whose fields are all plain JSON values (no nested models): it unstructures with
    a single attribute fetch per field, which matters for ``docker ps -a`` over thousands of rows."""
    cls.__sockerless_flat__ = True  # type: ignore[attr-defined]
    return cls


@_flat
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


@_flat
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
class AuthRequest:
    username: str = field(default="", wire="username")
    password: str = field(default="", wire="password", repr=False)
    server_address: str = field(default="", wire="serveraddress")


@frozen
class AuthResponse:
    status: str = "Login Succeeded"
    identity_token: str = ""


# ---------------------------------------------------------------------------- system


def python_names(cls: type[T]) -> type[T]:
    """Mark a class whose wire names are its Python names (the capability report, a backend's own
    stored state)."""
    cls.__sockerless_snake__ = True  # type: ignore[attr-defined]
    return cls


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


# ---------------------------------------------------------------------------- the converter


def _strict(kind: type[Any], name: str) -> Callable[[Any, type[Any]], Any]:
    def hook(value: Any, _: type[Any]) -> Any:
        if kind is int and isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise TypeError(f"expected {name}, got {type(value).__name__}")
        return value

    return hook


def _only(kind: Any, name: str, inner: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def hook(value: Any, target: Any) -> Any:
        if not isinstance(value, kind):
            raise TypeError(f"expected {name}, got {type(value).__name__}")
        return inner(value, target)

    return hook


def _structure_float(value: Any, _: type[Any]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _structure_datetime(value: Any, _: type[Any]) -> dt.datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 time, got {type(value).__name__}")
    return dt.datetime.fromisoformat(value)


def _structure_str_slice(value: Any, _: type[Any]) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise TypeError("expected a string or a list of strings")


def wire_names(cls: type[Any]) -> dict[str, str]:
    """Each attribute's name on the wire, by its Python name."""
    snake = getattr(cls, "__sockerless_snake__", False)
    return {
        a.name: (a.name if snake and "wire" not in a.metadata else wire_name(a)) for a in attrs.fields(cls)
    }


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_structure_hook(str, _strict(str, "a string"))
    conv.register_structure_hook(int, _strict(int, "an integer"))
    conv.register_structure_hook(bool, _strict(bool, "a boolean"))
    conv.register_structure_hook(float, _structure_float)
    # Stored records keep their times as ISO 8601 (wire models carry Docker's time strings instead).
    conv.register_unstructure_hook(dt.datetime, dt.datetime.isoformat)
    conv.register_structure_hook(dt.datetime, _structure_datetime)
    # cattrs would happily turn "A=1" into ["A", "=", "1"] and a list into a mapping: refuse both.
    conv.register_structure_hook_factory(
        cattrs.cols.is_sequence, lambda t, c: _only(list, "a list", cattrs.cols.list_structure_factory(t, c))
    )
    conv.register_structure_hook_factory(
        cattrs.cols.is_mapping,
        lambda t, c: _only(Mapping, "an object", cattrs.cols.mapping_structure_factory(t, c)),
    )

    def structure_factory(cls: type[Any]) -> Callable[[Any, type[Any]], Any]:
        overrides = {}
        for attribute in attrs.fields(cls):
            hook = _structure_str_slice if attribute.metadata.get("str_slice") else None
            overrides[attribute.name] = override(rename=wire_names(cls)[attribute.name], struct_hook=hook)
        inner = make_dict_structure_fn(cls, conv, **overrides)  # type: ignore[arg-type]

        def structure_object(value: Any, target: type[Any]) -> Any:
            if not isinstance(value, Mapping):
                raise TypeError(f"expected an object, got {type(value).__name__}")
            return inner(value, target)

        return structure_object

    def unstructure_factory(cls: type[Any]) -> Callable[[Any], Any]:
        overrides = {name: override(rename=wire) for name, wire in wire_names(cls).items()}
        inner = make_dict_unstructure_fn(cls, conv, **overrides)  # type: ignore[arg-type]
        if getattr(cls, "__sockerless_flat__", False):
            wires = tuple(wire_names(cls).values())
            fetch = operator.attrgetter(*wire_names(cls))
            return lambda obj: dict(zip(wires, fetch(obj), strict=True))
        if cls is WaitResponse:
            # An Error object, even empty, makes `docker run` exit 125: omit it on success.
            return lambda obj: {k: v for k, v in inner(obj).items() if not (k == "Error" and v is None)}
        return inner

    conv.register_structure_hook_factory(attrs.has, structure_factory)
    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    conv.register_structure_hook(
        ContainerCreateRequest,
        lambda body, _: _structure_create(conv, body),
    )
    conv.register_unstructure_hook(ContainerCreateRequest, lambda request: _unstructure_create(conv, request))
    return conv


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


converter = _make_converter()


def unstructure(value: Any) -> Any:
    """A model (or a list of models) as JSON-ready data with wire names."""
    return converter.unstructure(value)


def structure(data: Any, cls: type[T]) -> T:
    """Build a model from wire data; a shape error is a 400 naming the offending field."""
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        raise InvalidParameter(f"invalid {cls.__name__}: {describe_structure_error(exc)}") from None


def describe_structure_error(exc: BaseException) -> str:
    """One line naming each bad field (``Env: expected a list``) instead of cattrs' nested report."""
    if isinstance(exc, cattrs.BaseValidationError):
        messages = cattrs.transform_error(exc, path="body")
        return "; ".join(messages) if messages else str(exc)
    return str(exc)
