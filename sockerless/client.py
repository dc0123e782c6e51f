"""An async client of the internal API (``/internal/v1``), as the Docker frontend uses it.

Methods take and return the core models; the streams (wait, logs, pull) come back as async
context managers that own the backend connection. A non-2xx answer is raised again as the
:mod:`sockerless.errors` class of its status, with the backend's message, so the frontend passes
backend errors through unchanged. A backend that cannot be reached is :class:`Unavailable` (503),
one that answers garbage is :class:`UpstreamError` (502), one that does not answer in time is
:class:`UpstreamTimeout` (504).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
from attrs import frozen

from sockerless.backend import LogLine, LogsOptions
from sockerless.errors import (
    AccessDenied,
    Conflict,
    InvalidParameter,
    NotFound,
    NotImplementedByBackend,
    NotModified,
    SockerlessError,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)
from sockerless.models import (
    AuthRequest,
    AuthResponse,
    BackendInfo,
    CapabilityReport,
    Container,
    ContainerCreateResponse,
    ContainerSummary,
    ExecInstance,
    Image,
    ImagePullRequest,
    ImageSummary,
    PruneResponse,
    VersionInfo,
    WaitCondition,
    WaitResponse,
    parse_time,
    structure,
    unstructure,
)
from sockerless.streams import LOGS_FINAL_HEADER, decode_frames

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT",
    "BackendClient",
    "FetchedLogs",
    "LogStream",
    "PendingWait",
    "PullStream",
    "UpgradedStream",
    "error_for_status",
    "parse_backend_url",
]

T = TypeVar("T")
PREFIX = "/internal/v1"

#: Seconds a short backend call (everything but the streams) may take: creating a Lambda
#: function waits until it is active, which can take a while for a large image.
DEFAULT_REQUEST_TIMEOUT = 300.0

_ERRORS: dict[int, type[SockerlessError]] = {
    304: NotModified,
    400: InvalidParameter,
    403: AccessDenied,
    404: NotFound,
    409: Conflict,
    501: NotImplementedByBackend,
    502: UpstreamError,
    503: Unavailable,
    504: UpstreamTimeout,
}


def error_for_status(status: int, message: str, retry_after: int | None = None) -> SockerlessError:
    """The :mod:`sockerless.errors` instance for a backend's error status, keeping the exact status."""
    cls = _ERRORS.get(status)
    if cls is Unavailable:
        return Unavailable(message, retry_after=retry_after)
    error = cls(message) if cls is not None else SockerlessError(message)
    error.status = status  # statuses without a class of their own (401, 413, 500, ...) pass through
    return error


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


def _since(value: dt.datetime | None) -> str | None:
    return None if value is None else f"{value.timestamp():.6f}"


def _query(**values: Any) -> dict[str, str]:
    """Query parameters without the ``None`` ones; booleans as ``1``/``0``."""
    query: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        query[key] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return query


# ---------------------------------------------------------------------------- streams


class PendingWait:
    """A wait whose headers the backend has sent; :meth:`result` awaits the body."""

    def __init__(self, response: aiohttp.ClientResponse, url: str) -> None:
        self._response = response
        self._url = url

    async def result(self) -> WaitResponse:
        try:
            body = await self._response.read()
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"the backend at {self._url} dropped a wait: {exc}") from None
        data = _decode_json(body, self._url, "wait")
        if isinstance(data, Mapping) and data.get("Error") is not None and "StatusCode" in data:
            error = data["Error"]
            message = error.get("Message", "") if isinstance(error, Mapping) else ""
            if not message:
                # An empty Error object would make `docker run` exit 125: drop it.
                data = {k: v for k, v in data.items() if k != "Error"}
        return _structure(data, WaitResponse, self._url)


class LogStream:
    """An open logs response: its Tty flag (from the content type) and its raw chunks."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.content_type = response.headers.get("Content-Type", "application/vnd.docker.multiplexed-stream")
        self.tty = self.content_type == "application/vnd.docker.raw-stream"

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"the sockerless backend dropped a logs stream: {exc}") from None


class PullStream:
    """An open NDJSON progress stream (pull or load): one decoded object per line."""

    def __init__(self, response: aiohttp.ClientResponse, url: str) -> None:
        self._response = response
        self._url = url

    async def lines(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            try:
                raw = await self._response.content.readline()
            except (aiohttp.ClientError, ValueError) as exc:
                raise UpstreamError(
                    f"the sockerless backend at {self._url} dropped a stream: {exc}"
                ) from None
            if not raw:
                return
            raw = raw.strip()
            if not raw:
                continue
            data = _decode_json(raw, self._url, "progress line")
            if isinstance(data, dict):
                yield data


class UpgradedStream:
    """A connection the backend upgraded (attach, exec start): raw bytes both ways."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, content_type: str) -> None:
        self.reader = reader
        self.writer = writer
        self.content_type = content_type


