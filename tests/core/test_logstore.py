"""The log store against a real SQLite file: output kept, selected, followed, cut at its limit (its
removal: test_removed.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from sockerless.backend import LogLine, LogsOptions
from sockerless.config import StoreConfig
from sockerless.errors import InvalidParameter
from sockerless.logfilter import select
from sockerless.models import WaitCondition
from sockerless.store import Store
from sockerless.store.database import Database

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
LIMIT = 1024
GRACE = 300.0
CID = hashlib.sha256(b"logged").hexdigest()
FOLLOW = LogsOptions(follow=True)
NEXT_EXIT = LogsOptions(follow=True, tail=0, condition=WaitCondition.NEXT_EXIT)
SETTLED = 5.0  # seconds a step that must end is given to end (it takes milliseconds)
QUIET = 0.2  # seconds a step that must not end is watched


class Clock:
    """Wall-clock seconds that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def line(i: int, *, stream: int = 1, at: float | None = None) -> LogLine:
    """Line ``i``, at second ``i`` after T0 unless ``at`` says otherwise."""
    return LogLine(stream, T0 + dt.timedelta(seconds=i if at is None else at), f"line {i}\n".encode())


async def collect(lines: AsyncIterator[LogLine]) -> list[LogLine]:
    return [item async for item in lines]


async def open_store(path: str, clock: Clock | None = None, **config: Any) -> Store[None]:
    settings = {"log_limit_bytes": LIMIT, "removed_grace_seconds": GRACE, **config}
    return await Store.open(
        path, state_class=type(None), config=StoreConfig(**settings), clock=clock or Clock()
    )


def data(entries: Sequence[tuple[int, LogLine]]) -> list[LogLine]:
    return [entry for _, entry in entries]


# ---------------------------------------------------------------------------- appending and reading


