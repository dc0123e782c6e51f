"""The list rows a SummaryCache encodes are the rows `container_summary` gives, call after call."""

from __future__ import annotations

import datetime as dt
import json

import attrs

from sockerless.models import ContainerConfig, HostConfig, unstructure
from sockerless.store import ContainerRecord
from sockerless.views import SummaryCache, container_summary

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def _record(index: int, **fields: object) -> ContainerRecord:
    values: dict[str, object] = {
        "id": f"{index:064x}",
        "name": f"c{index}",
        "created": T0,
        "image": "alpine:3.20",
        "config": ContainerConfig(image="alpine:3.20", cmd=["sh", "-c", f"echo {index}"]),
        "host_config": HostConfig(),
    }
    values.update(fields)
    return ContainerRecord(**values)  # type: ignore[arg-type]


def _records() -> list[ContainerRecord]:
    return [
        _record(1),
        _record(2, status="running", started_at=T0 + dt.timedelta(seconds=1)),
        _record(3, status="exited", exit_code=3, finished_at=T0 + dt.timedelta(seconds=2)),
        _record(4, status="dead", image_id="sha256:" + "cd" * 32),
        _record(5, status="removing"),
        _record(
            6,
            name='quotes"and\\slashes',
            config=ContainerConfig(
                image="alpine:3.20",
                entrypoint=["/bin/ünïcode"],
                labels={"tab": "a\tb", "emoji": "\U0001f433", "quote": '"'},
            ),
        ),
        # A label that holds the cache's stand-in text itself: that row is encoded in full every time.
        _record(7, config=ContainerConfig(image="x", labels={"x": "\x00sockerless-live\x00"})),
    ]


def _expected(records: list[ContainerRecord], now: dt.datetime) -> object:
    return unstructure([container_summary(record, now) for record in records])


def test_the_encoded_rows_are_the_summaries_first_and_from_the_cache() -> None:
    cache, records = SummaryCache(), _records()
    for now in (T0 + dt.timedelta(seconds=5), T0 + dt.timedelta(hours=3), T0 + dt.timedelta(days=20)):
        body = cache.rows(records, now).to_json()
        assert json.loads(body) == _expected(records, now)
        # Byte for byte what the server's json.dumps of the same rows gives.
        assert body == json.dumps(_expected(records, now)).encode()
    assert len(cache) == len(records) - 1  # the row with the stand-in is not kept


def test_a_state_change_shows_at_once_and_other_changes_re_encode_the_row() -> None:
    cache, now = SummaryCache(), T0 + dt.timedelta(minutes=5)
    record = _record(1)
    assert json.loads(cache.rows([record], now).to_json())[0]["Status"] == "Created"

    record.status, record.started_at = "running", T0
    row = json.loads(cache.rows([record], now).to_json())[0]
    assert (row["State"], row["Status"]) == ("running", "Up 5 minutes")

    record.name = "renamed"
    record.image_id = "sha256:" + "ef" * 32
    record.config = attrs.evolve(record.config, labels={"new": "label"})
    row = json.loads(cache.rows([record], now).to_json())[0]
    assert (row["Names"], row["ImageID"], row["Labels"]) == (["/renamed"], record.image_id, {"new": "label"})

    reloaded = attrs.evolve(record, image="other:1")  # a new record object for the same container
    assert json.loads(cache.rows([reloaded], now).to_json())[0]["Image"] == "other:1"


def test_forget_drops_the_row() -> None:
    cache, records = SummaryCache(), _records()[:3]
    cache.rows(records, T0).to_json()
    cache.forget(records[0].id)
    cache.forget("not-there")
    assert len(cache) == 2


def test_rows_read_as_a_sequence_of_summaries() -> None:
    records, now = _records(), T0 + dt.timedelta(seconds=30)
    rows = SummaryCache().rows(records, now)
    expected = [container_summary(record, now) for record in records]
    assert len(rows) == len(expected)
    assert list(rows) == expected
    assert rows[2] == expected[2]
    assert rows[1:3] == expected[1:3]
    assert rows.to_json() == b"[" + b", ".join(json.dumps(unstructure(r)).encode() for r in expected) + b"]"
    assert SummaryCache().rows([], now).to_json() == b"[]"
