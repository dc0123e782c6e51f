"""Container output, owned by the backend: durable in the state database, followed without polling.

Each container's output is a sequence of entries (``seq`` from 1, a stream, a time, the bytes) in
``log_entries``. A backend appends what its platform reports, marks when a run's output begins
(:meth:`LogStore.open_output`) and when it is complete (:meth:`LogStore.close_output`); ``logs``
answers from here (:meth:`LogStore.lines`), following as entries arrive. What a follower waits for
lives in memory, one :class:`_Output` per container: followers sleep on its event, which every
append, open, close and removal sets, and read only the entries past their position when woken.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Final

from attrs import Factory, define

from sockerless.backend import LogLine, LogsOptions
from sockerless.config import StoreConfig
from sockerless.models import WaitCondition
from sockerless.store.database import Database, Plan, Statement, StoreError
from sockerless.streams import STDERR, STDOUT

__all__ = ["LogStore"]

log = logging.getLogger(__name__)

#: Entries per read: a long output streams in pages instead of one list of everything.
PAGE_SIZE: Final = 1000
#: Entries per transaction when a removed container's output is deleted: the writer lock is
#: released between chunks, so other writes are not held up behind a large output.
DELETE_CHUNK: Final = 10_000

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND: Final = dt.timedelta(microseconds=1)
_INSERT: Final = "INSERT INTO log_entries (container_id, seq, stream, time_ns, data) VALUES (?, ?, ?, ?, ?)"
_SELECT: Final = "SELECT seq, stream, time_ns, data FROM log_entries WHERE container_id = ?"

Entry = tuple[int, LogLine]
_NewEntry = tuple[int, int, bytes]  # stream, time_ns, data


@define(eq=False)
class _Output:
    """One container's output as memory knows it."""

    loaded: bool = False  # last_seq and size were read from the database
    loaded_end: int = 0  # last_seq as first read: where the output ended before this process appended
    last_seq: int = 0
    size: int = 0  # bytes kept, the limit's marker included
    cut: bool = False  # the limit was reached: later output is dropped
    dropped: int = 0  # bytes dropped at the limit and not reported yet
    open: bool = False
    runs: int = 0  # open_output calls: which run a follower waits for
    pending: int = 0  # appends in flight: a follower does not end before they land
    removed: bool = False
    changed: asyncio.Event = Factory(asyncio.Event)

    def notify(self) -> None:
        """Wake every follower waiting now; later waiters get a fresh event."""
        self.changed.set()
        self.changed = asyncio.Event()


