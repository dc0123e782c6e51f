"""The state store against real SQLite files: records, resolution, durability, migrations, references."""

from __future__ import annotations

import asyncio
import datetime as dt
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

from sockerless.config import StoreConfig
from sockerless.errors import Conflict, InvalidParameter, NotFound
from sockerless.models import ContainerConfig, HostConfig, LogConfig
from sockerless.references import normalize_reference, parse_reference
from sockerless.store import SCHEMA_VERSION, ContainerRecord, ImageRecord, Store, StoreError
from sockerless.wire import converter, python_names
from tests.core.records import BASE_TIME, bare_container, container_id

DIGEST = "sha256:" + "d" * 64


@python_names
@attrs.define
class LambdaState:
    """A backend's own state, shaped like the Lambda backend's. Its JSON names are its Python names,
    as the old store kept them in ``backend_fields`` (the v3 migration moves that object as it is)."""

    function_name: str = ""
    request_id: str = ""
    invocation: dict[str, str] = attrs.Factory(dict)
    past_request_ids: list[str] = attrs.Factory(list)


@attrs.define
class LooseState:
    """A state class with an untyped field: the converter writes such a value as it is."""

    anything: Any = None


def image_id(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def make_container(
    name: str,
    *,
    id: str | None = None,
    age: int = 0,
    labels: dict[str, str] | None = None,
) -> ContainerRecord[LambdaState]:
    """A container created ``age`` seconds after BASE_TIME, with an ID derived from its name."""
    return ContainerRecord(
        id=id or container_id(name),
        name=name,
        created=BASE_TIME + dt.timedelta(seconds=age),
        image="alpine",
        config=ContainerConfig(image="alpine", cmd=["echo", name], labels=labels),
        host_config=HostConfig(memory=256 * 1024 * 1024),
        backend_state=LambdaState(),
    )


async def open_store(path: str, **options: Any) -> Store[LambdaState]:
    return await Store.open(path, state_class=LambdaState, **options)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "state" / "sockerless.db")


@pytest.fixture
async def store(db_path: str) -> AsyncIterator[Store[LambdaState]]:
    opened = await open_store(db_path)
    yield opened
    await opened.close()


async def reopen(store: Store[LambdaState]) -> Store[LambdaState]:
    await store.close()
    return await open_store(store.path)


async def read_back(store: Store[LambdaState], ref: str) -> ContainerRecord[LambdaState]:
    """Container ``ref`` as a fresh open of the store's file reads it (``store`` is closed)."""
    reopened = await reopen(store)
    try:
        return reopened.resolve_container(ref)
    finally:
        await reopened.close()


def column(path: str, record_id: str, name: str) -> Any:
    with sqlite3.connect(path) as raw:
        ((value,),) = raw.execute(f"SELECT {name} FROM containers WHERE id = ?", (record_id,))
    raw.close()
    return value


def change_state(record: ContainerRecord[LambdaState]) -> None:
    record.status = "exited"
    record.exit_code = 3
    record.error = "task timed out"
    record.pid = 42
    record.started_at = BASE_TIME + dt.timedelta(seconds=1, microseconds=123456)
    record.finished_at = BASE_TIME + dt.timedelta(seconds=2)
    record.restart_count = 2
    record.backend_state = LambdaState(
        function_name="skls-worker",
        request_id="r-1",
        invocation={"status": "failed", "log_stream": "2026/01/01/[$LATEST]abc", "tail": "é\n"},
        past_request_ids=["r-0"],
    )


# ---------------------------------------------------------------------------- containers: CRUD


async def test_added_container_is_readable_at_once(store: Store[LambdaState]) -> None:
    record = make_container("web")
    await store.add_container(record)
    assert store.get_container(record.id) is record
    assert store.resolve_container("web") is record
    assert store.containers() == [record]


async def test_containers_are_listed_newest_first(store: Store[LambdaState]) -> None:
    records = [make_container(f"c{age}", age=age) for age in (5, 1, 9, 3)]
    for record in records:
        await store.add_container(record)
    assert [r.name for r in store.containers()] == ["c9", "c5", "c3", "c1"]


async def test_every_field_survives_save_state_and_reopen(store: Store[LambdaState]) -> None:
    record = make_container("worker", labels={"team": "ci"})
    record.image_id = image_id("alpine")
    record.host_config.log_config = LogConfig(type="awslogs", config={"awslogs-group": "/x"})
    await store.add_container(record)
    change_state(record)
    await store.save_state(record)

    store = await reopen(store)
    loaded = store.get_container(record.id)
    assert loaded == record
    assert loaded is not record
    await store.close()


