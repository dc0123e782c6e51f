"""The routes of the system, containers and exec instances."""

from __future__ import annotations

from typing import Any, Final

from sockerless.api.params import Choice, Filters, Flag, Integer, Limit, Param, Tail, Text, Time
from sockerless.api.route import (
    ANY_OBJECT,
    Answer,
    AnswerKind,
    Body,
    Route,
    always,
    empty_answer,
    following,
    json_answer,
)
from sockerless.backend import AttachOptions, LogsOptions
from sockerless.filters import CONTAINER_FILTERS
from sockerless.models import (
    AuthRequest,
    AuthResponse,
    BackendInfo,
    CapabilityReport,
    Container,
    ContainerCreateRequest,
    ContainerCreateResponse,
    ContainerSummary,
    ExecConfig,
    ExecInstance,
    IdResponse,
    PruneResponse,
    VersionInfo,
    WaitCondition,
    WaitResponse,
)

__all__ = [
    "ATTACH",
    "AUTH",
    "CAPABILITIES",
    "CONTAINERS",
    "CREATE",
    "EXEC",
    "EXEC_CREATE",
    "EXEC_INSPECT",
    "EXEC_START",
    "INFO",
    "INSPECT",
    "KILL",
    "LIST",
    "LOGS",
    "PRUNE",
    "REMOVE",
    "RESTART",
    "START",
    "STOP",
    "SYSTEM",
    "VERSION",
    "WAIT",
]

_CONTAINER: Final = {"id": "ref"}


def _c(operation_id: str, method: str, path: str, call: str, summary: str, **more: Any) -> Route:
    """A container route: tag Containers, ``{id}`` handed over as ``ref``."""
    path_args = _CONTAINER if "{id}" in path else {}
    return Route(
        operation_id, method, "/containers" + path, call, summary, "Containers", path_args=path_args, **more
    )


CAPABILITIES: Final = Route(
    "Capabilities",
    "GET",
    "/capabilities",
    "capability_report",
    "What this backend can do",
    "System",
    json_answer(CapabilityReport),
    cloud=False,
)
INFO: Final = Route(
    "SystemInfo", "GET", "/info", "info", "Backend information", "System", json_answer(BackendInfo)
)
VERSION: Final = Route(
    "SystemVersion", "GET", "/version", "version", "Version", "System", json_answer(VersionInfo)
)
AUTH: Final = Route(
    "SystemAuth",
    "POST",
    "/auth",
    "auth",
    "Check registry credentials",
    "System",
    json_answer(AuthResponse),
    body=Body("request", AuthRequest),
    errors=(400, 413, 501),
)
SYSTEM: Final = (CAPABILITIES, INFO, VERSION, AUTH)

