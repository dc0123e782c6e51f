"""The state store: containers and images, durable in SQLite (aiosqlite), indexed in memory.

Reads are synchronous and served from the memory index loaded at :meth:`Store.open`. Writes go to
SQLite first, in one transaction committed before the coroutine returns, and only then touch the
memory index, so a failed write leaves memory as it was. One backend process owns a database file:
:meth:`Store.open` takes an exclusive ``flock`` on ``<path>.lock`` and fails fast if it is held.
See ``docs/store.md`` for the schema, the durability guarantees and the migration rules.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import datetime as dt
import fcntl
import gc
import json
import logging
import os
import re
import sqlite3
import typing
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any, Final, TypeVar

import aiosqlite
import attrs
import cattrs
from attrs import define, frozen
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from sockerless.errors import Conflict, InvalidParameter, NotFound
from sockerless.models import ContainerConfig, HostConfig, converter, wire_names
from sockerless.references import normalize_reference, parse_reference

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "ContainerRecord",
    "ImageRecord",
    "Migration",
    "Store",
    "StoreError",
    "collector_paused",
    "normalize_reference",
]

log = logging.getLogger(__name__)


@define
class ContainerRecord:
    """Everything the backend knows about one container. ``backend_fields`` is the plugin's own
    (function name and ARN, invocation status, request ID, log stream, ...), stored as JSON."""

    id: str  # 64 hex
    name: str  # without the leading "/"
    created: dt.datetime
    image: str  # the reference as the user gave it (Config.Image)
    config: ContainerConfig
    host_config: HostConfig
    image_id: str = ""
    status: str = "created"  # created | running | exited | dead | removing
    exit_code: int = 0
    error: str = ""
    pid: int = 0
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    restart_count: int = 0
    backend_fields: dict[str, Any] = attrs.Factory(dict)

    @property
    def labels(self) -> dict[str, str]:
        return self.config.labels or {}


@define
class ImageRecord:
    reference: str  # normalised, e.g. "docker.io/library/alpine:latest" or "123.dkr.ecr...../repo:tag"
    id: str  # "sha256:<64 hex>"
    digest: str = ""  # "sha256:..." when known
    created: dt.datetime | None = None
    config: ContainerConfig = attrs.Factory(ContainerConfig)
    extra: dict[str, Any] = attrs.Factory(dict)


class StoreError(Exception):
    """The state database cannot be used: locked by another process, too new, or unreadable."""


# ---------------------------------------------------------------------------- schema


@frozen
class Migration:
    """One step of the schema: applied in its own transaction together with ``user_version``.

    Steps are append-only: a released step is never edited, a change is a new step.
    """

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1,
        "containers, their labels, images",
        (
            """CREATE TABLE containers (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                created TEXT NOT NULL,
                status TEXT NOT NULL,
                image TEXT NOT NULL,
                record TEXT NOT NULL
            )""",
            """CREATE TABLE container_labels (
                container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (container_id, key)
            )""",
            "CREATE INDEX container_labels_by_key_value ON container_labels(key, value)",
            """CREATE TABLE images (
                reference TEXT PRIMARY KEY,
                id TEXT NOT NULL,
                record TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "containers.image_id (the ancestor filter) and images by ID",
        (
            "ALTER TABLE containers ADD COLUMN image_id TEXT NOT NULL DEFAULT ''",
            "UPDATE containers SET image_id = coalesce(json_extract(record, '$.image_id'), '')",
            "CREATE INDEX images_by_id ON images(id)",
        ),
    ),
)

SCHEMA_VERSION: Final = MIGRATIONS[-1].version

_SYNCHRONOUS_LEVELS: Final = {"normal": "NORMAL", "full": "FULL", "extra": "EXTRA"}
_DEFAULT_BUSY_TIMEOUT_MS: Final = 5000
#: Synchronous levels at which a commit in WAL mode never waits for the disk (no fsync): only these
#: write inline.
_NO_FSYNC_ON_COMMIT: Final = frozenset({"NORMAL"})
#: Inline writes between two checkpoints (run on aiosqlite's thread, so an fsync never blocks the loop).
_CHECKPOINT_EVERY: Final = 500

