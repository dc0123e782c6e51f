"""The store's backend objects: JSON documents by kind and key, durable, served from memory, and a
schema-4 file (before them) migrated with its containers intact."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sockerless.errors import InvalidParameter
from sockerless.store import SCHEMA_VERSION, Store
from sockerless_lambda.state import LambdaState
from tests.core.records import bare_container, container_id


async def open_store(path: str) -> Store[LambdaState]:
    return await Store.open(path, state_class=LambdaState)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "state" / "sockerless.db")


async def test_objects_are_kept_by_kind_and_key_across_a_reopen(db_path: str) -> None:
    store = await open_store(db_path)
    await store.objects.put("lambda.function", "k1", '{"name":"one"}')
    await store.objects.put("lambda.function", "k2", '{"name":"two"}')
    await store.objects.put("other", "k1", "[]")
    await store.objects.put("lambda.function", "k1", '{"name":"one again"}')
    await store.objects.delete("lambda.function", "k2")
    await store.objects.delete("lambda.function", "never there")
    await store.close()

    store = await open_store(db_path)
    try:
        assert store.objects.all("lambda.function") == {"k1": '{"name":"one again"}'}
        assert store.objects.get("other", "k1") == "[]"
        assert store.objects.get("other", "k2") is None
        assert store.objects.all("unknown") == {}
    finally:
        await store.close()


async def test_a_document_that_is_not_json_or_an_empty_key_is_refused_and_nothing_written(
    db_path: str,
) -> None:
    store = await open_store(db_path)
    try:
        with pytest.raises(InvalidParameter, match="not JSON"):
            await store.objects.put("kind", "key", "{broken")
        with pytest.raises(InvalidParameter, match="invalid backend object"):
            await store.objects.put("kind", "", "{}")
        assert store.objects.all("kind") == {}
    finally:
        await store.close()


async def test_a_schema_4_file_gets_the_table_and_keeps_its_containers(db_path: str) -> None:
    store = await open_store(db_path)
    await store.add_container(bare_container("kept", LambdaState(function_name="skls-kept")))
    await store.close()
    with sqlite3.connect(db_path) as raw:
        raw.execute("DROP TABLE backend_objects")
        raw.execute("PRAGMA user_version = 4")
    raw.close()

    store = await open_store(db_path)
    try:
        assert store.resolve_container("kept").id == container_id("kept")
        assert store.objects.all("lambda.function") == {}
        await store.objects.put("lambda.function", "k", "{}")
    finally:
        await store.close()
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert raw.execute("SELECT kind, key FROM backend_objects").fetchall() == [("lambda.function", "k")]
    raw.close()
