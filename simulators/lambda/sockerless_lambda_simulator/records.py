"""An invocation's log records (Text or JSON, as Lambda writes them) and its failures."""

from __future__ import annotations

import json
import math
import os
import signal
from datetime import UTC, datetime
from typing import Any

from attrs import frozen

from .cloudwatch import InvocationLog
from .functions import FunctionConfig
from .runtime import ProcessOutcome


@frozen
class Failure:
    error_type: str
    message: str
    """The errorMessage of the payload, ``RequestId: <id> Error: ...``."""
    log_line: str
    """What Lambda writes to the log for this failure."""
    body: bytes | None = None
    """The caller's error document when the runtime wrote it (``/init/error``), else made of the above."""


class Records:
    """The log records of one invocation, in the function's LogFormat (Text or JSON)."""

    def __init__(self, config: FunctionConfig, request_id: str, sink: InvocationLog) -> None:
        self._config = config
        self._request_id = request_id
        self._sink = sink
        self._json = config.log_format == "JSON"
        self._last_line = ""

    def output(self, line: str, timestamp_ms: int) -> None:
        if line.strip():
            self._last_line = line
        # Each of Lambda's log records ends with a newline, also the last line of output printed
        # without one: the tail and CloudWatch both show it as a line of its own, and the platform
        # lines after it (END, REPORT) start lines of their own.
        self._sink.append(line if line.endswith("\n") else line + "\n", timestamp_ms)

    def payload(self) -> bytes:
        """The last output line when it is JSON (our stand-in for a handler's result), else ``null``."""
        candidate = self._last_line.strip()
        try:
            json.loads(candidate)
        except ValueError:
            return b"null"
        return candidate.encode()

    def reported_error(self) -> dict[str, Any] | None:
        """The error the command reported as its last output line, a JSON object with string
        ``errorType`` and ``errorMessage`` (our stand-in for the Runtime API's ``/error`` call)."""
        try:
            document = json.loads(self._last_line.strip() or "null")
        except ValueError:
            return None
        if (
            isinstance(document, dict)
            and isinstance(document.get("errorType"), str)
            and isinstance(document.get("errorMessage"), str)
        ):
            return document
        return None

    def start(self) -> None:
        record = {"requestId": self._request_id, "version": self._config.version}
        self._platform(
            "platform.start", record, f"START RequestId: {self._request_id} Version: {self._config.version}"
        )

    def init_start(self) -> None:
        # A container image has no managed runtime version: "container" stands in for it.
        self._platform(
            "platform.initStart",
            {"initializationType": "on-demand", "phase": "init", "runtimeVersion": "container"},
            "INIT_START Runtime Version: container",
        )

    def init_report(self, duration_ms: float, phase: str, failure: Failure) -> None:
        """A failed Init: Lambda's ``INIT_REPORT`` line (Phase ``init``, or ``invoke`` when Lambda
        ran Init again inside the invocation)."""
        timed_out = failure.error_type in ("Runtime.InitTimeout", "Sandbox.Timedout")
        status = "timeout" if timed_out else "error"
        if self._json:
            record: dict[str, Any] = {
                "initializationType": "on-demand",
                "phase": phase,
                "status": status,
                "metrics": {"durationMs": round(duration_ms, 2)},
            }
            if not timed_out:
                record["errorType"] = failure.error_type
            self._platform("platform.initReport", record, "")
            return
        line = f"INIT_REPORT Init Duration: {duration_ms:.2f} ms\tPhase: {phase}\tStatus: {status}"
        if not timed_out:
            line += f"\tError Type: {failure.error_type}"
        self._append(line)

    def failure(self, failure: Failure) -> None:
        if not self._json and failure.log_line:
            self._append(failure.log_line)

    def end(
        self, outcome: ProcessOutcome | None, failure: Failure | None, *, init_ms: float | None = None
    ) -> None:
        timed_out = outcome is not None and outcome.timed_out
        duration_ms = outcome.duration_ms if outcome is not None else 0.0
        if timed_out:
            duration_ms = self._config.timeout_seconds * 1000.0
        billed_ms = max(1, math.ceil(duration_ms))
        # Sampled while the command runs: a run shorter than the first sample shows the 1 MB floor.
        used_mb = max(1, math.ceil(outcome.max_rss_kb / 1024)) if outcome is not None else 1
        status = "success" if failure is None else ("timeout" if timed_out else "error")
        if self._json:
            record: dict[str, Any] = {
                "requestId": self._request_id,
                "metrics": {
                    "durationMs": round(duration_ms, 2),
                    "billedDurationMs": billed_ms,
                    "memorySizeMB": self._config.memory_mb,
                    "maxMemoryUsedMB": used_mb,
                    **({"initDurationMs": round(init_ms, 2)} if init_ms is not None else {}),
                },
                "status": status,
            }
            if failure is not None:
                record["errorType"] = failure.error_type
            self._platform("platform.report", record, "")
            return
        self._append(f"END RequestId: {self._request_id}")
        report = (
            f"REPORT RequestId: {self._request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {billed_ms} ms\tMemory Size: {self._config.memory_mb} MB\t"
            f"Max Memory Used: {used_mb} MB\t"
        )
        if init_ms is not None:
            report += f"Init Duration: {init_ms:.2f} ms\t"
        if failure is not None:
            report += (
                f"Status: {status}\t" if timed_out else f"Status: error\tError Type: {failure.error_type}\t"
            )
        self._append(report)

    def _platform(self, event_type: str, record: dict[str, Any], text: str) -> None:
        if self._json:
            self._append(json.dumps({"time": iso_now(), "type": event_type, "record": record}))
        else:
            self._append(text)

    def _append(self, message: str) -> None:
        # Lambda's own records end with a newline, like the output lines they frame.
        self._sink.append(message + "\n", now_ms())


