"""An async client of the internal API (``/internal/v1``), built on the route descriptions.

Each method is one line naming its :class:`~sockerless.api.route.Route`: the route says how the
arguments go on the wire and how the answer comes back. Streams (wait, logs, pull, load, attach)
come back as async context managers that own the backend connection. A non-2xx answer is raised
again as the :mod:`sockerless.errors` class of its status with the backend's message, so a frontend
passes backend errors through unchanged; a backend that cannot be reached is :class:`Unavailable`
(503), one that answers garbage :class:`UpstreamError` (502), one too slow :class:`UpstreamTimeout`.

:meth:`BackendClient.forward` sends a request on a route with the query as a proxy received it (only
the parameters the route declares, unparsed: the backend's server reads them, nobody else).
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
import attrs

from sockerless import models
from sockerless.api import container_routes as c
from sockerless.api import resource_routes as r
from sockerless.api.answers import LogStream, PendingWait, ProgressStream, decode_answer, structure_answer
from sockerless.api.route import AnswerKind, Route
from sockerless.backend import Filters, LogsOptions
from sockerless.errors import (
    SockerlessError,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
    error_for_status,
)
from sockerless.http.upgrade import UpgradedStream, UpgradeTarget, open_upgraded
from sockerless.models import WaitCondition
from sockerless.wire import encode_json, unstructure

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT",
    "BackendClient",
    "LogStream",
    "PendingWait",
    "ProgressStream",
    "parse_backend_url",
]

T = TypeVar("T")

#: Seconds a short backend call (everything but the streams) may take: creating a Lambda
#: function waits until it is active, which can take a while for a large image.
DEFAULT_REQUEST_TIMEOUT = 300.0


def parse_backend_url(url: str) -> tuple[str, str | None]:
    """``unix:///path``, ``http://host:port`` (``tcp://`` is accepted for it) or ``https://host:port`` as
    ``(base URL, Unix socket path or None)``."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        path = parts.path or parts.netloc
        if not path:
            raise ValueError(f"invalid backend URL {url!r}: unix:// needs a socket path")
        return "http://backend", path
    if parts.scheme in ("http", "tcp") and parts.netloc:
        return f"http://{parts.netloc}", None
    if parts.scheme == "https" and parts.netloc:
        return f"https://{parts.netloc}", None
    raise ValueError(
        f"invalid backend URL {url!r}: expected unix:///path, http://host:port or https://host:port"
    )


def _segment(value: str) -> str:
    """A path segment: a name's leading ``/`` dropped (the backend accepts both), the rest quoted."""
    return quote(value.lstrip("/"), safe="")


# ---------------------------------------------------------------------------- the client