#: Shortest ID prefix resolved, as the internal API says (Docker itself accepts any length).
_MIN_PREFIX_LENGTH: Final = 3
_CONTAINER_ID = re.compile(r"[a-f0-9]{64}")
_CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", re.ASCII)
_IMAGE_ID = re.compile(r"sha256:[a-f0-9]{64}")
_HEX = re.compile(r"[a-f0-9]+")
_IMAGE_ID_PREFIX = "sha256:"


# ---------------------------------------------------------------------------- records as JSON


def _holds_plain_values(kind: Any) -> bool:
    """Lists and string-keyed objects of plain values: ``Cmd``, ``Env``, ``Labels``, ``backend_fields``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    return (origin is list and args[0] in _PLAIN) or (origin is dict and args[0] is str and args[1] in _PLAIN)


_PLAIN: Final = (str, int, float, bool, Any)


def _as_is(value: Any) -> Any:
    return value


def _make_record_converter() -> cattrs.Converter:
    """The project converter plus datetimes as ISO 8601 and the records under their Python names.

    The models inside a record (``Config``, ``HostConfig``, ...) are stored under their wire names,
    without the fields that hold their default: a ``HostConfig`` is some forty fields, mostly unset,
    and a container's record shrinks from about 2.2 KB to 0.4 KB, which is written on every change
    of state and read back for every container at start-up. Reading fills the defaults in again.
    """
    records = converter.copy()
    records.register_unstructure_hook(dt.datetime, dt.datetime.isoformat)
    records.register_structure_hook(dt.datetime, lambda value, _: dt.datetime.fromisoformat(value))

    def compact(cls: type[Any]) -> Callable[[Any], Any]:
        renames = {name: override(rename=wire) for name, wire in wire_names(cls).items()}
        return make_dict_unstructure_fn(cls, records, _cattrs_omit_if_default=True, **renames)  # type: ignore[arg-type]

    records.register_unstructure_hook_factory(attrs.has, compact)
    # Plain values go to the JSON encoder as they are (half of a record's unstructuring was dispatching each
    # value of backend_fields on its type): it writes JSON values and refuses anything else, as
    # docs/store.md says, where cattrs would have flattened an attrs object or a datetime silently.
    records.register_unstructure_hook_factory(_holds_plain_values, lambda _: _as_is)
    for cls in (ContainerRecord, ImageRecord):
        attrs.resolve_types(cls)
        records.register_unstructure_hook(cls, make_dict_unstructure_fn(cls, records))
    return records


_records = _make_record_converter()


def _make_record_reader() -> cattrs.Converter:
    """Reads stored records back; about twice as fast as ``_records`` (start-up reads them all).

    It trusts the scalars' types: every stored record was written by ``_records`` from models the
    API converter had checked, so reading checks the shape (objects where models are, the required
    fields present) but not that each string is a string. A record of the wrong shape still fails
    the load with a :class:`StoreError`.
    """
    reader = cattrs.Converter(detailed_validation=False)
    for kind in (str, int, bool):
        reader.register_structure_hook(kind, lambda value, _: value)
    # Lists and objects of plain values (Cmd, Env, Labels, backend_fields) are taken as parsed.
    reader.register_structure_hook_factory(_holds_plain_values, lambda _: lambda value, __: value)
    reader.register_structure_hook(float, lambda value, _: float(value))
    reader.register_structure_hook(dt.datetime, lambda value, _: dt.datetime.fromisoformat(value))

    def wire_named(cls: type[Any]) -> Callable[[Any, type[Any]], Any]:
        renames = {name: override(rename=wire) for name, wire in wire_names(cls).items()}
        return make_dict_structure_fn(cls, reader, **renames)  # type: ignore[arg-type]

    reader.register_structure_hook_factory(attrs.has, wire_named)
    for cls in (ContainerRecord, ImageRecord):
        reader.register_structure_hook(cls, make_dict_structure_fn(cls, reader))
    return reader


_record_reader = _make_record_reader()
_R = TypeVar("_R", ContainerRecord, ImageRecord)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: for loading, where every object made lives on and the
    collector would walk the growing heap again and again for nothing (a third of the load of
    10 000 containers). Nests: an inner pause leaves the collector as the outer one wants it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _to_json(value: ImageRecord, what: str) -> str:
    return _encode(_records.unstructure(value), what)


def _encode(value: dict[str, Any], what: str) -> str:
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} cannot be stored: its fields must be JSON values ({exc})") from exc


#: A container record's fields that say what it was created as. Its record JSON is written in two
#: parts, these and then the others (its state: status, exit, times, ``backend_fields``), which
#: together are the same JSON object as the whole record's, field for field and in the same order.
#: ``Store.save_state`` encodes only the state when these are as last written.
_SPEC_FIELDS: Final = ("id", "name", "created", "image", "config", "host_config", "image_id")


def _record_part(fields: Sequence[str]) -> Callable[[ContainerRecord], dict[str, Any]]:
    omitted = {a.name: override(omit=True) for a in attrs.fields(ContainerRecord) if a.name not in fields}
    return make_dict_unstructure_fn(ContainerRecord, _records, **omitted)  # type: ignore[arg-type]


_spec_part: Final = _record_part(_SPEC_FIELDS)
_state_part: Final = _record_part(
    [a.name for a in attrs.fields(ContainerRecord) if a.name not in _SPEC_FIELDS]
)


def _container_json(spec: str, state: str) -> str:
    """The record's JSON from the encodings of its two parts (objects, whose braces are dropped)."""
    return f"{spec[:-1]},{state[1:]}"


