"""Parsing of the times Docker clients send (log since/until, filter until)."""

from __future__ import annotations

import datetime as dt

import pytest

from sockerless.errors import InvalidParameter
from sockerless.wire import parse_time


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
