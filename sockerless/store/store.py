"""The state store: containers and images, durable in SQLite, indexed in memory, and their output.

Reads are synchronous and served from the memory index loaded at :meth:`Store.open`. A write is
checked against memory, committed to SQLite, and only then applied to memory, all under one writer
lock and as a task a cancelled caller cannot cut short (see :class:`~sockerless.store.database.Database`).
See ``docs/store.md`` for the schema, the durability guarantees and the resolution rules.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Final, Generic

from attrs import define, field

from sockerless.config import StoreConfig
from sockerless.errors import Conflict, InvalidParameter, NotFound
from sockerless.references import normalize_reference
from sockerless.store.containers import (
    ContainerCodec,
    ContainerIndex,
    check_container,
    check_name,
    name_conflict,
)
from sockerless.store.database import Database, Plan, Statement, StoreError
from sockerless.store.images import ImageIndex, check_image, decode_image, encode_image
from sockerless.store.logs import LogStore
from sockerless.store.objects import BackendObjects
from sockerless.store.records import ContainerRecord, ImageRecord, S
from sockerless.store.removed import RemovedContainer, RemovedContainers

__all__ = ["DEFAULT_BUSY_TIMEOUT_MS", "Store"]

DEFAULT_BUSY_TIMEOUT_MS: Final = 5000
_DEFAULT_CONFIG: Final = StoreConfig()

#: The columns in the order of ``ContainerCodec.row`` and ``ContainerCodec.record``.
_INSERT_CONTAINER: Final = (
    "INSERT INTO containers (id, name, created, status, image, image_id, spec, state, backend)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_CONTAINERS: Final = (
    "SELECT id, name, created, status, image, image_id, spec, state, backend FROM containers"
)
_INSERT_LABEL: Final = "INSERT INTO container_labels (container_id, key, value) VALUES (?, ?, ?)"
#: The state of a container's record, as :meth:`Store.save_state` writes it (copied onto the indexed
#: record when the caller saved another object for the same container).
_STATE_FIELDS: Final = (
    "status",
    "exit_code",
    "error",
    "pid",
    "started_at",
    "finished_at",
    "restart_count",
    "backend_state",
)


@define
class Store(Generic[S]):
    """One backend's state: a single-writer SQLite file with its memory index, ``logs``, the
    containers' output (see :class:`~sockerless.store.logs.LogStore`), and the removed containers
    (see :class:`~sockerless.store.removed.RemovedContainers`). Made by :meth:`open`."""

    _db: Database
    _codec: ContainerCodec[S]
    _containers: ContainerIndex[S]
    _images: ImageIndex
    logs: LogStore
    _removed: RemovedContainers
    #: Documents the backend keeps beside its containers (:class:`~sockerless.store.objects.BackendObjects`).
    objects: BackendObjects
    #: Counts the writes of containers (add, state, rename, delete): what is derived from many of
    #: them, such as a cached list (:class:`sockerless.views.ViewCache`), is current while it holds.
    containers_revision: int = field(default=0, init=False)

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        state_class: type[S],
        config: StoreConfig = _DEFAULT_CONFIG,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        clock: Callable[[], float] = time.time,
    ) -> Store[S]:
        """Open (creating and migrating as needed) the database at ``path`` and load it into memory.

        ``state_class`` is the backend's own per-container state (``type(None)`` for none); from
        ``config`` the store takes ``synchronous``, the output's limit and the removed containers'
        grace period (its ``path`` is the caller's to resolve). ``clock`` (wall-clock seconds) times
        the removed containers. ``":memory:"`` opens a throwaway database without a lock file.
        """
        database = await Database.open(path, synchronous=config.synchronous, busy_timeout_ms=busy_timeout_ms)
        removed: RemovedContainers | None = None
        try:
            codec = ContainerCodec(state_class)
            containers = ContainerIndex(await _load_containers(database, codec))
            images = await _load_images(database)
            logs = LogStore(database, config)
            removed = RemovedContainers(database, logs, grace=config.removed_grace_seconds, clock=clock)
            objects = await BackendObjects.load(database)
            await removed.start()
        except BaseException:
            if removed is not None:
                await removed.close()
            await database.close()
            raise
        return cls(database, codec, containers, images, logs, removed, objects)

    @property
    def path(self) -> str:
        return self._db.path

    async def close(self) -> None:
        """End the followers and the sweep, let writes in flight finish, close the file (idempotent)."""
        await self._removed.close()
        await self.logs.close()
        await self._db.close()

    # ------------------------------------------------------------------------ containers

    async def add_container(self, record: ContainerRecord[S]) -> None:
        """Insert; ``Conflict`` (Docker's message) when the name is taken."""
        await self.add_containers([record])

    async def add_containers(self, records: Iterable[ContainerRecord[S]]) -> None:
        """Insert many in one transaction (all or nothing); ``Conflict`` on any taken name or ID."""
        batch = list(records)
        for record in batch:
            check_container(record)
        rows = [self._codec.row(record) for record in batch]
        labels = [(record.id, key, value) for record in batch for key, value in sorted(record.labels.items())]

        def plan() -> Plan[None]:
            ids: set[str] = set()
            names: dict[str, str] = {}
            for record in batch:
                if record.id in self._containers or record.id in ids:
                    raise Conflict(f"container {record.id} already exists")
                owner = self._containers.owner_of(record.name) or names.get(record.name)
                if owner is not None:
                    raise name_conflict(record.name, owner)
                ids.add(record.id)
                names[record.name] = record.id
            statements = [Statement(_INSERT_CONTAINER, rows), Statement(_INSERT_LABEL, labels)]

            def apply() -> None:
                self._containers.add(batch)
                self.containers_revision += 1

            return Plan(statements, apply)

        await self._db.write(plan)

    async def save_state(self, record: ContainerRecord[S]) -> None:
        """Write the container's state: status, exit code, error, pid, times, restart count and
        ``backend_state``. What it was created as is never written again (Docker cannot change it;
        a rename is :meth:`rename_container`). ``NotFound`` if it was removed."""
        record.revision += 1  # what was derived from it is out of date from now on
        self.containers_revision += 1
        state, backend = self._codec.state(record)

        def plan() -> Plan[None]:
            indexed = self._containers.get(record.id)
            if indexed is None:
                raise NotFound(f"No such container: {record.id}")
            statement = Statement(
                "UPDATE containers SET status = ?, state = ?, backend = ? WHERE id = ?",
                [(record.status, state, backend, record.id)],
            )
            return Plan([statement], lambda: _adopt_state(indexed, record))

        await self._db.write(plan)

    async def rename_container(self, record: ContainerRecord[S], new_name: str) -> None:
        """Give the container ``new_name`` (without "/"); ``Conflict`` if another holds it."""
        check_name(new_name)

        def plan() -> Plan[None]:
            if record.id not in self._containers:
                raise NotFound(f"No such container: {record.id}")
            if self._containers.name_of(record.id) == new_name:
                raise InvalidParameter("Renaming a container with the same name as its current name")
            owner = self._containers.owner_of(new_name)
            if owner is not None:
                raise name_conflict(new_name, owner)
            statement = Statement("UPDATE containers SET name = ? WHERE id = ?", [(new_name, record.id)])

            def apply() -> None:
                self._containers.rename(record.id, new_name)
                record.name = new_name
                record.revision += 1
                self.containers_revision += 1

            return Plan([statement], apply)

        await self._db.write(plan)

    async def delete_container(
        self,
        container_id: str,
        *,
        exit_code: int | None = None,
        error: str | None = None,
        cleanup: str = "",
        remember: bool = True,
        output_completing: bool = False,
    ) -> None:
        """Remove by full ID, its labels with it, and record the removed container in the same
        transaction (see :meth:`removed_container`): its name, its last exit (``exit_code`` and
        ``error``, the record's unless given), its Tty flag, when it expires, and ``cleanup``, the cloud
        cleanup the backend still owes ('' for none). Its output stays readable by ID until it expires.

        ``remember=False`` is for a container the client never got (its create failed): nothing is
        recorded and its output, if any, goes with it. ``NotFound`` if there is no such container.

        ``output_completing=True`` is for a container removed as its run ended (auto-remove) while
        that run's output is still arriving: its open output stays open, appends land and followers
        read on until the backend closes it. Otherwise the removal ends its followers.
        """
        if not remember:
            if container_id not in self._containers:
                raise NotFound(f"No such container: {container_id}")
            await self.logs.delete(container_id, lambda: self._deletion(container_id, []))
            return

        def plan() -> Plan[None]:
            record = self._containers.get(container_id)
            if record is None:
                raise NotFound(f"No such container: {container_id}")
            removal = self._removed.removal(
                container_id,
                name=self._containers.name_of(container_id),
                tty=record.config.tty,
                exit_code=record.exit_code if exit_code is None else exit_code,
                error=record.error if error is None else error,
                cleanup=cleanup,
                output_completing=output_completing,
            )
            return self._deletion(container_id, [removal])

        await self._db.write(plan)

    def _deletion(self, container_id: str, with_plans: list[Plan[None]]) -> Plan[None]:
        """The delete of a container's row (its labels go with it: ON DELETE CASCADE), with ``with_plans``."""
        if container_id not in self._containers:
            raise NotFound(f"No such container: {container_id}")
        delete = Statement("DELETE FROM containers WHERE id = ?", [(container_id,)])

        def apply() -> None:
            self._containers.remove(container_id)
            for plan in with_plans:
                plan.apply()
            self.containers_revision += 1

        return Plan([delete, *(statement for plan in with_plans for statement in plan.statements)], apply)

    def removed_container(self, ref: str) -> RemovedContainer | None:
        """A container removed within ``store.removed_grace_seconds``, by full ID, name with or without
        "/" (its latest removal) or unique ID prefix; None if there is none. Look for a container
        first: its name may have been taken again since."""
        return self._removed.find(ref)

    def cleanups_pending(self) -> list[RemovedContainer]:
        """The removed containers whose cloud cleanup is still to do (expired ones included), oldest first."""
        return self._removed.pending()

    async def cleanup_done(self, container_id: str) -> None:
        """The backend has done the removed container's cleanup: it is deleted once it expires."""
        await self._removed.cleanup_done(container_id)

    async def sweep_removed(self) -> None:
        """Delete the removed containers that have expired and whose cleanup is done, with their
        output (a background task of the store does it by itself at each expiry)."""
        await self._removed.sweep()

    def resolve_container(self, ref: str) -> ContainerRecord[S]:
        """Full ID, name with or without "/", or unique ID prefix; ``NotFound`` ("No such container")."""
        return self._containers.resolve(ref)

    def get_container(self, container_id: str) -> ContainerRecord[S] | None:
        """By full ID only; None if unknown."""
        return self._containers.get(container_id)

    def containers(self) -> list[ContainerRecord[S]]:
        """All containers, newest first (a new list)."""
        return self._containers.newest_first()

    # ------------------------------------------------------------------------ images

    async def save_image(self, record: ImageRecord) -> None:
        """Insert or replace the image stored under its reference, which is normalised in place."""
        check_image(record)
        statement = Statement(
            "INSERT INTO images (reference, id, record) VALUES (?, ?, ?)"
            " ON CONFLICT (reference) DO UPDATE SET id = excluded.id, record = excluded.record",
            [(record.reference, record.id, encode_image(record))],
        )
        await self._db.write(lambda: Plan([statement], lambda: self._images.put(record)))

    def resolve_image(self, ref: str) -> ImageRecord:
        """By reference in any form (alpine -> docker.io/library/alpine:latest), ID or unique ID prefix."""
        return self._images.resolve(ref)

    def images(self) -> list[ImageRecord]:
        """All images, by reference."""
        return self._images.by_reference()

    def images_with_id(self, image_id: str) -> list[ImageRecord]:
        """The images stored under each reference to ``image_id``, by reference ([] if none)."""
        return self._images.with_id(image_id)

    async def delete_image(self, reference: str) -> None:
        """Remove the image stored under ``reference`` (any spelling of it); ``NotFound`` if none."""
        await self.delete_images([reference])

    async def delete_images(self, references: list[str]) -> None:
        """Remove the images stored under ``references`` in one transaction (all or none);
        ``NotFound`` naming the first that is not stored."""
        keys: list[str] = []
        for reference in references:
            try:
                keys.append(normalize_reference(reference))
            except InvalidParameter:
                raise NotFound(f"No such image: {reference}") from None

        def plan() -> Plan[None]:
            for key, reference in zip(keys, references, strict=True):
                if key not in self._images:
                    raise NotFound(f"No such image: {reference}")
            statement = Statement("DELETE FROM images WHERE reference = ?", [(key,) for key in keys])

            def apply() -> None:
                for key in keys:
                    self._images.remove(key)

            return Plan([statement], apply)

        await self._db.write(plan)


def _adopt_state(indexed: ContainerRecord[S], saved: ContainerRecord[S]) -> None:
    """Memory holds what was committed: the state just saved, on the record the index serves."""
    if indexed is not saved:
        for name in _STATE_FIELDS:
            setattr(indexed, name, getattr(saved, name))
        indexed.revision += 1


async def _load_containers(database: Database, codec: ContainerCodec[S]) -> list[ContainerRecord[S]]:
    records = []
    for row in await database.fetch(_SELECT_CONTAINERS):
        try:
            records.append(codec.record(row))
        except (ValueError, TypeError) as exc:
            raise StoreError(
                f"state database {database.path}: container {row[0]} is unreadable: {exc}"
            ) from exc
    return records


async def _load_images(database: Database) -> ImageIndex:
    images = ImageIndex()
    for reference, document in await database.fetch("SELECT reference, record FROM images"):
        try:
            images.put(decode_image(document))
        except ValueError as exc:
            raise StoreError(
                f"state database {database.path}: image {reference} is unreadable: {exc}"
            ) from exc
    return images
