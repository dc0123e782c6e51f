"""The route of Docker's event stream (additive: frontends older than it never call it)."""

from __future__ import annotations

from typing import Final

from sockerless.api.params import Filters, Param, Time
from sockerless.api.route import Answer, AnswerKind, Route, always
from sockerless.events import EVENT_FILTERS, HISTORY_SIZE, EventMessage, EventsOptions

__all__ = ["EVENTS", "EVENTS_ROUTE"]

EVENTS_ROUTE: Final = Route(
    "SystemEvents",
    "GET",
    "/events",
    "events",
    "Docker's events as they happen, one JSON object per line; headers are sent at once (additive)",
    "System",
    Answer(AnswerKind.EVENTS, 200, EventMessage),
    options=EventsOptions,
    capability="events",
    cloud=False,
    errors=(400, 501),
    long_lived=always,
    query=(
        Param(
            "since",
            Time(),
            f"Start with the kept events from this time on (the backend keeps its last {HISTORY_SIZE} "
            "events, in memory); without since and until only new events come",
        ),
        Param(
            "until",
            Time(),
            "End the stream at this time; with until alone the stream starts with every kept event before it",
        ),
        Param(
            "filters",
            Filters(EVENT_FILTERS),
            "JSON filters, Docker's rules; keys: " + ", ".join(sorted(EVENT_FILTERS)),
        ),
    ),
)
EVENTS: Final = (EVENTS_ROUTE,)