class LogStore:
    """The output of every container, in the store's database. Created by ``Store.open``."""

    def __init__(self, database: Database, config: StoreConfig) -> None:
        self._db = database
        self._limit = config.log_limit_bytes
        self._marker = (
            f"[sockerless] output beyond {self._limit} bytes (store.log_limit_bytes) was not kept\n".encode()
        )
        self._outputs: dict[str, _Output] = {}
        self._closed = False
        self._ending = False

    def end_follows(self) -> None:
        """The process is stopping: every follower ends once it has what the store holds (a clean
        end for its client), and a follow asked for from now on ends there too. Appends still land."""
        self._ending = True
        for output in self._outputs.values():
            output.notify()

    async def close(self) -> None:
        """End every follower. The database is the store's to close."""
        if self._closed:
            return
        self._closed = True
        for container_id, output in self._outputs.items():
            self._report_dropped(container_id, output)
            output.notify()

    # ------------------------------------------------------------------------ writing

    async def append(self, container_id: str, lines: Iterable[LogLine]) -> None:
        """Add ``lines`` after the container's last entry; committed before it returns.

        Beyond ``store.log_limit_bytes`` of data the rest is dropped: the part of the line that
        fits is kept, one marker entry on stderr says so, a warning names the container, and the
        bytes dropped later are counted and reported when the run's output closes.
        """
        entries: list[_NewEntry] = [
            (line.stream, _nanoseconds(line.timestamp), bytes(line.data)) for line in lines
        ]
        if any(stream not in (STDOUT, STDERR) for stream, _, _ in entries):
            raise ValueError(f"container {container_id}: output streams are 1 (stdout) and 2 (stderr)")
        if not entries:
            return
        output = self._output(container_id)
        output.pending += 1
        try:
            await self._load(container_id, output)
            writing = self._db.submit(lambda: self._append_plan(container_id, output, entries))
        except BaseException:
            self._landed(output)
            raise
        # Counted until the write itself is over, not the caller's wait: a cancelled caller's
        # append still lands, and a follower must not end before it does.
        writing.add_done_callback(lambda _: self._landed(output))
        await asyncio.shield(writing)

    async def set_times(self, container_id: str, times: Mapping[int, dt.datetime]) -> None:
        """Replace provisional times of entries (by ``seq``); their content and positions stay."""
        rows = [(_nanoseconds(moment), container_id, seq) for seq, moment in times.items()]
        statement = Statement("UPDATE log_entries SET time_ns = ? WHERE container_id = ? AND seq = ?", rows)
        await self._db.write(_only(statement))

    def open_output(self, container_id: str) -> None:
        """A run began: followers wait for its output."""
        output = self._output(container_id)
        output.open = True
        output.runs += 1
        output.notify()

    def close_output(self, container_id: str) -> None:
        """The run's output is complete (every append of it has been awaited)."""
        output = self._output(container_id)
        output.open = False
        self._report_dropped(container_id, output)
        output.notify()

    def is_open(self, container_id: str) -> bool:
        output = self._outputs.get(container_id)
        return output is not None and output.open

    # ------------------------------------------------------------------------ reading

    async def last_position(self, container_id: str) -> int:
        """The position of the container's last entry (0: none): what comes next is after it. Read
        from the database the first time only."""
        output = self._output(container_id)
        await self._load(container_id, output)
        return output.last_seq

    async def read(self, container_id: str, after: int = 0) -> list[Entry]:
        """Every entry past position ``after``, with its position, in order."""
        rows = await self._db.fetch(f"{_SELECT} AND seq > ? ORDER BY seq", (container_id, after))
        return [_entry(row) for row in rows]

    def lines(self, container_id: str, options: LogsOptions) -> AsyncIterator[LogLine]:
        """What ``logs`` answers: the selected lines, then (``follow``) every new one until the end.

        The call itself fixes what is selected and how a follow ends, before anything is read
        (a follower registered before a run began gets that whole run). The selection is the output
        as of this call; what is appended after it is followed. With
        ``not-running`` it follows the run open now (none open: no follow, Docker's rule); with
        ``next-exit`` the run open now, or else the next one to open. It ends once that run's output
        closed, no append is in flight and every entry before the close was yielded; also when an
        entry later than ``until`` arrives, the container is removed (once the output of a run still
        completing at the removal has closed), or the store closes.
        """
        output = self._output(container_id)
        last_run: int | None = None  # the run whose close ends the follow; None, no follow
        if options.follow and not _closed_by_removal(output):
            if options.condition is WaitCondition.NEXT_EXIT:
                last_run = output.runs if output.open else output.runs + 1
            elif output.open:
                last_run = output.runs
        # Where the output ends now; not loaded yet, nothing of this process's was appended, and
        # the end is what the first load reads.
        known_end = output.last_seq if output.loaded else None
        return self._lines(container_id, output, options, known_end, last_run)

    async def _lines(
        self,
        container_id: str,
        output: _Output,
        options: LogsOptions,
        known_end: int | None,
        last_run: int | None,
    ) -> AsyncIterator[LogLine]:
        follow = last_run is not None
        until = options.until
        await self._load(container_id, output)
        cursor = end = output.loaded_end if known_end is None else known_end
        selected = _Filter.of(options, until=options.until)
        start = await self._tail_start(container_id, selected, end, options.tail)
        # Following, an entry later than ``until`` ends the stream; otherwise it is only left out.
        walked = _Filter.of(options, until=None) if follow else selected
        async for line in self._walk(container_id, walked, start, end):
            if follow and until is not None and line.timestamp > until:
                return
            yield line
        if last_run is None:
            return
        while not self._closed:
            changed = output.changed  # taken before the checks: a change after them still wakes us
            if output.last_seq > cursor:
                end = output.last_seq
                async for line in self._walk(container_id, walked, cursor, end):
                    if until is not None and line.timestamp > until:
                        return
                    yield line
                cursor = end
                continue
            if _closed_by_removal(output) or self._ending or _run_over(output, last_run):
                return
            await changed.wait()  # no timeout: every append, open, close, removal and close() sets it

    async def _walk(self, container_id: str, where: _Filter, after: int, end: int) -> AsyncIterator[LogLine]:
        """The entries in (``after``, ``end``] that ``where`` selects, read a page at a time."""
        sql = f"{_SELECT} AND seq > ? AND seq <= ?{where.sql} ORDER BY seq LIMIT ?"
        while after < end:
            try:
                rows = await self._db.fetch(sql, (container_id, after, end, *where.parameters, PAGE_SIZE))
            except StoreError:
                if self._closed:
                    return  # the store closed under a follower: the stream just ends
                raise
            for row in rows:
                yield _entry(row)[1]
            if len(rows) < PAGE_SIZE:
                return
            after = rows[-1][0]

    async def _tail_start(self, container_id: str, where: _Filter, end: int, tail: int | None) -> int:
        """The position after which the last ``tail`` selected entries up to ``end`` begin."""
        if tail is None:
            return 0
        if tail <= 0:
            return end
        rows = await self._db.fetch(
            f"SELECT seq FROM log_entries WHERE container_id = ? AND seq <= ?{where.sql}"  # noqa: S608
            " ORDER BY seq DESC LIMIT 1 OFFSET ?",  # (where.sql is fixed text; values are parameters)
            (container_id, end, *where.parameters, tail - 1),
        )
        return int(rows[0][0]) - 1 if rows else 0

    # ------------------------------------------------------------------------ removal

    def mark_removed(self, container_id: str, *, output_completing: bool = False) -> None:
        """The container is gone (in memory; the store applies it with the removal it committed): its
        followers end and output arriving later is not kept. What it has stays readable by ID until
        it is deleted (:meth:`delete`).

        ``output_completing``: the run has ended but its output is still arriving (a container
        removed at its exit, ``docker run --rm``): an open output stays open, its appends land and
        its followers read on until :meth:`close_output`; from then on it is like any other."""
        output = self._output(container_id)
        output.removed = True
        if not output_completing:
            output.open = False
        if not output.open:
            self._report_dropped(container_id, output)
        output.notify()

    async def delete(self, container_id: str, last: Callable[[], Plan[None]]) -> None:
        """Delete the container's output, ``DELETE_CHUNK`` entries per transaction so that other
        writes are not held up behind a large one; the last transaction also commits the plan ``last``
        makes (what owned the output: a removed container's row), so no crash leaves an output that
        belongs to nobody."""
        ((end,),) = await self._db.fetch(
            "SELECT coalesce(max(seq), 0) FROM log_entries WHERE container_id = ?", (container_id,)
        )
        for upto in range(DELETE_CHUNK, int(end), DELETE_CHUNK):
            chunk = Statement(
                "DELETE FROM log_entries WHERE container_id = ? AND seq <= ?", [(container_id, upto)]
            )
            await self._db.write(_only(chunk))

        def plan() -> Plan[None]:
            owner = last()

            def apply() -> None:
                owner.apply()
                output = self._outputs.pop(container_id, None)
                if output is not None:
                    output.removed = True
                    output.notify()

            rest = Statement("DELETE FROM log_entries WHERE container_id = ?", [(container_id,)])
            return Plan([*owner.statements, rest], apply)

        await self._db.write(plan)

    # ------------------------------------------------------------------------ memory

    def _output(self, container_id: str) -> _Output:
        output = self._outputs.get(container_id)
        if output is None:
            output = self._outputs[container_id] = _Output()
        return output

    async def _load(self, container_id: str, output: _Output) -> None:
        """Read where the output ends and how big it is, the first time this process needs it."""
        if output.loaded:
            return
        ((last_seq, size),) = await self._db.fetch(
            "SELECT coalesce(max(seq), 0), coalesce(sum(length(data)), 0) FROM log_entries"
            " WHERE container_id = ?",
            (container_id,),
        )
        if not output.loaded:  # another reader may have loaded it meanwhile (same values)
            output.last_seq, output.size, output.loaded = int(last_seq), int(size), True
            output.loaded_end = output.last_seq
            # Kept output never passes the limit but for the marker that says it was cut.
            output.cut = output.size > self._limit

    def _append_plan(self, container_id: str, output: _Output, entries: list[_NewEntry]) -> Plan[None]:
        if _closed_by_removal(output):
            log.warning(
                "container %s was removed: %d entries of output arriving after it were not kept",
                container_id,
                len(entries),
            )
            return Plan([], _nothing)
        rows: list[tuple[str, int, int, int, bytes]] = []
        seq, size, cut, dropped = output.last_seq, output.size, output.cut, 0
        cut_here = False
        for stream, time_ns, data in entries:
            if cut:
                dropped += len(data)
                continue
            room = self._limit - size
            if len(data) > room:
                if room > 0:
                    seq += 1
                    rows.append((container_id, seq, stream, time_ns, data[:room]))
                seq += 1
                rows.append((container_id, seq, STDERR, time_ns, self._marker))
                size, cut, cut_here = size + max(room, 0) + len(self._marker), True, True
                dropped += len(data) - max(room, 0)
                continue
            seq += 1
            rows.append((container_id, seq, stream, time_ns, data))
            size += len(data)

        def apply() -> None:
            output.last_seq, output.size, output.cut = seq, size, cut
            output.dropped += dropped
            if cut_here:
                log.warning(
                    "container %s: output beyond %d bytes (store.log_limit_bytes) is not kept; "
                    "raise the limit to keep more",
                    container_id,
                    self._limit,
                )
            output.notify()

        return Plan([Statement(_INSERT, rows)], apply)

    def _landed(self, output: _Output) -> None:
        output.pending -= 1
        output.notify()

    def _report_dropped(self, container_id: str, output: _Output) -> None:
        if output.dropped:
            log.warning(
                "container %s: %d bytes of output beyond %d bytes (store.log_limit_bytes) were dropped",
                container_id,
                output.dropped,
                self._limit,
            )
            output.dropped = 0


