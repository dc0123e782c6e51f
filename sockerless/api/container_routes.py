"""The routes of the system, containers and exec instances."""

from __future__ import annotations

from typing import Any, Final

from sockerless import models
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
    "RENAME",
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


_EMPTY: Final = empty_answer()
_TIMEOUT: Final = Param("t", Integer(), "Seconds to wait before killing", "timeout")


def _action(
    verb: str, summary: str, *query: Param, answer: Answer = _EMPTY, errors: tuple[int, ...] = (400, 404, 409)
) -> Route:
    """A state change of one container: ``POST /containers/{id}/<verb>``, calling ``<verb>_container``."""
    return _c(
        f"Container{verb.capitalize()}",
        "POST",
        f"/{{id}}/{verb}",
        f"{verb}_container",
        summary,
        answer=answer,
        changes_state=True,
        errors=errors,
        query=query,
    )


CAPABILITIES: Final = Route(
    "Capabilities",
    "GET",
    "/capabilities",
    "capability_report",
    "What this backend can do",
    "System",
    json_answer(models.CapabilityReport),
    cloud=False,
)
INFO: Final = Route(
    "SystemInfo", "GET", "/info", "info", "Backend information", "System", json_answer(models.BackendInfo)
)
VERSION: Final = Route(
    "SystemVersion", "GET", "/version", "version", "Version", "System", json_answer(models.VersionInfo)
)
AUTH: Final = Route(
    "SystemAuth",
    "POST",
    "/auth",
    "auth",
    "Check registry credentials",
    "System",
    json_answer(models.AuthResponse),
    body=Body("request", models.AuthRequest),
    errors=(400, 413, 501),
)
SYSTEM: Final = (CAPABILITIES, INFO, VERSION, AUTH)

CREATE: Final = _c(
    "ContainerCreate",
    "POST",
    "",
    "create_container",
    "Create a container",
    answer=json_answer(models.ContainerCreateResponse, 201),
    changes_state=True,
    errors=(400, 404, 409, 413, 501),
    query=(Param("name", Text(), "Container name ([a-zA-Z0-9][a-zA-Z0-9_.-]+, a leading / allowed)"),),
    body=Body("request", models.ContainerCreateRequest),
)
LIST: Final = _c(
    "ContainerList",
    "GET",
    "",
    "list_containers",
    "List containers",
    answer=json_answer(list[models.ContainerSummary]),
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
    answer=json_answer(models.PruneResponse),
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
    answer=json_answer(models.Container),
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
START: Final = _action("start", "Start a container", answer=empty_answer(204, 304), errors=(404, 409))
STOP: Final = _action(
    "stop",
    "Stop a container",
    _TIMEOUT,
    Param("signal", Text(), "Signal to send first"),
    answer=empty_answer(204, 304),
)
KILL: Final = _action("kill", "Kill a container", Param("signal", Text(), "Signal to send (default SIGKILL)"))
RESTART: Final = _action("restart", "Restart a container", _TIMEOUT)
RENAME: Final = _c(
    "ContainerRename",
    "POST",
    "/{id}/rename",
    "rename_container",
    "Rename a container (additive)",
    answer=_EMPTY,
    capability="rename",
    changes_state=True,
    errors=(400, 404, 409, 501),
    query=(
        Param("name", Text(required=True), "The new name ([a-zA-Z0-9][a-zA-Z0-9_.-]+, a leading / allowed)"),
    ),
)
WAIT: Final = _c(
    "ContainerWait",
    "POST",
    "/{id}/wait",
    "wait_container",
    "Wait for a container; headers are sent at once, the body when the condition is met",
    answer=Answer(AnswerKind.WAIT, 200, models.WaitResponse),
    errors=(400, 404),
    long_lived=always,
    query=(
        Param(
            "condition", Choice(models.WaitCondition, models.WaitCondition.NOT_RUNNING), "What to wait for"
        ),
    ),
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
            Choice(models.WaitCondition, models.WaitCondition.NOT_RUNNING),
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
    answer=json_answer(models.IdResponse, 201),
    capability="exec",
    changes_state=True,
    errors=(400, 404, 409, 413, 501),
    body=Body("config", models.ExecConfig),
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
    RENAME,
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
    json_answer(models.ExecInstance),
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