def _spec_json(record: ContainerRecord) -> str:
    return _encode(_spec_part(record), f"container {record.id}")


def _state_json(record: ContainerRecord) -> str:
    return _encode(_state_part(record), f"container {record.id}")


def _labels(record: ContainerRecord) -> tuple[tuple[str, str], ...]:
    """The labels as the store compares and writes them: sorted pairs."""
    return tuple(sorted(record.labels.items()))


def _created_column(value: dt.datetime) -> str:
    """UTC ISO text, so the column sorts in time order whatever zone the record was given in."""
    return value.astimezone(dt.UTC).isoformat()


@define
class _Committed:
    """A container's fields that say what it was created as, as last committed, and their JSON.

    ``config`` and ``host_config`` are compared by identity (see :meth:`Store.save_state`).
    """

    name: str
    created: dt.datetime
    image: str
    image_id: str
    config: ContainerConfig
    host_config: HostConfig
    labels: tuple[tuple[str, str], ...]
    spec: str | None  # the JSON of the fields in _SPEC_FIELDS; None until first needed (after a load)

    @classmethod
    def of(cls, record: ContainerRecord, labels: tuple[tuple[str, str], ...], spec: str | None) -> _Committed:
        return cls(
            record.name,
            record.created,
            record.image,
            record.image_id,
            record.config,
            record.host_config,
            labels,
            spec,
        )

    def describes(self, record: ContainerRecord) -> bool:
        """The record was created as committed: same name, image, times and the same model objects."""
        return (
            record.config is self.config
            and record.host_config is self.host_config
            and record.name == self.name
            and record.image == self.image
            and record.image_id == self.image_id
            and record.created == self.created
        )

    def spec_json(self, record: ContainerRecord) -> str:
        """The JSON of the spec fields of ``record``, which this describes."""
        if self.spec is None:
            self.spec = _spec_json(record)
        return self.spec


@frozen
class _ContainerRow:
    id: str
    name: str
    created: str
    status: str
    image: str
    image_id: str
    spec: str
    record: str
    labels: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, record: ContainerRecord, state: str) -> _ContainerRow:
        _check_container(record)
        spec = _spec_json(record)
        return cls(
            id=record.id,
            name=record.name,
            created=_created_column(record.created),
            status=record.status,
            image=record.image,
            image_id=record.image_id,
            spec=spec,
            record=_container_json(spec, state),
            labels=_labels(record),
        )

    def label_rows(self) -> list[tuple[str, str, str]]:
        return [(self.id, key, value) for key, value in self.labels]


@frozen
class _Plan:
    """A checked write: its statements, and how the memory index changes once they are committed."""

    statements: list[_Statement]
    apply: Callable[[], None]


@frozen
class _Statement:
    """One SQL statement of a write and its parameter rows (run once per row; no rows, not run)."""

    sql: str
    rows: list[tuple[Any, ...]]


def _single_row(statements: Sequence[_Statement]) -> tuple[str, tuple[Any, ...]] | None:
    """The SQL and parameters of a write that is one statement with one row, else None."""
    work = [statement for statement in statements if statement.rows]
    if len(work) != 1 or len(work[0].rows) != 1:
        return None
    return work[0].sql, work[0].rows[0]


