"""Structured logging and the per-request record of cloud request IDs.

The server opens a :class:`RequestContext` for every request; backends call
:func:`record_cloud_request_id` with each AWS (or other cloud) request ID, and the request's
log line carries them. Nothing here ever logs a value it was not explicitly given.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import json
import logging
import re
import sys
from typing import Any

from attrs import define, field

__all__ = [
    "OwnRecordsBelowWarning",
    "RequestContext",
    "configure_logging",
    "current_request",
    "log_after_answer",
    "mask_secrets",
    "record_cloud_request_id",
]


@define
class RequestContext:
    method: str
    path: str
    cloud_request_ids: list[str] = field(factory=list)
    #: Lines held by :func:`log_after_answer` until the answer is sent; None once it is.
    held: list[tuple[logging.Logger, str, dict[str, Any]]] | None = field(factory=list)

    def answered(self) -> None:
        """The answer is sent: write the held lines (in order); later ones are written at once."""
        held, self.held = self.held, None
        for logger, message, fields in held or ():
            _write(logger, message, fields)


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "sockerless_request", default=None
)


def current_request() -> RequestContext | None:
    return _current.get()


def bind_request(context: RequestContext) -> contextvars.Token[RequestContext | None]:
    return _current.set(context)


def unbind_request(token: contextvars.Token[RequestContext | None]) -> None:
    _current.reset(token)


def log_after_answer(logger: logging.Logger, message: str, fields: dict[str, Any]) -> None:
    """An INFO line written off the answer's path: formatting and writing a line costs about as much
    as the rest of a short request's own work, and no client should wait for it.

    In a request, the line is held until the request's answer is sent (then written before its
    access line). Outside one (background work, or after the answer), it is written in the event
    loop's next step, after what is already due to run, such as a waiter this work just released.
    """
    context = _current.get()
    if context is not None and context.held is not None:
        context.held.append((logger, message, fields))
    else:
        asyncio.get_running_loop().call_soon(_write, logger, message, fields)


def _write(logger: logging.Logger, message: str, fields: dict[str, Any]) -> None:
    logger.info(message, extra={"fields": fields})


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
