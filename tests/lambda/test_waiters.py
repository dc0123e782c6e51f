"""sockerless.waiters and sockerless.logfilter: the generic pieces any backend reuses."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from sockerless.backend import LogLine, LogsOptions
from sockerless.logfilter import select, split_lines
from sockerless.models import WaitCondition, WaitError, WaitResponse
from sockerless.waiters import ContainerWaiters, ExitStatus, answered

ID = "a" * 64
T0 = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


async def test_not_running_answers_at_once_for_an_exited_container() -> None:
    waiters = ContainerWaiters()
    future = waiters.wait(ID, WaitCondition.NOT_RUNNING, status="exited", last=ExitStatus(3))
    assert future.done() and future.result() == WaitResponse(3)


async def test_not_running_on_a_created_container_answers_0_at_once_as_moby_does() -> None:
    waiters = ContainerWaiters()
    future = waiters.wait(ID, WaitCondition.NOT_RUNNING, status="created", last=ExitStatus())
    assert future.done() and future.result() == WaitResponse(0)


@pytest.mark.parametrize(
    ("condition", "status", "code"),
    [
        pytest.param(
            WaitCondition.NEXT_EXIT, "created", 2, id="next-exit-of-a-created-container-waits-for-its-run"
        ),
        pytest.param(
            WaitCondition.NOT_RUNNING,
            "running",
            4,
            id="not-running-of-a-running-container-waits-for-its-exit",
        ),
    ],
)
async def test_a_wait_that_cannot_answer_yet_answers_the_coming_exit(
    condition: WaitCondition, status: str, code: int
) -> None:
    waiters = ContainerWaiters()
    future = waiters.wait(ID, condition, status=status, last=ExitStatus())
    await asyncio.sleep(0)
    assert not future.done()
    waiters.exited(ID, ExitStatus(code))
    assert future.result() == WaitResponse(code)


async def test_next_exit_waits_even_for_an_exited_container_and_removed_waits_for_removal() -> None:
    waiters = ContainerWaiters()
    next_exit = waiters.wait(ID, WaitCondition.NEXT_EXIT, status="exited", last=ExitStatus(1))
    removed = waiters.wait(ID, WaitCondition.REMOVED, status="exited", last=ExitStatus(1))
    assert not next_exit.done()
    waiters.exited(ID, ExitStatus(137, "timed out"))
    assert next_exit.result() == WaitResponse(137)
    assert not removed.done()
    waiters.removed(ID, ExitStatus(0))
    assert removed.result() == WaitResponse(0)
    await asyncio.sleep(0)  # done callbacks run on the next loop turn
    assert waiters.pending_count(ID) == 0


async def test_a_run_that_ended_answers_its_status_without_error_whatever_state_error_says() -> None:
    assert answered(ExitStatus(127, "cannot run the command")).result() == WaitResponse(127)


async def test_only_a_daemon_error_is_reported_as_the_waits_error() -> None:
    future = answered(ExitStatus(1, "lambda: invoke function: throttled", daemon_error=True))
    assert future.done() and future.result() == WaitResponse(
        1, WaitError("lambda: invoke function: throttled")
    )


async def test_a_cancelled_wait_is_forgotten() -> None:
    waiters = ContainerWaiters()
    future = waiters.wait(ID, WaitCondition.NEXT_EXIT, status="running", last=ExitStatus())
    future.cancel()
    await asyncio.sleep(0)
    assert waiters.pending_count(ID) == 0
    waiters.exited(ID, ExitStatus(0))  # nothing left to resolve, nothing raised


def lines() -> list[LogLine]:
    return [
        LogLine(1, T0, b"one\n"),
        LogLine(2, T0 + dt.timedelta(seconds=1), b"two\n"),
        LogLine(1, T0 + dt.timedelta(seconds=2), b"three\n"),
    ]


def test_select_applies_streams_since_until_and_tail_like_docker() -> None:
    assert [line.data for line in select(lines(), LogsOptions())] == [b"one\n", b"two\n", b"three\n"]
    assert [line.data for line in select(lines(), LogsOptions(stderr=False))] == [b"one\n", b"three\n"]
    since = LogsOptions(since=T0 + dt.timedelta(seconds=1))  # inclusive
    assert [line.data for line in select(lines(), since)] == [b"two\n", b"three\n"]
    until = LogsOptions(until=T0 + dt.timedelta(seconds=1))  # inclusive
    assert [line.data for line in select(lines(), until)] == [b"one\n", b"two\n"]
    assert [line.data for line in select(lines(), LogsOptions(tail=1, stderr=False))] == [b"three\n"]
    assert select(lines(), LogsOptions(tail=0)) == []


def test_split_lines_keeps_or_adds_the_newline() -> None:
    assert [line.data for line in split_lines("a\nb", T0)] == [b"a\n", b"b\n"]
    assert split_lines("", T0) == []