class BackendClient:
    """One connection pool to one backend. Use as an async context manager or call :meth:`close`."""

    def __init__(
        self,
        url: str,
        *,
        token: str = "",
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        connect_timeout: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``ssl_context`` verifies an https:// backend (and may carry a client certificate); without it
        the system's CAs verify it."""
        self.url = url
        self._base, self._socket_path = parse_backend_url(url)
        self._ssl = ssl_context
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._request_timeout = request_timeout
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> BackendClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No pool limit: every long-lived Docker call (wait, attach, follow) holds one connection.
            connector: aiohttp.BaseConnector = (
                aiohttp.UnixConnector(path=self._socket_path, limit=0)
                if self._socket_path is not None
                else aiohttp.TCPConnector(limit=0, ssl=self._ssl if self._ssl is not None else True)
            )
            self._session = aiohttp.ClientSession(
                base_url=self._base,
                connector=connector,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
                auto_decompress=False,
            )
        return self._session

    # ------------------------------------------------------------------ plumbing

    def _path(self, route: Route, values: Mapping[str, Any]) -> str:
        return route.target(
            **{name: _segment(str(values[keyword])) for name, keyword in route.path_args.items()}
        )

    def _query(self, route: Route, values: Mapping[str, Any]) -> dict[str, str]:
        options = values.get("options")
        source = (
            attrs.asdict(options, recurse=False)
            if route.options is not None and options is not None
            else values
        )
        query: dict[str, str] = {}
        for param in route.query:
            text = param.kind.encode(source.get(param.keyword))
            if text is not None:
                query[param.name] = text
        return query

    def _body(self, route: Route, values: Mapping[str, Any]) -> tuple[Any, dict[str, str]]:
        if route.body is None or route.body.arg not in values:
            return None, {}
        value = values[route.body.arg]
        if route.body.media_type != "application/json":
            return value, {"Content-Type": route.body.media_type}
        data = value if isinstance(value, Mapping) else unstructure(value)
        return encode_json(data), {"Content-Type": "application/json"}

    async def send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        streaming: bool = False,
    ) -> aiohttp.ClientResponse:
        """Send a request; return the response if 2xx (the caller releases it), else raise its error."""
        timeout = aiohttp.ClientTimeout(
            total=None if streaming else self._request_timeout, sock_connect=self._connect_timeout
        )
        try:
            response = await self._get_session().request(
                method, path, params=query, data=body, headers=headers, timeout=timeout
            )
        except aiohttp.ClientSSLError as exc:  # no use retrying: the certificates do not fit
            raise self._tls_failure(exc) from None
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as exc:
            raise Unavailable(
                f"cannot reach the sockerless backend at {self.url}: {exc}; is it running?"
            ) from None
        except TimeoutError:
            raise UpstreamTimeout(f"the sockerless backend at {self.url} did not answer in time") from None
        except aiohttp.ClientError as exc:
            if isinstance(exc.__cause__, ssl.SSLError):
                # TLS 1.3 refuses a client certificate after the handshake: the alert comes with the
                # first read, as an OS error rather than a TLS one.
                raise self._tls_failure(exc.__cause__) from None
            raise UpstreamError(f"talking to the sockerless backend at {self.url} failed: {exc}") from None
        if response.status < 300:
            return response
        try:
            raise await self._error_of(response)
        finally:
            response.release()

    def _tls_failure(self, exc: BaseException) -> UpstreamError:
        return UpstreamError(
            f"TLS with the sockerless backend at {self.url} failed: {exc} "
            "(see the frontend's backend_tls_* settings)"
        )

    async def _error_of(self, response: aiohttp.ClientResponse) -> SockerlessError:
        try:
            body = await response.read()
        except (aiohttp.ClientError, TimeoutError):
            body = b""
        message = ""
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            data = json.loads(body) if body else None
            if isinstance(data, Mapping):
                message = str(data.get("message", ""))
        if not message and response.status != 304:
            text = body.decode("utf-8", "replace").strip()[:500]
            message = text or f"the sockerless backend answered {response.status} {response.reason or ''}"
        retry_after = response.headers.get("Retry-After", "")
        return error_for_status(response.status, message, int(retry_after) if retry_after.isdigit() else None)

    async def read_body(self, response: aiohttp.ClientResponse) -> bytes:
        """The whole body, with transport failures as 502/504 naming the backend; releases it."""
        try:
            return await response.read()
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"reading an answer from the backend at {self.url} failed: {exc}") from None
        except TimeoutError:
            raise UpstreamTimeout(
                f"the sockerless backend at {self.url} did not send its answer in time"
            ) from None
        finally:
            response.release()

    async def _on(
        self, route: Route, values: Mapping[str, Any], *, streaming: bool
    ) -> aiohttp.ClientResponse:
        body, headers = self._body(route, values)
        path, query = self._path(route, values), self._query(route, values)
        return await self.send(
            route.method, path, query=query, body=body, headers=headers, streaming=streaming
        )

    async def call_as(self, cls: type[T], route: Route, **values: Any) -> T:
        """:meth:`call`, typed: the route's answer is a ``cls``."""
        result: T = await self.call(route, **values)
        return result

    async def call(self, route: Route, **values: Any) -> Any:
        """A short call on ``route``: the answer as the route's model (JSON), or None (no body)."""
        data = await self.read_body(await self._on(route, values, streaming=False))
        if route.answer.kind is AnswerKind.EMPTY or not data:
            return None
        decoded = decode_answer(data, self.url, "answer")
        model = route.answer.model
        return decoded if isinstance(model, dict) else structure_answer(decoded, model, self.url)

    @contextlib.asynccontextmanager
    async def stream(self, route: Route, **values: Any) -> AsyncIterator[aiohttp.ClientResponse]:
        """A long-lived call on ``route``: the open response, closed on leaving."""
        response = await self._on(route, values, streaming=True)
        try:
            yield response
        finally:
            response.close()

    async def forward(
        self,
        route: Route,
        path_values: Mapping[str, str],
        query: Mapping[str, str],
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        """Send ``query`` as received (only the parameters ``route`` declares), for a proxy that passes
        the answer on; the caller releases the (streamed) response."""
        declared = {param.name for param in route.query}
        passed = {name: value for name, value in query.items() if name in declared}
        return await self.send(
            route.method,
            self._path(route, path_values),
            query=passed,
            body=body,
            headers=headers,
            streaming=True,
        )

    def upgrade_target(self) -> UpgradeTarget:
        if self._socket_path is not None:
            return UpgradeTarget(
                self.url, socket_path=self._socket_path, connect_timeout=self._connect_timeout
            )
        parts = urlsplit(self._base)
        context = None
        if parts.scheme == "https":
            context = self._ssl if self._ssl is not None else ssl.create_default_context()
        return UpgradeTarget(
            self.url,
            host=parts.hostname or "",
            port=parts.port or (443 if context else 80),
            ssl=context,
            connect_timeout=self._connect_timeout,
        )

    def upgrade(
        self, route: Route, path_values: Mapping[str, str], query: Mapping[str, str], body: Any = None
    ) -> contextlib.AbstractAsyncContextManager[UpgradedStream]:
        """Ask for ``Upgrade: tcp`` on ``route`` (attach, exec start) with ``query`` as received."""
        declared = {param.name for param in route.query}
        passed = {name: value for name, value in query.items() if name in declared}
        target = self._path(route, path_values)
        if passed:
            target += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in passed.items())
        return open_upgraded(self.upgrade_target(), target, headers=self._headers, body=body)

    # ------------------------------------------------------------------ system

    async def capabilities(self) -> models.CapabilityReport:
        return await self.call_as(models.CapabilityReport, c.CAPABILITIES)

    async def info(self) -> models.BackendInfo:
        return await self.call_as(models.BackendInfo, c.INFO)

    async def version(self) -> models.VersionInfo:
        return await self.call_as(models.VersionInfo, c.VERSION)

    async def auth(self, request: models.AuthRequest) -> models.AuthResponse:
        return await self.call_as(models.AuthResponse, c.AUTH, request=request)

    # ------------------------------------------------------------------ containers

    async def create_container(
        self, request: models.ContainerCreateRequest | Mapping[str, Any], name: str | None = None
    ) -> models.ContainerCreateResponse:
        """Create from a model, or from a Docker create body passed through as the client sent it."""
        return await self.call_as(models.ContainerCreateResponse, c.CREATE, request=request, name=name)

    async def list_containers(
        self, *, all: bool = False, limit: int | None = None, filters: Filters | None = None
    ) -> list[models.ContainerSummary]:
        return await self.call_as(
            list[models.ContainerSummary], c.LIST, all=all, limit=limit, filters=filters
        )

    async def inspect_container(self, ref: str) -> models.Container:
        return await self.call_as(models.Container, c.INSPECT, ref=ref)

    async def start_container(self, ref: str) -> None:
        await self.call(c.START, ref=ref)

    async def stop_container(
        self, ref: str, *, timeout: int | None = None, signal: str | None = None
    ) -> None:
        await self.call(c.STOP, ref=ref, timeout=timeout, signal=signal)

    async def kill_container(self, ref: str, *, signal: str | None = None) -> None:
        await self.call(c.KILL, ref=ref, signal=signal)

    async def restart_container(self, ref: str, *, timeout: int | None = None) -> None:
        await self.call(c.RESTART, ref=ref, timeout=timeout)

    async def remove_container(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        await self.call(c.REMOVE, ref=ref, force=force, volumes=volumes)

    async def prune_containers(self, filters: Filters | None = None) -> models.PruneResponse:
        return await self.call_as(models.PruneResponse, c.PRUNE, filters=filters)

    @contextlib.asynccontextmanager
    async def wait_container(self, ref: str, condition: WaitCondition) -> AsyncIterator[PendingWait]:
        """Open a wait: errors (no such container) raise here; the body comes from ``result()``."""
        async with self.stream(c.WAIT, ref=ref, condition=condition) as response:
            yield PendingWait(response, self.url)

    @contextlib.asynccontextmanager
    async def container_logs(self, ref: str, options: LogsOptions) -> AsyncIterator[LogStream]:
        async with self.stream(c.LOGS, ref=ref, options=options) as response:
            yield LogStream(response, self.url)

    # ------------------------------------------------------------------ exec

    async def inspect_exec(self, exec_id: str) -> models.ExecInstance:
        return await self.call_as(models.ExecInstance, c.EXEC_INSPECT, exec_id=exec_id)

    # ------------------------------------------------------------------ images

    @contextlib.asynccontextmanager
    async def pull_image(self, request: models.ImagePullRequest) -> AsyncIterator[ProgressStream]:
        """Open a pull; an error before the stream starts raises here, later ones arrive as lines."""
        async with self.stream(r.PULL, request=request) as response:
            yield ProgressStream(response, self.url)

    @contextlib.asynccontextmanager
    async def load_image(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[ProgressStream]:
        async with self.stream(r.LOAD, body=chunks) as response:
            yield ProgressStream(response, self.url)

    async def list_images(self) -> list[models.ImageSummary]:
        """Every image the backend knows, one row per image ID with all its tags."""
        return await self.call_as(list[models.ImageSummary], r.IMAGE_LIST)

    async def inspect_image(self, name: str) -> models.Image:
        return await self.call_as(models.Image, r.IMAGE_INSPECT, name=name)

    async def tag_image(self, name: str, repo: str, tag: str = "") -> None:
        await self.call(r.TAG, name=name, repo=repo, tag=tag or None)

    async def remove_image(
        self, name: str, *, force: bool = False, noprune: bool = False
    ) -> list[models.ImageDeleteResponseItem]:
        return await self.call_as(
            list[models.ImageDeleteResponseItem], r.IMAGE_REMOVE, name=name, force=force, noprune=noprune
        )

    async def prune_images(self, filters: Filters | None = None) -> models.ImagePruneResponse:
        return await self.call_as(models.ImagePruneResponse, r.IMAGE_PRUNE, filters=filters)