async def test_save_state_of_a_removed_container_is_not_found(store: Store[LambdaState]) -> None:
    record = make_container("gone")
    await store.add_container(record)
    await store.delete_container(record.id)
    with pytest.raises(NotFound, match=f"No such container: {record.id}"):
        await store.save_state(record)


async def test_deleted_container_is_gone_after_reopen(store: Store[LambdaState]) -> None:
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


async def test_delete_of_an_unknown_container_is_not_found(store: Store[LambdaState]) -> None:
    with pytest.raises(NotFound, match="No such container: " + "f" * 64):
        await store.delete_container("f" * 64)


async def test_taken_name_is_a_conflict_with_dockers_message(store: Store[LambdaState]) -> None:
    first = make_container("web")
    await store.add_container(first)
    with pytest.raises(Conflict) as caught:
        await store.add_container(make_container("web", id=container_id("other")))
    assert caught.value.message == (
        f'Conflict. The container name "/web" is already in use by container "{first.id}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )
    assert store.containers() == [first]


async def test_duplicate_id_is_a_conflict(store: Store[LambdaState]) -> None:
    record = make_container("one")
    await store.add_container(record)
    with pytest.raises(Conflict, match="already exists"):
        await store.add_container(make_container("two", id=record.id))
    with pytest.raises(Conflict, match="already exists"):
        await store.add_containers(
            [make_container("three"), make_container("four", id=container_id("three"))]
        )


# ---------------------------------------------------------------------------- containers: state


async def test_save_state_writes_the_state_and_never_the_spec(store: Store[LambdaState]) -> None:
    record = make_container("worker", labels={"team": "ci"})
    await store.add_container(record)
    spec = column(store.path, record.id, "spec")
    change_state(record)
    await store.save_state(record)
    assert column(store.path, record.id, "spec") == spec
    assert column(store.path, record.id, "status") == "exited"
    assert json.loads(column(store.path, record.id, "state")) == {
        "exit_code": 3,
        "error": "task timed out",
        "pid": 42,
        "started_at": "2026-01-01T12:00:01.123456+00:00",
        "finished_at": "2026-01-01T12:00:02+00:00",
        "restart_count": 2,
    }
    assert json.loads(column(store.path, record.id, "backend")) == {
        "function_name": "skls-worker",
        "request_id": "r-1",
        "invocation": {"status": "failed", "log_stream": "2026/01/01/[$LATEST]abc", "tail": "é\n"},
        "past_request_ids": ["r-0"],
    }


async def test_what_a_container_was_created_as_cannot_be_changed_by_a_save(store: Store[LambdaState]) -> None:
    """Docker has no call that changes a container's config; save_state writes none of it."""
    record = make_container("worker", labels={"team": "ci"})
    await store.add_container(record)
    record.config.labels = {"team": "web"}
    record.image = "busybox"
    record.status = "running"
    await store.save_state(record)
    assert label_rows(store.path, "team", "ci") == ["worker"]
    loaded = await read_back(store, "worker")
    assert (loaded.status, loaded.labels, loaded.image) == ("running", {"team": "ci"}, "alpine")


async def test_save_state_after_a_reopen_keeps_the_rest_of_the_record(store: Store[LambdaState]) -> None:
    record = make_container("worker", labels={"team": "ci"})
    record.host_config.log_config = LogConfig(type="awslogs", config={"awslogs-group": "/x"})
    await store.add_container(record)
    store = await reopen(store)
    loaded = store.get_container(record.id)
    assert loaded is not None
    change_state(loaded)
    change_state(record)
    await store.save_state(loaded)
    store = await reopen(store)
    assert store.get_container(record.id) == record
    await store.close()


async def test_saving_another_object_for_a_container_updates_the_indexed_record(
    store: Store[LambdaState],
) -> None:
    """Memory holds what was committed, whichever object the caller saved."""
    record = make_container("worker")
    await store.add_container(record)
    copy = attrs.evolve(record)
    change_state(copy)
    await store.save_state(copy)
    indexed = store.resolve_container("worker")
    assert indexed is record
    assert indexed == copy


async def test_backend_state_that_is_not_json_is_refused_before_writing(db_path: str) -> None:
    store = await Store.open(db_path, state_class=LooseState)
    record = bare_container("odd", LooseState(object()))
    with pytest.raises(TypeError, match=f"container {record.id} cannot be stored"):
        await store.add_container(record)
    assert store.get_container(record.id) is None
    record.backend_state = LooseState({"ok": [1, 2]})
    await store.add_container(record)
    record.backend_state = LooseState({1.5})
    with pytest.raises(TypeError, match="cannot be stored"):
        await store.save_state(record)
    await store.close()
    store = await Store.open(db_path, state_class=LooseState)
    assert store.resolve_container("odd").backend_state == LooseState({"ok": [1, 2]})
    await store.close()


async def test_a_backend_without_state_of_its_own_stores_none(db_path: str) -> None:
    store = await Store.open(db_path, state_class=type(None))
    record = bare_container("plain", None)
    await store.add_container(record)
    await store.close()
    assert column(db_path, record.id, "backend") == "null"
    store = await Store.open(db_path, state_class=type(None))
    assert store.resolve_container("plain") == record
    await store.close()


# ---------------------------------------------------------------------------- containers: names


async def test_rename_frees_the_old_name_and_takes_the_new(store: Store[LambdaState]) -> None:
    record = make_container("before")
    await store.add_container(record)
    await store.rename_container(record, "after")
    assert record.name == "after"
    assert store.resolve_container("/after") is record
    with pytest.raises(NotFound):
        store.resolve_container("before")
    await store.add_container(make_container("before", id=container_id("reuse")))
    assert (await read_back(store, "after")).id == record.id


async def test_rename_onto_a_taken_name_is_a_conflict(store: Store[LambdaState]) -> None:
    a, b = make_container("a1"), make_container("b1")
    await store.add_containers([a, b])
    with pytest.raises(Conflict, match='"/a1" is already in use'):
        await store.rename_container(b, "a1")
    assert (b.name, store.resolve_container("b1"), store.resolve_container("a1")) == ("b1", b, a)


@pytest.mark.parametrize(
    ("new_name", "error", "message"),
    [
        ("same", InvalidParameter, "Renaming a container with the same name as its current name"),
        ("/slash", InvalidParameter, "Invalid container name"),
        ("x", InvalidParameter, "Invalid container name"),
    ],
)
async def test_rename_to_a_bad_name_is_refused(
    store: Store[LambdaState], new_name: str, error: type[Exception], message: str
) -> None:
    record = make_container("same")
    await store.add_container(record)
    with pytest.raises(error, match=message):
        await store.rename_container(record, new_name)
    assert store.resolve_container("same") is record


async def test_rename_of_a_removed_container_is_not_found(store: Store[LambdaState]) -> None:
    record = make_container("gone")
    await store.add_container(record)
    await store.delete_container(record.id)
    with pytest.raises(NotFound):
        await store.rename_container(record, "back")


@pytest.mark.parametrize(
    ("field_name", "value", "message"),
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
    store: Store[LambdaState], field_name: str, value: str, message: str
) -> None:
    record = make_container("valid")
    setattr(record, field_name, value)
    with pytest.raises(InvalidParameter, match=message):
        await store.add_container(record)
    assert store.containers() == []


async def test_batch_add_is_all_or_nothing(store: Store[LambdaState]) -> None:
    await store.add_container(make_container("taken"))
    batch = [make_container("fresh"), make_container("taken", id=container_id("again"))]
    with pytest.raises(Conflict):
        await store.add_containers(batch)
    assert [r.name for r in store.containers()] == ["taken"]
    store = await reopen(store)
    assert [r.name for r in store.containers()] == ["taken"]
    await store.close()


# ---------------------------------------------------------------------------- writes: failure, cancellation


async def test_failed_write_leaves_memory_unchanged(db_path: str) -> None:
    store = await open_store(db_path, busy_timeout_ms=0)
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


@pytest.mark.parametrize("labels", [None, {"a": "1"}], ids=["one-statement", "transaction"])
async def test_cancelled_caller_does_not_cut_a_write_in_half(
    store: Store[LambdaState], labels: dict[str, str] | None
) -> None:
    record = make_container("cancelled", labels=labels)
    writing = asyncio.create_task(store.add_container(record))
    await asyncio.sleep(0)  # let the write start
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing
    assert store.get_container(record.id) is None  # still in flight on aiosqlite's thread
    await store.close()  # drains the write in flight
    assert store.get_container(record.id) is record
    store = await open_store(store.path)
    assert store.get_container(record.id) == record
    await store.close()


async def test_a_write_waits_for_a_locked_database_off_the_event_loop(db_path: str) -> None:
    store = await open_store(db_path, busy_timeout_ms=10_000)
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # someone's sqlite3 shell holds the write lock
    try:
        writing = asyncio.create_task(store.add_container(make_container("patient")))
        for _ in range(20):  # the loop keeps turning while the write waits
            await asyncio.sleep(0)
        assert not writing.done()
    finally:
        other.execute("ROLLBACK")
        other.close()
    await writing
    assert (await read_back(store, "patient")).name == "patient"


async def test_the_wal_stays_bounded_under_many_writes(db_path: str) -> None:
    store = await open_store(db_path)
    record = make_container("busy")
    record.backend_state.invocation = {"output": "x" * 3000}  # a row of about a page
    await store.add_container(record)
    for count in range(2000):
        record.exit_code = count % 256
        await store.save_state(record)
    # Unchecked, 2000 writes of a page or two each would grow the WAL past 8 MiB; SQLite's own
    # checkpoints (every 1000 pages, on aiosqlite's thread) let it reuse the file from the start.
    assert os.path.getsize(db_path + "-wal") < 6 * 1024 * 1024
    assert (await read_back(store, "busy")).exit_code == 1999 % 256


async def test_save_state_appends_one_page_to_the_wal_and_a_rename_two(db_path: str) -> None:
    store = await open_store(db_path)
    record = make_container("steady")
    await store.add_container(record)
    frame = 24 + 4096  # a WAL frame: its header and one page
    wal = db_path + "-wal"
    before = os.path.getsize(wal)
    record.status = "running"
    await store.save_state(record)
    assert os.path.getsize(wal) - before == frame  # the row's page; the name's index is untouched
    before = os.path.getsize(wal)
    await store.rename_container(record, "renamed")
    assert os.path.getsize(wal) - before == 2 * frame  # the row and the name's index
    assert (await read_back(store, "renamed")).status == "running"


# ---------------------------------------------------------------------------- containers: the row


async def test_the_spec_holds_what_the_create_set_and_reads_back_whole(db_path: str) -> None:
    store = await open_store(db_path)
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
    await store.add_containers([plain, busy])
    await store.close()
    spec = json.loads(column(db_path, busy.id, "spec"))
    assert spec["config"]["Tty"] is True
    assert spec["host_config"]["AutoRemove"] is True
    assert spec["host_config"]["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
    assert "Privileged" not in spec["host_config"] and "Binds" not in spec["host_config"]
    assert len(column(db_path, plain.id, "spec")) < 200  # with every field it would be about 1.7 KB
    # A spec written with every field, the converter's full form, reads back the same.
    full = {
        "config": converter.unstructure(busy.config),
        "host_config": converter.unstructure(busy.host_config),
    }
    assert len(json.dumps(full)) > 1500
    with sqlite3.connect(db_path) as raw:
        raw.execute("UPDATE containers SET spec = ? WHERE name = 'busy'", (json.dumps(full),))
    raw.close()
    store = await open_store(db_path)
    assert store.get_container(plain.id) == plain
    assert store.get_container(busy.id) == busy
    await store.close()


@pytest.mark.parametrize(
    ("name", "value", "part"),
    [
        ("spec", "not json", "spec"),
        ("spec", "[]", "spec"),
        ("spec", '{"config": {}}', "spec"),
        ("spec", '{"config": {"Env": "A=1"}, "host_config": {}}', "spec"),
        ("state", '{"started_at": "yesterday"}', "state"),
        ("state", '{"exit_code": "3"}', "state"),
        ("backend", '{"invocation": []}', "backend"),
        ("backend", "", "backend"),
        ("created", "yesterday", "created: Invalid isoformat"),
    ],
)
async def test_an_unreadable_row_stops_the_open_and_names_the_container(
    store: Store[LambdaState], db_path: str, name: str, value: str, part: str
) -> None:
    record = make_container("broken")
    await store.add_container(record)
    await store.close()
    with sqlite3.connect(db_path) as raw:
        raw.execute(f"UPDATE containers SET {name} = ?", (value,))
    raw.close()
    with pytest.raises(StoreError, match=f"container {record.id} is unreadable: .*{part}"):
        await open_store(db_path)


# ---------------------------------------------------------------------------- containers: resolution


async def test_resolution_by_full_id_prefix_and_name(store: Store[LambdaState]) -> None:
    record = make_container("api")
    await store.add_container(record)
    for ref in (record.id, record.id[:12], record.id[:3], "api", "/api"):
        assert store.resolve_container(ref) is record, ref


async def test_full_id_wins_over_name_and_name_wins_over_prefix(store: Store[LambdaState]) -> None:
    target = make_container("target", id="abc1" + "0" * 60)
    named_like_prefix = make_container("abc1", id="fff" + "0" * 61)
    named_like_id = make_container(target.id[:63] + "x", id="eee" + "0" * 61)
    await store.add_containers([target, named_like_prefix, named_like_id])
    assert store.resolve_container(target.id) is target
    assert store.resolve_container("abc1") is named_like_prefix
    assert store.resolve_container("abc") is target


async def test_ambiguous_prefix_is_an_invalid_parameter(store: Store[LambdaState]) -> None:
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
async def test_unknown_refs_are_not_found(store: Store[LambdaState], ref: str) -> None:
    await store.add_container(make_container("api", id="ab" + "c" * 62))
    with pytest.raises(NotFound) as caught:
        store.resolve_container(ref)
    assert caught.value.message == f"No such container: {ref}"


# ---------------------------------------------------------------------------- durability


async def test_records_survive_close_and_reopen(store: Store[LambdaState]) -> None:
    records = [make_container(f"c{i}", age=i, labels={"i": str(i)}) for i in range(5)]
    for record in records:
        await store.add_container(record)
    store = await reopen(store)
    assert store.containers() == records[::-1]
    await store.close()


KILLED_WRITER = """
import asyncio, datetime as dt, sys
from sockerless.backend import LogLine
from sockerless.models import ContainerConfig, HostConfig
from sockerless.store import ContainerRecord, Store

async def main():
    store = await Store.open(sys.argv[1], state_class=type(None))
    record = ContainerRecord(
        id=sys.argv[2], name="survivor", created=dt.datetime.now(dt.UTC), image="alpine",
        config=ContainerConfig(image="alpine"), host_config=HostConfig(), backend_state=None,
    )
    await store.add_container(record)
    record.status = "running"
    record.exit_code = 7
    await store.save_state(record)
    now = dt.datetime.now(dt.UTC)
    await store.logs.append(record.id, [LogLine(1, now, b"line %d\\n" % i) for i in range(1000)])
    print("written", flush=True)
    await asyncio.Event().wait()  # until killed

asyncio.run(main())
"""


async def test_committed_writes_survive_sigkill(db_path: str) -> None:
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

    store = await Store.open(db_path, state_class=type(None))  # the dead process's lock went with it
    record = store.resolve_container("survivor")
    assert (record.id, record.status, record.exit_code) == (survivor_id, "running", 7)
    output = await store.logs.read(survivor_id)
    assert [seq for seq, _ in output] == list(range(1, 1001))
    assert output[-1][1].data == b"line 999\n"
    await store.close()


async def test_second_process_on_the_same_file_is_refused(store: Store[LambdaState]) -> None:
    with pytest.raises(StoreError, match="in use by another sockerless backend"):
        await open_store(store.path)
    await store.close()
    again = await open_store(store.path)
    await again.close()


async def test_close_is_idempotent_and_later_writes_fail_clearly(store: Store[LambdaState]) -> None:
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="is closed"):
        await store.add_container(make_container("late"))


async def test_full_synchronous_is_accepted_and_unknown_levels_are_not(db_path: str) -> None:
    store = await open_store(db_path, config=StoreConfig(synchronous="full"))
    await store.add_container(make_container("durable"))
    await store.close()
    with pytest.raises(ValueError, match="'sometimes' is not one of normal, full"):
        await open_store(db_path, config=StoreConfig(synchronous="sometimes"))


async def test_database_is_in_wal_mode(store: Store[LambdaState]) -> None:
    with sqlite3.connect(store.path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    raw.close()


async def test_in_memory_store_needs_no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store(":memory:")
    await store.add_container(make_container("ephemeral"))
    assert store.resolve_container("ephemeral").name == "ephemeral"
    await store.close()
    assert list(tmp_path.iterdir()) == []


async def test_files_are_private_to_the_owner(db_path: str) -> None:
    store = await open_store(db_path)
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
    store = await open_store(str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    await store.close()


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open state database"):
        await open_store(str(path))
    with pytest.raises(StoreError, match="cannot open state database"):  # and its lock was released
        await open_store(str(path))


# ---------------------------------------------------------------------------- concurrency and scale


async def test_concurrent_writers_all_land(store: Store[LambdaState]) -> None:
    async def create_and_start(i: int) -> None:
        record = make_container(f"job-{i}", age=i)
        await store.add_container(record)
        record.status = "running"
        record.backend_state.request_id = f"r-{i}"
        await store.save_state(record)

    await asyncio.gather(*(create_and_start(i) for i in range(200)))
    store = await reopen(store)
    records = store.containers()
    assert len(records) == 200
    assert all(r.status == "running" and r.backend_state.request_id == f"r-{r.name[4:]}" for r in records)
    await store.close()


async def test_concurrent_adds_of_one_name_have_one_winner(store: Store[LambdaState]) -> None:
    results = await asyncio.gather(
        *(store.add_container(make_container("only", id=container_id(f"try-{i}"))) for i in range(20)),
        return_exceptions=True,
    )
    assert sum(result is None for result in results) == 1
    assert all(isinstance(result, Conflict) for result in results if result is not None)
    assert len(store.containers()) == 1


async def test_ten_thousand_containers_load_and_resolve(store: Store[LambdaState]) -> None:
    records = [make_container(f"n{i}", age=i, labels={"batch": "big"}) for i in range(10_000)]
    await store.add_containers(records)
    store = await reopen(store)
    listed = store.containers()
    assert len(listed) == 10_000
    assert listed[0].name == "n9999"
    assert store.resolve_container("n1234") == records[1234]
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
        names = [name for (name,) in rows]
    raw.close()
    return names


async def test_label_rows_follow_adds_and_deletes(store: Store[LambdaState]) -> None:
    a = make_container("a-ci", labels={"team": "ci", "tier": "1"})
    b = make_container("b-ci", labels={"team": "ci"})
    c = make_container("c-web", labels={"team": "web"})
    await store.add_containers([a, b, c])
    assert label_rows(store.path, "team", "ci") == ["a-ci", "b-ci"]
    await store.delete_container(a.id)
    assert label_rows(store.path, "team", "ci") == ["b-ci"]
    assert label_rows(store.path, "team", "web") == ["c-web"]
    assert label_rows(store.path, "tier", "1") == []


async def test_label_filter_uses_the_key_value_index(store: Store[LambdaState]) -> None:
    with sqlite3.connect(store.path) as raw:
        plan = raw.execute(
            "EXPLAIN QUERY PLAN SELECT container_id FROM container_labels WHERE key = ? AND value = ?",
            ("team", "ci"),
        ).fetchall()
    raw.close()
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

V2_CHANGES = """
ALTER TABLE containers ADD COLUMN image_id TEXT NOT NULL DEFAULT '';
CREATE INDEX images_by_id ON images(id);
PRAGMA user_version = 2;
"""


def write_legacy_database(
    path: str, version: int, containers: list[dict[str, Any]], images: list[dict[str, Any]]
) -> None:
    """A database as the old store wrote it: each record whole in ``record``, as JSON."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with sqlite3.connect(path) as raw:
        raw.executescript(V1_SCHEMA + (V2_CHANGES if version == 2 else ""))
        for record in containers:
            columns = [record["id"], record["name"], record["created"], record["status"], "alpine"]
            columns.append(json.dumps(record, separators=(",", ":")))
            if version == 2:
                columns.append(record.get("image_id", ""))
            marks = ", ".join("?" for _ in columns)
            raw.execute(f"INSERT INTO containers VALUES ({marks})", columns)
            for key, value in record["config"].get("Labels", {}).items():
                raw.execute("INSERT INTO container_labels VALUES (?, ?, ?)", (record["id"], key, value))
        for image in images:
            raw.execute(
                "INSERT INTO images VALUES (?, ?, ?)", (image["reference"], image["id"], json.dumps(image))
            )
    raw.close()


async def test_version_1_database_is_migrated_with_its_data(db_path: str) -> None:
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
    write_legacy_database(db_path, 1, [record], [image])

    store = await open_store(db_path)
    container = store.resolve_container("legacy")
    assert (container.exit_code, container.labels, container.host_config.memory) == (
        3,
        {"team": "ci"},
        134217728,
    )
    assert container.created == dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
    assert container.backend_state == LambdaState()
    assert store.resolve_image("alpine").id == legacy_image
    await store.close()

    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert raw.execute("SELECT image_id FROM containers").fetchall() == [(legacy_image,)]
        indexes = {row[1] for row in raw.execute("PRAGMA index_list(images)")}
    raw.close()
    assert "images_by_id" in indexes

    store = await open_store(db_path)  # a migrated database opens as it is
    assert store.resolve_container("legacy").id == legacy_id
    await store.close()


async def test_version_2_database_is_split_into_columns_and_its_settled_output_kept(db_path: str) -> None:
    runner_id, quiet_id, empty_id = container_id("runner"), container_id("quiet"), container_id("empty")
    alpine_id = image_id("alpine")
    runner = {
        "id": runner_id,
        "name": "runner",
        "created": "2025-06-01T14:00:00+02:00",
        "image": "alpine",
        "config": {"Image": "alpine", "Cmd": ["sh", "-c", "echo hi"], "Labels": {"team": "ci"}},
        "host_config": {"Memory": 134217728, "AutoRemove": True},
        "image_id": alpine_id,
        "status": "exited",
        "exit_code": 3,
        "error": "",
        "pid": 0,
        "started_at": "2025-06-01T12:00:01.5+00:00",
        "finished_at": "2025-06-01T12:00:09+00:00",
        "restart_count": 1,
        "backend_fields": {
            "function_name": "skls-runner",
            "request_id": "r-2",
            "invocation": {"status": "done"},
            "past_request_ids": ["r-1"],
            "logs": [[1748779201000, "hello\n"], [1748779202500, "wörld\n"], [1748779203000, "no newline"]],
            "logs_until_ms": 1748779203000,
            "logs_settled": "r-2",
        },
    }
    quiet = {  # never ran: no output, no state fields beyond the status, backend_fields without logs
        "id": quiet_id,
        "name": "quiet",
        "created": "2025-06-02T12:00:00+00:00",
        "image": "alpine",
        "config": {"Image": "alpine"},
        "host_config": {},
        "status": "created",
        "backend_fields": {"function_name": "skls-quiet"},
    }
    empty = {**quiet, "id": empty_id, "name": "empty", "backend_fields": {"logs": []}}
    image = {
        "reference": "docker.io/library/alpine:latest",
        "id": alpine_id,
        "digest": DIGEST,
        "created": "2025-05-01T00:00:00+00:00",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin"]},
        "extra": {"size": 3_600_000, "architecture": "arm64"},
    }
    write_legacy_database(db_path, 2, [runner, quiet, empty], [image])

    store = await open_store(db_path)
    loaded = store.resolve_container("runner")
    assert loaded.created == dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
    assert (loaded.status, loaded.exit_code, loaded.restart_count, loaded.image_id) == (
        "exited",
        3,
        1,
        alpine_id,
    )
    assert loaded.started_at == dt.datetime(2025, 6, 1, 12, 0, 1, 500000, tzinfo=dt.UTC)
    assert loaded.finished_at == dt.datetime(2025, 6, 1, 12, 0, 9, tzinfo=dt.UTC)
    assert loaded.config == ContainerConfig(
        image="alpine", cmd=["sh", "-c", "echo hi"], labels={"team": "ci"}
    )
    assert loaded.host_config == HostConfig(memory=134217728, auto_remove=True)
    assert loaded.backend_state == LambdaState("skls-runner", "r-2", {"status": "done"}, ["r-1"])
    assert store.resolve_container("quiet").backend_state == LambdaState("skls-quiet")
    assert store.resolve_container("empty").backend_state == LambdaState()

    output = await store.logs.read(runner_id)
    assert [(seq, line.stream, line.timestamp, line.data) for seq, line in output] == [
        (1, 1, dt.datetime(2025, 6, 1, 12, 0, 1, tzinfo=dt.UTC), b"hello\n"),
        (2, 1, dt.datetime(2025, 6, 1, 12, 0, 2, 500000, tzinfo=dt.UTC), "wörld\n".encode()),
        (3, 1, dt.datetime(2025, 6, 1, 12, 0, 3, tzinfo=dt.UTC), b"no newline"),
    ]
    assert await store.logs.read(quiet_id) == [] and await store.logs.read(empty_id) == []
    migrated = store.resolve_image("alpine")
    assert (migrated.id, migrated.digest, migrated.extra) == (alpine_id, DIGEST, image["extra"])
    assert migrated.created == dt.datetime(2025, 5, 1, tzinfo=dt.UTC)
    assert migrated.config == ContainerConfig(cmd=["/bin/sh"], env=["PATH=/usr/bin"])

    await store.logs.append(runner_id, [output[0][1]])  # positions go on after the migrated ones
    assert [seq for seq, _ in await store.logs.read(runner_id, after=2)] == [3, 4]
    await store.close()

    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        columns = [row[1] for row in raw.execute("PRAGMA table_info(containers)")]
        backend = json.loads(
            raw.execute("SELECT backend FROM containers WHERE name = 'runner'").fetchone()[0]
        )
        labels = raw.execute("SELECT container_id, key, value FROM container_labels").fetchall()
    raw.close()
    assert columns == ["id", "name", "created", "status", "image", "image_id", "spec", "state", "backend"]
    assert sorted(backend) == ["function_name", "invocation", "past_request_ids", "request_id"]
    assert labels == [(runner_id, "team", "ci")]


async def test_newer_schema_is_refused(db_path: str) -> None:
    os.makedirs(os.path.dirname(db_path))
    with sqlite3.connect(db_path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    for _ in range(2):  # the failed open released its lock
        with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer than"):
            await open_store(db_path)


async def test_new_database_is_at_the_current_version(store: Store[LambdaState]) -> None:
    with sqlite3.connect(store.path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    raw.close()


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


async def test_saved_image_resolves_by_every_accepted_form(store: Store[LambdaState]) -> None:
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


async def test_unknown_images_are_not_found(store: Store[LambdaState]) -> None:
    await store.save_image(make_image("alpine", "alpine"))
    for ref in ("alpine:3.20", "Alpine", "busybox", "alpine@sha256:" + "0" * 64, "sha256:zz", "../x", ""):
        with pytest.raises(NotFound) as caught:
            store.resolve_image(ref)
        assert caught.value.message == f"No such image: {ref}"


async def test_image_id_prefix_is_unique_per_image_not_per_tag(store: Store[LambdaState]) -> None:
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


async def test_saving_a_reference_again_replaces_it(store: Store[LambdaState]) -> None:
    await store.save_image(make_image("alpine", "old"))
    await store.save_image(make_image("alpine", "new"))
    assert store.resolve_image("alpine").id == image_id("new")
    with pytest.raises(NotFound):
        store.resolve_image(image_id("old"))
    assert len(store.images()) == 1


async def test_images_survive_reopen_and_delete(store: Store[LambdaState]) -> None:
    alpine = make_image("alpine:3.20", "alpine")
    ecr = make_image("123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:tag", "ecr")
    await store.save_image(alpine)
    await store.save_image(ecr)
    store = await reopen(store)
    assert store.images() == [ecr, alpine]
    await store.delete_image("alpine:3.20")
    with pytest.raises(NotFound, match=r"No such image: alpine:3\.20"):
        await store.delete_image("alpine:3.20")
    store = await reopen(store)
    assert store.images() == [ecr]
    await store.close()


async def test_the_references_of_one_image_are_found_and_deleted_together(store: Store[LambdaState]) -> None:
    for reference in ("alpine:3.20", "mine:v1"):
        await store.save_image(make_image(reference, "alpine"))
    await store.save_image(make_image("busybox", "busybox"))
    alpine_id = image_id("alpine")
    found = [image.reference for image in store.images_with_id(alpine_id)]
    assert found == ["docker.io/library/alpine:3.20", "docker.io/library/mine:v1"]
    with pytest.raises(NotFound, match="No such image: nosuch"):
        await store.delete_images(["alpine:3.20", "nosuch"])
    assert len(store.images_with_id(alpine_id)) == 2  # all or none
    await store.delete_images(["alpine:3.20", "mine:v1"])
    store = await reopen(store)
    assert store.images_with_id(alpine_id) == []
    assert [image.reference for image in store.images()] == ["docker.io/library/busybox:latest"]
    await store.close()


async def test_image_with_bad_reference_or_id_is_refused(store: Store[LambdaState]) -> None:
    with pytest.raises(InvalidParameter, match="invalid reference format"):
        await store.save_image(make_image("Alpine", "x"))
    with pytest.raises(InvalidParameter, match="invalid image ID"):
        await store.save_image(ImageRecord(reference="alpine", id="abc"))
    assert store.images() == []


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
