"""What the client's long-lived calls hand back: a pending wait, a log stream, a progress stream,
an event stream.

Each owns the backend's open response (its caller closes it), and turns a backend that breaks off or
sends garbage into the :mod:`sockerless.errors` class a frontend passes on (502).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from sockerless.errors import InvalidParameter, UpstreamError
from sockerless.events import EventMessage
from sockerless.models import WaitResponse
from sockerless.wire import structure

__all__ = ["EventLines", "LogStream", "PendingWait", "ProgressStream", "decode_answer", "structure_answer"]


def decode_answer(body: bytes, url: str, what: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise UpstreamError(f"the backend at {url} sent an invalid {what} (not JSON)") from None


def structure_answer(data: Any, cls: Any, url: str) -> Any:
    try:
        return structure(data, cls)
    except InvalidParameter as exc:
        raise UpstreamError(f"the backend at {url} sent an invalid answer: {exc.message}") from None


class PendingWait:
    """A wait whose headers the backend has sent; :meth:`result` awaits the body."""

    def __init__(self, response: aiohttp.ClientResponse, url: str) -> None:
        self.response = response
        self._url = url

    async def result(self) -> WaitResponse:
        try:
            body = await self.response.read()
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"the backend at {self._url} dropped a wait: {exc}") from None
        data = decode_answer(body, self._url, "wait answer")
        if (
            isinstance(data, dict)
            and isinstance(data.get("Error"), Mapping)
            and not data["Error"].get("Message")
        ):
            del data["Error"]  # an empty Error object would make `docker run` exit 125
        result: WaitResponse = structure_answer(data, WaitResponse, self._url)
        return result


class LogStream:
    """An open logs answer: its content type (Docker frames, or raw for a Tty) and its bytes."""

    def __init__(self, response: aiohttp.ClientResponse, url: str) -> None:
        self.response = response
        self._url = url
        self.content_type = response.headers.get("Content-Type", "application/vnd.docker.multiplexed-stream")
        self.tty = self.content_type == "application/vnd.docker.raw-stream"

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.content.iter_any():
                yield chunk
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"the backend at {self._url} dropped a logs stream: {exc}") from None


class ProgressStream:
    """An open NDJSON progress answer (pull, load): one decoded object per line."""

    def __init__(self, response: aiohttp.ClientResponse, url: str) -> None:
        self.response = response
        self._url = url

    async def lines(self) -> AsyncIterator[dict[str, Any]]:
        async for raw in _answer_lines(self.response, self._url, "a stream"):
            data = decode_answer(raw, self._url, "progress line")
            if isinstance(data, dict):
                yield data


class EventLines:
    """An open events answer: one :class:`~sockerless.models.EventMessage` per line."""

    def __init__(self, response: aiohttp.ClientResponse, url: str) -> None:
        self.response = response
        self._url = url

    async def events(self) -> AsyncIterator[EventMessage]:
        async for raw in _answer_lines(self.response, self._url, "an events stream"):
            event: EventMessage = structure_answer(
                decode_answer(raw, self._url, "event"), EventMessage, self._url
            )
            yield event


async def _answer_lines(response: aiohttp.ClientResponse, url: str, what: str) -> AsyncIterator[bytes]:
    """The lines of a streamed answer that are not blank, until it ends; a read failing is an
    :class:`UpstreamError` saying the backend dropped ``what``."""
    while True:
        try:
            raw = await response.content.readline()
        except (aiohttp.ClientError, ValueError) as exc:
            raise UpstreamError(f"the backend at {url} dropped {what}: {exc}") from None
        if not raw:
            return
        if raw.strip():
            yield raw
