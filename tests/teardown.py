"""Teardown shared by the suites (import as ``tests.teardown``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


@contextlib.asynccontextmanager
async def each_ended(end: Callable[[T], Awaitable[object]]) -> AsyncIterator[list[T]]:
    """A list the caller adds what it starts to; on leaving, whatever happened, ``end`` is awaited on
    each, in the order they were added."""
    started: list[T] = []
    try:
        yield started
    finally:
        for item in started:
            await end(item)
