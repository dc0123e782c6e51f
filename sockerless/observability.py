"""Structured logging and the per-request record of cloud request IDs.

The server opens a :class:`RequestContext` for every request; backends call
:func:`record_cloud_request_id` with each AWS (or other cloud) request ID, and the request's
log line carries them. Nothing here ever logs a value it was not explicitly given.
"""

from __future__ import annotations

import atexit
import contextvars
import datetime as dt
import json
import logging
import logging.handlers
import queue
import re
import sys
from typing import Any, Final

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


def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` with anything under a secret-looking key, and every ``Env`` value, masked."""
    if isinstance(value, dict):
        masked: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and _SECRET_KEYS.search(key):
                masked[key] = "***"
            elif key in ("Env", "env") and isinstance(item, list):
                masked[key] = [f"{str(e).partition('=')[0]}=***" for e in item]
            else:
                masked[key] = mask_secrets(item)
        return masked
    if isinstance(value, list):
        return [mask_secrets(item) for item in value]
    return value


_ENCODER = json.JSONEncoder(default=str)  # one for all lines: json.dumps(..., default=str) makes one per call


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
        return _ENCODER.encode(payload)


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


#: Records waiting for the writer thread. Past this many, logging waits for the writer: nothing is
#: dropped, and a process that logs faster than it can write slows down instead of growing.
QUEUE_LIMIT: Final = 10_000


class _BlockingQueueHandler(logging.handlers.QueueHandler):
    """Queues records as they are, for the writer thread to format and write.

    The standard ``prepare`` formats the message on the caller's thread; our records carry their
    fields as plain data (``extra={"fields": ...}``), so formatting waits for the writer. ``put``
    blocks when the queue is full rather than dropping a record.
    """

    def __init__(self, records: queue.Queue[logging.LogRecord]) -> None:
        super().__init__(records)
        self._records = records

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        self._records.put(record)


_listener: logging.handlers.QueueListener | None = None


def flush_logs() -> None:
    """Write every queued record now and stop the writer thread (the entry points call it when they
    stop; also run at interpreter exit). Logging configured again starts a new one."""
    global _listener
    if _listener is not None:
        listener, _listener = _listener, None
        listener.stop()


atexit.register(flush_logs)


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Log to stderr, written by a thread of its own; called once by the command-line entry points,
    never by library code. The event loop only queues a record: the JSON and the write to stderr
    happen on the writer thread (the standard ``QueueHandler``/``QueueListener`` pair)."""
    global _listener
    flush_logs()
    # What neither formatter shows is not collected either (the logging HOWTO's "Optimization"): no
    # walk up the stack for the caller's file and line, no thread or process names.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(OwnRecordsBelowWarning())
    records: queue.Queue[logging.LogRecord] = queue.Queue(QUEUE_LIMIT)
    _listener = logging.handlers.QueueListener(records, handler, respect_handler_level=True)
    _listener.start()
    root = logging.getLogger()
    root.handlers[:] = [_BlockingQueueHandler(records)]
    root.setLevel(level.upper())
    # Not even built: these format payloads at DEBUG, at a cost, only for the filter to drop them.
    for noisy in ("werkzeug", "botocore", "aiobotocore", "urllib3", "aiohttp.access", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
