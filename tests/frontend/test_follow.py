"""Log follow emulated from polling, for backends without ``logs_follow``: complete, once, bounded."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from sockerless.frontend.follow import continuation
from sockerless.streams import decode_frames

from .local_backend import LocalBackend

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest"


# ---------------------------------------------------------------------------- finding new lines


def test_continuation_of_a_growing_log_is_its_end() -> None:
    assert continuation([1, 2], [1, 2, 3, 4]) == 2
    assert continuation([], [1]) == 0
    assert continuation([1, 2], [1, 2]) == 2


def test_continuation_inside_a_shortened_view() -> None:
    # A backend may first show only the tail of the output: what follows the seen lines is new.
    assert continuation([1, 2, 3], [2, 3, 4]) == 2
    assert continuation([1, 2, 3], [3]) == 1


def test_continuation_prefers_the_longest_match_then_the_earliest() -> None:
    assert continuation([5, 7, 7], [5, 7, 7, 7, 7]) == 3
    assert continuation([9, 7], [7, 9, 7, 7]) == 3


def test_continuation_without_any_seen_line_is_none() -> None:
    assert continuation([1, 2], [3, 4]) is None


# ---------------------------------------------------------------------------- through the frontend


async def start(http: aiohttp.ClientSession, command: str, **body: Any) -> str:
    async with http.post("/images/create", params={"fromImage": IMAGE}) as response:
        await response.read()
    create = {"Image": IMAGE, "Cmd": ["sh", "-c", command], **body}
    async with http.post("/containers/create", json=create) as response:
        container_id = str((await response.json())["Id"])
    async with http.post(f"/containers/{container_id}/start") as response:
        assert response.status == 204
    return container_id


async def follow(http: aiohttp.ClientSession, container_id: str, **query: str) -> list[tuple[int, bytes]]:
    params = {"stdout": "1", "stderr": "1", "follow": "1", **query}
    async with http.get(f"/containers/{container_id}/logs", params=params) as response:
        assert response.status == 200, await response.text()
        frames, rest = decode_frames(await asyncio.wait_for(response.read(), 30))
    assert rest == b""
    return frames


async def eventually(check: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("backend_options", [{"log_delay": 0.2}])
async def test_delayed_lines_arrive_once_and_in_order(http: aiohttp.ClientSession) -> None:
    container_id = await start(http, "for i in 1 2 3 4 5; do echo $i; sleep 0.1; done")
    frames = await follow(http, container_id)
    assert frames == [(1, f"{i}\n".encode()) for i in range(1, 6)]


@pytest.mark.parametrize("backend_options", [{"restamp_after_exit": True}])
async def test_restamped_lines_are_not_repeated(http: aiohttp.ClientSession) -> None:
    container_id = await start(http, "echo a; sleep 0.4; echo b; echo a")
    frames = await follow(http, container_id)
    assert frames == [(1, b"a\n"), (1, b"b\n"), (1, b"a\n")]


async def test_polling_is_bounded_and_backs_off(
    http: aiohttp.ClientSession, local_backend: LocalBackend
) -> None:
    # follow_poll_interval 0.05 s growing to 0.2 s (see conftest): a silent second costs a handful of fetches.
    container_id = await start(http, "sleep 1; echo done")
    before = local_backend.calls["logs"]
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await follow(http, container_id) == [(1, b"done\n")]
    elapsed = loop.time() - began
    fetches = local_backend.calls["logs"] - before
    assert fetches <= elapsed / 0.05 / 2 + 3, (fetches, elapsed)


async def test_follow_with_tail_shows_the_last_lines_then_the_new_ones(
    http: aiohttp.ClientSession, local_backend: LocalBackend, short_dir: str
) -> None:
    go = f"{short_dir}/go"
    container_id = await start(http, f"echo a; echo b; while [ ! -e {go} ]; do sleep 0.02; done; echo c")
    await eventually(lambda: len(local_backend.output[container_id]) == 2)
    following = asyncio.create_task(follow(http, container_id, tail="1"))
    await eventually(lambda: local_backend.calls["logs"] >= 1)
    with open(go, "w"):
        pass
    assert await following == [(1, b"b\n"), (1, b"c\n")]


async def test_follow_of_an_exited_container_ends_after_its_logs(http: aiohttp.ClientSession) -> None:
    container_id = await start(http, "echo x")
    async with http.post(f"/containers/{container_id}/wait") as response:
        assert json.loads(await response.read()) == {"StatusCode": 0}
    assert await follow(http, container_id) == [(1, b"x\n")]
    assert await follow(http, container_id, tail="0") == []


async def test_follow_ends_when_the_container_is_removed(
    http: aiohttp.ClientSession, local_backend: LocalBackend
) -> None:
    container_id = await start(http, "echo first; sleep 30")
    await eventually(lambda: len(local_backend.output[container_id]) == 1)
    following = asyncio.create_task(follow(http, container_id))
    await eventually(lambda: local_backend.calls["logs"] >= 1)
    async with http.delete(f"/containers/{container_id}", params={"force": "1"}) as response:
        assert response.status == 204
    assert await following == [(1, b"first\n")]


async def test_follow_with_timestamps_prefixes_each_line(http: aiohttp.ClientSession) -> None:
    container_id = await start(http, "echo t")
    [(stream, data)] = await follow(http, container_id, timestamps="1")
    stamp, _, text = data.partition(b" ")
    assert (stream, text) == (1, b"t\n")
    assert stamp.endswith(b"Z") and len(stamp) == 30


async def test_follow_of_a_tty_container_is_raw(http: aiohttp.ClientSession) -> None:
    container_id = await start(http, "echo raw", Tty=True)
    params = {"stdout": "1", "follow": "1"}
    async with http.get(f"/containers/{container_id}/logs", params=params) as response:
        assert response.headers["Content-Type"] == "application/vnd.docker.raw-stream"
        assert await response.read() == b"raw\n"


async def test_a_client_leaving_a_follow_stops_the_polling(
    http: aiohttp.ClientSession, local_backend: LocalBackend
) -> None:
    container_id = await start(http, "sleep 30")
    response = await http.get(f"/containers/{container_id}/logs", params={"stdout": "1", "follow": "1"})
    await eventually(lambda: local_backend.calls["logs"] >= 1)
    response.close()
    await eventually(lambda: local_backend.waiters.pending_count(container_id) == 0)
    settled = local_backend.calls["logs"]
    await asyncio.sleep(0.5)  # longer than the largest poll interval: no fetch may happen
    assert local_backend.calls["logs"] == settled


@pytest.mark.parametrize("frontend_options", [{"emulate_follow": False}])
async def test_follow_emulation_switched_off_answers_the_logs_so_far(
    http: aiohttp.ClientSession, local_backend: LocalBackend
) -> None:
    container_id = await start(http, "echo now; sleep 30")
    await eventually(lambda: len(local_backend.output[container_id]) == 1)
    assert await follow(http, container_id) == [(1, b"now\n")]  # ends although the container runs
    async with http.delete(f"/containers/{container_id}", params={"force": "1"}):
        pass


@pytest.mark.parametrize(
    ("backend_options", "fetches"), [({"final_logs": True}, 1), ({"final_logs": False}, 2)]
)
async def test_logs_the_backend_marks_final_end_the_follow_without_a_settling_fetch(
    http: aiohttp.ClientSession, local_backend: LocalBackend, fetches: int
) -> None:
    container_id = await start(http, "echo done")
    await eventually(lambda: local_backend.records[container_id].status == "exited")
    before = local_backend.calls["logs"]
    assert await follow(http, container_id) == [(1, b"done\n")]
    assert local_backend.calls["logs"] - before == fetches
