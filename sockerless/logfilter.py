"""Docker's ``logs`` options applied to lines a backend already has, for any backend.

A backend collects :class:`~sockerless.backend.LogLine` objects from wherever its platform keeps
output, then :func:`select` applies the stream flags, ``since``/``until`` and ``tail`` exactly as
Docker's json-file driver does: ``since`` and ``until`` are inclusive, ``tail`` counts the lines
left after the other filters, and ``tail=0`` shows nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterable

from sockerless.backend import LogLine, LogsOptions
from sockerless.streams import STDERR, STDOUT

__all__ = ["iterate", "select", "split_lines"]


def split_lines(text: str, timestamp: dt.datetime, stream: int = STDOUT) -> list[LogLine]:
    """One :class:`LogLine` per line of ``text``, each ending in a newline as Docker's lines do."""
    return [
        LogLine(
            stream=stream, timestamp=timestamp, data=(line if line.endswith("\n") else line + "\n").encode()
        )
        for line in text.splitlines(keepends=True)
    ]


def select(lines: Iterable[LogLine], options: LogsOptions) -> list[LogLine]:
    """The lines ``docker logs`` with these options shows, oldest first."""
    kept = [
        line
        for line in lines
        if _stream_wanted(line.stream, options)
        and (options.since is None or line.timestamp >= options.since)
        and (options.until is None or line.timestamp <= options.until)
    ]
    if options.tail is None:
        return kept
    if options.tail <= 0:
        return []
    return kept[-options.tail :]


async def iterate(lines: Iterable[LogLine]) -> AsyncIterator[LogLine]:
    """Lines already in memory as the async iterator :class:`~sockerless.backend.ContainerLogs` carries."""
    for line in lines:
        yield line


def _stream_wanted(stream: int, options: LogsOptions) -> bool:
    return options.stdout if stream == STDOUT else options.stderr if stream == STDERR else True