def count_fetches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of rows of every query the store reads from now on, in order."""
    sizes: list[int] = []
    fetch = Database.fetch

    async def counting(self: Database, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        found = await fetch(self, sql, parameters)
        sizes.append(len(found))
        return found

    monkeypatch.setattr(Database, "fetch", counting)
    return sizes


async def test_appended_output_is_read_back_in_order_with_positions_from_one(
    store: Store[None], db_path: str, clock: Clock
) -> None:
    await store.logs.append(CID, [line(1), line(2, stream=2)])
    await store.logs.append(CID, [line(3)])
    assert await store.logs.read(CID) == [(1, line(1)), (2, line(2, stream=2)), (3, line(3))]
    assert await store.logs.read(CID, after=2) == [(3, line(3))]
    assert await store.logs.read("f" * 64) == []

    await store.close()
    store = await open_store(db_path, clock)
    await store.logs.append(CID, [line(4)])  # positions go on after a restart
    assert await store.logs.read(CID, after=2) == [(3, line(3)), (4, line(4))]
    await store.close()


async def test_a_last_piece_without_its_newline_is_kept_as_it_came(store: Store[None]) -> None:
    pieces = [LogLine(1, T0, b"progress: 10%\r"), LogLine(1, T0, b"\x00\xffbinary"), LogLine(2, T0, b"")]
    await store.logs.append(CID, pieces)
    assert data(await store.logs.read(CID)) == pieces


async def test_set_times_changes_the_times_and_nothing_else(store: Store[None]) -> None:
    await store.logs.append(CID, [line(1), line(2), line(3)])
    later = T0 + dt.timedelta(hours=1, microseconds=7)
    await store.logs.set_times(CID, {2: later, 3: T0})
    assert await store.logs.read(CID) == [
        (1, line(1)),
        (2, LogLine(1, later, b"line 2\n")),
        (3, LogLine(1, T0, b"line 3\n")),
    ]


async def test_times_without_a_zone_and_unknown_streams_are_refused(store: Store[None]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.logs.append(CID, [LogLine(1, dt.datetime(2026, 1, 1), b"x\n")])
    with pytest.raises(ValueError, match="streams are 1"):
        await store.logs.append(CID, [LogLine(0, T0, b"stdin?\n")])
    assert await store.logs.read(CID) == []


# ---------------------------------------------------------------------------- selecting

#: Two streams, times that repeat (inclusive bounds matter) and are not in position order everywhere.
OUTPUT = [
    LogLine(
        2 if i % 3 == 0 else 1, T0 + dt.timedelta(seconds=i // 2 if i != 30 else 3), f"line {i}\n".encode()
    )
    for i in range(40)
]
AT = {seconds: T0 + dt.timedelta(seconds=seconds) for seconds in (3, 5, 7, 12)}


@pytest.mark.parametrize(
    "options",
    [
        LogsOptions(),
        LogsOptions(stdout=False),
        LogsOptions(stderr=False),
        LogsOptions(tail=5),
        LogsOptions(tail=0),
        LogsOptions(tail=1000),
        LogsOptions(since=AT[5]),
        LogsOptions(until=AT[7]),
        LogsOptions(since=AT[3], until=AT[3]),
        LogsOptions(since=AT[5], until=AT[12], tail=3, stderr=False),
        LogsOptions(until=AT[5], tail=4, stdout=False),
    ],
    ids=repr,
)
async def test_the_selection_follows_dockers_rules(store: Store[None], options: LogsOptions) -> None:
    """The same answer as ``logfilter.select`` over the whole output: the rules written down once."""
    await store.logs.append(CID, OUTPUT)
    assert await collect(store.logs.lines(CID, options)) == select(OUTPUT, options)


async def test_tail_takes_the_last_lines_left_after_the_stream_filter(store: Store[None]) -> None:
    await store.logs.append(CID, [line(1), line(2, stream=2), line(3), line(4, stream=2)])
    assert await collect(store.logs.lines(CID, LogsOptions(tail=1, stderr=False))) == [line(3)]
    assert await collect(store.logs.lines(CID, LogsOptions(tail=3))) == [
        line(2, stream=2),
        line(3),
        line(4, stream=2),
    ]


async def test_fifty_thousand_lines_come_back_exactly_a_page_at_a_time(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_store(db_path, log_limit_bytes=64 << 20)
    output = [
        LogLine(1 + i % 2, T0 + dt.timedelta(microseconds=i), f"{i} {'x' * (i % 61)}\n".encode())
        for i in range(50_000)
    ]
    await store.logs.append(CID, output)
    largest = count_fetches(monkeypatch)
    assert await collect(store.logs.lines(CID, LogsOptions())) == output
    assert max(largest) <= 1000  # never the whole output in one list
    largest.clear()
    assert await collect(store.logs.lines(CID, LogsOptions(tail=10, stdout=False))) == output[1::2][-10:]
    assert max(largest) <= 10
    assert data(await store.logs.read(CID)) == output
    await store.close()


# ---------------------------------------------------------------------------- following


async def test_follow_yields_lines_appended_later(store: Store[None]) -> None:
    store.logs.open_output(CID)
    await store.logs.append(CID, [line(1)])
    following = store.logs.lines(CID, FOLLOW)
    assert await anext(following) == line(1)
    waiting = asyncio.ensure_future(anext(following))
    await store.logs.append(CID, [line(2), line(3)])
    assert await asyncio.wait_for(waiting, SETTLED) == line(2)
    assert await asyncio.wait_for(anext(following), SETTLED) == line(3)
    store.logs.close_output(CID)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(following), SETTLED)


async def test_follow_ends_after_the_close_with_every_line(store: Store[None]) -> None:
    store.logs.open_output(CID)
    following = asyncio.ensure_future(collect(store.logs.lines(CID, FOLLOW)))
    expected: list[LogLine] = []
    for batch in range(20):
        lines = [line(batch * 10 + i, stream=1 + i % 2) for i in range(batch % 4)]
        await store.logs.append(CID, lines)
        expected += lines
        await asyncio.sleep(0)
    store.logs.close_output(CID)
    assert await asyncio.wait_for(following, SETTLED) == expected


async def test_not_running_follow_of_a_closed_output_ends_at_once(store: Store[None]) -> None:
    await store.logs.append(CID, [line(1)])  # output of a run that is over (or never opened)
    assert not store.logs.is_open(CID)
    assert await asyncio.wait_for(collect(store.logs.lines(CID, FOLLOW)), SETTLED) == [line(1)]


async def test_next_exit_waits_for_the_next_run_and_ends_when_it_closes(store: Store[None]) -> None:
    store.logs.open_output(CID)
    await store.logs.append(CID, [line(1)])
    store.logs.close_output(CID)
    following = asyncio.ensure_future(collect(store.logs.lines(CID, NEXT_EXIT)))
    with pytest.raises(TimeoutError):  # no run is open: it waits for the next one
        await asyncio.wait_for(asyncio.shield(following), QUIET)
    store.logs.open_output(CID)
    assert store.logs.is_open(CID)
    await store.logs.append(CID, [line(2)])
    await store.logs.append(CID, [line(3)])
    with pytest.raises(TimeoutError):  # the run is open: it goes on
        await asyncio.wait_for(asyncio.shield(following), QUIET)
    store.logs.close_output(CID)
    assert await asyncio.wait_for(following, SETTLED) == [line(2), line(3)]


async def test_next_exit_of_an_open_output_follows_the_current_run(store: Store[None]) -> None:
    store.logs.open_output(CID)
    await store.logs.append(CID, [line(1)])
    following = asyncio.ensure_future(collect(store.logs.lines(CID, NEXT_EXIT)))
    await store.logs.append(CID, [line(2)])
    store.logs.close_output(CID)
    assert await asyncio.wait_for(following, SETTLED) == [line(2)]


@pytest.mark.parametrize("options", [NEXT_EXIT, LogsOptions(follow=True, condition=WaitCondition.NEXT_EXIT)])
async def test_a_follower_registered_before_a_whole_run_still_gets_all_of_it(
    store: Store[None], options: LogsOptions
) -> None:
    """The run opens, appends and closes before the follower has read anything at all."""
    following = store.logs.lines(CID, options)
    store.logs.open_output(CID)
    await store.logs.append(CID, [line(1), line(2)])
    store.logs.close_output(CID)
    assert await asyncio.wait_for(collect(following), SETTLED) == [line(1), line(2)]


async def test_a_not_running_follower_registered_in_a_run_gets_it_all_after_the_close(
    store: Store[None],
) -> None:
    store.logs.open_output(CID)
    following = store.logs.lines(CID, FOLLOW)
    await store.logs.append(CID, [line(1)])
    store.logs.close_output(CID)
    store.logs.open_output(CID)  # the next run has begun before the follower even looked
    assert await asyncio.wait_for(collect(following), SETTLED) == [line(1)]
    store.logs.close_output(CID)


async def test_a_follower_waits_for_an_append_still_in_flight_at_the_close(store: Store[None]) -> None:
    store.logs.open_output(CID)
    following = asyncio.ensure_future(collect(store.logs.lines(CID, FOLLOW)))
    appending = asyncio.ensure_future(store.logs.append(CID, [line(1), line(2)]))
    await asyncio.sleep(0)  # the append has begun: its write is on aiosqlite's thread
    store.logs.close_output(CID)  # too early, yet nothing appended before it may be missed
    await appending
    assert await asyncio.wait_for(following, SETTLED) == [line(1), line(2)]


async def test_a_cancelled_append_lands_whole_or_not_at_all_and_followers_agree(store: Store[None]) -> None:
    store.logs.open_output(CID)
    await store.logs.append(CID, [line(0)])
    following = asyncio.ensure_future(collect(store.logs.lines(CID, FOLLOW)))
    for i in range(1, 6):
        appending = asyncio.ensure_future(store.logs.append(CID, [line(i), line(i + 100)]))
        for _ in range(i):
            await asyncio.sleep(0)
        appending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await appending
    store.logs.close_output(CID)
    followed = await asyncio.wait_for(following, SETTLED)
    stored = data(await store.logs.read(CID))
    assert followed == stored
    assert all(
        stored[i + 1].data == b"line %d\n" % (int(stored[i].data.split()[1]) + 100)
        for i in range(1, len(stored), 2)
    )


async def test_follow_since_leaves_out_new_lines_from_before_it(store: Store[None]) -> None:
    store.logs.open_output(CID)
    following = asyncio.ensure_future(collect(store.logs.lines(CID, LogsOptions(follow=True, since=AT[5]))))
    await store.logs.append(CID, [line(1, at=4), line(2, at=5), line(3, at=1), line(4, at=9)])
    store.logs.close_output(CID)
    assert await asyncio.wait_for(following, SETTLED) == [line(2, at=5), line(4, at=9)]


async def test_follow_until_ends_when_a_later_line_arrives(store: Store[None]) -> None:
    store.logs.open_output(CID)
    await store.logs.append(CID, [line(1)])
    following = asyncio.ensure_future(collect(store.logs.lines(CID, LogsOptions(follow=True, until=AT[5]))))
    await store.logs.append(CID, [line(5), line(6), line(2)])
    assert await asyncio.wait_for(following, SETTLED) == [line(1), line(5)]  # the output is still open
    store.logs.close_output(CID)


async def test_follow_until_already_passed_ends_after_the_selection(store: Store[None]) -> None:
    store.logs.open_output(CID)
    await store.logs.append(CID, [line(1), line(7), line(8)])
    options = LogsOptions(follow=True, until=AT[7])
    assert await asyncio.wait_for(collect(store.logs.lines(CID, options)), SETTLED) == [line(1), line(7)]


async def test_a_wake_up_reads_only_the_new_entries_of_its_container(
    store: Store[None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Idle followers cost nothing: no polling, and an append wakes only its own container's."""
    ids = [hashlib.sha256(b"%d" % i).hexdigest() for i in range(100)]
    followers = []
    for container_id in ids:
        store.logs.open_output(container_id)
        await store.logs.append(container_id, [line(0)])
        following = store.logs.lines(container_id, FOLLOW)
        assert await anext(following) == line(0)
        followers.append(following)
    fetched = count_fetches(monkeypatch)
    waiting = [asyncio.ensure_future(anext(following)) for following in followers]
    await asyncio.sleep(QUIET)
    assert fetched == []  # a hundred followers waiting, not one query
    await store.logs.append(ids[42], [line(1)])
    assert await asyncio.wait_for(waiting[42], SETTLED) == line(1)
    await asyncio.sleep(QUIET)
    assert fetched == [1]  # one read, of the one new entry
    assert sum(task.done() for task in waiting) == 1
    for container_id in ids:
        store.logs.close_output(container_id)
    await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), SETTLED)