@frozen
class FetchedLogs:
    """A finished (non-follow) logs fetch, parsed into lines with their timestamps."""

    tty: bool
    lines: list[LogLine]
    #: The backend says these are all the lines the container will ever have.
    final: bool = False


def _split_timestamp(payload: bytes) -> tuple[dt.datetime, bytes] | None:
    head, sep, rest = payload.partition(b" ")
    if not sep or len(head) < 20 or head[4:5] != b"-" or not head.endswith(b"Z"):
        return None
    try:
        when = parse_time(head.decode("ascii"))
    except (InvalidParameter, UnicodeDecodeError):
        return None
    return (when, rest) if when is not None else None


def parse_timestamped_logs(body: bytes, *, tty: bool) -> list[LogLine]:
    """Split a ``timestamps=1`` logs body into lines. A piece without a timestamp (a line that
    contained a newline of its own) belongs to the line before it."""
    pieces: list[tuple[int, bytes]]
    if tty:
        pieces = [(1, piece) for piece in body.splitlines(keepends=True)]
    else:
        pieces, _ = decode_frames(body)
    lines: list[LogLine] = []
    for stream, payload in pieces:
        parsed = _split_timestamp(payload)
        if parsed is None:
            if lines and lines[-1].stream == stream:
                last = lines[-1]
                lines[-1] = LogLine(stream=stream, timestamp=last.timestamp, data=last.data + payload)
            continue
        lines.append(LogLine(stream=stream, timestamp=parsed[0], data=parsed[1]))
    return lines


