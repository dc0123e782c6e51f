"""The internal-API server against a backend defined here: routing, errors, streaming, sockets, shutdown."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import socket
import stat
from collections.abc import AsyncIterator, Awaitable
from typing import Any, ClassVar

import aiohttp
import pytest

from sockerless import errors
from sockerless.api.server import InternalAPIServer, create_app
from sockerless.backend import BaseBackend, ContainerLogs, LogLine, LogsOptions
from sockerless.config import ServerConfig
from sockerless.events import EventBus, EventsOptions, EventStream
from sockerless.http.middlewares import InFlight
from sockerless.http.sockets import ListenError
from sockerless.models import (
    Capabilities,
    Container,
    ContainerConfig,
    ContainerCreateRequest,
    ContainerCreateResponse,
    HostConfig,
    ImagePullRequest,
    WaitCondition,
    WaitResponse,
)
from sockerless.observability import configure_logging, flush_logs
from sockerless.store import ContainerRecord
from sockerless.streams import decode_frames
from sockerless.wire import format_time

P = "/internal/v1"
ERROR_CLASSES = [
    (errors.InvalidParameter, 400),
    (errors.AccessDenied, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.NotImplementedByBackend, 501),
    (errors.UpstreamError, 502),
    (errors.Unavailable, 503),
    (errors.UpstreamTimeout, 504),
]


TOY_LOG = logging.getLogger("sockerless.toy")


class ToyBackend(BaseBackend):
    """A backend with logs and nothing else, recording what it is asked."""

    name = "toy"
    capabilities: ClassVar[Capabilities] = Capabilities(logs=True, image_pull=True, max_timeout_seconds=60)

    def __init__(self) -> None:
        self.raise_on_inspect: errors.SockerlessError | Exception | None = None
        self.exit: asyncio.Future[WaitResponse] | None = None
        self.release_create = asyncio.Event()
        self.release_create.set()
        self.created: list[ContainerCreateRequest] = []
        self.closed = False
        self.background: asyncio.Task[None] | None = None
        self.background_cancelled = False
        self.log_output: list[bytes] | None = None  # stdout lines instead of the two stamped ones
        self.logs_fail: errors.SockerlessError | None = None  # raised after the given lines

    async def start(self) -> None:
        self.background = asyncio.create_task(self._forever())

    async def _forever(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.background_cancelled = True
            raise

    async def close(self) -> None:
        if self.background is not None:
            self.background.cancel()
            await asyncio.gather(self.background, return_exceptions=True)
        self.closed = True

    async def create_container(
        self, request: ContainerCreateRequest, name: str | None
    ) -> ContainerCreateResponse:
        await self.release_create.wait()
        self.created.append(request)
        TOY_LOG.info("toy created", extra={"fields": {"image": request.config.image}})
        return ContainerCreateResponse(id="a" * 64)

    async def inspect_container(self, ref: str) -> Container:
        if self.raise_on_inspect is not None:
            raise self.raise_on_inspect
        if ref != "a" * 64:
            raise errors.NotFound(f"No such container: {ref}")
        return Container(id=ref, name="/toy", created=format_time(None))

    async def start_container(self, ref: str) -> None:
        raise errors.NotModified("already running")

    async def wait_container(self, ref: str, condition: WaitCondition) -> Awaitable[WaitResponse]:
        await self.inspect_container(ref)
        self.exit = asyncio.get_running_loop().create_future()
        return self.exit

    async def container_logs(self, ref: str, options: LogsOptions) -> ContainerLogs:
        await self.inspect_container(ref)
        stamp = dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)

        async def lines() -> AsyncIterator[LogLine]:
            if self.log_output is None:
                yield LogLine(stream=1, timestamp=stamp, data=b"out\n")
                yield LogLine(stream=2, timestamp=stamp, data=b"err\n")
            else:
                for data in self.log_output:
                    yield LogLine(stream=1, timestamp=stamp, data=data)
            if self.logs_fail is not None:
                raise self.logs_fail

        return ContainerLogs(tty=False, lines=lines())

    async def pull_image(self, request: ImagePullRequest) -> AsyncIterator[dict[str, Any]]:  # type: ignore[override]
        yield {"status": f"Pulling {request.reference}"}
        raise errors.UpstreamError("registry went away")


@pytest.fixture
def backend() -> ToyBackend:
    return ToyBackend()


@pytest.fixture
async def client(aiohttp_client: Any, backend: ToyBackend) -> Any:
    return await aiohttp_client(create_app(backend))


async def test_capabilities_are_the_backends_declaration(client: Any) -> None:
    response = await client.get(f"{P}/capabilities")
    assert response.status == 200
    body = await response.json()
    assert body["backend"] == "toy"
    assert body["capabilities"]["logs"] is True
    assert body["capabilities"]["exec"] is False
    assert body["capabilities"]["max_timeout_seconds"] == 60


@pytest.mark.parametrize(("error_class", "status"), ERROR_CLASSES)
async def test_each_error_class_maps_to_its_status_and_docker_body(
    client: Any, backend: ToyBackend, error_class: type[errors.SockerlessError], status: int
) -> None:
    backend.raise_on_inspect = error_class("it went wrong on purpose")
    response = await client.get(f"{P}/containers/{'a' * 64}")
    assert response.status == status
    assert response.headers["Content-Type"] == "application/json"
    assert await response.json() == {"message": "it went wrong on purpose"}


async def test_a_requests_own_lines_come_before_its_access_line(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = await client.post(f"{P}/containers", json={"Image": "alpine"})
    assert response.status == 201
    written = [r for r in caplog.records if r.name in ("sockerless.toy", "sockerless.access")]
    assert [(r.name, r.getMessage()) for r in written] == [
        ("sockerless.toy", "toy created"),
        ("sockerless.access", "request"),
    ]
    assert written[0].fields == {"image": "alpine"}  # type: ignore[attr-defined]
    assert written[1].fields["path"] == f"{P}/containers"  # type: ignore[attr-defined]
    assert written[1].fields["status"] == 201  # type: ignore[attr-defined]


def test_configured_logging_is_written_by_its_own_thread_and_flushed_at_stop(
    capfd: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging("info", "json")
        seen: list[int] = []
        for n in range(100):
            seen.append(n)
            TOY_LOG.info("queued", extra={"fields": {"n": n, "seen": seen, "password": "hunter2"}})
        flush_logs()  # what the entry points do when they stop: every queued line is written
        lines = [json.loads(line) for line in capfd.readouterr().err.splitlines()]
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert [line["n"] for line in lines] == list(range(100))
    assert all(line["seen"] == list(range(line["n"] + 1)) for line in lines)  # as they were when logged
    assert {line["password"] for line in lines} == {"***"}


async def test_not_modified_has_an_empty_body(client: Any) -> None:
    response = await client.post(f"{P}/containers/{'a' * 64}/start")
    assert response.status == 304
    assert await response.read() == b""


async def test_unexpected_exception_is_a_short_500_without_traceback(
    client: Any, backend: ToyBackend
) -> None:
    backend.raise_on_inspect = RuntimeError("secret internals")
    response = await client.get(f"{P}/containers/{'a' * 64}")
    assert response.status == 500
    body = await response.json()
    assert "secret internals" not in body["message"]
    assert "Traceback" not in body["message"]


async def test_unavailable_carries_retry_after(client: Any, backend: ToyBackend) -> None:
    backend.raise_on_inspect = errors.Unavailable("throttled", retry_after=2)
    response = await client.get(f"{P}/containers/{'a' * 64}")
    assert response.status == 503
    assert response.headers["Retry-After"] == "2"


UNIMPLEMENTED = [
    ("GET", f"{P}/info", None, "does not support info"),
    ("GET", f"{P}/containers", None, "does not support container list"),
    ("POST", f"{P}/containers/x/stop", None, "does not support container stop"),
    ("POST", f"{P}/containers/x/kill", None, "does not support container kill"),
    ("POST", f"{P}/containers/x/restart", None, "does not support container restart"),
    ("DELETE", f"{P}/containers/x", None, "does not support container remove"),
    ("POST", f"{P}/containers/prune", None, "does not support container prune"),
    ("POST", f"{P}/images/tag?name=a&repo=b", None, "does not support image tag"),
]

GATED = [
    ("POST", f"{P}/containers/x/exec", {"Cmd": ["ls"]}, "does not support exec. CI runners require"),
    ("POST", f"{P}/exec/abc/start", {}, "does not support exec. CI runners require"),
    (
        "POST",
        f"{P}/containers/x/attach?stream=1&stdout=1",
        None,
        "does not support attach. CI runners require",
    ),
    ("POST", f"{P}/images/load", None, "does not support image load"),
    ("GET", f"{P}/networks", None, "does not support networks"),
    ("POST", f"{P}/networks", {"Name": "n"}, "does not support networks"),
    ("DELETE", f"{P}/networks/n", None, "does not support networks"),
    ("POST", f"{P}/networks/n/connect", {}, "does not support networks"),
    ("POST", f"{P}/networks/n/disconnect", {}, "does not support networks"),
    ("POST", f"{P}/networks/prune", None, "does not support networks"),
    ("GET", f"{P}/volumes", None, "does not support volumes"),
    ("POST", f"{P}/volumes", {"Name": "v"}, "does not support volumes"),
    ("DELETE", f"{P}/volumes/v", None, "does not support volumes"),
    ("POST", f"{P}/volumes/prune", None, "does not support volumes"),
]


@pytest.mark.parametrize(("method", "path", "body", "message"), UNIMPLEMENTED + GATED)
async def test_unimplemented_operation_is_501_naming_backend_and_operation(
    client: Any, method: str, path: str, body: Any, message: str
) -> None:
    response = await client.request(method, path, json=body)
    assert response.status == 501
    assert response.headers["Content-Type"] == "application/json"
    text = (await response.json())["message"]
    assert text.startswith("This backend (toy) ")
    assert message in text


@pytest.mark.parametrize(
    ("path", "message"), [("networks/n", "No such network: n"), ("volumes/v", "No such volume: v")]
)
async def test_one_network_or_volume_of_a_backend_without_them_is_404(
    client: Any, path: str, message: str
) -> None:
    response = await client.get(f"{P}/{path}")
    assert response.status == 404  # so that `docker inspect NAME` goes on to "No such object"
    assert (await response.json())["message"] == message


async def test_registry_login_succeeds_as_the_contract_says(client: Any) -> None:
    response = await client.post(f"{P}/auth", json={"username": "u", "password": "p"})
    assert response.status == 200
    assert await response.json() == {"Status": "Login Succeeded", "IdentityToken": ""}


async def test_exec_inspect_of_unknown_exec_is_404(client: Any) -> None:
    response = await client.get(f"{P}/exec/nope")
    assert response.status == 404
    assert (await response.json())["message"] == "No such exec instance: nope"


async def test_unknown_route_is_404_in_docker_format(client: Any) -> None:
    response = await client.get(f"{P}/nothing/here")
    assert response.status == 404
    assert response.headers["Content-Type"] == "application/json"
    assert await response.json() == {"message": "page not found"}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "invalid JSON body"),
        (b"[1, 2]", "expected an object"),
        (b'{"Image": "x", "Env": "A=1"}', "env"),
        (b'{"Image": "x", "Tty": "yes"}', "tty"),
        (b"", "request body is empty"),
        (b'{"Image": "x", "Memory": NaN}', "NaN is not valid JSON"),
        (b'{"Image": "\xff"}', "not UTF-8 JSON"),
        ('{"Image": "x"}'.encode("utf-16"), "not UTF-8 JSON"),
    ],
)
async def test_bad_create_bodies_are_400(
    client: Any, backend: ToyBackend, body: bytes, fragment: str
) -> None:
    response = await client.post(f"{P}/containers", data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert fragment in (await response.json())["message"]
    assert backend.created == []


async def test_create_ignores_unknown_fields_and_returns_201(client: Any, backend: ToyBackend) -> None:
    body = {"Image": "alpine", "Cmd": "echo hi", "FutureField": {"x": 1}, "HostConfig": {"Newer": True}}
    response = await client.post(f"{P}/containers?name=web", json=body)
    assert response.status == 201
    assert await response.json() == {"Id": "a" * 64, "Warnings": []}
    assert backend.created[0].config.cmd == ["echo hi"]


async def test_oversized_body_is_413_in_docker_format(aiohttp_client: Any, backend: ToyBackend) -> None:
    client = await aiohttp_client(create_app(backend, max_body_bytes=1024))
    response = await client.post(f"{P}/containers", data=b"{" + b" " * 4096 + b"}")
    assert response.status == 413
    assert "too large" in (await response.json())["message"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        *(
            ("GET", f"/containers/{'a' * 64}/logs?stdout={word}", 200)
            for word in ("1", "true", "True", "yes")
        ),
        ("GET", f"/containers/{'a' * 64}/logs?stdout=maybe", 400),  # not a boolean
        ("POST", "/containers/nope/wait", 404),  # before any header
        ("POST", f"/containers/{'a' * 64}/wait?condition=sometime", 400),
    ],
)
async def test_query_values_are_read_before_anything_is_answered(
    client: Any, method: str, path: str, status: int
) -> None:
    response = await client.request(method, P + path)
    assert response.status == status


async def test_wait_sends_headers_before_the_container_exits(client: Any, backend: ToyBackend) -> None:
    response = await client.post(f"{P}/containers/{'a' * 64}/wait?condition=next-exit")
    assert response.status == 200  # headers arrived while the container still runs
    assert response.headers["Content-Type"] == "application/json"
    assert backend.exit is not None and not backend.exit.done()
    backend.exit.set_result(WaitResponse(status_code=3))
    assert await response.json() == {"StatusCode": 3}


async def test_wait_client_disconnect_leaks_no_task(client: Any, backend: ToyBackend) -> None:
    response = await client.post(f"{P}/containers/{'a' * 64}/wait")
    assert response.status == 200
    assert backend.exit is not None
    response.close()  # the client hangs up, as `docker run -d` does
    for _ in range(200):
        if backend.exit.done():
            break
        await asyncio.sleep(0.01)
    assert backend.exit.cancelled()


async def test_logs_are_docker_frames_with_optional_timestamps(client: Any) -> None:
    response = await client.get(f"{P}/containers/{'a' * 64}/logs?stdout=1&stderr=1&timestamps=1")
    assert response.headers["Content-Type"] == "application/vnd.docker.multiplexed-stream"
    frames, rest = decode_frames(await response.read())
    assert rest == b""
    assert frames == [
        (1, b"2024-01-02T03:04:05.123456000Z out\n"),
        (2, b"2024-01-02T03:04:05.123456000Z err\n"),
    ]


async def test_a_short_log_is_one_plain_answer(client: Any) -> None:
    response = await client.get(f"{P}/containers/{'a' * 64}/logs?stdout=1&stderr=1")
    assert response.headers["Content-Length"] == str(2 * (8 + 4))  # not chunked: sent as one
    assert "Transfer-Encoding" not in response.headers
    assert decode_frames(await response.read()) == ([(1, b"out\n"), (2, b"err\n")], b"")


async def test_a_long_log_streams_every_line_in_order(client: Any, backend: ToyBackend) -> None:
    backend.log_output = [f"line {i:06d} {'x' * 1000}\n".encode() for i in range(300)]  # about 300 KiB
    response = await client.get(f"{P}/containers/{'a' * 64}/logs?stdout=1")
    assert response.headers["Transfer-Encoding"] == "chunked"
    frames, rest = decode_frames(await response.read())
    assert rest == b""
    assert [payload for _, payload in frames] == backend.log_output


async def test_a_log_read_failing_before_any_output_is_an_error_status(
    client: Any, backend: ToyBackend
) -> None:
    backend.log_output = []
    backend.logs_fail = errors.UpstreamError("CloudWatch went away")
    response = await client.get(f"{P}/containers/{'a' * 64}/logs?stdout=1")
    assert response.status == 502
    assert await response.json() == {"message": "CloudWatch went away"}


async def test_pull_failure_after_stream_start_is_an_in_stream_error(client: Any) -> None:
    response = await client.post(f"{P}/images/pull", json={"Reference": "alpine:latest"})
    assert response.status == 200
    lines = [json.loads(line) for line in (await response.read()).splitlines()]
    assert lines[0] == {"status": "Pulling alpine:latest"}
    assert lines[1] == {"errorDetail": {"message": "registry went away"}, "error": "registry went away"}


async def test_bearer_token_is_required_when_configured(aiohttp_client: Any, backend: ToyBackend) -> None:
    client = await aiohttp_client(create_app(backend, token="s3cret"))
    assert (await client.get(f"{P}/capabilities")).status == 401
    wrong = await client.get(f"{P}/capabilities", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    right = await client.get(f"{P}/capabilities", headers={"Authorization": "Bearer s3cret"})
    assert right.status == 200


async def test_back_pressure_answers_503_with_retry_after(aiohttp_client: Any, backend: ToyBackend) -> None:
    client = await aiohttp_client(create_app(backend, inflight=InFlight(1)))
    backend.release_create.clear()
    first = asyncio.create_task(client.post(f"{P}/containers", json={"Image": "a"}))
    while not backend.release_create.is_set() and not any(
        t for t in asyncio.all_tasks() if "create_container" in repr(t.get_coro())
    ):
        await asyncio.sleep(0.005)
    second = await client.get(f"{P}/containers/{'a' * 64}")
    assert second.status == 503
    assert second.headers["Retry-After"] == "1"
    backend.release_create.set()
    assert (await first).status == 201


# ---------------------------------------------------------------------------- sockets and shutdown


def _unix_session(path: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path))


async def test_unix_socket_is_owner_only(tmp_path: Any, backend: ToyBackend) -> None:
    path = str(tmp_path / "backend.sock")
    server = InternalAPIServer(backend, ServerConfig(socket=path))
    await server.start()
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        async with _unix_session(path) as session, session.get(f"http://x{P}/capabilities") as response:
            assert response.status == 200
    finally:
        await server.stop()
    assert not os.path.exists(path)
    assert backend.closed


async def test_stale_socket_file_is_replaced(tmp_path: Any, backend: ToyBackend) -> None:
    path = str(tmp_path / "backend.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens: a crashed run's leftover
    server = InternalAPIServer(backend, ServerConfig(socket=path))
    await server.start()
    await server.stop()


async def test_live_socket_is_refused(tmp_path: Any) -> None:
    path = str(tmp_path / "backend.sock")
    first = InternalAPIServer(ToyBackend(), ServerConfig(socket=path))
    await first.start()
    try:
        with pytest.raises(ListenError, match="already listening"):
            await InternalAPIServer(ToyBackend(), ServerConfig(socket=path)).start()
        assert os.path.exists(path)
    finally:
        await first.stop()


async def test_tcp_defaults_to_refusing_public_addresses_without_token() -> None:
    with pytest.raises(ListenError, match="non-loopback"):
        await InternalAPIServer(ToyBackend(), ServerConfig(tcp="0.0.0.0:0")).start()


async def test_tcp_on_loopback(backend: ToyBackend) -> None:
    server = InternalAPIServer(backend, ServerConfig(tcp="127.0.0.1:0"))
    await server.start()
    try:
        assert server.address.startswith("tcp://127.0.0.1:")
        async with aiohttp.ClientSession() as session:
            url = server.address.replace("tcp://", "http://") + f"{P}/capabilities"
            async with session.get(url) as response:
                assert response.status == 200
    finally:
        await server.stop()


async def test_graceful_stop_finishes_in_flight_request_and_cancels_background(
    tmp_path: Any, backend: ToyBackend
) -> None:
    path = str(tmp_path / "backend.sock")
    server = InternalAPIServer(backend, ServerConfig(socket=path, shutdown_grace=5))
    await server.start()
    backend.release_create.clear()
    async with _unix_session(path) as session:
        in_flight = asyncio.create_task(session.post(f"http://x{P}/containers", json={"Image": "a"}))
        for _ in range(500):
            if any("create_container" in repr(t.get_coro()) for t in asyncio.all_tasks()):
                break
            await asyncio.sleep(0.005)
        stopping = asyncio.create_task(server.stop())
        await asyncio.sleep(0)  # let stop begin; the request is still held by the backend
        backend.release_create.set()
        response = await in_flight
        assert response.status == 201
        await stopping
    assert backend.background_cancelled
    assert backend.closed
    assert not os.path.exists(path)


class EventfulBackend(BaseBackend):
    """A backend with an event bus and nothing else."""

    name = "eventful"
    capabilities: ClassVar[Capabilities] = Capabilities(events=True)

    def __init__(self) -> None:
        self.bus = EventBus()

    async def events(self, options: EventsOptions) -> EventStream:
        return self.bus.subscribe(options)


async def test_events_stream_as_lines_from_the_moment_the_headers_are_out(aiohttp_client: Any) -> None:
    backend = EventfulBackend()
    client = await aiohttp_client(create_app(backend))
    response = await client.get(f"{P}/events", params={"filters": json.dumps({"event": ["die"]})})
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    record = ContainerRecord(
        id="c" * 64,
        name="web",
        created=dt.datetime.now(dt.UTC),
        image="alpine",
        config=ContainerConfig(image="alpine"),
        host_config=HostConfig(),
        backend_state=None,
    )
    backend.bus.container("start", record)  # filtered out
    backend.bus.container("die", record, exitCode="1")
    line = json.loads(await asyncio.wait_for(response.content.readline(), 10))
    assert (line["Action"], line["Actor"]["Attributes"]["exitCode"]) == ("die", "1")
    response.close()


async def test_bad_event_filters_are_a_400_before_any_stream(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(EventfulBackend()))
    response = await client.get(f"{P}/events", params={"filters": json.dumps({"colour": ["red"]})})
    assert response.status == 400
    assert (await response.json())["message"].startswith("invalid filter 'colour'")


async def test_shutdown_ends_event_streams_cleanly_instead_of_waiting_for_them(tmp_path: Any) -> None:
    path = str(tmp_path / "backend.sock")
    # A grace far longer than the test may take: the stream must not hold the stop for it.
    server = InternalAPIServer(EventfulBackend(), ServerConfig(socket=path, shutdown_grace=600))
    await server.start()
    async with _unix_session(path) as session, session.get(f"http://x{P}/events") as response:
        assert response.status == 200
        stopping = asyncio.create_task(server.stop())
        assert await asyncio.wait_for(response.read(), 30) == b""  # the end of the stream, not a cut
        await asyncio.wait_for(stopping, 30)
