"""The event bus: what a stream gets (the kept events of its window, then the live ones), Docker's
filter rules, and the bounds on history and on a slow reader."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from sockerless.errors import InvalidParameter
from sockerless.events import EventBus, EventMessage, EventsOptions, EventStream, includes
from sockerless.models import ContainerConfig, HostConfig
from sockerless.store import ContainerRecord
from sockerless.wire import unstructure

ID = "a" * 64
OTHER = "b" * 64


def record(container_id: str = ID, name: str = "web", image: str = "alpine", **labels: str) -> Any:
    return ContainerRecord(
        id=container_id,
        name=name,
        created=dt.datetime.now(dt.UTC),
        image=image,
        config=ContainerConfig(image=image, labels=labels or None),
        host_config=HostConfig(),
        backend_state=None,
    )


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def drain(stream: EventStream) -> list[EventMessage]:
    """Every event of a stream that ends by itself (it has an ``until`` in the past)."""
    return [event async for event in stream]


async def next_event(stream: EventStream) -> EventMessage:
    return await asyncio.wait_for(anext(stream), 10)


def actions(events: list[EventMessage]) -> list[str]:
    return [event.action for event in events]


# ---------------------------------------------------------------------------- the message


async def kept(bus: EventBus) -> list[EventMessage]:
    return await drain(bus.subscribe(EventsOptions(until=now())))


async def test_a_container_event_has_dockers_fields_and_attributes() -> None:
    bus = EventBus()
    bus.container("die", record(team="data"), exitCode="3")
    [event] = await kept(bus)
    wire = unstructure(event)
    assert wire["Type"] == "container"
    assert wire["Action"] == wire["status"] == "die"
    assert wire["Actor"] == {
        "ID": ID,
        "Attributes": {"team": "data", "image": "alpine", "name": "web", "exitCode": "3"},
    }
    assert wire["id"] == ID
    assert wire["from"] == "alpine"
    assert wire["scope"] == "local"
    assert wire["time"] == wire["timeNano"] // 1_000_000_000


async def test_an_image_event_is_named_by_the_familiar_reference() -> None:
    bus = EventBus()
    bus.image("pull", "docker.io/library/alpine:latest")
    [event] = await kept(bus)
    assert (event.type, event.action, event.actor.id) == ("image", "pull", "alpine:latest")
    assert event.actor.attributes == {"name": "alpine:latest"}
    assert event.from_ == ""


# ---------------------------------------------------------------------------- windows


async def test_since_and_until_select_the_kept_events_of_their_window() -> None:
    bus = EventBus()
    bus.container("create", record())
    middle = now()
    bus.container("start", record())
    bus.container("die", record(), exitCode="0")
    end = now()
    bus.container("destroy", record())
    assert actions(await drain(bus.subscribe(EventsOptions(since=middle, until=end)))) == ["start", "die"]
    assert actions(await drain(bus.subscribe(EventsOptions(until=end)))) == ["create", "start", "die"]


async def test_without_since_or_until_only_new_events_come() -> None:
    bus = EventBus()
    bus.container("create", record())
    stream = bus.subscribe(EventsOptions())
    bus.container("start", record())
    assert (await next_event(stream)).action == "start"
    stream.close()
    assert bus.subscribers == 0


async def test_a_stream_gets_what_is_published_before_it_is_first_read() -> None:
    bus = EventBus()
    stream = bus.subscribe(EventsOptions(since=now()))
    bus.container("create", record())  # subscribed already: not missed, not doubled
    assert (await next_event(stream)).action == "create"
    bus.container("start", record())
    assert (await next_event(stream)).action == "start"
    stream.close()


async def test_a_stream_with_until_in_the_future_ends_at_until() -> None:
    bus = EventBus()
    stream = bus.subscribe(EventsOptions(until=now() + dt.timedelta(milliseconds=200)))
    bus.container("create", record())
    assert actions(await asyncio.wait_for(drain(stream), 10)) == ["create"]
    assert bus.subscribers == 0


def test_until_before_since_is_refused() -> None:
    with pytest.raises(InvalidParameter, match="cannot be after `until` time"):
        EventsOptions(since=now(), until=now() - dt.timedelta(seconds=1))


async def test_history_keeps_only_the_last_events() -> None:
    bus = EventBus(history_size=3)
    for n in range(5):
        bus.container("rename", record(), oldName=f"/n{n}")
    assert [event.actor.attributes["oldName"] for event in await kept(bus)] == ["/n2", "/n3", "/n4"]


# ---------------------------------------------------------------------------- bounds on live streams


async def test_a_reader_that_falls_too_far_behind_is_ended_after_what_it_holds() -> None:
    bus = EventBus(queue_size=2)
    stream = bus.subscribe(EventsOptions())
    for action in ("create", "start", "die", "destroy"):
        bus.container(action, record())
    assert bus.subscribers == 0  # ended at the third: memory stays bounded
    assert actions(await asyncio.wait_for(drain(stream), 10)) == ["create", "start"]


async def test_close_of_the_bus_ends_every_live_stream() -> None:
    bus = EventBus()
    streams = [bus.subscribe(EventsOptions()) for _ in range(3)]
    reads = [asyncio.ensure_future(drain(stream)) for stream in streams]
    bus.container("create", record())
    bus.close()
    assert [actions(events) for events in await asyncio.wait_for(asyncio.gather(*reads), 10)] == [
        ["create"]
    ] * 3
    assert bus.subscribers == 0


# ---------------------------------------------------------------------------- Docker's filter rules


async def container_event(**labels: str) -> EventMessage:
    bus = EventBus()
    bus.container("start", record(**labels))
    [event] = await kept(bus)
    return event


async def image_event(reference: str = "alpine:3.20") -> EventMessage:
    bus = EventBus()
    bus.image("pull", reference)
    [event] = await kept(bus)
    return event


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, True),
        ({"type": ["container"]}, True),
        ({"type": ["image"]}, False),
        ({"event": ["start", "die"]}, True),
        ({"event": ["die"]}, False),
        ({"container": ["web"]}, True),  # the name
        ({"container": ["we"]}, True),  # a prefix of it
        ({"container": [ID[:12]]}, True),  # an ID prefix
        ({"container": ["db"]}, False),
        ({"container": ["db", "web"]}, True),  # values of one key are alternatives
        ({"image": ["alpine"]}, True),
        ({"image": ["alpine:latest"]}, False),  # the container's image is "alpine" as given
        ({"label": ["team"]}, True),
        ({"label": ["team=data"]}, True),
        ({"label": ["team=web"]}, False),
        ({"label": ["team=data", "tier"]}, False),  # every label must hold
        ({"type": ["container"], "event": ["die"]}, False),  # keys must all hold
        ({"scope": ["local"]}, True),
        ({"scope": ["swarm"]}, False),
        ({"network": ["bridge"]}, False),
    ],
)
async def test_container_event_filters(filters: dict[str, list[str]], expected: bool) -> None:
    assert includes(filters, await container_event(team="data")) is expected


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"image": ["alpine:3.20"]}, True),
        ({"image": ["alpine"]}, True),  # without its tag
        ({"image": ["docker.io/library/alpine"]}, False),
        ({"type": ["image"], "event": ["pull"]}, True),
        ({"container": ["alpine"]}, True),  # Docker matches the actor's ID by prefix whatever its type
        ({"container": ["web"]}, False),
    ],
)
async def test_image_event_filters(filters: dict[str, list[str]], expected: bool) -> None:
    assert includes(filters, await image_event()) is expected


async def test_a_live_stream_gets_only_what_its_filters_pass() -> None:
    bus = EventBus()
    stream = bus.subscribe(EventsOptions(filters={"container": ["web"]}))
    bus.container("create", record(OTHER, name="db"))
    bus.image("pull", "alpine")
    bus.container("create", record())
    event = await next_event(stream)
    assert (event.actor.id, event.action) == (ID, "create")
    stream.close()
