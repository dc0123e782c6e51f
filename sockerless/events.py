"""Docker's event stream, for any backend: what happened to containers and images, as it happens.

A backend owns one :class:`EventBus` and publishes to it at its lifecycle points (container create,
start, die, destroy, rename; image pull, tag, untag, delete); ``GET /internal/v1/events`` hands each
request an :class:`EventStream` of it, which the Docker frontend passes on as ``GET /events``. The
messages (:class:`EventMessage`, :class:`EventActor`) are Docker's shape.

What is kept, and what is dropped (Docker keeps 256 events and drops what a slow client misses):

* **History**: the last :data:`HISTORY_SIZE` events, in memory. A stream with ``since`` (or only
  ``until``) starts with those of them in its window; events older than the oldest kept one are gone,
  and all of them are at a restart of the backend.
* **Live subscribers**: each stream has a queue of at most :data:`QUEUE_SIZE` events it has not read
  yet. A client that falls that far behind is ended (its stream closes, and the backend logs a
  warning) rather than growing memory without bound or losing events from the middle of its stream.

Filters follow Docker's rules (``daemon/events/filter.go``): ``type``, ``event``, ``scope`` exact;
``container`` (and the other object keys) by ID or name prefix; ``image`` by the container's image or
the image's reference, with or without its tag; ``label``: every given ``key`` or ``key=value`` holds.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Final, Protocol

import attrs
from attrs import Factory, frozen

from sockerless.errors import InvalidParameter
from sockerless.references import parse_reference
from sockerless.wire import field


class EventSubject(Protocol):
    """What a container's event reads of it (a ``sockerless.store.ContainerRecord`` is one): named
    here rather than imported, since the store depends on the Backend protocol, which names this
    module's classes."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def image(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...


__all__ = [
    "EVENT_FILTERS",
    "HISTORY_SIZE",
    "QUEUE_SIZE",
    "EventActor",
    "EventBus",
    "EventMessage",
    "EventStream",
    "EventsOptions",
    "includes",
]


@frozen
class EventActor:
    """What an event is about: a container's full ID or an image's reference, and its attributes
    (a container's labels, ``image``, ``name``, and per action ``exitCode`` or ``oldName``)."""

    id: str = field(wire="ID")
    attributes: dict[str, str] = attrs.Factory(dict)


@frozen
class EventMessage:
    """One line of ``GET /events``, in Docker's shape, with the fields API 1.44 still sends beside
    ``Type``/``Action``/``Actor``: ``status`` (the action), ``id`` and, for a container, ``from`` (its
    image)."""

    type: str
    action: str
    actor: EventActor
    time: int = field(wire="time")
    time_nano: int = field(wire="timeNano")
    scope: str = field(default="local", wire="scope")
    status: str = field(default="", wire="status")
    id: str = field(default="", wire="id")
    from_: str = field(default="", wire="from")


log = logging.getLogger("sockerless.events")

#: Events kept for ``since`` (Docker keeps 256).
HISTORY_SIZE: Final = 1024
#: Events a live stream may have unread before it is ended.
QUEUE_SIZE: Final = 1024
#: The filter keys Docker accepts for events.
EVENT_FILTERS: Final = frozenset(
    {
        "config",
        "container",
        "daemon",
        "event",
        "image",
        "label",
        "network",
        "node",
        "plugin",
        "scope",
        "secret",
        "service",
        "type",
        "volume",
    }
)
#: Keys that match an event's object by a prefix of its ID or name (Docker's ``fuzzyMatchName``).
_OBJECT_KEYS: Final = (
    "config",
    "container",
    "daemon",
    "network",
    "node",
    "plugin",
    "secret",
    "service",
    "volume",
)


def _nanoseconds(value: dt.datetime | None) -> int | None:
    if value is None:
        return None
    return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000


@frozen
class EventsOptions:
    """What an events request asks for: a window of time (either end may be open) and filters.

    Without ``since`` and ``until`` the stream carries only what happens from now on; with either,
    it starts with the kept events of its window. With ``until`` it ends at that time.
    """

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    filters: Mapping[str, list[str]] = Factory(dict)

    def __attrs_post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.until < self.since:
            raise InvalidParameter(
                f"`since` time ({self.since.isoformat()}) cannot be after `until` time "
                f"({self.until.isoformat()})"
            )


# ---------------------------------------------------------------------------- filters


def _exact(filters: Mapping[str, list[str]], key: str, *values: str) -> bool:
    wanted = filters.get(key)
    return not wanted or any(value in wanted for value in values)


def _fuzzy(filters: Mapping[str, list[str]], key: str, *values: str) -> bool:
    wanted = filters.get(key)
    return not wanted or any(value.startswith(prefix) for prefix in wanted for value in values)


def _without_tag(image: str) -> str:
    try:
        return attrs.evolve(parse_reference(image), tag="", digest="").familiar
    except InvalidParameter:
        return image


def _labels_match(filters: Mapping[str, list[str]], attributes: Mapping[str, str]) -> bool:
    for wanted in filters.get("label", ()):
        key, sep, value = wanted.partition("=")
        if key not in attributes or (sep and attributes[key] != value):
            return False
    return True


