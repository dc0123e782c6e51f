"""Docker's container list: which containers ``docker ps`` shows for its flags and filters."""

from __future__ import annotations

import datetime as dt

import pytest

from sockerless.errors import InvalidParameter, NotFound
from sockerless.filters import parse_filters, select_containers
from sockerless.store import ContainerRecord
from tests.core.records import BASE_TIME, bare_container

Record = ContainerRecord[None]


def containers() -> list[Record]:
    """Newest first, as the store lists them: d running, c exited 3, b exited 0, a created."""
    made = []
    for age, (name, status, code) in enumerate(
        [("d", "running", 0), ("c", "exited", 3), ("b", "exited", 0), ("a", "created", 0)]
    ):
        record = bare_container(name, None)
        record.created = BASE_TIME - dt.timedelta(seconds=age)
        record.status, record.exit_code = status, code
        record.started_at = None if status == "created" else record.created
        made.append(record)
    return made


def names(filters: str = "", *, all: bool = True, limit: int | None = None) -> list[str]:
    records = containers()
    by_name = {record.name: record for record in records}

    def resolve(ref: str) -> Record:
        if ref not in by_name:
            raise NotFound(f"No such container: {ref}")
        return by_name[ref]

    selected = select_containers(records, parse_filters(filters), all=all, limit=limit, resolve=resolve)
    return [record.name for record in selected]


def test_running_ones_only_unless_all_a_limit_or_a_status_filter() -> None:
    assert names(all=False) == ["d"]
    assert names(all=False, limit=3) == ["d", "c", "b"]
    assert names('{"status": ["exited"]}', all=False) == ["c", "b"]
    assert names('{"before": ["c"]}', all=False) == []  # as moby: before/since do not imply -a


def test_exited_matches_containers_that_ran_and_ended_with_the_code() -> None:
    assert names('{"exited": ["3"]}') == ["c"]
    assert names('{"exited": ["0"]}') == ["b"]  # neither the running d nor the never started a
    assert names('{"exited": ["0", "+3"]}') == ["c", "b"]


def test_before_and_since_are_by_creation_and_the_last_value_counts() -> None:
    assert names('{"before": ["c"]}') == ["b", "a"]
    assert names('{"since": ["b"]}') == ["d", "c"]
    assert names('{"since": ["a"], "before": ["d"]}') == ["c", "b"]
    assert names('{"since": ["d", "a"]}') == ["d", "c", "b"]
    assert names('{"since": ["a"]}', limit=1) == ["d"]


def test_an_unknown_anchor_is_not_found_and_a_bad_exit_code_is_refused() -> None:
    with pytest.raises(NotFound, match="No such container: nosuch"):
        names('{"before": ["nosuch"]}')
    with pytest.raises(InvalidParameter, match="invalid filter 'exited=x'"):
        parse_filters('{"exited": ["x"]}')
