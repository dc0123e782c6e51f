"""Containers as the store keeps them: a row split into what never changes and what does, and the
memory index that answers every read (full ID, name, ID prefix, newest first).

A row's ``spec`` (``config`` and ``host_config``) is written once, at create; ``state`` (exit code,
error, pid, times, restart count) and ``backend`` (the backend's typed state) at every change of
state. Each is JSON made by the project's converter and read back by it.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, Generic

import attrs
from attrs import frozen

from sockerless.errors import Conflict, InvalidParameter, NotFound
from sockerless.models import ContainerConfig, HostConfig
from sockerless.store.prefixes import prefix_matches
from sockerless.store.records import ContainerRecord, S
from sockerless.wire import converter, describe_structure_error, python_names

__all__ = [
    "ContainerCodec",
    "ContainerIndex",
    "check_container",
    "check_name",
    "name_conflict",
]

_CONTAINER_ID = re.compile(r"[a-f0-9]{64}")
_CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", re.ASCII)
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_NONE_TYPE: Final = type(None)
_MISSING: Final = object()


@python_names
@frozen
class _Spec:
    """The ``spec`` column: what the container was created as."""

    config: ContainerConfig
    host_config: HostConfig


@python_names
@frozen
class _State:
    """The ``state`` column: how the container's runs went so far."""

    exit_code: int = 0
    error: str = ""
    pid: int = 0
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    restart_count: int = 0


#: Each part's fields at their defaults, as the converter writes them: a field holding its default is
#: left out of the column, and reading fills it in again.
_SPEC_DEFAULTS: Final[Mapping[str, Mapping[str, Any]]] = {
    "config": converter.unstructure(ContainerConfig()),
    "host_config": converter.unstructure(HostConfig()),
}


