"""The AWS event-stream encoding (``application/vnd.amazon.eventstream``) that InvokeWithResponseStream sends.

One message on the wire::

    total length   u32 big-endian, the whole message with both CRCs
    headers length u32 big-endian
    prelude CRC32  of the 8 bytes above
    headers        per header: name length u8, name (UTF-8), type u8 (7: string), value length u16, value
    payload        raw bytes
    message CRC32  of everything before it, the prelude CRC included

botocore decodes it (``botocore.eventstream.EventStreamBuffer``). The limits are AWS's own encoder's
(aws-c-event-stream: 16 MiB a message, 128 KiB of headers); botocore's decoder is looser (24 MiB).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator, Mapping

__all__ = [
    "CONTENT_TYPE",
    "MAX_HEADERS_BYTES",
    "MAX_MESSAGE_BYTES",
    "encode_message",
    "invoke_complete",
    "payload_chunks",
]

#: The Content-Type of an event-stream HTTP body.
CONTENT_TYPE = "application/vnd.amazon.eventstream"
#: One message at most, both CRCs included.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: The headers of one message, encoded, at most.
MAX_HEADERS_BYTES = 128 * 1024

_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")
_STRING_TYPE = 7
_FRAMING_BYTES = _PRELUDE.size + 2 * _CRC.size
_MAX_NAME_BYTES = 255
_MAX_VALUE_BYTES = 32767


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message with string ``headers`` and ``payload``; ``ValueError`` past a limit."""
    encoded_headers = _encode_headers(headers)
    if len(encoded_headers) > MAX_HEADERS_BYTES:
        raise ValueError(f"event-stream headers of {len(encoded_headers)} bytes exceed {MAX_HEADERS_BYTES}")
    total = _FRAMING_BYTES + len(encoded_headers) + len(payload)
    if total > MAX_MESSAGE_BYTES:
        raise ValueError(f"an event-stream message of {total} bytes exceeds {MAX_MESSAGE_BYTES}")
    prelude = _PRELUDE.pack(total, len(encoded_headers))
    head = prelude + _CRC.pack(zlib.crc32(prelude))
    message_crc = zlib.crc32(payload, zlib.crc32(encoded_headers, zlib.crc32(head)))
    return b"".join((head, encoded_headers, payload, _CRC.pack(message_crc)))


def payload_chunks(data: bytes) -> Iterator[bytes]:
    """``PayloadChunk`` events carrying ``data``: one, or several when it does not fit in a message."""
    room = MAX_MESSAGE_BYTES - _FRAMING_BYTES - len(_encode_headers(_event_headers(*_PAYLOAD_CHUNK)))
    for start in range(0, len(data), room):
        yield _event(*_PAYLOAD_CHUNK, data[start : start + room])


def invoke_complete(error_code: str | None, error_details: str, log_result: str | None) -> bytes:
    """The ``InvokeComplete`` event that ends the stream; its members only when set, as AWS sends them."""
    document: dict[str, str] = {}
    if error_code:
        document["ErrorCode"] = error_code
    if error_details:
        document["ErrorDetails"] = error_details
    if log_result is not None:
        document["LogResult"] = log_result
    return _event("InvokeComplete", "application/json", json.dumps(document).encode())


_PAYLOAD_CHUNK = ("PayloadChunk", "application/octet-stream")


def _event(event_type: str, content_type: str, payload: bytes) -> bytes:
    return encode_message(_event_headers(event_type, content_type), payload)


def _event_headers(event_type: str, content_type: str) -> dict[str, str]:
    return {":event-type": event_type, ":content-type": content_type, ":message-type": "event"}


def _encode_headers(headers: Mapping[str, str]) -> bytes:
    return b"".join(_encode_header(name, value) for name, value in headers.items())


def _encode_header(name: str, value: str) -> bytes:
    raw_name = name.encode()
    raw_value = value.encode()
    if not raw_name or len(raw_name) > _MAX_NAME_BYTES:
        raise ValueError(f"event-stream header name {name!r}: 1 to {_MAX_NAME_BYTES} bytes")
    if len(raw_value) > _MAX_VALUE_BYTES:
        raise ValueError(f"event-stream header {name!r}: a value of at most {_MAX_VALUE_BYTES} bytes")
    return b"".join(
        (
            bytes((len(raw_name),)),
            raw_name,
            bytes((_STRING_TYPE,)),
            struct.pack(">H", len(raw_value)),
            raw_value,
        )
    )
