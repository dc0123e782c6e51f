"""Run one invocation's command as a local process group: stdin in, lines out, killed at the timeout."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping

from attrs import frozen

__all__ = [
    "OutputCollector",
    "OutputSink",
    "ProcessOutcome",
    "ProcessSpec",
    "kill_all_process_groups",
    "kill_group",
    "reap",
    "resident_peak_kb",
    "run_process",
    "spawn_error",
    "spawn_group",
    "untrack_group",
    "wait_exited",
]

log = logging.getLogger(__name__)

OutputSink = Callable[[str, int], None]
"""Receives each output line (with its newline, if any) and its timestamp in epoch milliseconds."""

# CloudWatch caps an event at 256 KB including 26 bytes of overhead: longer lines are split.
MAX_LINE_BYTES = 256 * 1024 - 26
# After the main process exits and its group is killed, how long to wait for the pipe to close.
_OUTPUT_DRAIN_SECONDS = 2.0
_REAP_SECONDS = 10.0
_SAMPLE_SECONDS = 0.25

# Process groups still running, killed at interpreter exit if nobody stopped them.
_live_groups: set[int] = set()


@frozen
class ProcessSpec:
    argv: tuple[str, ...]
    env: Mapping[str, str]
    stdin: bytes
    timeout_seconds: float
    cwd: str | None = None
    """Working directory; ``None`` runs in a fresh temporary directory, removed afterwards."""


@frozen
class ProcessOutcome:
    exit_code: int | None
    """The exit status, or ``None`` when a signal ended the process or it never started."""
    signal: int | None
    timed_out: bool
    duration_ms: float
    max_rss_kb: int
    spawn_error: str | None = None
    """Why the command could not start, worded like Lambda's Go runtime (``fork/exec ...``)."""

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


async def run_process(spec: ProcessSpec, on_output: OutputSink) -> ProcessOutcome:
    """Run ``spec.argv`` in its own session; kill the whole group at the timeout or on cancellation."""
    workdir = spec.cwd
    scratch = None
    if workdir is None:
        scratch = workdir = tempfile.mkdtemp(prefix="sockerless-lambda-")
    try:
        return await _run_in(spec, workdir, on_output)
    finally:
        if scratch is not None:
            await asyncio.to_thread(shutil.rmtree, scratch, True)


async def _run_in(spec: ProcessSpec, workdir: str, on_output: OutputSink) -> ProcessOutcome:
    started = time.monotonic()
    try:
        process = _spawn(spec, workdir)
    except OSError as exc:
        return ProcessOutcome(
            exit_code=None,
            signal=None,
            timed_out=False,
            duration_ms=(time.monotonic() - started) * 1000.0,
            max_rss_kb=0,
            spawn_error=spawn_error(spec.argv[0], exc),
        )
    pid = process.pid
    _live_groups.add(pid)
    loop = asyncio.get_running_loop()
    collector = OutputCollector(on_output, loop)
    reaped = False
    read_transport: asyncio.ReadTransport | None = None
    write_transport: asyncio.WriteTransport | None = None
    stdin_protocol: _StdinProtocol | None = None
    assert process.stdout is not None
    assert process.stdin is not None
    try:
        read_transport, _ = await loop.connect_read_pipe(lambda: collector, process.stdout)
        write_transport, stdin_protocol = await loop.connect_write_pipe(_StdinProtocol, process.stdin)
        if spec.stdin:
            write_transport.write(spec.stdin)
        write_transport.close()  # flushes the payload, then the child sees EOF on stdin
        exited = asyncio.create_task(wait_exited(pid), name=f"wait for process {pid}")
        try:
            peak_rss_kb, timed_out = await _watch(pid, exited, spec.timeout_seconds)
            if timed_out:
                kill_group(pid)
                await asyncio.wait_for(asyncio.shield(exited), _REAP_SECONDS)
            exited.result()
        finally:
            if not exited.done():
                exited.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await exited
        duration_ms = (time.monotonic() - started) * 1000.0
        # Lambda freezes the environment after the run: background children must not go on.
        kill_group(pid)
        status = reap(pid)
        reaped = True
        _live_groups.discard(pid)
        exit_code = os.waitstatus_to_exitcode(status)
        process.returncode = exit_code  # so Popen never waits on this pid again
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(collector.closed), _OUTPUT_DRAIN_SECONDS)
        return ProcessOutcome(
            exit_code=exit_code if exit_code >= 0 else None,
            signal=-exit_code if exit_code < 0 else None,
            timed_out=timed_out,
            duration_ms=duration_ms,
            max_rss_kb=peak_rss_kb,
        )
    finally:
        if not reaped:
            await _kill_and_reap(process)
        if read_transport is not None:
            read_transport.close()
        if write_transport is not None and stdin_protocol is not None and not stdin_protocol.lost:
            write_transport.abort()  # a payload the command never read
        for stream in (process.stdin, process.stdout):
            with contextlib.suppress(OSError):
                stream.close()


