"""The internal-API client: addresses, errors mapped back by status, timestamped log parsing."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from sockerless import errors
from sockerless.client import BackendClient, error_for_status, parse_backend_url, parse_timestamped_logs
from sockerless.listen import bind_unix
from sockerless.streams import encode_frame, format_log_time

T0 = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("unix:///run/x.sock", ("http://backend", "/run/x.sock")),
        ("http://127.0.0.1:9000", ("http://127.0.0.1:9000", None)),
        ("tcp://localhost:9000", ("http://localhost:9000", None)),
    ],
)
def test_backend_urls(url: str, expected: tuple[str, str | None]) -> None:
    assert parse_backend_url(url) == expected


@pytest.mark.parametrize("url", ["unix://", "ftp://x", "/run/x.sock", "http://"])
def test_bad_backend_urls(url: str) -> None:
    with pytest.raises(ValueError, match="invalid backend URL"):
        parse_backend_url(url)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (304, errors.NotModified),
        (400, errors.InvalidParameter),
        (403, errors.AccessDenied),
        (404, errors.NotFound),
        (409, errors.Conflict),
        (501, errors.NotImplementedByBackend),
        (502, errors.UpstreamError),
        (503, errors.Unavailable),
        (504, errors.UpstreamTimeout),
    ],
)
def test_errors_come_back_as_their_class(status: int, cls: type[errors.SockerlessError]) -> None:
    error = error_for_status(status, "m")
    assert type(error) is cls
    assert (error.status, error.message) == (status, "m")


def test_other_statuses_keep_their_status() -> None:
    error = error_for_status(401, "unauthorized")
    assert (type(error), error.status) == (errors.SockerlessError, 401)
    assert error_for_status(503, "busy", retry_after=2).retry_after == 2  # type: ignore[attr-defined]


def test_timestamped_frames_are_split_into_lines() -> None:
    body = encode_frame(1, f"{format_log_time(T0)} one\n".encode()) + encode_frame(
        2, f"{format_log_time(T0)} two\n".encode()
    )
    lines = parse_timestamped_logs(body, tty=False)
    assert [(line.stream, line.timestamp, line.data) for line in lines] == [
        (1, T0, b"one\n"),
        (2, T0, b"two\n"),
    ]


def test_raw_tty_logs_keep_lines_without_a_stamp_with_the_line_before() -> None:
    stamp = format_log_time(T0)
    body = f"{stamp} first\nsecond part\n{stamp} third".encode()
    lines = parse_timestamped_logs(body, tty=True)
    assert [line.data for line in lines] == [b"first\nsecond part\n", b"third"]


@pytest_asyncio.fixture
async def garbage_backend(short_dir: str) -> AsyncIterator[str]:
    """A server that answers everything with 200 and a body that is not JSON."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    listener = bind_unix(f"{short_dir}/garbage.sock")
    await web.SockSite(runner, listener.sock).start()
    try:
        yield listener.description
    finally:
        await runner.cleanup()


async def test_a_backend_answering_garbage_is_an_upstream_error(garbage_backend: str) -> None:
    async with BackendClient(garbage_backend) as client:
        with pytest.raises(errors.UpstreamError, match="sent an invalid answer"):
            await client.capabilities()


async def test_a_missing_backend_is_unavailable(short_dir: str) -> None:
    async with BackendClient(f"unix://{short_dir}/nothing.sock") as client:
        with pytest.raises(errors.Unavailable, match="cannot reach the sockerless backend"):
            await client.info()