@define(frozen=True)
class _Filter:
    """The part of a query that selects entries by stream and time: fixed SQL text and its values."""

    sql: str
    parameters: tuple[int, ...]

    @classmethod
    def of(cls, options: LogsOptions, *, until: dt.datetime | None) -> _Filter:
        sql, parameters = "", []
        if options.stdout != options.stderr:
            sql += " AND stream = ?"
            parameters.append(STDOUT if options.stdout else STDERR)
        if options.since is not None:
            sql += " AND time_ns >= ?"
            parameters.append(_nanoseconds(options.since))
        if until is not None:
            sql += " AND time_ns <= ?"
            parameters.append(_nanoseconds(until))
        return cls(sql, tuple(parameters))


def _closed_by_removal(output: _Output) -> bool:
    """Removed, and no run's output is still completing: nothing more comes."""
    return output.removed and not output.open


def _run_over(output: _Output, last_run: int) -> bool:
    """The followed run's output is closed and nothing is still being appended to it."""
    if output.pending:
        return False
    return output.runs > last_run or (output.runs == last_run and not output.open)


def _entry(row: tuple[Any, ...]) -> Entry:
    seq, stream, time_ns, data = row
    return seq, LogLine(stream, _EPOCH + dt.timedelta(microseconds=time_ns // 1000), data)


def _nanoseconds(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"log times must be timezone-aware, got {moment.isoformat()}")
    return (moment - _EPOCH) // _MICROSECOND * 1000


def _nothing() -> None:
    return None


def _only(statement: Statement) -> Callable[[], Plan[None]]:
    """The plan of a write that is this statement and changes nothing in memory."""
    return lambda: Plan([statement], _nothing)
