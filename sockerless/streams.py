"""Docker's stream encodings: multiplexed frames and log timestamps."""

from __future__ import annotations

import datetime as dt
import struct

__all__ = ["LOGS_FINAL_HEADER", "STDERR", "STDOUT", "decode_frames", "encode_frame", "format_log_time"]

#: An additive extension of the internal logs response: the container has exited and the backend
#: will never have more lines for it, so a frontend emulating ``follow`` can end without another poll.
LOGS_FINAL_HEADER = "X-Sockerless-Logs-Final"

STDOUT = 1
STDERR = 2
_HEADER = struct.Struct(">BxxxL")


def encode_frame(stream: int, data: bytes) -> bytes:
    """One frame: ``[stream, 0, 0, 0, uint32 big-endian length]`` followed by the payload."""
    return _HEADER.pack(stream, len(data)) + data


def decode_frames(buffer: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Split complete frames off ``buffer``; returns them and the incomplete remainder."""
    frames: list[tuple[int, bytes]] = []
    offset = 0
    while len(buffer) - offset >= _HEADER.size:
        stream, size = _HEADER.unpack_from(buffer, offset)
        end = offset + _HEADER.size + size
        if end > len(buffer):
            break
        frames.append((stream, buffer[offset + _HEADER.size : end]))
        offset = end
    return frames, buffer[offset:]


def format_log_time(value: dt.datetime) -> str:
    """Docker's fixed-width RFC 3339 with nine fraction digits, as ``docker logs -t`` prints it."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S") + f".{value.microsecond:06d}000Z"
