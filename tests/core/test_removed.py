"""Removed containers against a real SQLite file: recorded with the removal, answered by ID, name and
prefix across a restart, kept while their cleanup is pending, swept with their output, migrated from
``log_removals``."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import time

import pytest

from sockerless.backend import LogLine, LogsOptions
from sockerless.config import StoreConfig
from sockerless.errors import NotFound
from sockerless.models import ContainerConfig
from sockerless.store import MIGRATIONS, SCHEMA_VERSION, RemovedContainer, Store
from tests.core.records import bare_container
from tests.core.test_logstore import FOLLOW, GRACE, QUIET, SETTLED, T0, Clock, collect, line, open_store

CID = hashlib.sha256(b"removed").hexdigest()
CLEANUP = '{"function":"skls-removed"}'


async def add_container(
    store: Store[None], name: str = "web", container_id: str = CID, *, tty: bool = False
) -> None:
    record = bare_container(name, None, id=container_id)
    record.config = ContainerConfig(tty=tty)
    record.exit_code, record.error = 3, "boom"
    await store.add_container(record)


def found(store: Store[None], ref: str) -> RemovedContainer:
    removed = store.removed_container(ref)
    assert removed is not None, f"no removed container {ref}"
    return removed


def rows(path: str, table: str) -> int:
    with sqlite3.connect(path) as raw:
        ((count,),) = raw.execute(f"SELECT count(*) FROM {table}")  # table: a fixed name of this file
    raw.close()
    return int(count)


# ---------------------------------------------------------------------------- recorded and answered


async def test_the_removal_is_recorded_with_the_delete_and_answers_by_id_name_and_prefix(
    store: Store[None], db_path: str, clock: Clock
) -> None:
    await add_container(store, tty=True)
    await store.delete_container(CID, cleanup=CLEANUP)
    removed = RemovedContainer(CID, "web", 3, "boom", True, clock.now + GRACE, CLEANUP)
    for ref in (CID, "web", "/web", CID[:3], CID[:12]):
        assert store.removed_container(ref) == removed, ref
    assert store.removed_container("nope") is None
    assert store.cleanups_pending() == [removed]
    assert (rows(db_path, "containers"), rows(db_path, "removed_containers")) == (0, 1)
    with pytest.raises(NotFound):
        store.resolve_container("web")


async def test_the_exit_given_at_the_removal_is_the_one_kept(store: Store[None]) -> None:
    await add_container(store)
    await store.delete_container(CID, exit_code=137, error="")
    assert (found(store, CID).exit_code, found(store, CID).error) == (137, "")
    assert store.cleanups_pending() == []  # nothing owed


async def test_the_name_is_free_at_once_and_the_latest_removal_of_a_name_answers(store: Store[None]) -> None:
    first, second = hashlib.sha256(b"first").hexdigest(), hashlib.sha256(b"second").hexdigest()
    await add_container(store, "job", first)
    await store.delete_container(first, exit_code=1)
    await add_container(store, "job", second)  # docker rm, then docker run --name job
    assert store.resolve_container("job").id == second
    await store.delete_container(second, exit_code=2)
    assert found(store, "job").id == second
    assert found(store, first).exit_code == 1


async def test_a_prefix_of_two_removed_containers_answers_nothing(store: Store[None]) -> None:
    one, two = "abc" + "1" * 61, "abc" + "2" * 61
    for name, container_id in (("one", one), ("two", two)):
        await add_container(store, name, container_id)
        await store.delete_container(container_id)
    assert store.removed_container("abc") is None
    assert found(store, "abc1").id == one


async def test_a_removed_container_and_its_output_outlive_a_restart(db_path: str, clock: Clock) -> None:
    store = await open_store(db_path, clock)
    await add_container(store)
    await store.logs.append(CID, [line(1)])
    await store.delete_container(CID, cleanup=CLEANUP)
    await store.close()

    store = await open_store(db_path, clock)
    try:
        for ref in (CID, "web", CID[:8]):
            assert found(store, ref).exit_code == 3
        assert [removed.id for removed in store.cleanups_pending()] == [CID]
        assert await collect(store.logs.lines(CID, LogsOptions())) == [line(1)]
        assert await collect(store.logs.lines(CID, FOLLOW)) == [line(1)]  # removed: no follow
    finally:
        await store.close()


async def test_a_create_that_failed_is_not_remembered(store: Store[None], db_path: str) -> None:
    await add_container(store)
    await store.logs.append(CID, [line(1)])
    await store.delete_container(CID, remember=False)
    assert store.removed_container(CID) is None and store.removed_container("web") is None
    assert await store.logs.read(CID) == []
    assert (rows(db_path, "removed_containers"), rows(db_path, "log_entries")) == (0, 0)
    with pytest.raises(NotFound):
        await store.delete_container(CID, remember=False)


# ---------------------------------------------------------------------------- output and the sweep


async def test_its_followers_end_and_its_output_stays_readable_for_the_grace_period(
    store: Store[None], db_path: str, clock: Clock
) -> None:
    await add_container(store)
    store.logs.open_output(CID)
    await store.logs.append(CID, [line(1)])
    following = asyncio.ensure_future(collect(store.logs.lines(CID, FOLLOW)))
    await store.delete_container(CID)
    assert await asyncio.wait_for(following, SETTLED) == [line(1)]  # its followers end

    clock.now += GRACE - 1
    await store.sweep_removed()
    assert await store.logs.read(CID) == [(1, line(1))]
    assert await collect(store.logs.lines(CID, LogsOptions(tail=1))) == [line(1)]
    clock.now += 2
    assert store.removed_container(CID) is None  # expired: no longer answered, even before the sweep
    await store.sweep_removed()
    assert await store.logs.read(CID) == []
    assert (rows(db_path, "log_entries"), rows(db_path, "removed_containers")) == (0, 0)


async def test_what_expired_while_the_backend_was_down_goes_at_open(db_path: str, clock: Clock) -> None:
    store = await open_store(db_path, clock)
    await add_container(store)
    await store.logs.append(CID, [line(1)])
    await store.delete_container(CID)
    await store.close()

    clock.now += GRACE + 1
    store = await open_store(db_path, clock)
    assert await store.logs.read(CID) == []
    await store.close()
    assert (rows(db_path, "log_entries"), rows(db_path, "removed_containers")) == (0, 0)


async def test_a_pending_cleanup_keeps_a_removed_container_past_its_expiry_until_done(
    db_path: str, clock: Clock
) -> None:
    store = await open_store(db_path, clock)
    await add_container(store)
    await store.logs.append(CID, [line(1)])
    await store.delete_container(CID, cleanup=CLEANUP)
    clock.now += GRACE + 1
    await store.sweep_removed()
    assert store.removed_container(CID) is None  # expired: not answered any more
    assert [removed.id for removed in store.cleanups_pending()] == [CID]  # but still owed
    assert await store.logs.read(CID) == [(1, line(1))]
    await store.close()

    store = await open_store(db_path, clock)  # the open's sweep keeps it too
    assert [removed.id for removed in store.cleanups_pending()] == [CID]
    await store.cleanup_done(CID)
    assert store.cleanups_pending() == []
    await store.sweep_removed()
    assert await store.logs.read(CID) == []
    await store.close()
    assert (rows(db_path, "log_entries"), rows(db_path, "removed_containers")) == (0, 0)


async def test_the_store_sweeps_by_itself_at_expiry_and_when_a_cleanup_is_done(db_path: str) -> None:
    config = StoreConfig(removed_grace_seconds=0.05)
    store = await Store.open(db_path, state_class=type(None), config=config, clock=time.time)
    try:
        other = hashlib.sha256(b"other").hexdigest()
        for name, container_id, cleanup in (("web", CID, ""), ("db", other, CLEANUP)):
            await add_container(store, name, container_id)
            await store.logs.append(container_id, [line(1)])
            await store.delete_container(container_id, cleanup=cleanup)

        async def swept(container_id: str) -> None:
            while await store.logs.read(container_id):
                await asyncio.sleep(0.01)

        async def expired(container_id: str) -> None:
            while store.removed_container(container_id) is not None:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(swept(CID), SETTLED)
        await asyncio.wait_for(expired(other), SETTLED)
        await store.sweep_removed()
        assert await store.logs.read(other) == [(1, line(1))]  # its cleanup is pending
        await store.cleanup_done(other)
        await asyncio.wait_for(swept(other), SETTLED)  # woken by the cleanup's end, not a timeout
    finally:
        await store.close()
    assert (rows(db_path, "log_entries"), rows(db_path, "removed_containers")) == (0, 0)


async def test_a_large_removed_output_is_deleted_whole(
    store: Store[None], db_path: str, clock: Clock
) -> None:
    await add_container(store)
    await store.logs.append(CID, [LogLine(1, T0, b"") for _ in range(25_000)])
    other = hashlib.sha256(b"other").hexdigest()
    await store.logs.append(other, [line(1)])
    await store.delete_container(CID)
    clock.now += GRACE
    await store.sweep_removed()
    assert await store.logs.read(CID) == []
    assert await store.logs.read(other) == [(1, line(1))]
    assert rows(db_path, "removed_containers") == 0


async def test_a_container_that_never_wrote_is_remembered_without_output(
    store: Store[None], db_path: str
) -> None:
    await add_container(store)
    store.logs.open_output(CID)
    store.logs.close_output(CID)
    await store.delete_container(CID)
    assert found(store, CID).exit_code == 3
    assert (rows(db_path, "log_entries"), rows(db_path, "removed_containers")) == (0, 1)


async def test_output_arriving_after_the_removal_is_not_kept(
    store: Store[None], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sockerless.store.logs")
    await add_container(store)
    await store.logs.append(CID, [line(1)])
    await store.delete_container(CID)
    await store.logs.append(CID, [line(2)])
    assert await store.logs.read(CID) == [(1, line(1))]
    assert f"container {CID} was removed: 1 entries of output arriving after it were not kept" in caplog.text


# ---------------------------------------------------------------------------- migration


def write_version_3_database(path: str, removals: list[tuple[str, float]]) -> None:
    """A database at schema version 3, as the released migrations make it, with output and removals
    recorded the way version 3 did (``log_removals``: an ID and when its output expires)."""
    with sqlite3.connect(path) as raw:
        for migration in MIGRATIONS[:3]:
            for statement in migration.statements:
                raw.execute(statement)
        raw.execute("PRAGMA user_version = 3")
        for container_id, expires_at in removals:
            raw.execute(
                "INSERT INTO log_entries (container_id, seq, stream, time_ns, data) VALUES (?, 1, 1, 0, ?)",
                (container_id, b"kept\n"),
            )
            raw.execute(
                "INSERT INTO log_removals (container_id, expires_at) VALUES (?, ?)",
                (container_id, expires_at),
            )
    raw.close()


async def test_log_removals_of_version_3_become_removed_containers(db_path: str, clock: Clock) -> None:
    expired = hashlib.sha256(b"expired").hexdigest()
    write_version_3_database(db_path, [(CID, clock.now + 100), (expired, clock.now - 1)])

    store = await open_store(db_path, clock)
    try:
        removed = found(store, CID)
        assert (removed.name, removed.tty, removed.expires_at, removed.cleanup) == (
            "",
            False,
            clock.now + 100,
            "",
        )
        assert (removed.exit_code, removed.error) == (
            255,
            "the exit status of this container was not kept (it was removed by an older sockerless)",
        )
        assert [entry.data for _, entry in await store.logs.read(CID)] == [b"kept\n"]
        assert (
            store.removed_container(expired) is None and await store.logs.read(expired) == []
        )  # swept at open
        assert store.cleanups_pending() == []
    finally:
        await store.close()
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        tables = {name for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    raw.close()
    assert "log_removals" not in tables and "removed_containers" in tables


async def test_a_removal_while_the_runs_output_is_completing_keeps_it_open_until_closed(
    store: Store[None],
) -> None:
    await add_container(store)
    store.logs.open_output(CID)
    await store.logs.append(CID, [line(1)])
    following = asyncio.ensure_future(collect(store.logs.lines(CID, FOLLOW)))
    await store.delete_container(CID, output_completing=True)
    await store.logs.append(CID, [line(2)])  # still arriving after the removal: kept
    done, _ = await asyncio.wait([following], timeout=QUIET)
    assert not done  # its follower reads on
    assert found(store, CID).exit_code == 3
    store.logs.close_output(CID)
    assert await asyncio.wait_for(following, SETTLED) == [line(1), line(2)]
    await store.logs.append(CID, [line(3)])  # closed: now like any removed container's
    assert [entry for _, entry in await store.logs.read(CID)] == [line(1), line(2)]