def check_name(name: str) -> None:
    """Docker's rule for names (stored without the leading ``/``)."""
    if not _CONTAINER_NAME.fullmatch(name):
        raise InvalidParameter(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")


def check_container(record: ContainerRecord[Any]) -> None:
    if not _CONTAINER_ID.fullmatch(record.id):
        raise InvalidParameter(f"invalid container ID {record.id!r}: expected 64 lowercase hex characters")
    check_name(record.name)


def name_conflict(name: str, owner: str) -> Conflict:
    return Conflict(
        f'Conflict. The container name "/{name}" is already in use by container "{owner}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )


class ContainerCodec(Generic[S]):
    """Container records to rows and back, for one backend's state class."""

    def __init__(self, state_class: type[S]) -> None:
        self.state_class = state_class

    def row(self, record: ContainerRecord[S]) -> tuple[str, ...]:
        """The whole row, as inserted at create."""
        spec = {
            "config": converter.unstructure(record.config, ContainerConfig),
            "host_config": converter.unstructure(record.host_config, HostConfig),
        }
        # Only what the create call set: a spec is mostly defaults (HostConfig alone has some seventy
        # fields), and the row is read back at every start-up and rewritten with each change of state.
        written = {part: _without_defaults(fields, _SPEC_DEFAULTS[part]) for part, fields in spec.items()}
        return (
            record.id,
            record.name,
            record.created.astimezone(dt.UTC).isoformat(),  # UTC, so the column sorts in time order
            record.status,
            record.image,
            record.image_id,
            self._encode(written, record),
            *self.state(record),
        )

    def state(self, record: ContainerRecord[S]) -> tuple[str, str]:
        """The ``state`` and ``backend`` columns: what a change of state writes."""
        state = _State(**{field.name: getattr(record, field.name) for field in attrs.fields(_State)})
        backend = self._unstructure_backend(record.backend_state)
        return self._encode(converter.unstructure(state, _State), record), self._encode(backend, record)

    def record(self, row: Iterable[Any]) -> ContainerRecord[S]:
        """A record from a row, its columns in the order :meth:`row` gives them.

        ``ValueError`` names the part (``created``, ``spec``, ``state``, ``backend``) that is unreadable.
        """
        container_id, name, created, status, image, image_id, spec_text, state_text, backend_text = row
        try:
            created_at = dt.datetime.fromisoformat(created)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"created: {exc}") from exc
        spec = self._decode(spec_text, _Spec, "spec")
        state = self._decode(state_text, _State, "state")
        try:
            backend = self._structure_backend(json.loads(backend_text))
        except Exception as exc:
            raise ValueError(f"backend: {describe_structure_error(exc)}") from exc
        return ContainerRecord(
            id=container_id,
            name=name,
            created=created_at,
            image=image,
            config=spec.config,
            host_config=spec.host_config,
            backend_state=backend,
            image_id=image_id,
            status=status,
            **attrs.asdict(state, recurse=False),
        )

    def _unstructure_backend(self, value: S) -> Any:
        if self.state_class is _NONE_TYPE:  # a backend without state of its own (cattrs has no NoneType)
            return None
        return converter.unstructure(value, self.state_class)

    def _structure_backend(self, data: Any) -> S:
        if self.state_class is _NONE_TYPE:
            if data is not None:
                raise TypeError(f"expected null, got {type(data).__name__}")
            return None  # type: ignore[return-value]  # S is NoneType here
        return converter.structure(data, self.state_class)

    @staticmethod
    def _encode(value: Any, record: ContainerRecord[Any]) -> str:
        try:
            return _ENCODER.encode(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"container {record.id} cannot be stored: {exc}") from exc

    @staticmethod
    def _decode(text: str, cls: type[Any], part: str) -> Any:
        try:
            return converter.structure(json.loads(text), cls)
        except Exception as exc:
            raise ValueError(f"{part}: {describe_structure_error(exc)}") from exc


class ContainerIndex(Generic[S]):
    """The records in memory: by ID, by name, and IDs sorted for prefix search. Reads never copy.

    Records are the callers' live objects; each one's name as committed is kept apart, so a record
    whose ``name`` attribute was changed without a rename is still found and unindexed correctly.
    """

    def __init__(self, records: Iterable[ContainerRecord[S]] = ()) -> None:
        self._by_id: dict[str, ContainerRecord[S]] = {}
        self._names: dict[str, str] = {}
        self._ids_by_name: dict[str, str] = {}
        for record in records:
            self._index(record)
        self._sorted_ids = sorted(self._by_id)

    def __contains__(self, container_id: str) -> bool:
        return container_id in self._by_id

    def get(self, container_id: str) -> ContainerRecord[S] | None:
        return self._by_id.get(container_id)

    def name_of(self, container_id: str) -> str:
        return self._names[container_id]

    def owner_of(self, name: str) -> str | None:
        """The ID of the container holding ``name``, if any."""
        return self._ids_by_name.get(name)

    def resolve(self, ref: str) -> ContainerRecord[S]:
        """Full ID, then name with or without "/", then unique ID prefix (see docs/store.md)."""
        record = self._by_id.get(ref)
        if record is not None:
            return record
        container_id = self._ids_by_name.get(ref.removeprefix("/"))
        if container_id is not None:
            return self._by_id[container_id]
        matches = prefix_matches(self._sorted_ids, ref)
        if len(matches) == 1:
            return self._by_id[matches[0]]
        if matches:
            raise InvalidParameter(f"multiple containers found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def newest_first(self) -> list[ContainerRecord[S]]:
        return sorted(self._by_id.values(), key=_created_and_id, reverse=True)

    def add(self, records: list[ContainerRecord[S]]) -> None:
        for record in records:
            self._index(record)
        if len(records) == 1:
            bisect.insort(self._sorted_ids, records[0].id)
        elif records:
            self._sorted_ids = sorted(self._by_id)

    def rename(self, container_id: str, new_name: str) -> None:
        del self._ids_by_name[self._names[container_id]]
        self._ids_by_name[new_name] = container_id
        self._names[container_id] = new_name
        self._by_id[container_id].name = new_name

    def remove(self, container_id: str) -> None:
        del self._by_id[container_id]
        del self._ids_by_name[self._names.pop(container_id)]
        del self._sorted_ids[bisect.bisect_left(self._sorted_ids, container_id)]

    def _index(self, record: ContainerRecord[S]) -> None:
        self._by_id[record.id] = record
        self._names[record.id] = record.name
        self._ids_by_name[record.name] = record.id


def _without_defaults(fields: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if defaults.get(key, _MISSING) != value}


def _created_and_id(record: ContainerRecord[Any]) -> tuple[float, str]:
    return (record.created.timestamp(), record.id)
