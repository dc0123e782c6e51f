"""Forward a request to moto unchanged, streamed or buffered (when the answer must be rewritten)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from attrs import frozen
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .errors import AwsError
from .moto_api import MotoGate

__all__ = ["MotoProxy", "UpstreamAnswer"]

# Hop-by-hop headers (RFC 9110 section 7.6.1) belong to one connection, not to the message.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_CHUNK = 64 * 1024
# Answers up to this size are read whole: one write back is cheaper than a streamed response.
_BUFFER_LIMIT = 256 * 1024


@frozen
class UpstreamAnswer:
    status: int
    headers: CIMultiDict[str]
    body: bytes


class MotoProxy:
    """A reverse proxy to moto over one shared session; Authorization and every other header go as is."""

    def __init__(self, session: aiohttp.ClientSession, moto_url: str, gate: MotoGate) -> None:
        self._session = session
        self._base = moto_url.rstrip("/")
        self._gate = gate

    async def forward(
        self, service: str, request: web.Request, body: bytes | None = None
    ) -> web.StreamResponse:
        """Send the request to moto and stream its answer back."""
        try:
            async with self._send(service, request, body) as upstream:
                headers = _end_to_end(upstream.headers)
                length = upstream.content_length
                if request.method == "HEAD" or (length is not None and length <= _BUFFER_LIMIT):
                    data = await upstream.read()
                    headers.popall("Content-Length", None)
                    return web.Response(status=upstream.status, headers=headers, body=data)
                response = web.StreamResponse(status=upstream.status, headers=headers)
                await response.prepare(request)
                async for chunk in upstream.content.iter_chunked(_CHUNK):
                    await response.write(chunk)
                await response.write_eof()
                return response
        except aiohttp.ClientConnectionError as exc:
            raise _unavailable(exc) from exc

    async def fetch(self, service: str, request: web.Request, body: bytes | None = None) -> UpstreamAnswer:
        """Send the request to moto and read the whole answer, to be rewritten before it goes back."""
        try:
            async with self._send(service, request, body) as upstream:
                data = await upstream.read()
                headers = _end_to_end(upstream.headers)
                headers.popall("Content-Length", None)
                return UpstreamAnswer(upstream.status, headers, data)
        except aiohttp.ClientConnectionError as exc:
            raise _unavailable(exc) from exc

    @contextlib.asynccontextmanager
    async def _send(
        self, service: str, request: web.Request, body: bytes | None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        headers = _end_to_end(request.headers)
        headers.popall("Host", None)
        data: bytes | AsyncIterator[bytes] | None = body
        if body is not None:
            headers.popall("Content-Length", None)
        elif request.body_exists:
            data = request.content.iter_chunked(_CHUNK)
        # Held until moto's status line arrives: by then moto has computed the whole answer.
        async with self._gate.lock(service):
            upstream = await self._session.request(
                request.method,
                URL(self._base + request.raw_path, encoded=True),
                headers=headers,
                data=data,
                allow_redirects=False,
            )
        try:
            yield upstream
        finally:
            upstream.release()


def _end_to_end(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> CIMultiDict[str]:
    return CIMultiDict((key, value) for key, value in headers.items() if key.lower() not in _HOP_BY_HOP)


def _unavailable(exc: Exception) -> AwsError:
    return AwsError("ServiceUnavailableException", 502, f"the simulator cannot reach moto: {exc}")
