"""The state store against real SQLite files: records, resolution, durability, migrations, references."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import hashlib
import json
import os
import signal
import sqlite3
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from sockerless.errors import Conflict, InvalidParameter, NotFound
from sockerless.models import ContainerConfig, HostConfig, LogConfig, converter
from sockerless.references import parse_reference
from sockerless.store import (
    SCHEMA_VERSION,
    ContainerRecord,
    ImageRecord,
    Store,
    StoreError,
    normalize_reference,
)
from sockerless.waiters import ExitStatus

BASE_TIME = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
DIGEST = "sha256:" + "d" * 64


def container_id(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def image_id(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def make_container(
    name: str,
    *,
    id: str | None = None,
    age: int = 0,
    labels: dict[str, str] | None = None,
) -> ContainerRecord:
    """A container created ``age`` seconds after BASE_TIME, with an ID derived from its name."""
    return ContainerRecord(
        id=id or container_id(name),
        name=name,
        created=BASE_TIME + dt.timedelta(seconds=age),
        image="alpine",
        config=ContainerConfig(image="alpine", cmd=["echo", name], labels=labels),
        host_config=HostConfig(memory=256 * 1024 * 1024),
    )


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "state" / "sockerless.db")


@pytest.fixture
async def store(db_path: str) -> AsyncIterator[Store]:
    opened = await Store.open(db_path)
    yield opened
    await opened.close()


async def reopen(store: Store) -> Store:
    await store.close()
    return await Store.open(store.path)


# ---------------------------------------------------------------------------- containers: CRUD


async def test_added_container_is_readable_at_once(store: Store) -> None:
    record = make_container("web")
    await store.add_container(record)
    assert store.get_container(record.id) is record
    assert store.resolve_container("web") is record
    assert list(store.containers()) == [record]


async def test_containers_are_listed_newest_first(store: Store) -> None:
    records = [make_container(f"c{age}", age=age) for age in (5, 1, 9, 3)]
    for record in records:
        await store.add_container(record)
    assert [r.name for r in store.containers()] == ["c9", "c5", "c3", "c1"]


async def test_every_field_survives_save_and_reopen(store: Store) -> None:
    record = make_container("worker", labels={"team": "ci"})
    await store.add_container(record)
    record.status = "exited"
    record.exit_code = 3
    record.error = "task timed out"
    record.pid = 42
    record.image_id = image_id("alpine")
    record.started_at = BASE_TIME + dt.timedelta(seconds=1, microseconds=123456)
    record.finished_at = BASE_TIME + dt.timedelta(seconds=2)
    record.restart_count = 2
    record.host_config.log_config = LogConfig(type="awslogs", config={"awslogs-group": "/x"})
    record.backend_fields = {
        "function_name": "skls-worker",
        "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:skls-worker",
        "invocation": {"status": "failed", "request_id": "r-1", "log_stream": "2026/01/01/[$LATEST]abc"},
    }
    await store.save_container(record)

    store = await reopen(store)
    loaded = store.get_container(record.id)
    assert loaded == record
    assert loaded is not record
    await store.close()


SAVES = pytest.mark.parametrize("save", ["save_container", "save_state"])


@SAVES
async def test_save_of_a_removed_container_is_not_found(store: Store, save: str) -> None:
    record = make_container("gone")
    await store.add_container(record)
    await store.delete_container(record.id)
    with pytest.raises(NotFound, match=f"No such container: {record.id}"):
        await getattr(store, save)(record)


async def test_deleted_container_is_gone_after_reopen(store: Store) -> None:
    keep, drop = make_container("keep"), make_container("drop", labels={"a": "b"})
    await store.add_containers([keep, drop])
    await store.delete_container(drop.id)
    assert store.get_container(drop.id) is None
    with pytest.raises(NotFound):
        store.resolve_container("drop")

    store = await reopen(store)
    assert [r.id for r in store.containers()] == [keep.id]
    await store.add_container(make_container("drop", id=container_id("new drop")))  # the name is free again
    await store.close()


async def test_delete_of_an_unknown_container_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="No such container: " + "f" * 64):
        await store.delete_container("f" * 64)


async def test_taken_name_is_a_conflict_with_dockers_message(store: Store) -> None:
    first = make_container("web")
    await store.add_container(first)
    with pytest.raises(Conflict) as caught:
        await store.add_container(make_container("web", id=container_id("other")))
    assert caught.value.message == (
        f'Conflict. The container name "/web" is already in use by container "{first.id}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )
    assert list(store.containers()) == [first]


async def test_duplicate_id_is_a_conflict(store: Store) -> None:
    record = make_container("one")
    await store.add_container(record)
    with pytest.raises(Conflict, match="already exists"):
        await store.add_container(make_container("two", id=record.id))


def stored_json(path: str, record_id: str) -> str:
    with sqlite3.connect(path) as raw:
        ((document,),) = raw.execute("SELECT record FROM containers WHERE id = ?", (record_id,))
    return str(document)


def change_state(record: ContainerRecord) -> None:
    record.status = "exited"
    record.exit_code = 3
    record.started_at = BASE_TIME + dt.timedelta(seconds=1)
    record.finished_at = BASE_TIME + dt.timedelta(seconds=2, microseconds=5)
    record.backend_fields = {"function_name": "skls-x", "invocation": {"status": "done", "tail": "é\n"}}


async def test_save_state_writes_the_same_record_as_a_full_save(store: Store) -> None:
    record = make_container("worker", labels={"team": "ci"})
    await store.add_container(record)
    change_state(record)
    await store.save_state(record)
    by_state = stored_json(store.path, record.id)
    await store.save_container(record)
    assert by_state == stored_json(store.path, record.id)
    record.status = "removing"
    await store.save_state(record)
    assert json.loads(stored_json(store.path, record.id))["status"] == "removing"
    store = await reopen(store)
    assert store.get_container(record.id) == record
    await store.close()


async def test_save_state_after_a_reopen_keeps_the_rest_of_the_record(store: Store) -> None:
    record = make_container("worker", labels={"team": "ci"})
    record.host_config.log_config = LogConfig(type="awslogs", config={"awslogs-group": "/x"})
    await store.add_container(record)
    store = await reopen(store)
    loaded = store.get_container(record.id)
    assert loaded is not None
    change_state(loaded)
    change_state(record)
    await store.save_state(loaded)  # the created-as part is encoded from the loaded record
    store = await reopen(store)
    assert store.get_container(record.id) == record
    await store.close()


async def test_save_state_writes_everything_when_the_config_object_was_replaced(store: Store) -> None:
    record = make_container("worker", labels={"team": "ci"})
    await store.add_container(record)
    record.config = attrs.evolve(record.config, labels={"team": "web"})
    record.status = "running"
    await store.save_state(record)
    assert label_rows(store.path, "team", "ci") == []
    assert label_rows(store.path, "team", "web") == ["worker"]
    store = await reopen(store)
    assert store.get_container(record.id) == record
    await store.close()


async def test_save_state_does_not_see_a_change_inside_the_config(store: Store) -> None:
    """As documented: save_state is for the state; a change inside config needs save_container."""
    record = make_container("worker", labels={"team": "ci"})
    await store.add_container(record)
    record.config.labels = {"team": "web"}
    await store.save_state(record)
    assert label_rows(store.path, "team", "ci") == ["worker"]
    await store.save_container(record)
    assert label_rows(store.path, "team", "web") == ["worker"]


async def test_save_state_refuses_backend_fields_that_are_not_json(store: Store) -> None:
    record = make_container("worker")
    await store.add_container(record)
    record.backend_fields = {"when": dt.datetime.now(dt.UTC)}
    with pytest.raises(TypeError, match="cannot be stored"):
        await store.save_state(record)
    record.backend_fields = {}
    store = await reopen(store)
    assert store.get_container(record.id) == record
    await store.close()


@SAVES
async def test_rename_frees_the_old_name_and_takes_the_new(store: Store, save: str) -> None:
    record = make_container("before")
    await store.add_container(record)
    record.name = "after"
    await getattr(store, save)(record)  # save_state sees the new name and writes everything
    assert store.resolve_container("/after") is record
    with pytest.raises(NotFound):
        store.resolve_container("before")
    await store.add_container(make_container("before", id=container_id("reuse")))
    store = await reopen(store)
    assert store.resolve_container("after").id == record.id
    await store.close()


async def test_rename_onto_a_taken_name_is_a_conflict(store: Store) -> None:
    a, b = make_container("a1"), make_container("b1")
    await store.add_containers([a, b])
    b.name = "a1"
    with pytest.raises(Conflict, match='"/a1" is already in use'):
        await store.save_container(b)
    b.name = "b1"
    assert store.resolve_container("b1") is b


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("id", "abc", "invalid container ID"),
        ("id", "A" * 64, "invalid container ID"),
        ("name", "x", "Invalid container name"),
        ("name", "/web", "Invalid container name"),
        ("name", "../etc", "Invalid container name"),
        ("name", "web\n", "Invalid container name"),
    ],
)
async def test_malformed_ids_and_names_are_refused(
    store: Store, field: str, value: str, message: str
) -> None:
    record = make_container("valid")
    setattr(record, field, value)
    with pytest.raises(InvalidParameter, match=message):
        await store.add_container(record)
    assert list(store.containers()) == []


async def test_batch_add_is_all_or_nothing(store: Store) -> None:
    await store.add_container(make_container("taken"))
    batch = [make_container("fresh"), make_container("taken", id=container_id("again"))]
    with pytest.raises(Conflict):
        await store.add_containers(batch)
    assert [r.name for r in store.containers()] == ["taken"]
    store = await reopen(store)
    assert [r.name for r in store.containers()] == ["taken"]
    await store.close()


@pytest.mark.parametrize(
    "value",
    [object(), dt.datetime(2024, 1, 1, tzinfo=dt.UTC), ExitStatus(0, ""), {"nested": {1.5}}],
    ids=["object", "datetime", "attrs object", "set inside"],
)
async def test_unserialisable_backend_fields_are_refused_before_writing(store: Store, value: Any) -> None:
    """Only JSON values: a datetime or an attrs object is not flattened into something else."""
    record = make_container("odd")
    record.backend_fields = {"when": value}
    with pytest.raises(TypeError, match="JSON values"):
        await store.add_container(record)
    assert store.get_container(record.id) is None


async def test_failed_write_leaves_memory_unchanged(db_path: str) -> None:
    store = await Store.open(db_path, busy_timeout_ms=0)
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the database: our write fails at once
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await store.add_container(make_container("blocked"))
        with pytest.raises(NotFound):
            store.resolve_container("blocked")
    finally:
        other.execute("ROLLBACK")
        other.close()
    await store.add_container(make_container("blocked"))
    assert store.resolve_container("blocked").name == "blocked"
    await store.close()


async def test_cancelled_caller_does_not_cut_a_write_in_half(store: Store) -> None:
    # Labels make it a transaction of two statements, which runs on aiosqlite's thread: in flight
    # across loop iterations (a one-row write runs inline and cannot be interrupted at all).
    record = make_container("cancelled", labels={"a": "1"})
    writing = asyncio.create_task(store.add_container(record))
    await asyncio.sleep(0)  # let the write start
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing
    assert store.get_container(record.id) is None  # still in flight
    await store.close()  # drains the write in flight
    assert store.get_container(record.id) is record
    store = await Store.open(store.path)
    assert store.get_container(record.id) == record
    await store.close()


async def test_a_one_row_write_waits_for_a_locked_database_off_the_event_loop(db_path: str) -> None:
    store = await Store.open(db_path, busy_timeout_ms=10_000)
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # someone's sqlite3 shell holds the write lock
    try:
        writing = asyncio.create_task(store.add_container(make_container("patient")))
        ticks = 0
        while ticks < 20:  # the loop keeps turning while the write waits
            await asyncio.sleep(0)
            ticks += 1
        assert not writing.done()
    finally:
        other.execute("ROLLBACK")
        other.close()
    await writing
    store = await reopen(store)
    assert store.resolve_container("patient").name == "patient"
    await store.close()


async def test_the_wal_is_checkpointed_while_one_row_writes_run_inline(db_path: str) -> None:
    store = await Store.open(db_path)
    record = make_container("busy")
    record.backend_fields = {"output": "x" * 3000}  # a record of about a page
    await store.add_container(record)
    for count in range(2000):
        record.exit_code = count % 256
        await store.save_container(record)
    await asyncio.gather(*store._writes)  # a checkpoint still running
    # Unchecked, 2000 writes of a page or two each would grow the WAL past 8 MiB; the checkpoints
    # every few hundred writes let SQLite reuse it from the start.
    assert os.path.getsize(db_path + "-wal") < 6 * 1024 * 1024
    store = await reopen(store)
    assert store.resolve_container("busy").exit_code == 1999 % 256
    await store.close()


async def test_a_save_without_a_rename_appends_one_page_to_the_wal(db_path: str) -> None:
    store = await Store.open(db_path)
    record = make_container("steady")
    await store.add_container(record)
    frame = 24 + 4096  # a WAL frame: its header and one page
    wal = db_path + "-wal"
    before = os.path.getsize(wal)
    record.status = "running"
    await store.save_container(record)
    assert os.path.getsize(wal) - before == frame  # the row's page; the name's index is untouched
    before = os.path.getsize(wal)
    record.name = "renamed"
    await store.save_container(record)
    assert os.path.getsize(wal) - before == 2 * frame  # a rename writes the index page too
    store = await reopen(store)
    assert store.resolve_container("renamed").status == "running"
    await store.close()


async def test_records_are_stored_without_default_fields_and_read_back_whole(db_path: str) -> None:
    store = await Store.open(db_path)
    plain = make_container("plain")
    busy = make_container("busy", labels={"team": "data"})
    busy.config = ContainerConfig(
        image="alpine",
        cmd=["sh", "-c", "echo hi"],
        env=["A=1", "B="],
        working_dir="/srv",
        tty=True,
        labels={"team": "data"},
    )
    busy.host_config = HostConfig(
        auto_remove=True,
        memory=256 * 1024 * 1024,
        log_config=LogConfig(type="json-file", config={"max-size": "1m"}),
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 3},
        privileged=False,  # a default given explicitly is still a default
    )
    busy.backend_fields = {"function_name": "f", "logs": [[1, "hi\n"]]}
    await store.add_containers([plain, busy])
    busy.exit_code = 3
    await store.save_container(busy)
    with sqlite3.connect(db_path) as raw:
        documents = dict(raw.execute("SELECT name, record FROM containers"))
    stored = json.loads(documents["busy"])
    assert stored["host_config"]["AutoRemove"] is True
    assert stored["host_config"]["LogConfig"] == {"Config": {"max-size": "1m"}}  # Type: the default
    assert "Privileged" not in stored["host_config"] and "Binds" not in stored["host_config"]
    assert len(documents["plain"]) < 700  # the full form was over 2 KB
    # A record written in the full form (every field, as before) still reads back.
    full = json.loads(documents["busy"])
    full["config"] = converter.unstructure(busy.config)
    full["host_config"] = converter.unstructure(busy.host_config)
    assert len(json.dumps(full)) > 2000
    with sqlite3.connect(db_path) as raw:
        raw.execute("UPDATE containers SET record = ? WHERE name = 'busy'", (json.dumps(full),))
    store = await reopen(store)
    assert store.get_container(plain.id) == plain
    assert store.get_container(busy.id) == busy
    await store.close()


@pytest.mark.parametrize(
    "document",
    ["not json", "[]", '{"id": "x"}', '{"id": "x", "name": "n", "created": "yesterday"}'],
    ids=["text", "array", "fields-missing", "bad-time"],
)
async def test_an_unreadable_record_stops_the_open_and_names_the_container(
    store: Store, db_path: str, document: str
) -> None:
    record = make_container("broken")
    await store.add_container(record)
    await store.close()
    with sqlite3.connect(db_path) as raw:
        raw.execute("UPDATE containers SET record = ?", (document,))
    with pytest.raises(StoreError, match=f"container {record.id} is unreadable"):
        await Store.open(db_path)
    assert gc.isenabled()  # the load pauses the collector, and gives it back on failure too


# ---------------------------------------------------------------------------- containers: resolution


async def test_resolution_by_full_id_prefix_and_name(store: Store) -> None:
    record = make_container("api")
    await store.add_container(record)
    for ref in (record.id, record.id[:12], record.id[:3], "api", "/api"):
        assert store.resolve_container(ref) is record, ref


async def test_full_id_wins_over_name_and_name_wins_over_prefix(store: Store) -> None:
    target = make_container("target", id="abc1" + "0" * 60)
    named_like_prefix = make_container("abc1", id="fff" + "0" * 61)
    named_like_id = make_container(target.id[:63] + "x", id="eee" + "0" * 61)
    await store.add_containers([target, named_like_prefix, named_like_id])
    assert store.resolve_container(target.id) is target
    assert store.resolve_container("abc1") is named_like_prefix
    assert store.resolve_container("abc") is target


async def test_ambiguous_prefix_is_an_invalid_parameter(store: Store) -> None:
    await store.add_containers(
        [make_container("one", id="abcd" + "1" * 60), make_container("two", id="abce" + "2" * 60)]
    )
    with pytest.raises(InvalidParameter) as caught:
        store.resolve_container("abc")
    assert caught.value.message == "multiple containers found with provided prefix: abc"
    assert store.resolve_container("abcd").name == "one"


@pytest.mark.parametrize(
    "ref",
    [
        "nope",
        "",
        "/",
        "ab",
        "a",
        "ABC",
        "../../etc/passwd",
        "/api/../api",
        "api\x00",
        "api\n",
        "'; DROP TABLE",
    ],
)
async def test_unknown_refs_are_not_found(store: Store, ref: str) -> None:
    await store.add_container(make_container("api", id="ab" + "c" * 62))
    with pytest.raises(NotFound) as caught:
        store.resolve_container(ref)
    assert caught.value.message == f"No such container: {ref}"


# ---------------------------------------------------------------------------- durability


async def test_records_survive_close_and_reopen(store: Store) -> None:
    records = [make_container(f"c{i}", age=i, labels={"i": str(i)}) for i in range(5)]
    for record in records:
        await store.add_container(record)
    store = await reopen(store)
    assert list(store.containers()) == records[::-1]
    await store.close()


KILLED_WRITER = """
import asyncio, datetime as dt, sys
from sockerless.models import ContainerConfig, HostConfig
from sockerless.store import ContainerRecord, Store