def _decode_json(body: bytes, url: str, what: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise UpstreamError(f"the backend at {url} sent an invalid {what} (not JSON)") from None


def _structure(data: Any, cls: type[T], url: str) -> T:
    try:
        return structure(data, cls)
    except InvalidParameter as exc:
        raise UpstreamError(f"the backend at {url} sent an invalid {cls.__name__}: {exc.message}") from None


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

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        streaming: bool = False,
    ) -> aiohttp.ClientResponse:
        """Send a request; return the response if 2xx, else raise the error it carries."""
        timeout = aiohttp.ClientTimeout(
            total=None if streaming else self._request_timeout, sock_connect=self._connect_timeout
        )
        body = json.dumps(json_body).encode() if json_body is not None else data
        send_headers = dict(headers or {})
        if json_body is not None:
            send_headers["Content-Type"] = "application/json"
        try:
            response = await self._get_session().request(
                method, PREFIX + path, params=params, data=body, headers=send_headers, timeout=timeout
            )
        except aiohttp.ClientSSLError as exc:  # no use retrying: the certificates do not fit
            raise UpstreamError(
                f"TLS with the sockerless backend at {self.url} failed: {_reason(exc)} "
                "(see the frontend's backend_tls_* settings)"
            ) from None
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as exc:
            raise Unavailable(
                f"cannot reach the sockerless backend at {self.url}: {_reason(exc)}; is it running?"
            ) from None
        except TimeoutError:
            raise UpstreamTimeout(f"the sockerless backend at {self.url} did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"talking to the sockerless backend at {self.url} failed: {exc}") from None
        if response.status < 300:
            return response
        try:
            raise await self._error_of(response)
        finally:
            response.release()

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

    async def _json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> Any:
        response = await self._send(method, path, params=params, json_body=json_body)
        body = await self._read_body(response, "its answer")
        return _decode_json(body, self.url, "answer") if body else None

    async def _read_body(self, response: aiohttp.ClientResponse, what: str) -> bytes:
        """The whole body, with transport failures as 502/504 naming the backend; releases it."""
        try:
            return await response.read()
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"reading {what} from the backend at {self.url} failed: {exc}") from None
        except TimeoutError:
            raise UpstreamTimeout(
                f"the sockerless backend at {self.url} did not send {what} in time"
            ) from None
        finally:
            response.release()

    async def _model(self, cls: type[T], method: str, path: str, **kwargs: Any) -> T:
        return _structure(await self._json(method, path, **kwargs), cls, self.url)

    async def _no_content(self, method: str, path: str, *, params: Mapping[str, str] | None = None) -> None:
        response = await self._send(method, path, params=params)
        response.release()

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> tuple[int, Any]:
        """A JSON call passed through as it is (networks, volumes): the status and the decoded body."""
        response = await self._send(method, path, params=params, json_body=json_body)
        try:
            body = await response.read()
        finally:
            response.release()
        return response.status, (_decode_json(body, self.url, "answer") if body else None)

    # ------------------------------------------------------------------ system

    async def capabilities(self) -> CapabilityReport:
        return await self._model(CapabilityReport, "GET", "/capabilities")

    async def info(self) -> BackendInfo:
        return await self._model(BackendInfo, "GET", "/info")

    async def version(self) -> VersionInfo:
        return await self._model(VersionInfo, "GET", "/version")

    # ------------------------------------------------------------------ containers

    async def create_container(self, body: Mapping[str, Any], name: str | None) -> ContainerCreateResponse:
        """Create from a Docker create body, passed through as the client sent it."""
        params = _query(name=name or None)
        return await self._model(
            ContainerCreateResponse, "POST", "/containers", params=params, json_body=body
        )

    async def list_containers(
        self, *, all: bool = False, limit: int | None = None, filters: str | None = None
    ) -> list[ContainerSummary]:
        """``filters`` is the Docker JSON as the client sent it (both encodings are accepted)."""
        params = _query(all=all, limit=limit, filters=filters or None)
        return await self._model(list[ContainerSummary], "GET", "/containers", params=params)

    async def list_containers_json(
        self, *, all: bool = False, limit: int | None = None, filters: str | None = None
    ) -> bytes:
        """The rows as the backend encoded them (a JSON array of Docker's list rows), for a proxy
        that passes them on: models for thousands of rows cost ten times what the backend spent."""
        params = _query(all=all, limit=limit, filters=filters or None)
        response = await self._send("GET", "/containers", params=params)
        return await self._read_body(response, "its answer")

    async def inspect_container(self, ref: str) -> Container:
        return await self._model(Container, "GET", f"/containers/{_segment(ref)}")

    async def start_container(self, ref: str) -> None:
        await self._no_content("POST", f"/containers/{_segment(ref)}/start")

    async def stop_container(
        self, ref: str, *, timeout: int | None = None, signal: str | None = None
    ) -> None:
        await self._no_content(
            "POST", f"/containers/{_segment(ref)}/stop", params=_query(t=timeout, signal=signal)
        )

    async def kill_container(self, ref: str, *, signal: str | None = None) -> None:
        await self._no_content("POST", f"/containers/{_segment(ref)}/kill", params=_query(signal=signal))

    async def restart_container(self, ref: str, *, timeout: int | None = None) -> None:
        await self._no_content("POST", f"/containers/{_segment(ref)}/restart", params=_query(t=timeout))

    async def remove_container(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        await self._no_content(
            "DELETE", f"/containers/{_segment(ref)}", params=_query(force=force, v=volumes)
        )

    @contextlib.asynccontextmanager
    async def wait_container(self, ref: str, condition: WaitCondition) -> AsyncIterator[PendingWait]:
        """Open a wait: errors (no such container) raise here; the body comes from ``result()``."""
        response = await self._send(
            "POST",
            f"/containers/{_segment(ref)}/wait",
            params={"condition": condition.value},
            streaming=True,
        )
        try:
            yield PendingWait(response, self.url)
        finally:
            response.close()

    @contextlib.asynccontextmanager
    async def container_logs(self, ref: str, options: LogsOptions) -> AsyncIterator[LogStream]:
        response = await self._send(
            "GET", f"/containers/{_segment(ref)}/logs", params=_logs_query(options), streaming=True
        )
        try:
            yield LogStream(response)
        finally:
            response.close()

    async def fetch_logs(self, ref: str, options: LogsOptions) -> FetchedLogs:
        """One complete (non-follow) fetch with timestamps, parsed into lines."""
        params = _logs_query(options)
        params.update(timestamps="1", follow="0")
        response = await self._send("GET", f"/containers/{_segment(ref)}/logs", params=params)
        body = await self._read_body(response, "logs")
        tty = response.headers.get("Content-Type", "") == "application/vnd.docker.raw-stream"
        final = response.headers.get(LOGS_FINAL_HEADER, "") == "true"
        return FetchedLogs(tty=tty, lines=parse_timestamped_logs(body, tty=tty), final=final)

    async def prune_containers(self, filters: str | None = None) -> PruneResponse:
        return await self._model(
            PruneResponse, "POST", "/containers/prune", params=_query(filters=filters or None)
        )

    # ------------------------------------------------------------------ exec

    async def create_exec(self, ref: str, body: Mapping[str, Any]) -> str:
        data = await self._json("POST", f"/containers/{_segment(ref)}/exec", json_body=body)
        if not isinstance(data, Mapping) or not isinstance(data.get("Id"), str):
            raise UpstreamError(f"the backend at {self.url} sent an invalid exec create answer")
        return str(data["Id"])

    @contextlib.asynccontextmanager
    async def upgrade(
        self, path: str, *, params: Mapping[str, str] | None = None, json_body: Any = None
    ) -> AsyncIterator[UpgradedStream]:
        """POST ``path`` asking for Docker's ``Upgrade: tcp``; an answer other than 101 raises its error."""
        try:
            if self._socket_path is not None:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(self._socket_path), self._connect_timeout
                )
            else:
                host, _, port = urlsplit(self._base).netloc.rpartition(":")
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host.strip("[]"), int(port)), self._connect_timeout
                )
        except (OSError, TimeoutError) as exc:
            raise Unavailable(
                f"cannot reach the sockerless backend at {self.url}: {_reason(exc)}; is it running?"
            ) from None
        try:
            body = json.dumps(json_body).encode() if json_body is not None else b""
            target = PREFIX + path + ("?" + urlencode(params) if params else "")
            head = [
                f"POST {target} HTTP/1.1",
                "Host: backend",
                "Connection: Upgrade",
                "Upgrade: tcp",
                "Content-Type: application/json",
                f"Content-Length: {len(body)}",
                *(f"{key}: {value}" for key, value in self._headers.items()),
            ]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            status, headers = await _read_response_head(reader, self.url)
            if status != 101:
                raise await _upgrade_error(reader, status, headers)
            content_type = headers.get("content-type", "application/vnd.docker.raw-stream")
            yield UpgradedStream(reader, writer, content_type)
        finally:
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    def attach_container(
        self, ref: str, params: Mapping[str, str]
    ) -> contextlib.AbstractAsyncContextManager[UpgradedStream]:
        """Attach where the backend supports it: the upgraded connection to pass through."""
        return self.upgrade(f"/containers/{_segment(ref)}/attach", params=params)

    def start_exec(
        self, exec_id: str, body: Mapping[str, Any]
    ) -> contextlib.AbstractAsyncContextManager[UpgradedStream]:
        return self.upgrade(f"/exec/{_segment(exec_id)}/start", json_body=body)

    async def inspect_exec(self, exec_id: str) -> ExecInstance:
        return await self._model(ExecInstance, "GET", f"/exec/{_segment(exec_id)}")

    # ------------------------------------------------------------------ images

    @contextlib.asynccontextmanager
    async def pull_image(self, request: ImagePullRequest) -> AsyncIterator[PullStream]:
        """Open a pull; an error before the stream starts raises here, later ones arrive as lines."""
        response = await self._send("POST", "/images/pull", json_body=unstructure(request), streaming=True)
        try:
            yield PullStream(response, self.url)
        finally:
            response.close()

    @contextlib.asynccontextmanager
    async def load_image(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[PullStream]:
        response = await self._send(
            "POST",
            "/images/load",
            data=chunks,
            headers={"Content-Type": "application/x-tar"},
            streaming=True,
        )
        try:
            yield PullStream(response, self.url)
        finally:
            response.close()

    async def list_images(self) -> list[ImageSummary]:
        """Every image the backend knows, one row per image ID with all its tags."""
        return await self._model(list[ImageSummary], "GET", "/images")

    async def inspect_image(self, name: str) -> Image:
        return await self._model(Image, "GET", "/images/inspect", params={"name": name})

    async def tag_image(self, name: str, repo: str, tag: str) -> None:
        await self._no_content("POST", "/images/tag", params=_query(name=name, repo=repo, tag=tag or None))

    async def auth(self, request: AuthRequest) -> AuthResponse:
        return await self._model(AuthResponse, "POST", "/auth", json_body=unstructure(request))


def _segment(value: str) -> str:
    """A path segment: a name's leading ``/`` dropped (the backend accepts both), the rest quoted."""
    return quote(value.lstrip("/"), safe="")


def _logs_query(options: LogsOptions) -> dict[str, str]:
    return _query(
        stdout=options.stdout,
        stderr=options.stderr,
        follow=options.follow,
        timestamps=options.timestamps,
        tail="all" if options.tail is None else options.tail,
        since=_since(options.since),
        until=_since(options.until),
    )


async def _read_response_head(reader: asyncio.StreamReader, url: str) -> tuple[int, dict[str, str]]:
    """Status and headers (lower-case names) of an HTTP/1.1 response; the body stays in ``reader``."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
        raise UpstreamError(
            f"the sockerless backend at {url} closed the connection before answering"
        ) from None
    status_line, *header_lines = raw.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise UpstreamError(f"the sockerless backend at {url} sent an invalid HTTP answer")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _upgrade_error(
    reader: asyncio.StreamReader, status: int, headers: Mapping[str, str]
) -> SockerlessError:
    """The error a declined upgrade carries in its (small, JSON) body."""
    length = headers.get("content-length", "")
    body = b""
    with contextlib.suppress(asyncio.IncompleteReadError, OSError, TimeoutError):
        if length.isdigit():
            body = await asyncio.wait_for(reader.readexactly(min(int(length), 1 << 16)), 10)
    message = ""
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        data = json.loads(body) if body else None
        if isinstance(data, Mapping):
            message = str(data.get("message", ""))
    return error_for_status(status, message or f"the sockerless backend answered {status}")


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "os_error", None)
    if isinstance(inner, OSError) and inner.strerror:
        return inner.strerror
    return str(exc) or type(exc).__name__
