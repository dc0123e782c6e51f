"""Structured logging and the per-request record of cloud request IDs.

The server opens a :class:`RequestContext` for every request; backends call
:func:`record_cloud_request_id` with each AWS (or other cloud) request ID, and the request's
log line carries them. Nothing here ever logs a value it was not explicitly given.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextvars
import datetime as dt
import json
import logging
import re
import sys
import time
from typing import Any, Final

from attrs import define, field

__all__ = [
    "OwnRecordsBelowWarning",
    "RequestContext",
    "configure_logging",
    "current_request",
    "flush_after_answer_lines",
    "log_after_answer",
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


#: How long a line given to :func:`log_after_answer` waits before it is written, gathered with the
#: lines that come meanwhile. A client's next request usually follows an answer within a millisecond;
#: written at once, the answer's lines (about 0.2 ms each on the benchmark machine when its caches
#: are cold) made that request wait. Written a few milliseconds later, they fall in time the process
#: spends waiting (on AWS, on the client), and are written together.
AFTER_ANSWER_DELAY: Final = 0.005
#: Lines written in one step of the event loop at most; more wait for the next step.
_AFTER_ANSWER_BATCH: Final = 64


class _AfterAnswer:
    """Lines waiting to be written, in the order they were given, each with its time."""

    def __init__(self) -> None:
        self.lines: collections.deque[tuple[logging.Logger, str, dict[str, Any], float]] = collections.deque()
        self.timer: asyncio.Handle | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def add(self, logger: logging.Logger, message: str, fields: dict[str, Any]) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not self.loop:
            self.flush()  # lines an event loop left when it ended (tests run many loops)
            self.loop = loop
        self.lines.append((logger, message, fields, time.time()))
        if loop is None:
            self.flush()  # no event loop: no answer to wait for
        elif self.timer is None:
            self.timer = loop.call_later(AFTER_ANSWER_DELAY, self._due)

    def _due(self) -> None:
        self.timer = None
        for _ in range(min(len(self.lines), _AFTER_ANSWER_BATCH)):
            _write(*self.lines.popleft())
        if self.lines:
            self.timer = asyncio.get_running_loop().call_soon(self._due)

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        while self.lines:
            _write(*self.lines.popleft())


_after_answer = _AfterAnswer()


def log_after_answer(logger: logging.Logger, message: str, fields: dict[str, Any]) -> None:
    """An INFO line written off the answers' path: :data:`AFTER_ANSWER_DELAY` later, with others.

    Lines are written in the order they were given, each with the time it was given, so a request's
    own lines come before its access line. Lines logged the usual way (warnings, errors) are written
    at once, and may come before lines given here up to :data:`AFTER_ANSWER_DELAY` earlier. The
    command-line entry points write what is still waiting with :func:`flush_after_answer_lines`
    when they stop, and so does the interpreter's exit.
    """
    _after_answer.add(logger, message, fields)


def flush_after_answer_lines() -> None:
    """Write every line :func:`log_after_answer` still holds, now."""
    _after_answer.flush()


atexit.register(flush_after_answer_lines)


def _write(logger: logging.Logger, message: str, fields: dict[str, Any], at: float) -> None:
    # Logger._log's own two steps, with the record's time set to when the line was given.
    record = logger.makeRecord(
        logger.name, logging.INFO, "(unknown file)", 0, message, (), None, extra={"fields": fields}
    )
    record.created = at
    record.msecs = int((at - int(at)) * 1000) + 0.0
    logger.handle(record)


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


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Log to stderr; called once by the command-line entry points, never by library code."""
    # What neither formatter shows is not collected either (the logging HOWTO's "Optimization"): no
    # walk up the stack for the caller's file and line, no thread or process names. About a third of
    # a record's cost, and a request logs at least one.
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
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Not even built: these format payloads at DEBUG, at a cost, only for the filter to drop them.
    for noisy in ("werkzeug", "botocore", "aiobotocore", "urllib3", "aiohttp.access", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