async def main():
    store = await Store.open(sys.argv[1])
    record = ContainerRecord(
        id=sys.argv[2], name="survivor", created=dt.datetime.now(dt.UTC), image="alpine",
        config=ContainerConfig(image="alpine"), host_config=HostConfig(),
    )
    await store.add_container(record)
    record.status = "running"
    record.backend_fields = {"request_id": "r-42"}
    await store.save_container(record)
    print("written", flush=True)
    await asyncio.Event().wait()  # until killed

asyncio.run(main())
"""


async def test_committed_write_survives_sigkill(db_path: str) -> None:
    survivor_id = container_id("survivor")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLED_WRITER, db_path, survivor_id, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        assert await asyncio.wait_for(process.stdout.readline(), timeout=60) == b"written\n"
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    assert process.returncode == -signal.SIGKILL

    store = await Store.open(db_path)  # the dead process's lock went with it
    record = store.resolve_container("survivor")
    assert (record.id, record.status, record.backend_fields) == (
        survivor_id,
        "running",
        {"request_id": "r-42"},
    )
    await store.close()


async def test_second_process_on_the_same_file_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="in use by another sockerless backend"):
        await Store.open(store.path)
    await store.close()
    again = await Store.open(store.path)
    await again.close()


async def test_close_is_idempotent_and_later_writes_fail_clearly(store: Store) -> None:
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="is closed"):
        await store.add_container(make_container("late"))


async def test_full_synchronous_is_accepted_and_unknown_levels_are_not(db_path: str) -> None:
    store = await Store.open(db_path, synchronous="full")
    await store.add_container(make_container("durable"))
    await store.close()
    with pytest.raises(ValueError, match="invalid synchronous 'sometimes'"):
        await Store.open(db_path, synchronous="sometimes")


async def test_database_is_in_wal_mode(store: Store) -> None:
    with sqlite3.connect(store.path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_files_are_private_to_the_owner(db_path: str) -> None:
    store = await Store.open(db_path)
    await store.add_container(make_container("secret"))
    directory = os.path.dirname(db_path)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    for path in (db_path, db_path + "-wal", db_path + "-shm", db_path + ".lock"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    await store.close()


async def test_existing_world_readable_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "loose.db"
    path.touch()
    path.chmod(0o644)
    store = await Store.open(str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    await store.close()


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open state database"):
        await Store.open(str(path))


# ---------------------------------------------------------------------------- concurrency and scale


async def test_concurrent_writers_all_land(store: Store) -> None:
    async def create_and_start(i: int) -> None:
        record = make_container(f"job-{i}", age=i)
        await store.add_container(record)
        record.status = "running"
        record.backend_fields["request_id"] = f"r-{i}"
        await store.save_container(record)

    await asyncio.gather(*(create_and_start(i) for i in range(200)))
    store = await reopen(store)
    records = list(store.containers())
    assert len(records) == 200
    assert all(r.status == "running" and r.backend_fields["request_id"] == f"r-{r.name[4:]}" for r in records)
    await store.close()


async def test_concurrent_adds_of_one_name_have_one_winner(store: Store) -> None:
    results = await asyncio.gather(
        *(store.add_container(make_container("only", id=container_id(f"try-{i}"))) for i in range(20)),
        return_exceptions=True,
    )
    assert sum(result is None for result in results) == 1
    assert all(isinstance(result, Conflict) for result in results if result is not None)
    assert len(list(store.containers())) == 1


async def test_ten_thousand_containers_load_and_resolve(store: Store) -> None:
    records = [make_container(f"n{i}", age=i, labels={"batch": "big"}) for i in range(10_000)]
    await store.add_containers(records)
    store = await reopen(store)
    listed = list(store.containers())
    assert len(listed) == 10_000
    assert listed[0].name == "n9999"
    assert store.resolve_container("n1234").id == records[1234].id
    assert store.resolve_container(records[77].id[:16]).name == "n77"
    await store.close()


# ---------------------------------------------------------------------------- labels


def label_rows(path: str, key: str, value: str) -> list[str]:
    with sqlite3.connect(path) as raw:
        rows = raw.execute(
            "SELECT c.name FROM container_labels l JOIN containers c ON c.id = l.container_id"
            " WHERE l.key = ? AND l.value = ? ORDER BY c.name",
            (key, value),
        )
        return [name for (name,) in rows]


async def test_label_index_follows_adds_saves_and_deletes(store: Store) -> None:
    a = make_container("a-ci", labels={"team": "ci", "tier": "1"})
    b = make_container("b-ci", labels={"team": "ci"})
    c = make_container("c-web", labels={"team": "web"})
    await store.add_containers([a, b, c])
    assert label_rows(store.path, "team", "ci") == ["a-ci", "b-ci"]

    b.config.labels = {"team": "web"}
    await store.save_container(b)
    await store.delete_container(a.id)
    assert label_rows(store.path, "team", "ci") == []
    assert label_rows(store.path, "team", "web") == ["b-ci", "c-web"]
    assert label_rows(store.path, "tier", "1") == []


async def test_label_filter_uses_the_key_value_index(store: Store) -> None:
    with sqlite3.connect(store.path) as raw:
        plan = raw.execute(
            "EXPLAIN QUERY PLAN SELECT container_id FROM container_labels WHERE key = ? AND value = ?",
            ("team", "ci"),
        ).fetchall()
    assert any("container_labels_by_key_value" in str(row) for row in plan)


# ---------------------------------------------------------------------------- schema versions

V1_SCHEMA = """
CREATE TABLE containers (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created TEXT NOT NULL,
    status TEXT NOT NULL, image TEXT NOT NULL, record TEXT NOT NULL
);
CREATE TABLE container_labels (
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (container_id, key)
);
CREATE INDEX container_labels_by_key_value ON container_labels(key, value);
CREATE TABLE images (reference TEXT PRIMARY KEY, id TEXT NOT NULL, record TEXT NOT NULL);
PRAGMA user_version = 1;
"""


async def test_version_1_database_is_migrated_with_its_data(db_path: str) -> None:
    os.makedirs(os.path.dirname(db_path))
    legacy_id = container_id("legacy")
    legacy_image = image_id("legacy")
    record = {
        "id": legacy_id,
        "name": "legacy",
        "created": "2025-06-01T12:00:00+00:00",
        "image": "alpine",
        "config": {"Image": "alpine", "Labels": {"team": "ci"}},
        "host_config": {"Memory": 134217728},
        "image_id": legacy_image,
        "status": "exited",
        "exit_code": 3,
    }
    image = {"reference": "docker.io/library/alpine:latest", "id": legacy_image}
    with sqlite3.connect(db_path) as raw:
        raw.executescript(V1_SCHEMA)
        raw.execute(
            "INSERT INTO containers VALUES (?, ?, ?, ?, ?, ?)",
            (legacy_id, "legacy", record["created"], "exited", "alpine", json.dumps(record)),
        )
        raw.execute("INSERT INTO container_labels VALUES (?, 'team', 'ci')", (legacy_id,))
        raw.execute(
            "INSERT INTO images VALUES (?, ?, ?)", (image["reference"], legacy_image, json.dumps(image))
        )
    raw.close()

    store = await Store.open(db_path)
    container = store.resolve_container("legacy")
    assert (container.exit_code, container.labels, container.host_config.memory) == (
        3,
        {"team": "ci"},
        134217728,
    )
    assert container.created == dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
    assert store.resolve_image("alpine").id == legacy_image
    await store.close()

    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert raw.execute("SELECT image_id FROM containers").fetchall() == [(legacy_image,)]
        indexes = {row[1] for row in raw.execute("PRAGMA index_list(images)")}
    raw.close()
    assert "images_by_id" in indexes

    store = await Store.open(db_path)  # a migrated database opens as it is
    assert store.resolve_container("legacy").id == legacy_id
    await store.close()


async def test_newer_schema_is_refused(db_path: str) -> None:
    os.makedirs(os.path.dirname(db_path))
    with sqlite3.connect(db_path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    for _ in range(2):  # the failed open released its lock
        with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer than"):
            await Store.open(db_path)


async def test_new_database_is_at_the_current_version(store: Store) -> None:
    with sqlite3.connect(store.path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


# ---------------------------------------------------------------------------- images


def make_image(reference: str, seed: str, *, digest: str = "") -> ImageRecord:
    return ImageRecord(
        reference=reference,
        id=image_id(seed),
        digest=digest,
        created=BASE_TIME,
        config=ContainerConfig(cmd=["/bin/sh"], env=["PATH=/usr/bin"]),
        extra={"size": 3_600_000, "architecture": "arm64"},
    )


async def test_saved_image_resolves_by_every_accepted_form(store: Store) -> None:
    image = make_image("alpine", "alpine", digest=DIGEST)
    await store.save_image(image)
    assert image.reference == "docker.io/library/alpine:latest"
    hex_id = image.id.removeprefix("sha256:")
    for ref in (
        "alpine",
        "alpine:latest",
        "library/alpine",
        "docker.io/library/alpine:latest",
        f"alpine@{DIGEST}",
        image.id,
        hex_id,
        image.id[:19],
        hex_id[:12],
    ):
        assert store.resolve_image(ref) is image, ref


async def test_unknown_images_are_not_found(store: Store) -> None:
    await store.save_image(make_image("alpine", "alpine"))
    for ref in ("alpine:3.20", "Alpine", "busybox", "alpine@sha256:" + "0" * 64, "sha256:zz", "../x", ""):
        with pytest.raises(NotFound) as caught:
            store.resolve_image(ref)
        assert caught.value.message == f"No such image: {ref}"


async def test_image_id_prefix_is_unique_per_image_not_per_tag(store: Store) -> None:
    first = make_image("alpine:3.20", "same")
    await store.save_image(first)
    await store.save_image(make_image("alpine:latest", "same"))
    assert store.resolve_image(first.id[:12]).id == first.id

    twin_a = ImageRecord(reference="a1", id="sha256:abcd" + "0" * 60)
    twin_b = ImageRecord(reference="b1", id="sha256:abce" + "0" * 60)
    await store.save_image(twin_a)
    await store.save_image(twin_b)
    with pytest.raises(InvalidParameter, match="multiple images found with provided prefix: abc"):
        store.resolve_image("abc")


async def test_saving_a_reference_again_replaces_it(store: Store) -> None:
    await store.save_image(make_image("alpine", "old"))
    await store.save_image(make_image("alpine", "new"))
    assert store.resolve_image("alpine").id == image_id("new")
    with pytest.raises(NotFound):
        store.resolve_image(image_id("old"))
    assert len(list(store.images())) == 1


async def test_images_survive_reopen_and_delete(store: Store) -> None:
    alpine = make_image("alpine:3.20", "alpine")
    ecr = make_image("123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:tag", "ecr")
    await store.save_image(alpine)
    await store.save_image(ecr)
    store = await reopen(store)
    assert list(store.images()) == [ecr, alpine]
    await store.delete_image("alpine:3.20")
    with pytest.raises(NotFound, match=r"No such image: alpine:3\.20"):
        await store.delete_image("alpine:3.20")
    store = await reopen(store)
    assert list(store.images()) == [ecr]
    await store.close()


async def test_image_with_bad_reference_or_id_is_refused(store: Store) -> None:
    with pytest.raises(InvalidParameter, match="invalid reference format"):
        await store.save_image(make_image("Alpine", "x"))
    with pytest.raises(InvalidParameter, match="invalid image ID"):
        await store.save_image(ImageRecord(reference="alpine", id="abc"))
    assert list(store.images()) == []


# ---------------------------------------------------------------------------- references

HEX = "a" * 64


@pytest.mark.parametrize(
    ("ref", "normalised"),
    [
        ("alpine", "docker.io/library/alpine:latest"),
        ("alpine:3.20", "docker.io/library/alpine:3.20"),
        ("library/alpine", "docker.io/library/alpine:latest"),
        ("docker.io/alpine", "docker.io/library/alpine:latest"),
        ("index.docker.io/library/alpine", "docker.io/library/alpine:latest"),
        ("docker.io/library/alpine:latest", "docker.io/library/alpine:latest"),
        ("user/repo", "docker.io/user/repo:latest"),
        ("a__b/c-d--e.f_g", "docker.io/a__b/c-d--e.f_g:latest"),
        ("localhost/x", "localhost/x:latest"),
        ("localhost:5000/x/y:tag", "localhost:5000/x/y:tag"),
        ("[::1]:5000/x:y", "[::1]:5000/x:y"),
        ("Registry.Example.com/team/x", "Registry.Example.com/team/x:latest"),
        ("ghcr.io/owner/image:v1.2.3-rc_1", "ghcr.io/owner/image:v1.2.3-rc_1"),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:tag",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:tag",
        ),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/repo",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/repo:latest",
        ),
        (f"repo@sha256:{HEX}", f"docker.io/library/repo@sha256:{HEX}"),
        (f"alpine:3.20@sha256:{HEX}", f"docker.io/library/alpine:3.20@sha256:{HEX}"),
        (f"localhost:5000/x@sha512:{'b' * 128}", f"localhost:5000/x@sha512:{'b' * 128}"),
        ("x:" + "t" * 128, "docker.io/library/x:" + "t" * 128),
    ],
)
def test_references_are_normalised_like_docker(ref: str, normalised: str) -> None:
    assert normalize_reference(ref) == normalised
    assert normalize_reference(normalised) == normalised


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "Alpine",
        "user/Repo",
        "alpine:",
        "alpine::x",
        "alpine:-x",
        "alpine:tag with space",
        "x:" + "t" * 129,
        "a" * 256,
        "-alpine",
        "alpine/",
        "/alpine",
        "../etc/passwd",
        "alpine\n",
        "al\x00pine",
        "ÄLPINE",
        HEX,
        "repo@sha256:abc",
        f"repo@sha256:{HEX.upper()}",
        f"repo@sha256:{HEX}0",
        f"repo@md5:{'a' * 32}",
        "bad_host.com/x",
    ],
)
def test_invalid_references_are_refused(ref: str) -> None:
    with pytest.raises(InvalidParameter, match="invalid reference format"):
        normalize_reference(ref)


def test_reference_parts_and_familiar_form() -> None:
    parsed = parse_reference("alpine:3.20")
    assert (parsed.domain, parsed.path, parsed.tag, parsed.digest) == (
        "docker.io",
        "library/alpine",
        "3.20",
        "",
    )
    assert parsed.repository == "docker.io/library/alpine"
    assert parsed.familiar == "alpine:3.20"
    assert parse_reference("user/repo").familiar == "user/repo:latest"
    assert parse_reference("localhost:5000/x").familiar == "localhost:5000/x:latest"
