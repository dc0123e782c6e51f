"""Docker's ``HostConfig``: how the host runs a container. Fields a backend may act on are typed; the
rest are kept as sent, so that inspect shows what the client asked for."""

from __future__ import annotations

from typing import Any

import attrs
from attrs import define

from sockerless.errors import InvalidParameter
from sockerless.wire import field

__all__ = [
    "LOG_DRIVERS",
    "LOG_READING_UNSUPPORTED",
    "HostConfig",
    "LogConfig",
    "check_log_config",
    "keeps_output",
]

#: The logging drivers a backend that keeps its containers' output honours: ``json-file`` (the
#: default, also for an empty type) and ``local`` keep it and read it back, ``none`` keeps nothing.
LOG_DRIVERS = ("json-file", "local", "none")
#: Docker's answer (501) to reading the logs of a container whose driver keeps none.
LOG_READING_UNSUPPORTED = "configured logging driver does not support reading"

#: Any JSON value, kept as sent.
JSON = Any


@define
class LogConfig:
    type: str = "json-file"
    config: dict[str, str] = attrs.Factory(dict)


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


def check_log_config(log_config: LogConfig) -> None:
    """``InvalidParameter`` in Docker's words for a driver not in :data:`LOG_DRIVERS`."""
    if log_config.type and log_config.type not in LOG_DRIVERS:
        raise InvalidParameter(f"logger: no log driver named '{log_config.type}' is registered")


def keeps_output(log_config: LogConfig) -> bool:
    """Whether the container's output is kept (every driver but ``none``)."""
    return log_config.type != "none"
