"""The AWS event-stream encoding (``application/vnd.amazon.eventstream``) that InvokeWithResponseStream sends.

One message on the wire::

    total length   u32 big-endian, the whole message with both CRCs
    headers length u32 big-endian
    prelude CRC32  of the 8 bytes above
    headers        per header: name length u8, name (UTF-8), type u8 (7: string), value length u16, value
    payload        raw bytes
    message CRC32  of everything before it, the prelude CRC included

botocore decodes it (``botocore.eventstream.EventStreamBuffer``); the limits are the AWS event-stream
ones, which botocore's decoder enforces too or more loosely.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator, Mapping

__all__ = [
    "CONTENT_TYPE",
    "MAX_HEADERS_BYTES",
    "MAX_PAYLOAD_BYTES",
    "encode_message",
    "invoke_complete",
    "payload_chunks",
]

#: The Content-Type of an event-stream HTTP body.
CONTENT_TYPE = "application/vnd.amazon.eventstream"
#: The headers of one message, encoded, at most (AWS event-stream limit; botocore's too).
MAX_HEADERS_BYTES = 128 * 1024
#: The payload of one message at most (AWS event-stream limit; botocore accepts up to 24 MiB).
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024

_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")
_STRING_TYPE = 7
_MAX_NAME_BYTES = 255
_MAX_VALUE_BYTES = 32767


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message with string ``headers`` and ``payload``; ``ValueError`` past a limit."""
    encoded_headers = b"".join(_encode_header(name, value) for name, value in headers.items())
    if len(encoded_headers) > MAX_HEADERS_BYTES:
        raise ValueError(f"event-stream headers of {len(encoded_headers)} bytes exceed {MAX_HEADERS_BYTES}")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"event-stream payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    total = _PRELUDE.size + _CRC.size + len(encoded_headers) + len(payload) + _CRC.size
    prelude = _PRELUDE.pack(total, len(encoded_headers))
    head = prelude + _CRC.pack(zlib.crc32(prelude))
    message_crc = zlib.crc32(payload, zlib.crc32(encoded_headers, zlib.crc32(head)))
    return b"".join((head, encoded_headers, payload, _CRC.pack(message_crc)))


def payload_chunks(data: bytes) -> Iterator[bytes]:
    """``PayloadChunk`` events carrying ``data``: one, or several when it is over a message's limit."""
    for start in range(0, len(data), MAX_PAYLOAD_BYTES):
        yield _event("PayloadChunk", "application/octet-stream", data[start : start + MAX_PAYLOAD_BYTES])


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


def _event(event_type: str, content_type: str, payload: bytes) -> bytes:
    headers = {":event-type": event_type, ":content-type": content_type, ":message-type": "event"}
    return encode_message(headers, payload)


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
