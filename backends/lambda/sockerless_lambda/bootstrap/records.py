"""The bootstrap's records (docs/bootstrap.md): the exit record that ends a response, and the lines of
the durable copy it writes to CloudWatch, parsed into what the backend records of a run."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Any, Final

from attrs import frozen

from sockerless.wire import parse_time
from sockerless_lambda.bootstrap.frames import STDERR, STDOUT

__all__ = ["DurableLine", "ExitRecord", "durable_filter_pattern", "parse_durable_line"]

#: ``reason`` values whose ``error`` explains why the command did not start.
_START_FAILURES: Final = frozenset({"not found", "not executable", "start failed"})
_STREAMS: Final = {"stdout": STDOUT, "stderr": STDERR}


@frozen
class ExitRecord:
    """How the command ended, as the bootstrap reports it."""

    status: int
    reason: str = ""
    error: str = ""
    started: dt.datetime | None = None
    finished: dt.datetime | None = None
    #: Streams cut at the payload's limits, each with (kept, written) bytes.
    cut: tuple[tuple[str, int, int], ...] = ()
    response_cut: bool = False

    @classmethod
    def parse(cls, data: bytes | dict[str, Any]) -> ExitRecord:
        """From the exit frame's JSON (or the durable copy's ``exit`` object); ValueError if malformed."""
        try:
            record = json.loads(data) if isinstance(data, bytes) else data
        except ValueError as exc:
            raise ValueError(f"the bootstrap's exit record is not JSON: {exc}") from None
        if not isinstance(record, dict) or not isinstance(record.get("status"), int):
            raise ValueError("the bootstrap's exit record has no status")
        cut: list[tuple[str, int, int]] = []
        for name in ("stdout", "stderr"):
            counts = record.get(name)
            if isinstance(counts, dict) and counts.get("cut"):
                cut.append((name, int(counts.get("kept", 0)), int(counts.get("bytes", 0))))
        return cls(
            status=record["status"],
            reason=str(record.get("reason") or ""),
            error=str(record.get("error") or ""),
            started=_time(record.get("started")),
            finished=_time(record.get("finished")),
            cut=tuple(cut),
            response_cut=bool(record.get("response_cut")),
        )

    def state_error(self, run_seconds: int) -> str:
        """Docker's State.Error for this exit (empty for a command that ran and exited)."""
        if self.reason == "timed out":
            return (
                f"timed out: the bootstrap stopped the command at the function timeout ({run_seconds} s, "
                "lambda.timeout)"
            )
        if self.reason in _START_FAILURES:
            # The same words as a command Lambda's own runtime could not start (invocations.py).
            return f"cannot run the command: {self.error or self.reason}"
        return ""

    def cut_notes(self) -> list[bytes]:
        """One line for each stream cut at its limit: shown as the run's last stderr line."""
        return [
            f"[sockerless] {name} was cut: {written - kept} of its {written} bytes are not kept "
            "(the output limit)\n".encode()
            for name, kept, written in self.cut
        ]


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value)
    except Exception:  # InvalidParameter, ValueError: a time that does not parse is not known
        return None


@frozen
class DurableLine:
    """One line of a run's durable copy: output bytes of a stream at an offset, or the exit."""

    run: str
    seq: int
    stream: int = 0
    offset: int = 0
    data: bytes = b""
    time: dt.datetime | None = None
    exit: ExitRecord | None = None


def durable_filter_pattern(run: str) -> str:
    """The CloudWatch filter pattern of a run's durable copy."""
    return '{ $.run = "' + run + '" }'


def parse_durable_line(message: str, run: str) -> DurableLine | None:
    """The line if ``message`` is one of run ``run``'s durable copy, else None (other runs, Lambda's own
    lines, anything malformed: a filter pattern narrows what CloudWatch returns, this decides)."""
    try:
        line = json.loads(message)
    except ValueError:
        return None
    if not isinstance(line, dict) or line.get("run") != run or line.get("v") != 1:
        return None
    seq = line.get("seq")
    if not isinstance(seq, int) or seq < 0:
        return None
    try:
        if "exit" in line:
            return DurableLine(run=run, seq=seq, exit=ExitRecord.parse(line["exit"]))
        stream = _STREAMS[str(line.get("stream"))]
        offset = int(line.get("offset", -1))
        data = base64.b64decode(str(line.get("data", "")), validate=True)
    except (KeyError, ValueError, TypeError, binascii.Error):
        return None
    if offset < 0:
        return None
    return DurableLine(
        run=run, seq=seq, stream=stream, offset=offset, data=data, time=_time(line.get("time"))
    )