def includes(filters: Mapping[str, list[str]], event: EventMessage) -> bool:
    """Whether ``event`` passes ``filters`` (``{key: [values]}``), by Docker's rules."""
    attributes = event.actor.attributes
    name = attributes.get("name", "")
    image = attributes.get("name" if event.type == "image" else "image", "")
    return (
        _exact(filters, "event", event.action)
        and _exact(filters, "type", event.type)
        and _exact(filters, "scope", event.scope)
        and all(_fuzzy(filters, key, event.actor.id, name) for key in _OBJECT_KEYS)
        and _exact(filters, "image", event.actor.id, image, _without_tag(event.actor.id), _without_tag(image))
        and _labels_match(filters, attributes)
    )


# ---------------------------------------------------------------------------- the bus


class EventStream:
    """One request's events: the kept ones of its window first, then the live ones as they come.

    Subscribed as soon as it exists (nothing published after :meth:`EventBus.subscribe` returns is
    missed); iterate it, and :meth:`close` it when done.
    """

    def __init__(
        self, bus: EventBus, options: EventsOptions, past: list[EventMessage], *, queue_size: int
    ) -> None:
        self._bus = bus
        self._filters = options.filters
        self._until_ns = _nanoseconds(options.until)
        self._pending: collections.deque[EventMessage] = collections.deque(past)
        self._queue_size = queue_size
        self._wake = asyncio.Event()
        self._ended = self._until_ns is not None and self._until_ns <= time.time_ns()

    def __aiter__(self) -> AsyncIterator[EventMessage]:
        return self

    async def __anext__(self) -> EventMessage:
        while True:
            if self._pending:
                event = self._pending.popleft()
                if self._until_ns is None or event.time_nano <= self._until_ns:
                    return event
                self._pending.clear()  # in time order: every later one is past `until` too
                self._ended = True
            if self._ended:
                self.close()
                raise StopAsyncIteration
            self._wake.clear()
            timeout = None if self._until_ns is None else max(0, self._until_ns - time.time_ns()) / 1e9
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                self._ended = True  # `until` has come

    def offer(self, event: EventMessage) -> None:
        """A live event; ends a stream whose reader has fallen :data:`QUEUE_SIZE` events behind."""
        if self._ended or not includes(self._filters, event):
            return
        if len(self._pending) >= self._queue_size:
            log.warning(
                "an events client fell too far behind; its stream is ended",
                extra={"fields": {"unread_events": len(self._pending)}},
            )
            self.end()
            return
        self._pending.append(event)
        self._wake.set()

    def end(self) -> None:
        """End the stream once what it holds is read (the backend is shutting down, or it overflowed)."""
        self._ended = True
        self._wake.set()
        self._bus.unsubscribe(self)

    def close(self) -> None:
        """Stop receiving events; what was not read is dropped."""
        self._ended = True
        self._pending.clear()
        self._bus.unsubscribe(self)


class EventBus:
    """The events of one backend: a bounded history and the live streams."""

    def __init__(self, *, history_size: int = HISTORY_SIZE, queue_size: int = QUEUE_SIZE) -> None:
        self._history: collections.deque[EventMessage] = collections.deque(maxlen=history_size)
        self._streams: set[EventStream] = set()
        self._queue_size = queue_size

    def publish(self, event: EventMessage) -> None:
        self._history.append(event)
        for stream in list(self._streams):
            stream.offer(event)

    def container(self, action: str, record: EventSubject, **attributes: str) -> None:
        """A container's event: its labels, ``image`` and ``name`` as attributes, with ``attributes``
        (``exitCode`` for die, ``oldName`` for rename)."""
        actor = EventActor(
            record.id, {**record.labels, "image": record.image, "name": record.name, **attributes}
        )
        self.publish(_message("container", action, actor, from_=record.image))

    def image(self, action: str, reference: str) -> None:
        """An image's event, named by its reference as the user sees it (``alpine:latest``)."""
        try:
            name = parse_reference(reference).familiar
        except InvalidParameter:
            name = reference
        self.publish(_message("image", action, EventActor(name, {"name": name})))

    def subscribe(self, options: EventsOptions) -> EventStream:
        """A stream of the kept events in the window of ``options`` (when it has one), then of the
        live ones until ``until``; it receives every event published from now on."""
        past: list[EventMessage] = []
        if options.since is not None or options.until is not None:
            since_ns = _nanoseconds(options.since) or 0
            until_ns = _nanoseconds(options.until)
            past = [
                event
                for event in self._history
                if event.time_nano >= since_ns
                and (until_ns is None or event.time_nano <= until_ns)
                and includes(options.filters, event)
            ]
        stream = EventStream(self, options, past, queue_size=self._queue_size)
        self._streams.add(stream)
        return stream

    def unsubscribe(self, stream: EventStream) -> None:
        self._streams.discard(stream)

    @property
    def subscribers(self) -> int:
        return len(self._streams)

    def close(self) -> None:
        """End every live stream (shutdown): each ends once its reader has what it holds."""
        for stream in list(self._streams):
            stream.end()


def _message(type_: str, action: str, actor: EventActor, *, from_: str = "") -> EventMessage:
    now = time.time_ns()
    return EventMessage(
        type=type_,
        action=action,
        actor=actor,
        time=now // 1_000_000_000,
        time_nano=now,
        status=action,
        id=actor.id,
        from_=from_,
    )
