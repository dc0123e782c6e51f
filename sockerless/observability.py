"""Structured logging and the per-request record of cloud request IDs.

The server opens a :class:`RequestContext` for every request; backends call
:func:`record_cloud_request_id` with each AWS (or other cloud) request ID, and the request's
log line carries them. Nothing here ever logs a value it was not explicitly given.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import datetime as dt
import functools
import json
import logging
import queue
import re
import sys
import threading
import time
from typing import Any, Final, TextIO

import orjson
from attrs import define, field

__all__ = [
    "OwnRecordsBelowWarning",
    "RequestContext",
    "configure_logging",
    "current_request",
    "flush_logs",
    "mask_secrets",
    "record_cloud_request_id",
]


@define
class RequestContext:
    method: str
    path: str
    cloud_request_ids: list[str] = field(factory=list)


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "sockerless_request", default=None
)


def current_request() -> RequestContext | None:
    return _current.get()


def bind_request(context: RequestContext) -> contextvars.Token[RequestContext | None]:
    return _current.set(context)


def unbind_request(token: contextvars.Token[RequestContext | None]) -> None:
    _current.reset(token)


def record_cloud_request_id(request_id: str | None) -> None:
    """Attach a cloud request ID to the request being served (a no-op in background work)."""
    context = _current.get()
    if request_id and context is not None and request_id not in context.cloud_request_ids:
        context.cloud_request_ids.append(request_id)


_SECRET_KEYS = re.compile(r"(?i)(authorization|x-registry-auth|password|secret|token|session|credential)")


@functools.lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    return _SECRET_KEYS.search(key) is not None  # few distinct keys: each is searched once


def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` with anything under a secret-looking key, and every ``Env`` value, masked."""
    if isinstance(value, dict):
        masked: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and _is_secret_key(key):
                masked[key] = "***"
            elif key in ("Env", "env") and isinstance(item, list):
                masked[key] = [f"{str(e).partition('=')[0]}=***" for e in item]
            else:
                masked[key] = mask_secrets(item)
        return masked
    if isinstance(value, list):
        return [mask_secrets(item) for item in value]
    return value


def _encode(payload: dict[str, Any]) -> str:
    try:
        return orjson.dumps(payload, default=str).decode()
    except orjson.JSONEncodeError:  # a lone surrogate: the standard encoder escapes it
        return json.dumps(payload, default=str)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra={"fields": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update(mask_secrets(fields))
        if record.exc_info:
            payload["traceback"] = self.formatException(record.exc_info)
        return _encode(payload)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            text += " " + " ".join(f"{k}={v}" for k, v in mask_secrets(fields).items())
        return text


class OwnRecordsBelowWarning(logging.Filter):
    """Below WARNING, only sockerless's own records (loggers ``sockerless*``, plugins included).

    Libraries write what they handle at DEBUG: botocore request bodies and headers, aiosqlite every
    SQL statement with its parameters (container records, environment values included). With this
    filter ``log_level: debug`` shows sockerless's decisions and never a library's payloads.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.startswith("sockerless")


#: Lines waiting for the writer thread. Past this many, logging waits for the writer: nothing is
#: dropped, and a process that logs faster than it can write slows down instead of growing.
QUEUE_LIMIT: Final = 10_000
#: How long the writer lets lines gather after the first of a batch before it writes them.
BATCH_SECONDS: Final = 0.02


class _LineQueue(logging.Handler):
    """Formats each record where it is logged and queues the line for the writer thread; ``put``
    blocks when the queue is full rather than dropping a line.

    Formatting at once shows the fields as they were when logged: a record's ``fields`` may hold a
    list or dict its caller changes afterwards (a request's cloud request IDs grow), and a line
    formatted later by the writer would show the later value. It costs the caller about the same
    (bench item 7 measured no difference).
    """

    def __init__(self, lines: queue.Queue[str | None]) -> None:
        super().__init__()
        self._lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._lines.put(line)


class _Writer:
    """The writer thread: writes what has queued, a batch at a time, with one write.

    The standard ``QueueListener`` wakes for every record, and each wake-up takes the interpreter
    lock from the event loop: that hand-over cost a request more than its whole answer (bench item
    7). This writer sleeps on the queue only for the first line of a batch, lets more gather for
    :data:`BATCH_SECONDS` (a line reaches stderr at most that much later), then takes them all.
    """

    def __init__(self, lines: queue.Queue[str | None], stream: TextIO) -> None:
        self._lines = lines
        self._stream = stream
        self._thread = threading.Thread(target=self._run, name="sockerless-log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write everything queued so far, then end the thread."""
        self._lines.put(None)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._lines.get()]
            time.sleep(BATCH_SECONDS)
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._lines.get_nowait())
            stopping = None in batch
            lines = [line for line in batch if line is not None]
            if lines:
                # A stderr that is gone (a closed pipe) leaves the lines nowhere to go.
                with contextlib.suppress(OSError, ValueError):
                    self._stream.write("\n".join(lines) + "\n")
                    self._stream.flush()


_writer: _Writer | None = None


def flush_logs() -> None:
    """Write every queued record now and stop the writer thread (the entry points call it when they
    stop; also run at interpreter exit). Logging configured again starts a new one."""
    global _writer
    if _writer is not None:
        writer, _writer = _writer, None
        writer.stop()


atexit.register(flush_logs)


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Log to stderr, written by a thread of its own; called once by the command-line entry points,
    never by library code. Where a record is logged it is only formatted and queued
    (:class:`_LineQueue`); the write to stderr, which may block, is the writer thread's."""
    global _writer
    flush_logs()
    # What neither formatter shows is not collected either (the logging HOWTO's "Optimization"): no
    # walk up the stack for the caller's file and line, no thread or process names.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    lines: queue.Queue[str | None] = queue.Queue(QUEUE_LIMIT)
    handler = _LineQueue(lines)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(OwnRecordsBelowWarning())
    _writer = _Writer(lines, sys.stderr)
    _writer.start()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Not even built: these format payloads at DEBUG, at a cost, only for the filter to drop them.
    for noisy in ("werkzeug", "botocore", "aiobotocore", "urllib3", "aiohttp.access", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
