"""An invocation's answer: whole (``InvocationResult``, what Invoke serves) or as a stream of body bytes
as the runtime sends them, then how it ended (``InvocationStream``, what InvokeWithResponseStream serves:
server.py turns it into ``PayloadChunk`` and ``InvokeComplete`` events). ``buffered_stream`` makes a
stream from an invocation that already ended.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from attrs import frozen

__all__ = ["InvocationResult", "InvocationStream", "StreamOutcome", "buffered_stream"]


@frozen
class InvocationResult:
    """A whole invocation's answer, as Invoke gives it."""

    request_id: str
    executed_version: str
    payload: bytes
    function_error: str | None
    """``"Unhandled"`` when the invocation failed, ``"Handled"`` when the function reported its error,
    as the ``X-Amz-Function-Error`` header says."""
    log_tail: bytes


@frozen
class StreamOutcome:
    """How a streamed invocation ended: what its ``InvokeComplete`` event says."""

    error_code: str | None
    """``None`` on success, else the error's type (``Runtime.ExitError``, ``Sandbox.Timedout``...)."""
    error_details: str
    """The error's message; empty on success."""
    log_tail: bytes
    """The last 4 KB of the invocation's log records (for ``LogType: Tail``)."""


class InvocationStream:
    """One invocation's response body, iterated chunk by chunk (once), then its ``outcome()``.

    ``chunks`` yields the body's bytes as they come; ``outcome`` resolves when the invocation ended.
    A consumer that stops reading early leaves the invocation running: only its owner ends it.
    """

    def __init__(
        self,
        request_id: str,
        executed_version: str,
        chunks: AsyncIterator[bytes],
        outcome: asyncio.Future[StreamOutcome],
    ) -> None:
        self.request_id = request_id
        self.executed_version = executed_version
        self._chunks = chunks
        self._outcome = outcome

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def outcome(self) -> StreamOutcome:
        """How the invocation ended (waits for its end)."""
        return await asyncio.shield(self._outcome)


def buffered_stream(result: InvocationResult) -> InvocationStream:
    """A stream of an invocation that already ended: its payload as one chunk when it succeeded; on a
    function error no chunk, and the error payload's ``errorType`` and ``errorMessage`` as the outcome."""
    outcome: asyncio.Future[StreamOutcome] = asyncio.get_running_loop().create_future()
    if result.function_error is None:
        outcome.set_result(StreamOutcome(None, "", result.log_tail))
        return InvocationStream(
            result.request_id, result.executed_version, _one_chunk(result.payload), outcome
        )
    error_code, error_details = _error_of(result.payload, result.function_error)
    outcome.set_result(StreamOutcome(error_code, error_details, result.log_tail))
    return InvocationStream(result.request_id, result.executed_version, _one_chunk(b""), outcome)


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


def _error_of(payload: bytes, function_error: str) -> tuple[str, str]:
    """``(errorType, errorMessage)`` of an error payload; the ``FunctionError`` kind when it has none."""
    try:
        document = json.loads(payload)
    except ValueError:
        document = None
    if isinstance(document, dict):
        error_type = document.get("errorType")
        message = document.get("errorMessage")
        if isinstance(error_type, str) and error_type:
            return error_type, message if isinstance(message, str) else ""
    return function_error, ""