def _check_container(record: ContainerRecord) -> None:
    if not _CONTAINER_ID.fullmatch(record.id):
        raise InvalidParameter(f"invalid container ID {record.id!r}: expected 64 lowercase hex characters")
    if not _CONTAINER_NAME.fullmatch(record.name):
        raise InvalidParameter(
            f"Invalid container name ({record.name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )


def _name_conflict(name: str, owner: str) -> Conflict:
    return Conflict(
        f'Conflict. The container name "/{name}" is already in use by container "{owner}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )


def _newest_first(record: ContainerRecord) -> tuple[float, str]:
    return (record.created.timestamp(), record.id)


# ---------------------------------------------------------------------------- files and locking


def _secure_file(path: str) -> None:
    """Owner-only permissions; a file another user owns is left alone with a warning."""
    try:
        os.chmod(path, 0o600)
    except PermissionError:
        log.warning("cannot restrict permissions of %s to 0600", path)


def _prepare_files(path: str) -> int:
    """Create the directory (0700) and the database file (0600); lock ``<path>.lock``; return its fd."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
    lock_path = f"{path}.lock"
    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        raise StoreError(
            f"state database {path} is in use by another sockerless backend process (it holds {lock_path}); "
            "run one backend per state file, or give this one another state path"
        ) from None
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                _secure_file(path + suffix)
    except BaseException:
        os.close(lock_fd)
        raise
    return lock_fd


def _inline_connection(path: str, level: str) -> sqlite3.Connection:
    """The event loop's own connection for one-row writes: autocommit, no auto-checkpoint."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout = 0")  # never wait on the loop: see _commit
        connection.execute(f"PRAGMA synchronous = {level}")
        connection.execute("PRAGMA foreign_keys = ON")  # labels go with their container
        connection.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints run off the loop
    except BaseException:
        connection.close()
        raise
    return connection


# ---------------------------------------------------------------------------- the store


class Store:
    """Single-writer store. Reads are served from memory, writes are committed before they return."""

    def __init__(self, path: str, connection: aiosqlite.Connection, lock_fd: int | None) -> None:
        """Use :meth:`open`."""
        self.path = path
        self._db = connection
        # One-row writes: a second, plain connection used on the event loop's thread (see _commit).
        self._inline: sqlite3.Connection | None = None
        self._inline_writes = 0
        self._lock_fd = lock_fd
        self._closed = False
        self._write_lock = asyncio.Lock()
        self._writes: set[asyncio.Task[Any]] = set()
        # containers: by ID, by name, IDs sorted for prefix search; what each was created as, as committed
        self._containers: dict[str, ContainerRecord] = {}
        self._container_ids_by_name: dict[str, str] = {}
        self._committed: dict[str, _Committed] = {}
        self._sorted_container_ids: list[str] = []
        # images: by normalised reference, references by image ID, image IDs sorted for prefix search
        self._images: dict[str, ImageRecord] = {}
        self._references_by_image_id: dict[str, set[str]] = {}
        self._committed_image_ids: dict[str, str] = {}
        self._sorted_image_ids: list[str] = []

    @classmethod
    async def open(
        cls, path: str, *, synchronous: str = "normal", busy_timeout_ms: int = _DEFAULT_BUSY_TIMEOUT_MS
    ) -> Store:
        """Open (creating and migrating as needed) the database at ``path`` and load it into memory.

        ``synchronous`` is SQLite's: ``normal`` survives a crash of the process, ``full`` also a power
        loss (an fsync per commit). ``":memory:"`` opens a throwaway database without a lock file.
        """
        level = _SYNCHRONOUS_LEVELS.get(synchronous.lower())
        if level is None:
            raise ValueError(
                f"invalid synchronous {synchronous!r}: must be one of {', '.join(_SYNCHRONOUS_LEVELS)}"
            )
        in_memory = path == ":memory:"
        lock_fd = None if in_memory else await asyncio.to_thread(_prepare_files, path)
        try:
            connection = await aiosqlite.connect(path, isolation_level=None)
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        store = cls(path, connection, lock_fd)
        try:
            wal = await store._configure(level, busy_timeout_ms)
            await store._migrate()
            await store._load()
            # Outside WAL mode (a filesystem without it) even synchronous=normal syncs at commit.
            if wal and not in_memory and level in _NO_FSYNC_ON_COMMIT:
                store._inline = _inline_connection(path, level)
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        """Let writes in flight finish, then close the connection and release the lock (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        try:
            await self._db.close()  # the last connection out checkpoints the WAL into the database
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    # ------------------------------------------------------------------------ containers

    async def add_container(self, record: ContainerRecord) -> None:
        """Insert; raises Conflict (Docker's message) when the name is taken."""
        await self.add_containers([record])

    async def add_containers(self, records: Iterable[ContainerRecord]) -> None:
        """Insert many in one transaction (all or nothing); Conflict on any taken name or ID."""
        batch = list(records)
        rows = [_ContainerRow.of(record, _state_json(record)) for record in batch]

        def plan() -> _Plan:
            ids: dict[str, ContainerRecord] = {}
            names: dict[str, str] = {}
            for record in batch:
                if record.id in self._containers or record.id in ids:
                    raise Conflict(f"container {record.id} already exists")
                owner = self._container_ids_by_name.get(record.name) or names.get(record.name)
                if owner is not None:
                    raise _name_conflict(record.name, owner)
                ids[record.id] = record
                names[record.name] = record.id
            statements = [
                _Statement(
                    "INSERT INTO containers (id, name, created, status, image, image_id, record)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(r.id, r.name, r.created, r.status, r.image, r.image_id, r.record) for r in rows],
                ),
                _Statement(
                    "INSERT INTO container_labels (container_id, key, value) VALUES (?, ?, ?)",
                    [label for row in rows for label in row.label_rows()],
                ),
            ]
            return _Plan(statements, apply)

        def apply() -> None:
            for record, row in zip(batch, rows, strict=True):
                self._containers[record.id] = record
                self._container_ids_by_name[record.name] = record.id
                self._committed[record.id] = _Committed.of(record, row.labels, row.spec)
            if len(batch) == 1:
                bisect.insort(self._sorted_container_ids, batch[0].id)
            elif batch:
                self._sorted_container_ids = sorted(self._containers)

        await self._write(plan)

    async def save_container(self, record: ContainerRecord) -> None:
        """Update an existing record (all fields); raises NotFound if it was removed."""
        await self._save(record, state_only=False)

    async def save_state(self, record: ContainerRecord) -> None:
        """Write a change of the container's state: status, exit code, error, pid, start and finish
        times, restart count and ``backend_fields``; raises NotFound if it was removed.

        Cheaper than :meth:`save_container`, which encodes the whole record again: the fields that
        say what the container was created as are written as they were. If the name, image, image
        ID or creation time changed, or ``config`` or ``host_config`` is another object than last
        written, every field is written, as :meth:`save_container` does. A change made inside
        ``config`` or ``host_config`` is not seen: save those with :meth:`save_container`.
        """
        await self._save(record, state_only=True)

    async def _save(self, record: ContainerRecord, *, state_only: bool) -> None:
        state = _state_json(record)

        def plan() -> _Plan:
            committed = self._committed.get(record.id)
            if committed is None:
                raise NotFound(f"No such container: {record.id}")
            if not (state_only and committed.describes(record)):
                return self._rewrite(record, committed, state)
            document = _container_json(committed.spec_json(record), state)
            statement = _Statement(
                "UPDATE containers SET status = ?, record = ? WHERE id = ?",
                [(record.status, document, record.id)],
            )
            return _Plan([statement], lambda: self._containers.__setitem__(record.id, record))

        await self._write(plan)

    def _rewrite(self, record: ContainerRecord, committed: _Committed, state: str) -> _Plan:
        """The plan of a save that writes every field: the record is not what it was created as."""
        row = _ContainerRow.of(record, state)
        owner = self._container_ids_by_name.get(record.name)
        if owner is not None and owner != record.id:
            raise _name_conflict(record.name, owner)
        # The name is set only when it changes (a rename): setting it rewrites its UNIQUE index's
        # page too, one 4 KiB page more in the WAL for every other save.
        renamed = committed.name != row.name
        columns = ("name = ?, " if renamed else "") + "created = ?, status = ?, image = ?, image_id = ?"
        values = (row.created, row.status, row.image, row.image_id, row.record, row.id)
        statements = [
            _Statement(
                f"UPDATE containers SET {columns}, record = ? WHERE id = ?",  # noqa: S608 - fixed text
                [(row.name, *values) if renamed else values],
            )
        ]
        if committed.labels != row.labels:
            statements += [
                _Statement("DELETE FROM container_labels WHERE container_id = ?", [(row.id,)]),
                _Statement(
                    "INSERT INTO container_labels (container_id, key, value) VALUES (?, ?, ?)",
                    row.label_rows(),
                ),
            ]

        def apply() -> None:
            if committed.name != record.name:
                del self._container_ids_by_name[committed.name]
                self._container_ids_by_name[record.name] = record.id
            self._committed[record.id] = _Committed.of(record, row.labels, row.spec)
            self._containers[record.id] = record

        return _Plan(statements, apply)

    async def delete_container(self, container_id: str) -> None:
        """Remove by full ID (its labels go with it); NotFound if there is no such container."""

        def plan() -> _Plan:
            if container_id not in self._containers:
                raise NotFound(f"No such container: {container_id}")
            # The labels go with it: ON DELETE CASCADE, in the same statement.
            return _Plan([_Statement("DELETE FROM containers WHERE id = ?", [(container_id,)])], apply)

        def apply() -> None:
            del self._containers[container_id]
            del self._container_ids_by_name[self._committed.pop(container_id).name]
            index = bisect.bisect_left(self._sorted_container_ids, container_id)
            del self._sorted_container_ids[index]

        await self._write(plan)

    def resolve_container(self, ref: str) -> ContainerRecord:
        """Full ID, unique ID prefix, or name with or without "/"; NotFound ("No such container: ref")."""
        record = self._containers.get(ref)
        if record is not None:
            return record
        container_id = self._container_ids_by_name.get(ref.removeprefix("/"))
        if container_id is not None:
            return self._containers[container_id]
        matches = _prefix_matches(self._sorted_container_ids, ref)
        if len(matches) == 1:
            return self._containers[matches[0]]
        if matches:
            raise InvalidParameter(f"multiple containers found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def get_container(self, container_id: str) -> ContainerRecord | None:
        """By full ID only; None if unknown."""
        return self._containers.get(container_id)

    def containers(self) -> Iterable[ContainerRecord]:
        """All containers, newest first."""
        return sorted(self._containers.values(), key=_newest_first, reverse=True)

    # ------------------------------------------------------------------------ images

    async def save_image(self, record: ImageRecord) -> None:
        """Insert or replace the image stored under its reference, which is normalised in place."""
        record.reference = normalize_reference(record.reference)
        if not _IMAGE_ID.fullmatch(record.id):
            raise InvalidParameter(f"invalid image ID {record.id!r}: expected sha256:<64 lowercase hex>")
        document = _to_json(record, f"image {record.reference}")

        def plan() -> _Plan:
            statement = _Statement(
                "INSERT INTO images (reference, id, record) VALUES (?, ?, ?)"
                " ON CONFLICT (reference) DO UPDATE SET id = excluded.id, record = excluded.record",
                [(record.reference, record.id, document)],
            )
            return _Plan([statement], apply)

        def apply() -> None:
            self._unindex_image(record.reference)
            self._index_image(record)

        await self._write(plan)

    def resolve_image(self, ref: str) -> ImageRecord:
        """By reference in any form (alpine -> docker.io/library/alpine:latest), ID or unique ID prefix."""
        record = self._images.get(ref)
        if record is not None:
            return record
        image_id = ref if ref.startswith(_IMAGE_ID_PREFIX) else _IMAGE_ID_PREFIX + ref
        references = self._references_by_image_id.get(image_id)
        if references:
            return self._images[min(references)]
        record = self._image_by_reference(ref)
        if record is not None:
            return record
        matches = _prefix_matches(self._sorted_image_ids, image_id, skip=len(_IMAGE_ID_PREFIX))
        if len(matches) == 1:
            return self._images[min(self._references_by_image_id[matches[0]])]
        if matches:
            raise InvalidParameter(f"multiple images found with provided prefix: {ref}")
        raise NotFound(f"No such image: {ref}")

    def images(self) -> Iterable[ImageRecord]:
        """All images, by reference."""
        return [self._images[reference] for reference in sorted(self._images)]

    async def delete_image(self, reference: str) -> None:
        """Remove the image stored under ``reference`` (any accepted form of it); NotFound if none."""
        try:
            key = normalize_reference(reference)
        except InvalidParameter:
            raise NotFound(f"No such image: {reference}") from None

        def plan() -> _Plan:
            if key not in self._images:
                raise NotFound(f"No such image: {reference}")
            return _Plan([_Statement("DELETE FROM images WHERE reference = ?", [(key,)])], apply)

        def apply() -> None:
            self._unindex_image(key)

        await self._write(plan)

    def _image_by_reference(self, ref: str) -> ImageRecord | None:
        try:
            wanted = parse_reference(ref)
        except InvalidParameter:
            return None
        record = self._images.get(str(wanted))
        if record is not None or not wanted.digest:
            return record
        # Pinned by digest: any tag of the same repository whose content has that digest.
        for reference in sorted(self._images):
            candidate = self._images[reference]
            stored = parse_reference(reference)
            if stored.repository == wanted.repository and wanted.digest in (candidate.digest, stored.digest):
                return candidate
        return None

    def _index_image(self, record: ImageRecord) -> None:
        self._images[record.reference] = record
        self._committed_image_ids[record.reference] = record.id
        references = self._references_by_image_id.setdefault(record.id, set())
        if not references:
            bisect.insort(self._sorted_image_ids, record.id)
        references.add(record.reference)

    def _unindex_image(self, reference: str) -> None:
        image_id = self._committed_image_ids.pop(reference, None)
        if image_id is None:
            return
        del self._images[reference]
        references = self._references_by_image_id[image_id]
        references.discard(reference)
        if not references:
            del self._references_by_image_id[image_id]
            del self._sorted_image_ids[bisect.bisect_left(self._sorted_image_ids, image_id)]

    # ------------------------------------------------------------------------ writing

    async def _write(self, plan: Callable[[], _Plan]) -> None:
        """Check and build a write with ``plan``, commit it, then apply it to the memory index.

        ``plan`` raises if the write is refused; it has no effects of its own, so it can be run again.
        When no other write is queued and the write is one row (see :meth:`_commit`), it all happens
        here at once: nothing can come between the check and the memory update, and a caller's
        cancellation has nothing to interrupt. Otherwise it runs under the write lock as a task the
        caller's cancellation cannot interrupt either, so no transaction is ever committed in SQLite
        but missing from memory; :meth:`close` drains those in flight.
        """
        if self._closed:
            raise StoreError(f"state database {self.path} is closed")
        if not self._writes:
            ready = plan()
            single = _single_row(ready.statements)
            if single is not None and self._commit_inline(single):
                ready.apply()
                return

        async def locked() -> None:
            async with self._write_lock:
                ready = plan()
                await self._commit(*ready.statements)
                ready.apply()

        task = asyncio.ensure_future(locked())
        self._writes.add(task)
        task.add_done_callback(self._write_done)
        await asyncio.shield(task)

    def _write_done(self, task: asyncio.Task[Any]) -> None:
        self._writes.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here, re-raised to the caller if it is still waiting

    async def _commit(self, *statements: _Statement) -> None:
        """Run ``statements`` as one transaction, inline if it is one row. Callers hold the write lock."""
        single = _single_row(statements)
        if single is not None:
            if not self._commit_inline(single):
                await self._db.execute(*single)
            return
        async with self._transaction() as db:
            for statement in statements:
                if statement.rows:
                    await db.executemany(statement.sql, statement.rows)

    def _commit_inline(self, single: tuple[str, tuple[Any, ...]]) -> bool:
        """Commit a one-row write on the event loop's own connection; False if it cannot be.

        One statement with one row is atomic on its own (the connections are in autocommit mode).
        With ``synchronous=normal`` in WAL mode its commit appends a page or two to the WAL and never
        waits for the disk: about 10 µs, less than the trip to aiosqlite's thread and back costs
        (0.1-0.3 ms). The fsyncs happen at checkpoints, which run on aiosqlite's thread
        (:meth:`_inline_wrote`). Anything bigger, every write under ``synchronous=full`` (an fsync per
        commit) and a write that finds the database locked by another connection (someone's sqlite3
        shell) go to aiosqlite's thread, which waits under ``busy_timeout`` without stopping the loop.
        """
        if self._inline is None:
            return False
        try:
            self._inline.execute(*single)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                return False
            raise
        self._inline_wrote()
        return True

    def _inline_wrote(self) -> None:
        """Every so many inline writes, checkpoint the WAL on aiosqlite's thread, as SQLite's own
        auto-checkpoint would have done inline, fsyncs and all, and as often (about 1000 pages)."""
        self._inline_writes += 1
        if self._inline_writes % _CHECKPOINT_EVERY:
            return
        task = asyncio.ensure_future(self._checkpoint())
        self._writes.add(task)
        task.add_done_callback(self._write_done)

    async def _checkpoint(self) -> None:
        # Under the write lock, as SQLite's own checkpoint runs inside a commit: with no write in
        # between, it copies the whole WAL back, and the next write starts the WAL over.
        async with self._write_lock:
            try:
                async with self._db.execute("PRAGMA wal_checkpoint(PASSIVE)") as cursor:
                    await cursor.fetchall()  # a statement left open would pin the WAL it read
            except sqlite3.Error as exc:
                log.warning("state database %s: checkpoint failed: %s", self.path, exc)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any error. Callers hold the write lock."""
        db = self._db
        await db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            await db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
                await db.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------------ opening

    async def _configure(self, synchronous: str, busy_timeout_ms: int) -> bool:
        """Apply the pragmas; True when the database is in WAL mode."""
        db = self._db
        try:
            await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            async with db.execute("PRAGMA journal_mode = WAL") as cursor:
                row = await cursor.fetchone()
            await db.execute(f"PRAGMA synchronous = {synchronous}")
            await db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open state database {self.path}: {exc}") from exc
        mode = str(row[0]) if row else ""
        if mode.lower() != "wal" and self.path != ":memory:":
            log.warning(
                "state database %s: journal_mode is %s, not wal (is it on a network filesystem?)",
                self.path,
                mode,
            )
        return mode.lower() == "wal"

    async def _migrate(self) -> None:
        db = self._db
        async with db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"state database {self.path} has schema version {version}, newer than this sockerless "
                f"understands ({SCHEMA_VERSION}); upgrade sockerless or use another state path"
            )
        for migration in MIGRATIONS:
            if migration.version <= version:
                continue
            try:
                async with self._transaction():
                    for statement in migration.statements:
                        await db.execute(statement)
                    await db.execute(f"PRAGMA user_version = {int(migration.version)}")
            except sqlite3.Error as exc:
                raise StoreError(
                    f"migrating state database {self.path} to schema version {migration.version} "
                    f"({migration.description}) failed: {exc}"
                ) from exc
            log.info("state database %s: migrated to schema version %d", self.path, migration.version)

    async def _load(self) -> None:
        rows = await self._db.execute_fetchall("SELECT id, record FROM containers")
        images = await self._db.execute_fetchall("SELECT reference, record FROM images")
        with collector_paused():
            for container_id, document in rows:
                record = self._read(document, ContainerRecord, f"container {container_id}")
                self._containers[record.id] = record
                self._container_ids_by_name[record.name] = record.id
                self._committed[record.id] = _Committed.of(record, _labels(record), None)
            self._sorted_container_ids = sorted(self._containers)
            for reference, document in images:
                self._index_image(self._read(document, ImageRecord, f"image {reference}"))

    def _read(self, document: str, cls: type[_R], what: str) -> _R:
        try:
            return _record_reader.structure(json.loads(document), cls)
        except Exception as exc:
            raise StoreError(f"state database {self.path}: {what} is unreadable: {exc!r}") from exc


def _prefix_matches(sorted_ids: list[str], prefix: str, *, skip: int = 0) -> list[str]:
    """At most two IDs starting with ``prefix`` (two is enough to call it ambiguous).

    ``skip`` leading characters are a fixed namespace (``sha256:``) and do not count towards the
    minimum length; only lowercase hex can match, so other text is never looked up.
    """
    hex_part = prefix[skip:]
    if len(hex_part) < _MIN_PREFIX_LENGTH or not _HEX.fullmatch(hex_part):
        return []
    start = bisect.bisect_left(sorted_ids, prefix)
    return [candidate for candidate in sorted_ids[start : start + 2] if candidate.startswith(prefix)]
