"""Execution environments as Lambda runs them: one runtime process per environment, spoken to through
the Runtime API, frozen between invocations, discarded after a crash, a timeout or a function change."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from enum import StrEnum

from attrs import define, field

from .runtime import (
    OutputCollector,
    OutputSink,
    kill_group,
    reap,
    resident_peak_kb,
    spawn_error,
    spawn_group,
    untrack_group,
    wait_exited,
)
from .runtime_api import RuntimeApiServer, RuntimeRequest, RuntimeResponse

__all__ = [
    "BOOTSTRAP_IMAGE_PATH",
    "BUFFERED_RESPONSE_LIMIT",
    "STREAMING_RESPONSE_LIMIT",
    "Dispatch",
    "ExecutionEnvironment",
    "Phase",
]

log = logging.getLogger(__name__)

#: Where the backend puts our bootstrap in an image; the simulator runs the host binary instead.
BOOTSTRAP_IMAGE_PATH = "/opt/sockerless/bootstrap"
#: Lambda's limit of a buffered response (the runtime gets 413 beyond it).
BUFFERED_RESPONSE_LIMIT = 6_291_556
#: Lambda's limit of a streamed response.
STREAMING_RESPONSE_LIMIT = 200 * 1024 * 1024
_PREFIX = "/2018-06-01/runtime/"
_ERROR_BODY_LIMIT = 1024 * 1024
_REAP_SECONDS = 10.0
_SAMPLE_SECONDS = 0.25


class Phase(StrEnum):
    INIT = "init"
    IDLE = "idle"
    BUSY = "busy"
    DEAD = "dead"


@define
class Dispatch:
    """One invocation handed to an environment, and what its runtime answered so far."""

    request_id: str
    payload: bytes
    deadline_ms: int
    function_arn: str
    trace_id: str
    live: asyncio.Queue[bytes | None] | None = None
    """When set, every byte of the response is put here as it arrives, then ``None``."""
    body: bytearray = field(factory=bytearray)
    body_over: bool = False
    """The response exceeded the buffered limit (6 MB) that a buffered Invoke can answer."""
    answered: bool = False
    """The runtime began a response or posted an error."""
    complete: bool = False
    """The response ended (or the error was posted)."""
    error_type: str | None = None
    error_body: bytes = b""
    streamed_bytes: int = 0

    def feed(self, chunk: bytes) -> None:
        self.streamed_bytes += len(chunk)
        if self.live is not None:
            self.live.put_nowait(chunk)
        if len(self.body) + len(chunk) > BUFFERED_RESPONSE_LIMIT:
            self.body_over = True
        elif not self.body_over:
            self.body += chunk

    def fail(self, error_type: str, body: bytes) -> None:
        if self.error_type is None:
            self.error_type, self.error_body = error_type, body

    def finish(self) -> None:
        self.complete = True
        self.close_live()

    def close_live(self) -> None:
        if self.live is not None:
            self.live.put_nowait(None)
            self.live = None


class ExecutionEnvironment:
    """A runtime process, its Runtime API listener, its ``/tmp`` and its log stream."""

    def __init__(self, *, name: str, generation: int, group: str, stream: str) -> None:
        self.name = name
        self.generation = generation
        self.group = group
        self.stream = stream
        self.stream_exists = False
        self.phase = Phase.INIT
        self.root = tempfile.mkdtemp(prefix="sockerless-lambda-env-")
        self.tmp_dir = os.path.join(self.root, "tmp")
        self.task_dir = os.path.join(self.root, "task")
        os.mkdir(self.tmp_dir)
        os.mkdir(self.task_dir)
        self.sink: OutputSink | None = None
        self.orphans: list[tuple[str, int]] = []
        """Output read while no invocation was attached, given to the next one."""
        self.current: Dispatch | None = None
        self.init_error: tuple[str, bytes] | None = None
        self.broken = False
        self.idle_timer: asyncio.TimerHandle | None = None
        self._server = RuntimeApiServer(self._handle, name)
        self._process: subprocess.Popen[bytes] | None = None
        self._exited: asyncio.Task[None] | None = None
        self._status: int | None = None
        self._collector: OutputCollector | None = None
        self._output_fd: int | None = None
        self._next_called = asyncio.Event()
        self._next_waiter: asyncio.Future[Dispatch] | None = None
        self._frozen = False

    # -- life cycle -----------------------------------------------------------------------------

    @property
    def runtime_api(self) -> str:
        return f"127.0.0.1:{self._server.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def open(self) -> None:
        await self._server.start()

    def spawn(self, argv: tuple[str, ...], env: Mapping[str, str], cwd: str | None) -> str | None:
        """Start the runtime (Init begins); the spawn error worded like Lambda's, or None."""
        self._next_called = asyncio.Event()
        self.init_error = None
        self._status = None
        self.phase = Phase.INIT
        try:
            process = spawn_group(argv, env, cwd or self.task_dir)
        except OSError as exc:
            return spawn_error(argv[0], exc)
        self._process = process
        assert process.stdout is not None
        loop = asyncio.get_running_loop()
        self._collector = OutputCollector(self._emit, loop)
        fd = process.stdout.fileno()
        os.set_blocking(fd, False)
        self._output_fd = fd
        loop.add_reader(fd, self._read_output)
        self._exited = asyncio.create_task(wait_exited(process.pid), name=f"runtime {process.pid} exit")
        return None

    async def wait_init(self, timeout: float) -> str:
        """``"ready"`` (the runtime called /next), ``"exited"``, ``"error"`` (it posted /init/error) or
        ``"timeout"``."""
        outcome = await self._wait_next(timeout, sample=None)
        if outcome == "next":
            return "ready"
        if self.init_error is not None:
            return "error"
        return outcome

    async def wait_end(self, timeout: float, peak_kb: list[int]) -> str:
        """Wait until the invocation ends: ``"next"``, ``"exited"`` or ``"timeout"``."""
        return await self._wait_next(timeout, sample=peak_kb)

    async def _wait_next(self, timeout: float, sample: list[int] | None) -> str:
        assert self._exited is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        called = asyncio.create_task(self._next_called.wait())
        interval = 0.01
        try:
            while True:
                if self.init_error is not None and self.phase is Phase.INIT:
                    return "error"
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return "timeout"
                wait = min(interval, remaining) if sample is not None else min(0.05, remaining)
                done, _ = await asyncio.wait(
                    {called, self._exited}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                if called in done:
                    return "next"
                if self._exited in done:
                    return "exited"
                if sample is not None and self._process is not None:
                    sample[0] = max(sample[0], resident_peak_kb(self._process.pid))
                    interval = min(interval * 4, _SAMPLE_SECONDS)
        finally:
            called.cancel()

    def dispatch(self, invocation: Dispatch) -> None:
        """Hand the invocation to the runtime's waiting /next (thawing the environment)."""
        self.thaw()
        self.current = invocation
        self.phase = Phase.BUSY
        self._next_called = asyncio.Event()
        for line, timestamp in self.orphans:
            if self.sink is not None:
                self.sink(line, timestamp)
        self.orphans.clear()
        waiter = self._next_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(invocation)

    def finish_invocation(self) -> None:
        """The invocation is over: freeze the environment until the next one."""
        if self.current is not None:
            self.current.close_live()
        self.current = None
        self.sink = None
        self.phase = Phase.IDLE
        self.freeze()

    def freeze(self) -> None:
        if self._process is not None and not self._frozen and self.alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGSTOP)
                self._frozen = True

    def thaw(self) -> None:
        if self._process is not None and self._frozen:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGCONT)
        self._frozen = False

    @property
    def alive(self) -> bool:
        return self._exited is not None and not self._exited.done() and self.phase is not Phase.DEAD

    def exit_status(self) -> int | None:
        """The runtime's wait status once it has exited and been reaped here."""
        return self._status

    async def stop_process(self) -> int | None:
        """Kill the runtime's group (frozen or not), reap it, read the rest of its output: its wait
        status (``None`` if it never started)."""
        process = self._process
        if process is None:
            return None
        self._process = None
        pid = process.pid
        kill_group(pid)
        self._frozen = False
        if self._exited is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._exited), _REAP_SECONDS)
        status: int | None = None
        try:
            status = reap(pid)
            process.returncode = os.waitstatus_to_exitcode(status)
            untrack_group(pid)
        except ChildProcessError:
            log.warning("runtime %d did not exit after SIGKILL; it is killed again at exit", pid)
        if self._exited is not None and not self._exited.done():
            self._exited.cancel()
        self._read_output()
        self._close_output()
        if process.stdout is not None:
            with contextlib.suppress(OSError):
                process.stdout.close()
        self._status = status
        if self._next_waiter is not None and not self._next_waiter.done():
            self._next_waiter.cancel()
        return status

    async def discard(self) -> None:
        """Kill the runtime, stop the Runtime API, remove ``/tmp``. Idempotent."""
        self.phase = Phase.DEAD
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        await self.stop_process()
        if self.current is not None:
            self.current.close_live()
        await self._server.close()
        root, self.root = self.root, ""
        if root:
            await asyncio.to_thread(shutil.rmtree, root, True)

    # -- output -----------------------------------------------------------------------------------

    def _emit(self, line: str, timestamp_ms: int) -> None:
        if self.sink is not None:
            self.sink(line, timestamp_ms)
        else:
            self.orphans.append((line, timestamp_ms))

    def _read_output(self) -> None:
        """Read what the pipe holds now (never blocks); called by the loop and before each /next."""
        fd, collector = self._output_fd, self._collector
        if fd is None or collector is None:
            return
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                collector.connection_lost(None)
                self._close_output()
                return
            collector.data_received(data)

    def _close_output(self) -> None:
        if self._output_fd is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._output_fd)
            self._output_fd = None

    # -- the Runtime API --------------------------------------------------------------------------

    async def _handle(self, request: RuntimeRequest) -> RuntimeResponse:
        if not request.path.startswith(_PREFIX):
            return RuntimeResponse.error(404, "NotFound", f"no such path: {request.path}")
        route = request.path[len(_PREFIX) :].strip("/").split("/")
        if route == ["invocation", "next"] and request.method == "GET":
            return await self._next()
        if route == ["init", "error"] and request.method == "POST":
            return await self._init_error(request)
        if len(route) == 3 and route[0] == "invocation" and request.method == "POST":
            if route[2] == "response":
                return await self._response(route[1], request)
            if route[2] == "error":
                return await self._error(route[1], request)
        return RuntimeResponse.error(404, "NotFound", f"no such path: {request.method} {request.path}")

    async def _next(self) -> RuntimeResponse:
        # A second /next while one waits, or one before the invocation was answered: refused, as the
        # runtime must answer (response or error) before it asks for more.
        unanswered = self.current is not None and not self.current.complete
        waiting = self._next_waiter is not None and not self._next_waiter.done()
        if self.broken or waiting or unanswered:
            return RuntimeResponse.error(403, "InvalidStateTransition", "State transition is not allowed")
        # What the runtime wrote before asking belongs to the invocation it ends.
        self._read_output()
        waiter: asyncio.Future[Dispatch] = asyncio.get_running_loop().create_future()
        self._next_waiter = waiter
        self._next_called.set()
        try:
            invocation = await waiter
        finally:
            self._next_waiter = None
        headers = {
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
            "Lambda-Runtime-Trace-Id": invocation.trace_id,
            "Content-Type": "application/json",
        }
        return RuntimeResponse(200, invocation.payload, headers)

    def _invocation(self, request_id: str) -> Dispatch | RuntimeResponse:
        invocation = self.current
        if invocation is None or invocation.request_id != request_id:
            return RuntimeResponse.error(400, "InvalidRequestID", "Invalid request ID")
        if invocation.answered:
            return RuntimeResponse.error(403, "InvalidStateTransition", "State transition is not allowed")
        return invocation

    async def _response(self, request_id: str, request: RuntimeRequest) -> RuntimeResponse:
        invocation = self._invocation(request_id)
        if isinstance(invocation, RuntimeResponse):
            return invocation
        mode = request.headers.get("lambda-runtime-function-response-mode")
        if mode is not None and mode != "streaming":
            self.broken = True
            return RuntimeResponse.error(
                400, "InvalidFunctionResponseMode", f"Invalid function response mode: {mode}"
            )
        invocation.answered = True
        if mode != "streaming":
            body, over = await request.read(BUFFERED_RESPONSE_LIMIT)
            if over:
                invocation.fail("Function.ResponseSizeTooLarge", _too_large(BUFFERED_RESPONSE_LIMIT))
                invocation.finish()
                return RuntimeResponse.error(
                    413, "Function.ResponseSizeTooLarge", "Response payload size exceeded maximum allowed"
                )
            invocation.feed(body)
            invocation.finish()
            return RuntimeResponse.json(202, {"status": "OK"})
        over = False
        async for chunk in request.chunks():
            if invocation.streamed_bytes + len(chunk) > STREAMING_RESPONSE_LIMIT:
                over = True
                continue
            invocation.feed(chunk)
        if over:
            invocation.fail("Function.ResponseSizeTooLarge", _too_large(STREAMING_RESPONSE_LIMIT))
        error_type = request.trailers.get("lambda-runtime-function-error-type")
        if error_type:
            encoded = request.trailers.get("lambda-runtime-function-error-body", "")
            try:
                body = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                body = b""
            invocation.fail(error_type, _error_document(error_type, body))
        invocation.finish()
        if over:
            return RuntimeResponse.error(
                413, "Function.ResponseSizeTooLarge", "Response payload size exceeded maximum allowed"
            )
        return RuntimeResponse.json(202, {"status": "OK"})

    async def _error(self, request_id: str, request: RuntimeRequest) -> RuntimeResponse:
        invocation = self._invocation(request_id)
        if isinstance(invocation, RuntimeResponse):
            return invocation
        body, _ = await request.read(_ERROR_BODY_LIMIT)
        error_type = request.headers.get("lambda-runtime-function-error-type") or _body_error_type(body)
        invocation.answered = True
        invocation.fail(error_type, _error_document(error_type, body))
        invocation.finish()
        return RuntimeResponse.json(202, {"status": "OK"})

    async def _init_error(self, request: RuntimeRequest) -> RuntimeResponse:
        if self.phase is not Phase.INIT:
            return RuntimeResponse.error(403, "InvalidStateTransition", "State transition is not allowed")
        body, _ = await request.read(_ERROR_BODY_LIMIT)
        error_type = request.headers.get("lambda-runtime-function-error-type") or _body_error_type(body)
        self.init_error = (error_type, _error_document(error_type, body))
        return RuntimeResponse.json(202, {"status": "OK"})


def _body_error_type(body: bytes) -> str:
    try:
        document = json.loads(body or b"null")
    except ValueError:
        return "Runtime.Unknown"
    if isinstance(document, dict) and isinstance(document.get("errorType"), str) and document["errorType"]:
        return str(document["errorType"])
    return "Runtime.Unknown"


def _error_document(error_type: str, body: bytes) -> bytes:
    """The error body the caller gets: the runtime's JSON object, or one made of its text."""
    try:
        document = json.loads(body or b"null")
    except ValueError:
        document = None
    if isinstance(document, dict):
        return json.dumps(document).encode()
    return json.dumps({"errorMessage": body.decode("utf-8", "replace"), "errorType": error_type}).encode()


def _too_large(limit: int) -> bytes:
    message = f"Response payload size exceeded maximum allowed payload size ({limit} bytes)."
    return json.dumps({"errorMessage": message, "errorType": "Function.ResponseSizeTooLarge"}).encode()


def deadline_ms(timeout_seconds: float) -> int:
    return int((time.time() + timeout_seconds) * 1000)


IdleCallback = Callable[["ExecutionEnvironment"], None]