async def test_followers_end_when_the_store_closes(store: Store[None]) -> None:
    store.logs.open_output(CID)
    await store.logs.append(CID, [line(1)])
    following = asyncio.ensure_future(collect(store.logs.lines(CID, FOLLOW)))
    await asyncio.sleep(0)
    await store.close()
    assert await asyncio.wait_for(following, SETTLED) == [line(1)]


async def test_end_follows_ends_every_follower_after_the_lines_it_has_and_appends_still_land(
    store: Store[None],
) -> None:
    store.logs.open_output(CID)
    await store.logs.append(CID, [line(1)])
    following = asyncio.ensure_future(collect(store.logs.lines(CID, FOLLOW)))
    waiting_for_a_run = asyncio.ensure_future(collect(store.logs.lines("f" * 64, NEXT_EXIT)))
    await store.logs.append(CID, [line(2)])
    store.logs.end_follows()  # shutdown: the runs go on, the clients get a clean end
    assert await asyncio.wait_for(following, SETTLED) == [line(1), line(2)]
    assert await asyncio.wait_for(waiting_for_a_run, SETTLED) == []
    await store.logs.append(CID, [line(3)])
    assert await asyncio.wait_for(collect(store.logs.lines(CID, FOLLOW)), SETTLED) == [
        line(1),
        line(2),
        line(3),
    ]