def _spawn(spec: ProcessSpec, workdir: str) -> subprocess.Popen[bytes]:
    # A plain Popen (fork/exec, about a millisecond) rather than asyncio's subprocess support:
    # we reap the child ourselves, after killing its group while its ID is still reserved.
    return subprocess.Popen(
        spec.argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one pipe keeps stdout and stderr lines in their true order
        cwd=workdir,
        env=dict(spec.env),
        start_new_session=True,  # its own process group, so one killpg ends every descendant
        close_fds=True,
    )


def reap(pid: int) -> int:
    """Collect a child already known to have exited: WNOHANG, so it can never block the loop."""
    reaped_pid, status = os.waitpid(pid, os.WNOHANG)
    if reaped_pid == 0:
        raise ChildProcessError(f"process {pid} has not exited yet")
    return status


async def _watch(pid: int, exited: asyncio.Task[None], timeout_seconds: float) -> tuple[int, bool]:
    """Wait for the exit or the timeout, sampling peak memory on the way: (peak KB, timed out)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    peak_kb = 0
    interval = 0.01  # a first look early, then less often
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return peak_kb, True
        done, _ = await asyncio.wait({exited}, timeout=min(interval, remaining))
        if done:
            return peak_kb, False
        peak_kb = max(peak_kb, resident_peak_kb(pid))
        interval = min(interval * 4, _SAMPLE_SECONDS)


def resident_peak_kb(pid: int) -> int:
    # VmHWM: the peak resident set since exec. (wait4's ru_maxrss is useless here: Linux charges
    # the child with the parent's memory at exec time.) A procfs read takes microseconds.
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


async def _kill_and_reap(process: subprocess.Popen[bytes]) -> None:
    """Cancellation or failure path: kill the group and reap the leader without blocking the loop."""
    pid = process.pid
    kill_group(pid)
    try:
        await asyncio.wait_for(wait_exited(pid), _REAP_SECONDS)
        status = reap(pid)
        process.returncode = os.waitstatus_to_exitcode(status)
        _live_groups.discard(pid)
    except (TimeoutError, ChildProcessError):
        log.warning("process group %d did not exit after SIGKILL; it is killed again at exit", pid)


async def wait_exited(pid: int) -> None:
    """Wait until ``pid`` has exited, without reaping it (its group ID must stay reserved)."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        # No pidfd (old kernel, not Linux): a thread blocks in waitid(WNOWAIT) instead.
        await asyncio.to_thread(os.waitid, os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        return
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await exited
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def spawn_group(argv: tuple[str, ...], env: Mapping[str, str], cwd: str) -> subprocess.Popen[bytes]:
    """Start a long-lived process (an environment's runtime) as its own process group: stdin is
    ``/dev/null``, stdout and stderr share one pipe. Killed at interpreter exit unless
    ``untrack_group`` was called after it was reaped. Raises OSError when it cannot start."""
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
        close_fds=True,
    )
    _live_groups.add(process.pid)
    return process


def untrack_group(pgid: int) -> None:
    """The group's leader was reaped: its ID may be reused, never kill it again."""
    _live_groups.discard(pgid)


def kill_all_process_groups() -> None:
    """Kill every process group still running (interpreter exit, or an emergency stop)."""
    for pgid in list(_live_groups):
        kill_group(pgid)


atexit.register(kill_all_process_groups)


def spawn_error(executable: str, exc: OSError) -> str:
    reason = (exc.strerror or str(exc)).lower()
    if "/" not in executable and isinstance(exc, FileNotFoundError):
        return f'exec: "{executable}": executable file not found in $PATH'
    return f"fork/exec {executable}: {reason}"


class _StdinProtocol(asyncio.Protocol):
    """Knows when the stdin pipe is gone (aborting it after that is an error)."""

    lost = False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


class OutputCollector(asyncio.Protocol):
    """Splits the output pipe into lines, stamping each with the time it was read."""

    def __init__(self, sink: OutputSink, loop: asyncio.AbstractEventLoop) -> None:
        self._sink = sink
        self._buffer = bytearray()
        self.closed: asyncio.Future[None] = loop.create_future()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        now_ms = time.time_ns() // 1_000_000
        while True:
            newline = self._buffer.find(b"\n", 0, MAX_LINE_BYTES)
            if newline < 0 and len(self._buffer) < MAX_LINE_BYTES:
                return
            end = newline + 1 if newline >= 0 else MAX_LINE_BYTES
            self._emit(bytes(self._buffer[:end]), now_ms)
            del self._buffer[:end]

    def eof_received(self) -> bool:
        self._flush()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._flush()
        if not self.closed.done():
            self.closed.set_result(None)

    def _flush(self) -> None:
        if self._buffer:
            self._emit(bytes(self._buffer), time.time_ns() // 1_000_000)
            self._buffer.clear()

    def _emit(self, line: bytes, timestamp_ms: int) -> None:
        self._sink(line.decode("utf-8", errors="replace"), timestamp_ms)
