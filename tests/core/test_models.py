"""Parsing of the times Docker clients send (log since/until, filter until)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from sockerless.errors import InvalidParameter
from sockerless.wire import encode_json, encode_json_list, format_time, parse_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1700000000", dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)),
        ("1700000000.5", dt.datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=dt.UTC)),
        ("2024-05-01T12:00:03.123456789Z", dt.datetime(2024, 5, 1, 12, 0, 3, 123456, tzinfo=dt.UTC)),
        ("2024-05-01T14:00:03+02:00", dt.datetime(2024, 5, 1, 12, 0, 3, tzinfo=dt.UTC)),
    ],
)
def test_absolute_times(text: str, expected: dt.datetime) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    ("text", "seconds"), [("24h", 86400), ("1h30m", 5400), ("90s", 90), ("1.5m", 90), ("250ms", 0.25)]
)
def test_go_durations_mean_that_long_ago(text: str, seconds: float) -> None:
    before = dt.datetime.now(dt.UTC)
    parsed = parse_time(text)
    after = dt.datetime.now(dt.UTC)
    assert parsed is not None
    assert before - dt.timedelta(seconds=seconds) <= parsed <= after - dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["yesterday", "10x", "h", "1h 30m", "1e400h"])
def test_other_text_is_a_400(text: str) -> None:
    with pytest.raises(InvalidParameter):
        parse_time(text)


PLUS_TWO = dt.timezone(dt.timedelta(hours=2))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "0001-01-01T00:00:00Z"),
        (dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "2026-01-02T03:04:05Z"),
        (dt.datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=dt.UTC), "2026-01-02T03:04:05.12Z"),
        (
            dt.datetime(2026, 1, 2, 3, 4, 5, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "2026-01-02T01:04:05.000001Z",
        ),
    ],
)
def test_times_are_written_as_docker_writes_them(value: dt.datetime | None, text: str) -> None:
    assert format_time(value) == text
    assert value is None or parse_time(text) == value


def test_json_is_compact_utf8_and_a_lone_surrogate_is_written_escaped() -> None:
    assert encode_json({"Name": "café", "Args": [1, None]}) == '{"Name":"café","Args":[1,null]}'.encode()
    assert json.loads(encode_json({"Env": ["A=\ud800"]})) == {"Env": ["A=\ud800"]}
    assert encode_json_list([b'{"a":1}', b"[]"]) == b'[{"a":1},[]]'
