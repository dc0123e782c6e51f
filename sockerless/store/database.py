"""The SQLite file under the store: its lock and permissions, its pragmas, its migrations, and the one
way every write goes (checked, committed, then applied to memory, whoever is cancelled meanwhile).

Every SQLite call goes through one aiosqlite connection, so nothing touches the disk on the event
loop's thread. That connection sees its own open transaction; reads therefore take the same lock as
writes and never observe a write that is half done or later rolled back.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, Final, Generic, TypeVar

import aiosqlite
from attrs import frozen

from sockerless.store.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["SYNCHRONOUS_LEVELS", "Database", "Plan", "Statement", "StoreError"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ``StoreConfig.synchronous`` -> SQLite's level.
SYNCHRONOUS_LEVELS: Final = {"normal": "NORMAL", "full": "FULL"}

Row = tuple[Any, ...]


class StoreError(Exception):
    """The state database cannot be used: locked by another process, too new, unreadable, or closed."""


@frozen
class Statement:
    """One SQL statement of a write, run once per parameter row (with no rows it is not run)."""

    sql: str
    rows: Sequence[Row]


@frozen
class Plan(Generic[T]):
    """A checked write: the statements that make it, and what changes in memory once they are committed.

    Building a plan has no effect of its own, so a refused write (``NotFound``, ``Conflict``) leaves
    nothing behind, and ``apply`` runs only after ``COMMIT`` returned.
    """

    statements: Sequence[Statement]
    apply: Callable[[], T]


class Database:
    """One aiosqlite connection to the state file, held by one process (``<path>.lock``)."""

    def __init__(self, path: str, connection: aiosqlite.Connection, lock_fd: int | None) -> None:
        """Use :meth:`open`."""
        self.path = path
        self._connection = connection
        self._lock_fd = lock_fd
        self._lock = asyncio.Lock()
        self._writes: set[asyncio.Task[Any]] = set()
        self._closed = False

    @classmethod
    async def open(cls, path: str, *, synchronous: str, busy_timeout_ms: int) -> Database:
        """Create (0700 directory, 0600 file), lock, configure and migrate the file at ``path``.

        ``":memory:"`` is a throwaway database without a lock file.
        """
        level = SYNCHRONOUS_LEVELS.get(synchronous.lower())
        if level is None:
            raise ValueError(
                f"invalid synchronous {synchronous!r}: must be one of {', '.join(SYNCHRONOUS_LEVELS)}"
            )
        lock_fd = None if path == ":memory:" else await asyncio.to_thread(_prepare_files, path)
        try:
            connection = await aiosqlite.connect(path, isolation_level=None)
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        database = cls(path, connection, lock_fd)
        try:
            await database._configure(level, busy_timeout_ms)
            await database._migrate()
        except BaseException:
            await database.close()
            raise
        return database

    async def fetch(self, sql: str, parameters: Sequence[Any] = ()) -> list[Row]:
        """The rows of one query, as committed: it waits for a write in progress to finish."""
        async with self._lock:
            self._check_open()
            return [tuple(row) for row in await self._connection.execute_fetchall(sql, parameters)]

    async def write(self, plan: Callable[[], Plan[T]]) -> T:
        """Check, commit and apply one write; see :meth:`submit`."""
        return await asyncio.shield(self.submit(plan))

    def submit(self, plan: Callable[[], Plan[T]]) -> asyncio.Task[T]:
        """Start a write: under the writer lock, ``plan`` checks it against memory and says what to
        write; the statements are committed as one transaction; then the plan is applied to memory.

        It runs as a task of its own, which the caller may shield (see :meth:`write`): a caller
        cancelled mid-way does not stop it, so SQLite and memory never disagree. :meth:`close`
        waits for the writes in flight.
        """
        self._check_open()
        task = asyncio.ensure_future(self._run(plan))
        self._writes.add(task)
        task.add_done_callback(self._write_done)
        return task

    async def close(self) -> None:
        """Let writes in flight finish, then close the connection and release the lock (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        try:
            async with self._lock:  # a read in progress finishes first
                await self._connection.close()  # the last connection out checkpoints the WAL into the file
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    # ------------------------------------------------------------------------ writing

    async def _run(self, plan: Callable[[], Plan[T]]) -> T:
        async with self._lock:
            ready = plan()
            await self._commit(ready.statements)
            return ready.apply()

    def _write_done(self, task: asyncio.Task[Any]) -> None:
        self._writes.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here; re-raised to the caller if it is still waiting

    async def _commit(self, statements: Iterable[Statement]) -> None:
        work = [statement for statement in statements if statement.rows]
        if len(work) == 1 and len(work[0].rows) == 1:
            # One statement is atomic on its own in autocommit mode: one trip to the thread, not three.
            await self._connection.execute(work[0].sql, work[0].rows[0])
            return
        if work:
            async with self._transaction():
                for statement in work:
                    await self._connection.executemany(statement.sql, statement.rows)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error. Callers hold the lock."""
        await self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield
            await self._connection.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
                await self._connection.execute("ROLLBACK")
            raise

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"state database {self.path} is closed")

    # ------------------------------------------------------------------------ opening

    async def _configure(self, level: str, busy_timeout_ms: int) -> None:
        db = self._connection
        try:
            await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            rows = await db.execute_fetchall("PRAGMA journal_mode = WAL")
            await db.execute(f"PRAGMA synchronous = {level}")
            await db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open state database {self.path}: {exc}") from exc
        mode = str(next(iter(rows))[0]).lower()
        if mode != "wal" and self.path != ":memory:":
            log.warning(
                "state database %s: journal_mode is %s, not wal (is it on a network filesystem?)",
                self.path,
                mode,
            )

    async def _migrate(self) -> None:
        rows = await self._connection.execute_fetchall("PRAGMA user_version")
        version = int(next(iter(rows))[0])
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
                        await self._connection.execute(statement)
                    await self._connection.execute(f"PRAGMA user_version = {int(migration.version)}")
            except sqlite3.Error as exc:
                raise StoreError(
                    f"migrating state database {self.path} to schema version {migration.version} "
                    f"({migration.description}) failed: {exc}"
                ) from exc
            log.info("state database %s: migrated to schema version %d", self.path, migration.version)


# ---------------------------------------------------------------------------- files and locking


def _secure_file(path: str) -> None:
    """Owner-only permissions; a file another user owns is left alone with a warning."""
    try:
        os.chmod(path, 0o600)
    except PermissionError:
        log.warning("cannot restrict permissions of %s to 0600", path)


def _prepare_files(path: str) -> int:
    """Create the directory (0700) and the database file (0600); lock ``<path>.lock``; return its fd.

    State holds environment variables, which can be secrets; and the memory index would go stale
    under a second writer, so a second backend on the same file is refused rather than waited for.
    """
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
