"""Docker's views of a stored container: inspect and the list row, with Docker's wording."""

from __future__ import annotations

import datetime as dt

import pytest

from sockerless.models import ContainerConfig, HostConfig, LogConfig
from sockerless.store import ContainerRecord
from sockerless.views import container_inspect, container_summary, human_duration, status_text
from sockerless.wire import unstructure

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


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
     (600, "10 minutes"), (3600, "About an hour"), (7200, "2 hours"), (3 * 86400, "3 days")],
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
