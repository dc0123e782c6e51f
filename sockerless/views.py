"""Docker's views of a stored container: inspect and the list row, with Docker's wording."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import overload

import attrs

from sockerless.models import (
    Container,
    ContainerConfig,
    ContainerState,
    ContainerSummary,
    format_time,
    unstructure,
)
from sockerless.store import ContainerRecord

__all__ = [
    "SummaryCache",
    "SummaryRows",
    "command_of",
    "container_inspect",
    "container_summary",
    "human_duration",
    "image_id_of",
    "status_text",
]


def image_id_of(record: ContainerRecord) -> str:
    """The image ID Docker shows; derived from the reference when the backend knows no digest."""
    return record.image_id or _reference_id(record.image)


@functools.lru_cache(maxsize=4096)
def _reference_id(image: str) -> str:
    # Many containers share few images: hash each reference once, not once per `docker ps` row.
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


def command_of(record: ContainerRecord) -> list[str]:
    return [*(record.config.entrypoint or []), *(record.config.cmd or [])]


def container_inspect(record: ContainerRecord) -> Container:
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
    return Container(
        id=record.id,
        name="/" + record.name,
        created=format_time(record.created),
        path=argv[0] if argv else "",
        args=argv[1:],
        state=state,
        image=image_id_of(record),
        config=record.config,
        host_config=record.host_config,
        restart_count=record.restart_count,
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


def status_text(record: ContainerRecord, now: dt.datetime) -> str:
    if record.status == "running" and record.started_at is not None:
        return "Up " + human_duration((now - record.started_at).total_seconds())
    if record.status == "exited" and record.finished_at is not None:
        ago = human_duration((now - record.finished_at).total_seconds())
        return f"Exited ({record.exit_code}) {ago} ago"
    return {"created": "Created", "dead": "Dead", "removing": "Removal In Progress", "running": "Up"}.get(
        record.status, record.status.capitalize()
    )


def container_summary(record: ContainerRecord, now: dt.datetime) -> ContainerSummary:
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


# ---------------------------------------------------------------------------- list rows as JSON

# Stands in for State and Status when a row is encoded once: the text around it is kept, and only
# these two, which change with the container's state and the clock, are encoded per list.
_LIVE = "\x00sockerless-live\x00"
_LIVE_JSON = json.dumps(_LIVE)
_QUOTED_LIMIT = 4096


@attrs.define(slots=True)
class _EncodedRow:
    record: ContainerRecord
    config: ContainerConfig
    name: str
    image: str
    image_id: str
    created: dt.datetime
    parts: tuple[str, str, str]  # before State, between State and Status, after Status

    def shows(self, record: ContainerRecord) -> bool:
        return (
            self.record is record
            and self.config is record.config
            and self.name == record.name
            and self.image == record.image
            and self.image_id == record.image_id
            and self.created == record.created
        )


class SummaryCache:
    """Each container's ``docker ps`` row as JSON, encoded once and kept while what it shows is unchanged.

    ``docker ps -a`` over thousands of containers would otherwise build, convert and encode every row
    on every call. Only State and Status (the container's state and how long ago, which move with the
    clock) are encoded per call. A row is encoded again when its record object, its ``config`` object,
    name, image, image ID or creation time changes: like Docker, which has no API that edits a
    container's Cmd, Entrypoint or Labels, the cache takes a record's ``config`` as fixed once
    created (assign a new one to change it). Call :meth:`forget` when a container is removed.
    """

    def __init__(self) -> None:
        self._rows: dict[str, _EncodedRow] = {}
        self._quoted: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self, records: Sequence[ContainerRecord], now: dt.datetime) -> SummaryRows:
        return SummaryRows(records, now, self)

    def forget(self, container_id: str) -> None:
        self._rows.pop(container_id, None)

    def encode(self, records: Sequence[ContainerRecord], now: dt.datetime) -> bytes:
        """The JSON array of these records' rows, as ``json.dumps(unstructure(rows))`` would give it."""
        pieces: list[str] = []
        add = pieces.append
        for record in records:
            row = self._rows.get(record.id)
            if row is None or not row.shows(record):
                row = self._encode(record, now)
            if row is None:  # a field holds the stand-in itself: this one is encoded in full
                add(json.dumps(unstructure(container_summary(record, now))))
            else:
                head, middle, tail = row.parts
                add(head)
                add(self._quote(record.status))
                add(middle)
                add(self._quote(status_text(record, now)))
                add(tail)
            add(", ")
        if pieces:
            pieces.pop()
        return ("[" + "".join(pieces) + "]").encode()

    def _encode(self, record: ContainerRecord, now: dt.datetime) -> _EncodedRow | None:
        summary = container_summary(record, now)
        summary.state = summary.status = _LIVE
        parts = json.dumps(unstructure(summary)).split(_LIVE_JSON)
        if len(parts) != 3:
            return None
        row = _EncodedRow(
            record,
            record.config,
            record.name,
            record.image,
            record.image_id,
            record.created,
            (parts[0], parts[1], parts[2]),
        )
        self._rows[record.id] = row
        return row

    def _quote(self, text: str) -> str:
        # Few distinct states and status texts are shown at once ("Exited (0) 2 hours ago"): encode each once.
        quoted = self._quoted.get(text)
        if quoted is None:
            if len(self._quoted) >= _QUOTED_LIMIT:
                self._quoted.clear()
            quoted = self._quoted[text] = json.dumps(text)
        return quoted


class SummaryRows(Sequence[ContainerSummary]):
    """What ``list_containers`` returns when rows come from a :class:`SummaryCache`.

    The internal-API server sends :meth:`to_json` as the body; in-process callers can index and
    iterate it as :class:`ContainerSummary` models, built on demand.
    """

    __slots__ = ("_cache", "_now", "_records")

    def __init__(self, records: Sequence[ContainerRecord], now: dt.datetime, cache: SummaryCache) -> None:
        self._records, self._now, self._cache = records, now, cache

    def __len__(self) -> int:
        return len(self._records)

    @overload
    def __getitem__(self, index: int) -> ContainerSummary: ...
    @overload
    def __getitem__(self, index: slice) -> list[ContainerSummary]: ...
    def __getitem__(self, index: int | slice) -> ContainerSummary | list[ContainerSummary]:
        if isinstance(index, slice):
            return [container_summary(record, self._now) for record in self._records[index]]
        return container_summary(self._records[index], self._now)

    def __iter__(self) -> Iterator[ContainerSummary]:
        return (container_summary(record, self._now) for record in self._records)

    def to_json(self) -> bytes:
        return self._cache.encode(self._records, self._now)
