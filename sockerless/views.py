"""Docker's views of a stored container: inspect and the list row, with Docker's wording."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Final, Generic, TypeVar

import attrs
from attrs import define

from sockerless.models import Container, ContainerState, ContainerSummary, GraphDriver
from sockerless.store.records import ContainerRecord
from sockerless.wire import Encoded, encode_json, encode_json_list, format_time, unstructure

__all__ = [
    "ViewCache",
    "command_of",
    "container_inspect",
    "container_summary",
    "human_duration",
    "image_id_of",
    "status_text",
    "timed_status",
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


def container_inspect(record: ContainerRecord[Any], *, runtime: str = "") -> Container:
    """Docker's inspect answer. ``runtime``: the backend's name, which ``/info`` advertises as the
    default runtime; ``HostConfig.Runtime`` shows it when the create left it empty, as Docker does."""
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
    if not host_config.runtime and runtime:
        host_config = attrs.evolve(host_config, runtime=runtime)
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
    return _human_duration(seconds)[0]


def _human_duration(seconds: float) -> tuple[str, float]:
    """go-units' ``HumanDuration`` of ``seconds``, and the duration at which the text may change next:
    it counts whole seconds below a minute, whole minutes below an hour, then hours rounded half up."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second", 1.0
    if whole == 1:
        return "1 second", 2.0
    if whole < 60:
        return f"{whole} seconds", whole + 1.0
    minutes = whole // 60
    if minutes == 1:
        return "About a minute", 120.0
    if minutes < 60:
        return f"{minutes} minutes", (minutes + 1) * 60.0
    hours = int(seconds / 3600 + 0.5)
    changes = (hours + 0.5) * 3600  # hours alone change the text from here on
    if hours == 1:
        return "About an hour", changes
    if hours < 48:
        return f"{hours} hours", changes
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days", changes
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks", changes
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months", changes
    return f"{int(seconds / 3600) // 24 // 365} years", changes


_FOREVER: Final = dt.datetime.max.replace(tzinfo=dt.UTC)
_STATUS_WORDS: Final = {
    "created": "Created",
    "dead": "Dead",
    "removing": "Removal In Progress",
    "running": "Up",
}


def status_text(record: ContainerRecord[Any], now: dt.datetime) -> str:
    return timed_status(record, now)[0]


def timed_status(record: ContainerRecord[Any], now: dt.datetime) -> tuple[str, dt.datetime]:
    """The list row's status text, and until when it holds (it counts the time since an event)."""
    if record.status == "running" and record.started_at is not None:
        since, event = now - record.started_at, record.started_at
        text, changes = _human_duration(since.total_seconds())
        return "Up " + text, event + dt.timedelta(seconds=changes)
    if record.status == "exited" and record.finished_at is not None:
        since, event = now - record.finished_at, record.finished_at
        text, changes = _human_duration(since.total_seconds())
        return f"Exited ({record.exit_code}) {text} ago", event + dt.timedelta(seconds=changes)
    return _STATUS_WORDS.get(record.status, record.status.capitalize()), _FOREVER


def container_summary(record: ContainerRecord[Any], now: dt.datetime) -> ContainerSummary:
    return _summary(record, status_text(record, now))


def _summary(record: ContainerRecord[Any], status: str) -> ContainerSummary:
    config = record.config
    return ContainerSummary(
        id=record.id,
        names=["/" + record.name],
        image=record.image,
        image_id=record.image_id or _reference_id(record.image),
        command=" ".join([*(config.entrypoint or ()), *(config.cmd or ())]),
        created=int(record.created.timestamp()),
        state=record.status,
        status=status,
        labels=dict(config.labels) if config.labels else {},
    )


#: Inspect answers kept encoded: those of the most recently inspected containers.
INSPECT_CACHE_SIZE: Final = 1024
#: Lists kept encoded: those of the most recently asked queries (filters, all, limit).
LIST_CACHE_SIZE: Final = 64


@define
class _Encoded:
    revision: int  # of the record, or of the store's containers for a list
    until: dt.datetime  # when a status text in it may change
    body: bytes


class ViewCache:
    """Encoded views, kept while what they show is unchanged: each container's inspect answer and
    list row, and whole lists.

    A record's ``revision`` counts the store's writes of it, and the store's ``containers_revision``
    its writes of any container; a view encoded at another revision is encoded again. A list row
    also depends on the time (its status reads ``Up 5 seconds``), so a row, and a list, is kept until
    the time its status text may change. Rows are kept for every container listed; inspect answers
    and lists for the most recent :data:`INSPECT_CACHE_SIZE` containers and :data:`LIST_CACHE_SIZE`
    queries. The backend calls :meth:`forget` when a container is removed.
    """

    def __init__(
        self, inspect_size: int = INSPECT_CACHE_SIZE, list_size: int = LIST_CACHE_SIZE, *, runtime: str = ""
    ) -> None:
        """``runtime``: the backend's name, the default runtime inspect shows (:func:`container_inspect`)."""
        self._runtime = runtime
        self._inspected: _Recent[str] = _Recent(inspect_size)
        self._lists: _Recent[Hashable] = _Recent(list_size)
        self._rows: dict[str, _Encoded] = {}

    def inspect(self, record: ContainerRecord[Any]) -> Encoded[Container]:
        cached = self._inspected.get(record.id)
        if cached is None or cached.revision != record.revision:
            body = encode_json(unstructure(container_inspect(record, runtime=self._runtime)))
            cached = self._inspected.put(record.id, _Encoded(record.revision, _FOREVER, body))
        return Encoded(cached.body)

    def rows(
        self,
        query: Hashable,
        revision: int,
        now: dt.datetime,
        select: Callable[[], Iterable[ContainerRecord[Any]]],
    ) -> Encoded[list[ContainerSummary]]:
        """The list ``select`` gives, as it stands at the store's ``revision`` (``containers_revision``);
        ``query`` names the selection (the same query, the same containers at a revision)."""
        cached = self._lists.get(query)
        if cached is None or cached.revision != revision or now >= cached.until:
            rows = [self._row(record, now) for record in select()]
            until = min((row.until for row in rows), default=_FOREVER)
            body = encode_json_list(row.body for row in rows)
            cached = self._lists.put(query, _Encoded(revision, until, body))
        return Encoded(cached.body)

    def _row(self, record: ContainerRecord[Any], now: dt.datetime) -> _Encoded:
        cached = self._rows.get(record.id)
        if cached is None or cached.revision != record.revision or now >= cached.until:
            status, until = timed_status(record, now)
            body = encode_json(unstructure(_summary(record, status)))
            cached = self._rows[record.id] = _Encoded(record.revision, until, body)
        return cached

    def forget(self, container_id: str) -> None:
        self._inspected.pop(container_id)
        self._rows.pop(container_id, None)


K = TypeVar("K", bound=Hashable)


class _Recent(Generic[K]):
    """The ``size`` most recently used entries."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[K, _Encoded] = OrderedDict()

    def get(self, key: K) -> _Encoded | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: K, value: _Encoded) -> _Encoded:
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return value

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)
