"""A recording proxy in front of a real registry (a ``LocalRegistry``), for the image tests.

It passes every request through and records it (method, path), and can: require Bearer tokens from
its own token server (``/token``, Docker Hub's scheme, optionally with Basic credentials checked),
answer some requests 503 first (a transient failure), or hold a blob download until released (a
preparation to kill in the middle). Locations the registry answers are rewritten to the proxy's.
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

__all__ = ["RegistryProxy"]


class RegistryProxy:
    def __init__(
        self,
        upstream: str,
        *,
        bearer: bool = False,
        users: dict[str, str] | None = None,
        refresh_tokens: set[str] | None = None,
        fail_first: dict[str, int] | None = None,
        hold_blob_after: int | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.bearer = bearer
        self.users = users
        #: identity tokens (OAuth2 refresh tokens) the token server's POST accepts
        self.refresh_tokens = refresh_tokens or set()
        #: regex of "METHOD /path" -> how many of its first requests answer 503
        self.fail_first = dict(fail_first or {})
        #: blob GETs answered before the next one is held (never answered)
        self.hold_blob_after = hold_blob_after
        self.blob_held = asyncio.Event()
        self._closing = asyncio.Event()
        self.requests: list[tuple[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self._tokens: set[str] = set()
        self._blob_gets = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    async def start(self) -> RegistryProxy:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_get("/token", self._token)
        app.router.add_post("/token", self._oauth)
        app.router.add_route("*", "/{tail:.*}", self._proxy)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._session = aiohttp.ClientSession(auto_decompress=False)
        return self

    async def stop(self) -> None:
        self._closing.set()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> RegistryProxy:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def count(self, method: str, pattern: str = "") -> int:
        return sum(1 for m, path in self.requests if m == method and re.search(pattern, path))

    async def _token(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        header = request.headers.get("Authorization", "")
        query["basic_user"] = ""
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            query["basic_user"] = user
            if self.users is not None and self.users.get(user) != password:
                return web.json_response({"details": "incorrect username or password"}, status=401)
        elif self.users is not None:
            return web.json_response({"details": "credentials required"}, status=401)
        self.token_requests.append(query)
        token = secrets.token_hex(8)
        self._tokens.add(token)
        return web.json_response({"token": token})

    async def _oauth(self, request: web.Request) -> web.Response:
        """Docker's OAuth2 flow for identity tokens: a form with ``grant_type=refresh_token``."""
        form = dict(await request.post())
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") not in self.refresh_tokens:
            return web.json_response({"details": "invalid refresh token"}, status=401)
        self.token_requests.append({key: str(value) for key, value in form.items() if key != "refresh_token"})
        token = secrets.token_hex(8)
        self._tokens.add(token)
        return web.json_response({"access_token": token})

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        line = f"{request.method} {request.path}"
        self.requests.append((request.method, request.path))
        if self.bearer and request.path != "/v2/" and not self._authorized(request):
            name = re.sub(r"^/v2/|/(manifests|blobs|tags)/.*$", "", request.path)
            challenge = (
                f'Bearer realm="{self.url}/token",service="test-registry",scope="repository:{name}:pull,push"'
            )
            return web.json_response(
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                status=401,
                headers={"WWW-Authenticate": challenge},
            )
        for pattern, left in self.fail_first.items():
            if left and re.search(pattern, line):
                self.fail_first[pattern] = left - 1
                return web.json_response(
                    {"errors": [{"code": "UNAVAILABLE", "message": "try again"}]}, status=503
                )
        if request.method == "GET" and "/blobs/sha256:" in request.path:
            self._blob_gets += 1
            if self.hold_blob_after is not None and self._blob_gets > self.hold_blob_after:
                self.blob_held.set()
                await self._closing.wait()  # held until the proxy stops (its client may be gone)
                raise web.HTTPServiceUnavailable()
        return await self._forward(request)

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[7:] in self._tokens

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "authorization")}

        async def body() -> AsyncIterator[bytes]:
            async for chunk in request.content.iter_chunked(1 << 16):
                yield chunk

        data: Any = body() if request.body_exists else None
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=data,
            allow_redirects=False,
        ) as answer:
            out_headers = {
                k: v.replace(self.upstream, self.url)
                for k, v in answer.headers.items()
                if k.lower() not in ("transfer-encoding", "content-length", "connection", "date", "server")
            }
            response = web.StreamResponse(status=answer.status, headers=out_headers)
            if answer.headers.get("Content-Length") and request.method == "HEAD":
                response.headers["Content-Length"] = answer.headers["Content-Length"]
            await response.prepare(request)
            if request.method != "HEAD":
                async for chunk in answer.content.iter_chunked(1 << 16):
                    await response.write(chunk)
            await response.write_eof()
            return response