def failure_of(config: FunctionConfig, request_id: str, outcome: ProcessOutcome | None) -> Failure | None:
    prefix = f"RequestId: {request_id} Error: "
    if outcome is None:
        # No command: like an image that does not speak the Runtime API and says nothing.
        reason = "Runtime exited without providing a reason"
        return Failure("Runtime.ExitError", prefix + reason, f"{prefix}{reason}\nRuntime.ExitError")
    if outcome.spawn_error is not None:
        return Failure(
            "Runtime.InvalidEntrypoint",
            prefix + outcome.spawn_error,
            f"{prefix}{outcome.spawn_error}\nRuntime.InvalidEntrypoint",
        )
    if outcome.timed_out:
        after = f"Task timed out after {config.timeout_seconds:.2f} seconds"
        return Failure("Sandbox.Timedout", prefix + after, f"{iso_now()} {request_id} {after}")
    if outcome.exit_code == 0:
        return None
    if outcome.signal is not None:
        # Go's wording, which Lambda's runtime reports: "signal: killed".
        name = (signal.strsignal(outcome.signal) or str(outcome.signal)).lower()
        reason = f"Runtime exited with error: signal: {name}"
    else:
        reason = f"Runtime exited with error: exit status {outcome.exit_code}"
    return Failure("Runtime.ExitError", prefix + reason, f"{prefix}{reason}\nRuntime.ExitError")


def exited_with_status(outcome: ProcessOutcome | None) -> bool:
    """The command ran and exited with a non-zero status of its own (no signal, no timeout)."""
    return (
        outcome is not None
        and not outcome.timed_out
        and outcome.spawn_error is None
        and outcome.exit_code not in (None, 0)
    )


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def process_outcome(
    status: int | None, timed_out: bool, duration_ms: float, max_rss_kb: int
) -> ProcessOutcome:
    """A runtime's end as a ProcessOutcome, from its wait status (None: it did not exit)."""
    code = os.waitstatus_to_exitcode(status) if status is not None else None
    return ProcessOutcome(
        exit_code=code if code is not None and code >= 0 else None,
        signal=-code if code is not None and code < 0 else None,
        timed_out=timed_out,
        duration_ms=duration_ms,
        max_rss_kb=max_rss_kb,
    )


def no_reason(request_id: str) -> Failure:
    """A runtime that exited with status 0 (or ended otherwise without saying why)."""
    prefix = f"RequestId: {request_id} Error: "
    reason = "Runtime exited without providing a reason"
    return Failure("Runtime.ExitError", prefix + reason, f"{prefix}{reason}\nRuntime.ExitError")
