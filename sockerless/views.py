"""Docker's views of a stored container: inspect and the list row, with Docker's wording."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from typing import Any

import attrs

from sockerless.models import Container, ContainerState, ContainerSummary, GraphDriver
from sockerless.store.records import ContainerRecord
from sockerless.wire import format_time

__all__ = [
    "command_of",
    "container_inspect",
    "container_summary",
    "human_duration",
    "image_id_of",
    "status_text",
]


def image_id_of(record: ContainerRecord[Any]) -> str:
    """The image ID Docker shows; derived from the reference when the backend knows no digest."""
    return record.image_id or _reference_id(record.image)


@functools.lru_cache(maxsize=4096)
def _reference_id(image: str) -> str:
    # Many containers share few images: hash each reference once, not once per `docker ps` row.
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


def command_of(record: ContainerRecord[Any]) -> list[str]:
    return [*(record.config.entrypoint or []), *(record.config.cmd or [])]


def container_inspect(record: ContainerRecord[Any]) -> Container:
    argv = command_of(record)
    state = ContainerState(
        status=record.status,
        running=record.status == "running",
        dead=record.status == "dead",
        pid=record.pid,
        exit_code=record.exit_code,
        error=record.error,
        started_at=format_time(record.started_at),
        finished_at=format_time(record.finished_at),
    )
    host_config = record.host_config
    if not host_config.log_config.type:
        # Docker's default driver. The SDK's blocking run() reads the output only from json-file or
        # journald, and reports whatever sink a backend really uses as one of them.
        host_config = attrs.evolve(
            host_config, log_config=attrs.evolve(host_config.log_config, type="json-file")
        )
    return Container(
        id=record.id,
        name="/" + record.name,
        created=format_time(record.created),
        path=argv[0] if argv else "",
        args=argv[1:],
        state=state,
        image=image_id_of(record),
        config=record.config,
        host_config=host_config,
        restart_count=record.restart_count,
        graph_driver=GraphDriver(name=""),
    )


def human_duration(seconds: float) -> str:
    """Docker's ``HumanDuration`` (go-units), as ``docker ps`` prints it."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    minutes, hours, days = seconds / 60, seconds / 3600, seconds / 86400
    if seconds < 60:
        return f"{int(seconds)} seconds"
    if minutes < 2:
        return "About a minute"
    if minutes < 60:
        return f"{int(minutes)} minutes"
    if round(hours) == 1:
        return "About an hour"
    if hours < 48:
        return f"{round(hours)} hours"
    if hours < 24 * 7 * 2:
        return f"{int(days)} days"
    if hours < 24 * 30 * 2:
        return f"{int(days / 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{int(days / 30)} months"
    return f"{int(days / 365)} years"


def status_text(record: ContainerRecord[Any], now: dt.datetime) -> str:
    if record.status == "running" and record.started_at is not None:
        return "Up " + human_duration((now - record.started_at).total_seconds())
    if record.status == "exited" and record.finished_at is not None:
        ago = human_duration((now - record.finished_at).total_seconds())
        return f"Exited ({record.exit_code}) {ago} ago"
    return {"created": "Created", "dead": "Dead", "removing": "Removal In Progress", "running": "Up"}.get(
        record.status, record.status.capitalize()
    )


def container_summary(record: ContainerRecord[Any], now: dt.datetime) -> ContainerSummary:
    config = record.config
    return ContainerSummary(
        id=record.id,
        names=["/" + record.name],
        image=record.image,
        image_id=record.image_id or _reference_id(record.image),
        command=" ".join([*(config.entrypoint or ()), *(config.cmd or ())]),
        created=int(record.created.timestamp()),
        state=record.status,
        status=status_text(record, now),
        labels=dict(config.labels) if config.labels else {},
    )