CREATE: Final = _c(
    "ContainerCreate",
    "POST",
    "",
    "create_container",
    "Create a container",
    answer=json_answer(ContainerCreateResponse, 201),
    changes_state=True,
    errors=(400, 404, 409, 413, 501),
    query=(Param("name", Text(), "Container name ([a-zA-Z0-9][a-zA-Z0-9_.-]+, a leading / allowed)"),),
    body=Body("request", ContainerCreateRequest),
)
LIST: Final = _c(
    "ContainerList",
    "GET",
    "",
    "list_containers",
    "List containers",
    answer=json_answer(list[ContainerSummary]),
    errors=(400,),
    query=(
        Param("all", Flag(), "Include stopped containers"),
        Param("limit", Limit(), "At most this many, newest first (implies all)"),
        Param(
            "filters",
            Filters(CONTAINER_FILTERS),
            "JSON filters; keys: " + ", ".join(sorted(CONTAINER_FILTERS)),
        ),
    ),
)
PRUNE: Final = _c(
    "ContainerPrune",
    "POST",
    "/prune",
    "prune_containers",
    "Remove stopped containers",
    answer=json_answer(PruneResponse),
    changes_state=True,
    errors=(400,),
    query=(Param("filters", Filters({"label", "until"}), "JSON filters; keys: label, until"),),
)
INSPECT: Final = _c(
    "ContainerInspect",
    "GET",
    "/{id}",
    "inspect_container",
    "Inspect a container",
    answer=json_answer(Container),
    errors=(404,),
)
REMOVE: Final = _c(
    "ContainerDelete",
    "DELETE",
    "/{id}",
    "remove_container",
    "Remove a container",
    answer=empty_answer(),
    changes_state=True,
    errors=(400, 404, 409),
    query=(
        Param("force", Flag(), "Remove even if running"),
        Param("v", Flag(), "Remove anonymous volumes", "volumes"),
    ),
)
START: Final = _c(
    "ContainerStart",
    "POST",
    "/{id}/start",
    "start_container",
    "Start a container",
    answer=empty_answer(204, 304),
    changes_state=True,
    errors=(404, 409),
)
STOP: Final = _c(
    "ContainerStop",
    "POST",
    "/{id}/stop",
    "stop_container",
    "Stop a container",
    answer=empty_answer(204, 304),
    changes_state=True,
    errors=(400, 404, 409),
    query=(
        Param("t", Integer(), "Seconds to wait before killing", "timeout"),
        Param("signal", Text(), "Signal to send first"),
    ),
)
KILL: Final = _c(
    "ContainerKill",
    "POST",
    "/{id}/kill",
    "kill_container",
    "Kill a container",
    answer=empty_answer(),
    changes_state=True,
    errors=(400, 404, 409),
    query=(Param("signal", Text(), "Signal to send (default SIGKILL)"),),
)
RESTART: Final = _c(
    "ContainerRestart",
    "POST",
    "/{id}/restart",
    "restart_container",
    "Restart a container",
    answer=empty_answer(),
    changes_state=True,
    errors=(400, 404, 409),
    query=(Param("t", Integer(), "Seconds to wait before killing", "timeout"),),
)
WAIT: Final = _c(
    "ContainerWait",
    "POST",
    "/{id}/wait",
    "wait_container",
    "Wait for a container; headers are sent at once, the body when the condition is met",
    answer=Answer(AnswerKind.WAIT, 200, WaitResponse),
    errors=(400, 404),
    long_lived=always,
    query=(Param("condition", Choice(WaitCondition, WaitCondition.NOT_RUNNING), "What to wait for"),),
)
LOGS: Final = _c(
    "ContainerLogs",
    "GET",
    "/{id}/logs",
    "container_logs",
    "Container output as Docker frames (raw bytes when the container has a TTY); with follow, lines "
    "come as the backend learns them",
    answer=Answer(AnswerKind.LOGS),
    options=LogsOptions,
    capability="logs",
    errors=(400, 404, 501),
    long_lived=following,
    query=(
        Param("stdout", Flag(), "Include stdout"),
        Param("stderr", Flag(), "Include stderr (stdout or stderr is required)"),
        Param(
            "follow",
            Flag(),
            "Keep streaming until the container has exited and its output is complete "
            "(a backend whose capabilities say logs_follow: false answers with what it has)",
        ),
        Param("timestamps", Flag(), "Prefix every line with its RFC 3339 time"),
        Param("tail", Tail(), "Only the last N lines ('all', or negative: every line)"),
        Param("since", Time(), "Only lines at or after this time"),
        Param("until", Time(), "Only lines at or before this time"),
        Param(
            "condition",
            Choice(WaitCondition, WaitCondition.NOT_RUNNING),
            "With follow (additive): not-running ends the stream once the container is not running and "
            "its output is complete; next-exit waits for the next run and ends after it",
        ),
    ),
)
ATTACH: Final = _c(
    "ContainerAttach",
    "POST",
    "/{id}/attach",
    "attach_container",
    "Attach to a container (101 upgrade where supported, else 501 before any upgrade)",
    answer=Answer(AnswerKind.UPGRADE, 101),
    options=AttachOptions,
    capability="attach",
    errors=(400, 404, 409, 501),
    long_lived=always,
    query=(
        Param("stream", Flag(), "Stream the output"),
        Param("stdin", Flag(), "Attach stdin"),
        Param("stdout", Flag(), "Attach stdout"),
        Param("stderr", Flag(), "Attach stderr"),
        Param("logs", Flag(), "Replay the output so far first"),
        Param("detachKeys", Text(""), "Key sequence that detaches", "detach_keys"),
    ),
)
EXEC_CREATE: Final = _c(
    "ContainerExec",
    "POST",
    "/{id}/exec",
    "create_exec",
    "Create an exec instance",
    answer=json_answer(IdResponse, 201),
    capability="exec",
    changes_state=True,
    errors=(400, 404, 409, 413, 501),
    body=Body("config", ExecConfig),
)
CONTAINERS: Final = (
    CREATE,
    LIST,
    PRUNE,
    INSPECT,
    REMOVE,
    START,
    STOP,
    KILL,
    RESTART,
    WAIT,
    LOGS,
    ATTACH,
    EXEC_CREATE,
)

EXEC_INSPECT: Final = Route(
    "ExecInspect",
    "GET",
    "/exec/{id}",
    "inspect_exec",
    "Inspect an exec instance",
    "Exec",
    json_answer(ExecInstance),
    errors=(404,),
    path_args={"id": "exec_id"},
)
EXEC_START: Final = Route(
    "ExecStart",
    "POST",
    "/exec/{id}/start",
    "start_exec",
    "Start an exec instance (101 upgrade where supported, else 501)",
    "Exec",
    Answer(AnswerKind.UPGRADE, 101),
    body=Body("options", ANY_OBJECT, required=False),
    capability="exec",
    errors=(400, 404, 409, 413, 501),
    path_args={"id": "exec_id"},
    long_lived=always,
)
EXEC: Final = (EXEC_INSPECT, EXEC_START)