async def test_following_until_removed_is_refused(store: Store[None]) -> None:
    with pytest.raises(InvalidParameter, match="not at removed"):
        store.logs.lines(CID, LogsOptions(follow=True, condition=WaitCondition.REMOVED))


# ---------------------------------------------------------------------------- the limit


async def test_output_beyond_the_limit_is_cut_with_a_marker_and_a_warning(
    store: Store[None], db_path: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sockerless.store.logs")
    store.logs.open_output(CID)
    given = [LogLine(1, T0 + dt.timedelta(seconds=i), b"%02d" % i + b"x" * 97 + b"\n") for i in range(15)]
    await store.logs.append(CID, given)  # 1500 bytes

    kept = data(await store.logs.read(CID))
    marker = LogLine(
        2,
        T0 + dt.timedelta(seconds=10),
        b"[sockerless] output beyond 1024 bytes (store.log_limit_bytes) was not kept\n",
    )
    assert kept[-1] == marker
    assert b"".join(entry.data for entry in kept[:-1]) == b"".join(entry.data for entry in given)[:LIMIT]
    assert kept[:10] == given[:10] and kept[10].data == given[10].data[:24]
    assert [record.getMessage() for record in caplog.records] == [
        f"container {CID}: output beyond 1024 bytes (store.log_limit_bytes) is not kept;"
        " raise the limit to keep more"
    ]

    caplog.clear()
    await store.logs.append(CID, [line(99)])  # dropped, counted
    assert data(await store.logs.read(CID)) == kept
    store.logs.close_output(CID)
    dropped = 1500 - LIMIT + len(line(99).data)
    assert [record.getMessage() for record in caplog.records] == [
        f"container {CID}: {dropped} bytes of output beyond 1024 bytes (store.log_limit_bytes) were dropped"
    ]

    await store.close()
    store = await open_store(db_path, clock)
    await store.logs.append(CID, [line(100)])  # still cut after a restart: no second marker
    assert data(await store.logs.read(CID)) == kept
    await store.close()


async def test_the_limit_counts_the_output_kept_before_a_restart(db_path: str, clock: Clock) -> None:
    store = await open_store(db_path, clock)
    await store.logs.append(CID, [LogLine(1, T0, b"a" * 1000)])
    await store.close()
    store = await open_store(db_path, clock)
    await store.logs.append(CID, [LogLine(1, T0, b"b" * 100)])
    assert [
        (entry.stream, entry.data[:3], len(entry.data)) for entry in data(await store.logs.read(CID))
    ] == [
        (1, b"aaa", 1000),
        (1, b"bbb", 24),
        (2, b"[so", 75),
    ]
    await store.close()


async def test_output_that_ends_exactly_at_the_limit_is_not_cut(store: Store[None]) -> None:
    await store.logs.append(CID, [LogLine(1, T0, b"a" * (LIMIT - 1)), LogLine(1, T0, b"\n")])
    assert len(await store.logs.read(CID)) == 2
    await store.logs.append(CID, [LogLine(1, T0, b"!")])
    assert data(await store.logs.read(CID, after=2))[0].stream == 2  # only now the marker
