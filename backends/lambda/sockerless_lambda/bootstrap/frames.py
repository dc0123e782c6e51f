"""Docker's multiplexed frames as the bootstrap sends them (docs/bootstrap.md), read incrementally.

A response arrives in chunks that do not follow the frames: a chunk may hold part of a header, many
frames, or the middle of one. :class:`FrameParser` keeps what it has not yet made a frame of and gives
each frame as soon as its last byte arrives.
"""

from __future__ import annotations

import datetime as dt
import struct

from attrs import frozen

from sockerless.backend import LogLine

__all__ = [
    "EXIT_STREAM",
    "HEADER_SIZE",
    "STDERR",
    "STDOUT",
    "Frame",
    "FrameParser",
    "encode_frame",
    "lines_of",
]

STDOUT, STDERR = 1, 2
#: The stream number of the exit record: the last frame of a run, never passed to a Docker client.
EXIT_STREAM = 255
#: Stream byte, three reserved zero bytes, the payload's length (uint32, big-endian).
HEADER_SIZE = 8
_HEADER = struct.Struct(">B3xI")


@frozen
class Frame:
    stream: int
    data: bytes


def encode_frame(stream: int, data: bytes) -> bytes:
    """One frame (the bootstrap's side; tests build responses with it)."""
    return _HEADER.pack(stream, len(data)) + data


class FrameParser:
    """Frames out of a byte stream fed in chunks of any size."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[Frame]:
        """The frames that ``chunk`` completes, in order."""
        self._buffer += chunk
        frames: list[Frame] = []
        start = 0
        buffer = self._buffer
        while len(buffer) - start >= HEADER_SIZE:
            stream, length = _HEADER.unpack_from(buffer, start)
            end = start + HEADER_SIZE + length
            if len(buffer) < end:
                break
            frames.append(Frame(stream, bytes(buffer[start + HEADER_SIZE : end])))
            start = end
        if start:
            del buffer[:start]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of a frame begun but not complete (a body that ends with some was cut)."""
        return len(self._buffer)


def lines_of(stream: int, data: bytes, when: dt.datetime) -> list[LogLine]:
    """``data`` as log lines: split after each newline (kept); a last part without one is a line of its
    own, so output without a final newline is shown at once and stays without one."""
    parts: list[LogLine] = []
    start = 0
    while start < len(data):
        end = data.find(b"\n", start) + 1 or len(data)  # only "\n" ends a line, as Docker splits
        parts.append(LogLine(stream=stream, timestamp=when, data=data[start:end]))
        start = end
    return parts
