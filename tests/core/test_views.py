"""Docker's views of a stored container: inspect and the list row, with Docker's wording."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from sockerless.models import ContainerConfig, HostConfig, LogConfig
from sockerless.store import ContainerRecord, Store
from sockerless.views import (
    ViewCache,
    container_inspect,
    container_summary,
    human_duration,
    status_text,
    timed_status,
)
from sockerless.wire import unstructure

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
Record = ContainerRecord[None]


def record(**changes: object) -> ContainerRecord[None]:
    values: dict[str, object] = {
        "id": "a" * 64,
        "name": "web",
        "created": T0,
        "image": "alpine",
        "config": ContainerConfig(
            image="alpine", entrypoint=["sh", "-c"], cmd=["echo hi"], labels={"k": "v"}
        ),
        "host_config": HostConfig(),
        "backend_state": None,
    }
    values.update(changes)
    return ContainerRecord(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (90, "About a minute"),
     (600, "10 minutes"), (3600, "About an hour"), (7200, "2 hours"), (9000, "3 hours"),
     (3 * 86400, "3 days"), (40 * 86400, "5 weeks"), (90 * 86400, "3 months"), (800 * 86400, "2 years")],
)  # fmt: skip
def test_durations_read_as_docker_prints_them(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_status_texts_are_dockers() -> None:
    now = T0 + dt.timedelta(minutes=2)
    assert status_text(record(), now) == "Created"
    assert status_text(record(status="running", started_at=T0), now) == "Up 2 minutes"
    assert (
        status_text(record(status="exited", exit_code=3, finished_at=T0), now) == "Exited (3) 2 minutes ago"
    )


def test_the_list_row_carries_the_command_labels_and_an_integer_creation_time() -> None:
    row = unstructure(container_summary(record(status="exited", finished_at=T0), T0))
    assert row["Names"] == ["/web"]
    assert row["Command"] == "sh -c echo hi"
    assert row["Created"] == int(T0.timestamp())
    assert row["State"] == "exited"
    assert row["Labels"] == {"k": "v"}


def test_an_empty_log_driver_is_reported_as_json_file() -> None:
    """The SDK's blocking run() reads the output only from json-file or journald; Docker's default is
    json-file, and the CLI sends an empty type when none is asked for."""
    assert container_inspect(record()).host_config.log_config.type == "json-file"
    empty = HostConfig(log_config=LogConfig(type=""))
    assert container_inspect(record(host_config=empty)).host_config.log_config.type == "json-file"
    assert empty.log_config.type == ""  # the stored record is left as it was
    none = HostConfig(log_config=LogConfig(type="none"))
    assert container_inspect(record(host_config=none)).host_config.log_config.type == "none"


def test_inspect_carries_every_field_docker_always_sends() -> None:
    body = unstructure(container_inspect(record()))
    for key in (
        "ResolvConfPath",
        "HostnamePath",
        "HostsPath",
        "MountLabel",
        "ProcessLabel",
        "AppArmorProfile",
    ):
        assert body[key] == ""
    assert body["ExecIDs"] is None
    assert body["GraphDriver"] == {"Name": "", "Data": None}
    assert body["Name"] == "/web"
    assert body["Path"] == "sh"
    assert body["Args"] == ["-c", "echo hi"]
    assert body["State"]["StartedAt"] == "0001-01-01T00:00:00Z"
    settings = body["NetworkSettings"]
    for key in ("IPAddress", "MacAddress", "Gateway", "Bridge", "SandboxID", "EndpointID", "IPv6Gateway"):
        assert settings[key] == "", key
    assert (settings["Networks"], settings["Ports"], settings["IPPrefixLen"]) == ({}, {}, 0)
    assert body["HostConfig"]["Runtime"] == ""  # a backend names its runtime (below)


def test_runtime_is_the_backends_unless_the_create_named_one() -> None:
    assert container_inspect(record(), runtime="lambda").host_config.runtime == "lambda"
    asked = HostConfig(runtime="runc")
    assert container_inspect(record(host_config=asked), runtime="lambda").host_config.runtime == "runc"
    cached = json.loads(ViewCache(runtime="lambda").inspect(record()).body)
    assert cached["HostConfig"]["Runtime"] == "lambda"


# ---------------------------------------------------------------------------- the cache of encoded views


def listed(
    views: ViewCache, records: list[ContainerRecord[None]], now: dt.datetime, revision: int = 0
) -> Any:
    return json.loads(views.rows("all", revision, now, lambda: records).body)


async def test_cached_views_follow_every_write_of_the_store(tmp_path: Path) -> None:
    store: Store[None] = await Store.open(str(tmp_path / "views.sqlite3"), state_class=type(None))
    try:
        views = ViewCache()
        web = record()
        await store.add_container(web)
        created = views.inspect(web).body
        assert json.loads(created)["State"]["Status"] == "created"
        assert views.inspect(web).body is created  # unchanged: the same bytes, not encoded again
        rows = listed(views, [web], T0, store.containers_revision)

        web.status, web.started_at = "running", T0
        await store.save_state(web)
        assert json.loads(views.inspect(web).body)["State"]["Status"] == "running"
        await store.rename_container(web, "api")
        assert json.loads(views.inspect(web).body)["Name"] == "/api"
        (row,) = listed(views, [web], T0 + dt.timedelta(seconds=5), store.containers_revision)
        assert (rows[0]["Status"], row["Names"], row["Status"]) == ("Created", ["/api"], "Up 5 seconds")
        await store.delete_container(web.id)
        assert listed(views, [], T0 + dt.timedelta(seconds=5), store.containers_revision) == []
    finally:
        await store.close()


def test_a_list_is_kept_while_the_store_is_unchanged_and_its_status_texts_hold() -> None:
    views, web = ViewCache(), record(status="running", started_at=T0)
    kept = views.rows("all", 1, T0 + dt.timedelta(seconds=5), lambda: [web]).body
    assert views.rows("all", 1, T0 + dt.timedelta(seconds=5.9), lambda: []).body is kept
    assert listed(views, [web], T0 + dt.timedelta(seconds=5.9), revision=2) == json.loads(kept)  # stale
    texts = [
        listed(views, [web], T0 + dt.timedelta(seconds=s), 2)[0]["Status"] for s in (6, 3599, 3600, 5400)
    ]
    assert texts == ["Up 6 seconds", "Up 59 minutes", "Up About an hour", "Up 2 hours"]


@pytest.mark.parametrize(
    "seconds", [0, 0.5, 1, 59.5, 60, 119, 120, 3599, 3600, 5399, 5400, 86400, 40 * 86400]
)
def test_a_status_text_holds_until_the_time_given_for_its_next_change(seconds: float) -> None:
    started = record(status="running", started_at=T0)
    text, until = timed_status(started, T0 + dt.timedelta(seconds=seconds))
    assert until > T0 + dt.timedelta(seconds=seconds)
    just_before = until - dt.timedelta(microseconds=1)
    assert status_text(started, just_before) == text


def test_cached_views_equal_the_views_encoded_afresh() -> None:
    views, web = ViewCache(), record(status="exited", exit_code=2, finished_at=T0)
    now = T0 + dt.timedelta(days=3)
    assert json.loads(views.inspect(web).body) == unstructure(container_inspect(web))
    assert listed(views, [web, web], now) == [unstructure(container_summary(web, now))] * 2


def test_inspect_answers_are_kept_for_the_most_recent_containers_only() -> None:
    views = ViewCache(inspect_size=2)
    first, second, third = (record(id=letter * 64) for letter in "abc")
    kept = views.inspect(first).body
    views.inspect(second)
    assert views.inspect(first).body is kept  # inspected again: now the most recent
    views.inspect(third)  # the least recent, second, makes room
    assert views.inspect(first).body is kept
    views.forget(first.id)
    assert views.inspect(first).body is not kept
